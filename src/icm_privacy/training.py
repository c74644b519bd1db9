"""Training recipe for a learned codec with SA-ICM's edge-region objective.

SA-ICM (Shindo, Yamada, Watanabe, Watanabe, "Image Coding for Machines with Edge Information Learning
Using Segment Anything", ICIP 2024, arXiv 2403.04173) trains TCM so that only object edges need to
survive decoding. The loss, as the paper states it, is

    L = R(y) + lambda * mse(x (.) sam_x(alpha), x_hat (.) sam_x(alpha))

with (.) the element-wise product and sam_x(alpha) a binary edge image: the Segment Anything masks of
x whose confidence reaches alpha, turned into edges with the Canny detector. The authors publish
lambda = 0.05 with alpha = 0.78 and 0.93 (their param/param_details.txt).

What this module assumes where the paper text available here does not say it exactly:
- Scale: the rate and distortion terms follow the TCM training script SA-ICM builds on, i.e.
  R = bits of y and z from the model's likelihoods per pixel, and the MSE is on [0, 1] images
  multiplied by 255^2: L = bpp + lambda * 255^2 * mean((x - x_hat)^2 * E). The mean runs over all
  pixels and channels, edge or not (that is what mse of the two masked images is).
- alpha is SAM's automatic mask generator confidence threshold (`pred_iou_thresh`).
- Edges: the pixels of each mask that have a 4-neighbour outside it, united over masks. On binary
  masks this marks the same boundaries Canny finds, one pixel wide, without Canny's thresholds.
- Mask source: Segment Anything when the `segment_anything` package and a SAM checkpoint are given.
  Neither is obtainable offline here, so the default substitutes the COCO instance masks of the
  training images (pycocotools, crowd regions left out). COCO masks carry no confidence: alpha does
  not apply to them, and they cover annotated objects only, where SAM also segments background.

CLI: python -m icm_privacy.training --images DIR --annotations instances.json --out ckpt.pth.tar
`--objective mse` trains the whole-image control on the same crops; every --checkpoint-every steps a
resume state is written beside --out and a rerun continues from it; a CSV log (step, loss, bpp, mse,
edge_mse, aux_loss) is kept. The shipped icm-edge / icm-mse codecs are the ICM_* recipe below
(docs/icm_training.md).
The checkpoint has the authors' layout ({"state_dict": ..., ...}), so the sa-icm codec loads it.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from .codecs import CODECS, make_codec
from .codecs.learned import LearnedCodec
from .files import atomic_path
from .images import to_rgb8

PAPER_LAMBDA = 0.05
PAPER_ALPHAS = (0.78, 0.93)
OBJECTIVES = ("edge", "mse")


def edge_map(masks: np.ndarray) -> np.ndarray:
    """(K, H, W) boolean masks -> (H, W) float32 map, 1 on each mask's boundary pixels."""
    if len(masks) == 0:
        raise ValueError("no masks: an image without objects has no edge region to train on")
    edges = np.zeros(masks.shape[1:], dtype=bool)
    for mask in masks:
        # border_value=0: a mask touching the image border gets an edge there, as Canny would
        edges |= mask & ~ndimage.binary_erosion(mask, border_value=0)
    return edges.astype(np.float32)


def coco_masks(coco, image_id: int) -> np.ndarray:
    """(K, H, W) boolean masks of the non-crowd instances of one COCO image."""
    info = coco.imgs[image_id]
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=False))
    masks = [coco.annToMask(annotation).astype(bool) for annotation in annotations]
    return np.stack(masks) if masks else np.zeros((0, info["height"], info["width"]), dtype=bool)


class SamMasks:
    """Segment Anything's automatic masks, kept when their predicted IoU reaches alpha."""

    def __init__(self, checkpoint: Path, model_type: str, alpha: float, device: str):
        try:
            from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
        except ImportError as error:
            raise RuntimeError("--masks sam needs the segment_anything package (pip install segment-anything)") \
                from error
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"SAM checkpoint {checkpoint} does not exist (--sam-checkpoint)")
        sam = sam_model_registry[model_type](checkpoint=str(checkpoint)).to(device)
        self.generator = SamAutomaticMaskGenerator(sam, pred_iou_thresh=alpha)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        masks = [record["segmentation"] for record in self.generator.generate(rgb)]
        return np.stack(masks) if masks else np.zeros((0, *rgb.shape[:2]), dtype=bool)


@dataclass
class EdgeImage:
    name: str
    rgb: np.ndarray  # HxWx3 uint8
    edges: np.ndarray  # HxW float32 in {0, 1}


def load_edge_images(images: Path, annotations: Path, first_n: int | None = None,
                     sam: SamMasks | None = None) -> list[EdgeImage]:
    """The COCO images with at least one instance mask, and their edge maps (SAM's when given).

    Pixels are read as stored, without EXIF rotation, because COCO masks are drawn on stored pixels.
    """
    from pycocotools.coco import COCO

    coco = COCO(str(annotations))
    loaded = []
    for image_id in sorted(coco.imgs)[:first_n]:
        info = coco.imgs[image_id]
        path = Path(images) / info["file_name"]
        with Image.open(path) as image:
            rgb = to_rgb8(image)
        if rgb.shape[:2] != (info["height"], info["width"]):
            raise ValueError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} pixels, annotations say "
                             f"{info['width']}x{info['height']}")
        masks = sam(rgb) if sam is not None else coco_masks(coco, image_id)
        if len(masks):
            loaded.append(EdgeImage(path.stem, rgb, edge_map(masks)))
    if not loaded:
        raise ValueError(f"{annotations}: none of the images has an instance mask")
    return loaded


def sample_crops(images: list[EdgeImage], crop: int, batch_size: int, rng: np.random.Generator, tries: int = 10):
    """A batch of random crops: (B, 3, crop, crop) images in [0, 1] and (B, 1, crop, crop) edge maps.

    A crop without any edge pixel teaches only rate, so up to `tries` positions are drawn per crop and
    the first one with an edge is kept (small crops on a mostly background image often have none).
    """
    small = [image.name for image in images if min(image.rgb.shape[:2]) < crop]
    if small:
        raise ValueError(f"crop {crop} is larger than images {', '.join(small[:5])}")
    pixels, edges = [], []
    for index in rng.integers(len(images), size=batch_size):
        image = images[index]
        for _ in range(tries):
            top = rng.integers(image.rgb.shape[0] - crop + 1)
            left = rng.integers(image.rgb.shape[1] - crop + 1)
            window = (slice(top, top + crop), slice(left, left + crop))
            if image.edges[window].any():
                break
        pixels.append(image.rgb[window])
        edges.append(image.edges[window])
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.from_numpy(np.stack(edges))[:, None]


def sa_icm_loss(output: dict, x, edges, lmbda: float, objective: str = "edge") -> dict:
    """bpp + lambda * 255^2 * distortion; see the module docstring.

    objective "edge" (SA-ICM): distortion = mean((x - x_hat)^2 * edges); "mse" (the control): the plain
    mean((x - x_hat)^2). Both distortions are returned, so either run logs what the other optimizes.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not one of {OBJECTIVES}")
    batch, _, height, width = x.shape
    bits = sum(-(likelihoods.log2().sum()) for likelihoods in output["likelihoods"].values())
    bpp = bits / (batch * height * width)
    squared = (output["x_hat"] - x) ** 2
    mse, edge_mse = squared.mean(), (squared * edges).mean()
    distortion = edge_mse if objective == "edge" else mse
    return {"loss": bpp + lmbda * 255**2 * distortion, "bpp": bpp, "mse": mse, "edge_mse": edge_mse}


def make_optimizers(model, learning_rate: float, aux_learning_rate: float):
    """As in CompressAI/TCM training: Adam on the network, a second Adam on the entropy bottleneck's quantiles."""
    parameters = dict(model.named_parameters())
    quantiles = [name for name in parameters if name.endswith(".quantiles")]
    optimizer = torch.optim.Adam([p for n, p in parameters.items() if n not in quantiles], lr=learning_rate)
    return optimizer, torch.optim.Adam([parameters[n] for n in quantiles], lr=aux_learning_rate)


def train(model, batches, steps: int, lmbda: float = PAPER_LAMBDA, learning_rate: float = 1e-4,
          aux_learning_rate: float = 1e-3, clip_norm: float = 1.0, log=None, objective: str = "edge",
          optimizers=None, start: int = 0) -> list[dict]:
    """Optimize `model` for steps start .. steps-1 with batches of (x, edges) from the iterator `batches`.

    Gradient norm clipped, as in CompressAI/TCM training. `optimizers` (from make_optimizers) carry
    Adam's state across calls, which resuming needs. Returns per-step numbers; `log` gets each one.
    """
    optimizer, aux_optimizer = optimizers or make_optimizers(model, learning_rate, aux_learning_rate)
    device = next(model.parameters()).device
    model.train()
    history = []
    for step in range(start, steps):
        # contiguous: a channels-last 3-channel input (what permuting HWC crops gives) corrupts the heap
        # in oneDNN's convolution backward on torch 2.13 CPU (crash in compressai's ResidualBlockWithStride)
        x, edges = (tensor.to(device).contiguous() for tensor in next(batches))
        optimizer.zero_grad()
        terms = sa_icm_loss(model(x), x, edges, lmbda, objective)
        terms["loss"].backward()
        if clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        aux_optimizer.zero_grad()
        aux_loss = model.aux_loss()
        aux_loss.backward()
        aux_optimizer.step()
        record = {"step": step, **{key: value.item() for key, value in terms.items()}, "aux_loss": aux_loss.item()}
        history.append(record)
        if log is not None:
            log(record)
    return history


def save_checkpoint(model, path: Path, **metadata) -> None:
    """The authors' layout: {"state_dict": ..., **metadata}, CDF tables refreshed for the new weights."""
    model.update(force=True)  # stale CDF buffers in the file would be used as they are by the codec
    with atomic_path(path) as temporary:
        torch.save({"state_dict": model.state_dict(), **metadata}, temporary)


def training_model(codec_name: str, quality: float, init: Path | None, device: str):
    """A trainable model through the codec registry: random initial weights or a checkpoint's."""
    checkpoint = None if init is None else str(init)
    codec = make_codec(codec_name, checkpoint=checkpoint, random_init=init is None, device=device)
    if not isinstance(codec, LearnedCodec):
        raise ValueError(f"{codec_name} is not a learned codec")
    return codec, codec.model(quality)


# The recipe of the shipped icm-edge / icm-mse codecs (docs/icm_training.md): a base trained with the
# mse objective, then every (codec, rate point) fine-tuned from it with the same crops (same seed), the
# same steps and learning rate; only the objective and lambda differ. Sized for 2 CPU cores.
ICM_SETTINGS = ["--crop", "128", "--batch-size", "4", "--learning-rate", "5e-4", "--seed", "0", "--device", "cpu",
                "--checkpoint-every", "100"]
ICM_BASE = {"objective": "mse", "lmbda": 0.003, "steps": 200}
ICM_VARIANTS = {  # codec -> rate point -> lambda; chosen so that both cover ~0.05-0.4 bpp on coco-persons
    "icm-edge": {"1": 0.08, "2": 0.5},
    "icm-mse": {"1": 0.001, "2": 0.006},
}
ICM_FINE_TUNE_STEPS = 100


def icm_arguments(images: Path, annotations: Path, out: Path, codec: str | None = None, rate: str | None = None,
                  base: Path | None = None, threads: int | None = None) -> list[str]:
    """CLI arguments of one recipe run: the base (codec None) or a variant fine-tuned from `base`."""
    if codec is None:
        run = {**ICM_BASE, "model": "icm-mse"}
    else:
        objective = CODECS[codec].objective
        run = {"objective": objective, "lmbda": ICM_VARIANTS[codec][rate], "steps": ICM_FINE_TUNE_STEPS,
               "model": codec, "quality": rate, "init": base}
    arguments = [f"--{key}={value}" for key, value in run.items()]
    extra = [] if threads is None else [f"--threads={threads}"]
    return ["--images", str(images), "--annotations", str(annotations), "--out", str(out), *ICM_SETTINGS,
            *arguments, *extra]


def ship_icm_weights(checkpoints: dict[str, Path], folder: Path) -> dict:
    """Copy trained checkpoints ("<codec>/<rate>" -> file) into `folder` with the manifest the icm codecs check."""
    import shutil

    from .sources import sha256_of

    codecs = {}
    for point, checkpoint in checkpoints.items():
        codec, rate = point.split("/")
        name = f"{codec}-{rate}.pth.tar"
        with atomic_path(Path(folder) / name) as temporary:
            shutil.copyfile(checkpoint, temporary)
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        codecs.setdefault(codec, {})[rate] = {
            "file": name, "sha256": sha256_of(Path(folder) / name), "objective": saved["objective"],
            "lmbda": saved["lmbda"], "fine_tune_steps": saved["step"], "base_steps": ICM_BASE["steps"]}
    manifest = {"architecture": "compressai MeanScaleHyperprior(N=64, M=96)", "codecs": codecs}
    with atomic_path(Path(folder) / "manifest.json") as temporary:
        temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m icm_privacy.training", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="COCO image folder")
    parser.add_argument("--annotations", type=Path, required=True, help="COCO instances json")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pth.tar)")
    parser.add_argument("--model", default="sa-icm", help="learned codec name (sa-icm = TCM; or a CompressAI zoo name)")
    parser.add_argument("--quality", type=float, default=1, help="zoo quality index (sets N, M); a label for sa-icm")
    parser.add_argument("--init", type=Path, help="start from this checkpoint instead of random weights")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256, help="square crop side; a multiple of the model's padding")
    parser.add_argument("--lmbda", type=float, default=PAPER_LAMBDA, help="rate-distortion lambda (paper: 0.05)")
    parser.add_argument("--alpha", type=float, default=PAPER_ALPHAS[0],
                        help="SAM confidence threshold (paper: 0.78 or 0.93)")
    parser.add_argument("--masks", choices=["coco", "sam"], default="coco",
                        help="edge source (default coco: no SAM weights offline)")
    parser.add_argument("--sam-checkpoint", type=Path, help="SAM weights, for --masks sam")
    parser.add_argument("--sam-model", default="vit_h", help="SAM model type, for --masks sam")
    parser.add_argument("--first-n", type=int, help="use only the first N images (by id)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--objective", choices=OBJECTIVES, default="edge",
                        help="edge: SA-ICM's edge-region distortion; mse: the whole image (the control)")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between resume states")
    parser.add_argument("--log", type=Path, help="CSV log of every step (default: beside --out, .csv)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


LOG_COLUMNS = ("step", "loss", "bpp", "mse", "edge_mse", "aux_loss")


def resume_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".resume")


def save_resume_state(path: Path, model, optimizers, rng: np.random.Generator, log_rows: list[str]) -> None:
    """What a killed run needs to continue as if uninterrupted: weights, Adam moments, both RNGs, the log so far.

    The log rows travel in the state because a workflow manager deletes a failed job's outputs (the CSV).
    """
    with atomic_path(path) as temporary:
        torch.save({"state_dict": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
                    "step": len(log_rows), "log_rows": log_rows, "torch_rng": torch.get_rng_state(),
                    "numpy_rng": rng.bit_generator.state}, temporary)


def load_resume_state(path: Path, model, optimizers, rng: np.random.Generator) -> list[str]:
    """Restore a state saved by save_resume_state; returns the log rows of the steps done."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])  # compressai's: resizes the CDF buffers as needed
        for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
    except Exception as error:
        raise RuntimeError(f"{path}: cannot resume from this training state ({error}); delete it to start over") \
            from error
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]
    return state["log_rows"]


def main(argv: list[str] | None = None) -> list[dict]:
    """Train, writing a resume state every --checkpoint-every steps; a rerun continues from the last one."""
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    multiple = getattr(CODECS.get(args.model), "padding_multiple", 1)
    if args.crop % multiple:
        raise SystemExit(f"--crop {args.crop} must be a multiple of {multiple} for {args.model}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    codec, model = training_model(args.model, args.quality, args.init, args.device)
    sam = SamMasks(args.sam_checkpoint, args.sam_model, args.alpha, str(codec.device)) if args.masks == "sam" else None
    images = load_edge_images(args.images, args.annotations, args.first_n, sam)
    rng = np.random.default_rng(args.seed)
    batches = iter(lambda: sample_crops(images, args.crop, args.batch_size, rng), None)
    optimizers = make_optimizers(model, args.learning_rate, 1e-3)
    state_path = resume_path(args.out)
    rows = load_resume_state(state_path, model, optimizers, rng) if state_path.is_file() else []
    log_path = args.log or args.out.with_name(args.out.name.split(".")[0] + ".csv")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    history = []
    with log_path.open("w") as log:
        log.write(",".join(LOG_COLUMNS) + "\n" + "".join(row + "\n" for row in rows))

        def record(values: dict) -> None:
            rows.append(",".join(f"{values[column]:.6g}" for column in LOG_COLUMNS))
            log.write(rows[-1] + "\n")
            print(json.dumps(values), flush=True)

        start = len(rows)
        for stop in [*range(start + args.checkpoint_every, args.steps, args.checkpoint_every), args.steps]:
            history += train(model, batches, stop, args.lmbda, objective=args.objective, optimizers=optimizers,
                             start=len(rows), log=record)
            log.flush()
            if stop < args.steps:
                save_resume_state(state_path, model, optimizers, rng, rows)
    final = history[-1]["loss"] if history else math.nan
    save_checkpoint(model, args.out, step=args.steps, loss=final, codec=args.model, lmbda=args.lmbda,
                    objective=args.objective, alpha=args.alpha if args.masks == "sam" else None, masks=args.masks)
    state_path.unlink(missing_ok=True)
    return history


if __name__ == "__main__":
    main()
