"""Training recipe for a learned codec with SA-ICM's edge-region objective.

SA-ICM (Shindo, Yamada, Watanabe, Watanabe, "Image Coding for Machines with Edge Information Learning\nUsing Segment Anything", ICIP 2024, arXiv 2403.04173) trains TCM so that only object edges need to
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
import dataclasses
import functools
import json
import math
import sys
import time
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
class TrainingImage:
    name: str
    rgb: np.ndarray  # HxWx3 uint8
    edges: np.ndarray | None  # HxW float32 in {0, 1}; None: no instance masks (the mse objective only)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def load_training_images(images: Path, annotations: Path, first_n: int | None = None, sam: SamMasks | None = None,
                         edges_only: bool = True) -> list[TrainingImage]:
    """The images of the folder (sorted by name, i.e. by COCO id) and their edge maps (SAM's when given).

    An image gets an edge map from its COCO instance masks; one the annotations do not list, or whose
    instances are all crowd regions, has none and is kept only with edges_only=False (the mse
    objective needs no masks). Pixels are read as stored, without EXIF rotation, because COCO masks
    are drawn on stored pixels.
    """
    from pycocotools.coco import COCO

    coco = COCO(str(annotations))
    ids = {info["file_name"]: image_id for image_id, info in coco.imgs.items()}
    paths = sorted(path for path in Path(images).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)[:first_n]
    loaded = []
    for path in paths:
        with Image.open(path) as image:
            rgb = to_rgb8(image)
        if sam is not None:
            masks = sam(rgb)
        elif path.name in ids:
            info = coco.imgs[ids[path.name]]
            if rgb.shape[:2] != (info["height"], info["width"]):
                raise ValueError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} pixels, annotations say "
                                 f"{info['width']}x{info['height']}")
            masks = coco_masks(coco, ids[path.name])
        else:
            masks = np.zeros((0, *rgb.shape[:2]), dtype=bool)
        edges = edge_map(masks) if len(masks) else None
        if edges is not None or not edges_only:
            loaded.append(TrainingImage(path.stem, rgb, edges))
    if not loaded:
        raise ValueError(f"{images}: no image" + (f" has an instance mask in {annotations}" if edges_only else ""))
    return loaded


def split_validation(images: list[TrainingImage], every: int) -> tuple[list[TrainingImage], list[TrainingImage]]:
    """(training, validation): every `every`-th image with edges and every `every`-th without is held out.

    Both kinds are held out so that validation measures whole-image fidelity and edge fidelity on
    images no step trains on; 0 holds out nothing.
    """
    if every <= 0:
        return images, []
    validation = [group[index] for group in ([i for i in images if i.edges is not None],
                                             [i for i in images if i.edges is None])
                  for index in range(0, len(group), every)]
    held_out = {image.name for image in validation}
    return [image for image in images if image.name not in held_out], validation


def sample_crops(images: list[TrainingImage], crop: int, batch_size: int, rng: np.random.Generator,
                 tries: int = 10):
    """A batch of random crops, mirrored left-right with probability 1/2: (B, 3, crop, crop) images in
    [0, 1] and (B, 1, crop, crop) edge maps (zero for an image without masks).

    A crop without any edge pixel teaches the edge objective only rate, so on an image with edges up to
    `tries` positions are drawn per crop and the first one with an edge is kept.
    """
    small = [image.name for image in images if min(image.rgb.shape[:2]) < crop]
    if small:
        raise ValueError(f"crop {crop} is larger than images {', '.join(small[:5])}")
    pixels, edges = [], []
    for index in rng.integers(len(images), size=batch_size):
        image = images[index]
        image_edges = image.edges if image.edges is not None else np.zeros(image.rgb.shape[:2], np.float32)
        for _ in range(tries if image.edges is not None else 1):
            top = rng.integers(image.rgb.shape[0] - crop + 1)
            left = rng.integers(image.rgb.shape[1] - crop + 1)
            window = (slice(top, top + crop), slice(left, left + crop))
            if image_edges[window].any():
                break
        step = -1 if rng.random() < 0.5 else 1
        pixels.append(image.rgb[window][:, ::step])
        edges.append(image_edges[window][:, ::step])
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


def bfloat16_forward(model, x) -> dict:
    """A mean-scale hyperprior's forward with its four transforms under bfloat16 autocast (on x's device).

    The entropy models and everything after them stay float32: bfloat16 keeps 3 significant digits,
    too coarse for likelihoods, and the rate term is what the codec's bits follow. Measured here
    (batch 8 x 256x256, 2 threads): 0.43 s per step with channels-last weights against 1.6 s in float32.
    """
    autocast = functools.partial(torch.autocast, x.device.type, dtype=torch.bfloat16)
    with autocast():
        y = model.g_a(x)
    with autocast():
        z = model.h_a(y.float())
    z_hat, z_likelihoods = model.entropy_bottleneck(z.float())
    with autocast():
        gaussian_params = model.h_s(z_hat)
    scales_hat, means_hat = gaussian_params.float().chunk(2, 1)
    y_hat, y_likelihoods = model.gaussian_conditional(y.float(), scales_hat, means=means_hat)
    with autocast():
        x_hat = model.g_s(y_hat)
    return {"x_hat": x_hat.float(), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}


def use_bfloat16(model):
    """The model in channels-last layout for bfloat16_forward; only mean-scale hyperpriors have that forward."""
    from compressai.models import MeanScaleHyperprior

    if type(model) is not MeanScaleHyperprior:
        raise SystemExit(f"--precision bf16 is implemented for MeanScaleHyperprior (the icm-* codecs), "
                         f"not {type(model).__name__}")
    return model.to(memory_format=torch.channels_last)


def learning_rate_at(step: int, learning_rate: float, decay_at: int | None, decay: float) -> float:
    """A step schedule: the rate, times `decay` from step `decay_at` on (a function of the step, so resuming keeps it)."""
    return learning_rate * (decay if decay_at is not None and step >= decay_at else 1.0)


def training_steps(model, batches, steps: int, lmbda: float = PAPER_LAMBDA, learning_rate: float = 1e-4,
                   aux_learning_rate: float = 1e-3, clip_norm: float = 1.0, objective: str = "edge",
                   optimizers=None, start: int = 0, decay_at: int | None = None, decay: float = 0.1,
                   bfloat16: bool = False):
    """Optimize `model` for steps start .. steps-1 with batches of (x, edges) from the iterator `batches`,
    yielding each step's numbers.

    Gradient norm clipped, as in CompressAI/TCM training. `optimizers` (from make_optimizers) carry
    Adam's state across calls, which resuming needs; bfloat16 needs the model from use_bfloat16.
    """
    optimizer, aux_optimizer = optimizers or make_optimizers(model, learning_rate, aux_learning_rate)
    device = next(model.parameters()).device
    layout = torch.channels_last if bfloat16 else torch.contiguous_format
    model.train()
    for step in range(start, steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, learning_rate, decay_at, decay)
        # an explicit layout: a channels-last 3-channel input next to contiguous float32 weights (what
        # permuting HWC crops gives) corrupts the heap in oneDNN's convolution backward on torch 2.13 CPU
        x, edges = (tensor.to(device).contiguous(memory_format=layout) for tensor in next(batches))
        optimizer.zero_grad()
        terms = sa_icm_loss(bfloat16_forward(model, x) if bfloat16 else model(x), x, edges, lmbda, objective)
        terms["loss"].backward()
        if clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        aux_optimizer.zero_grad()
        aux_loss = model.aux_loss()
        aux_loss.backward()
        aux_optimizer.step()
        yield {"step": step, **{key: value.item() for key, value in terms.items()}, "aux_loss": aux_loss.item()}


def train(model, batches, steps: int, log=None, **options) -> list[dict]:
    """All of training_steps at once; `log` gets each step's numbers. Returns them."""
    history = []
    for record in training_steps(model, batches, steps, **options):
        history.append(record)
        if log is not None:
            log(record)
    return history


def validate(codec, model, images: list[TrainingImage]) -> dict:
    """Whole held-out images through the model as the codec runs it (float32, eval: rounded latents).

    psnr and bpp are means over the images (bpp from the likelihoods, within a few tenths of a percent
    of the coded file's); edge_psnr is over the edge pixels of the images that have them.
    """
    from .quality import mse_to_psnr, psnr

    model.eval()
    psnrs, bpps, edge_errors = [], [], []
    with torch.no_grad():
        for image in images:
            height, width = image.rgb.shape[:2]
            output = model(codec.model_input(image.rgb))
            bits = sum(float(-likelihoods.log2().sum()) for likelihoods in output["likelihoods"].values())
            decoded = codec.output_rgb(output["x_hat"], width, height)
            psnrs.append(psnr(image.rgb, decoded))
            bpps.append(bits / (width * height))
            if image.edges is not None:
                edge_errors.append((image.rgb[image.edges > 0].astype(float) - decoded[image.edges > 0]) ** 2)
    model.train()
    edge_psnr = mse_to_psnr(float(np.concatenate(edge_errors).mean())) if edge_errors else math.nan
    return {"psnr": float(np.mean(psnrs)), "bpp": float(np.mean(bpps)), "edge_psnr": edge_psnr}


def save_checkpoint(model, path: Path, float16: bool = False, **metadata) -> None:
    """The authors' layout: {"state_dict": ..., **metadata}, CDF tables refreshed for the new weights.

    float16 stores the parameters in half the bytes; the model's own parameters are rounded to those
    values first, so the CDF tables in the file belong to the weights a codec will load.
    """
    parameters = {name for name, _ in model.named_parameters()}
    if float16:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(parameter.half())
    model.update(force=True)  # stale CDF buffers in the file would be used as they are by the codec
    # stored on the CPU: a GPU-trained file must load where there is no GPU
    state_dict = {name: (value.half() if float16 and name in parameters else value).cpu()
                  for name, value in model.state_dict().items()}
    with atomic_path(path) as temporary:
        torch.save({"state_dict": state_dict, **metadata}, temporary)


def training_model(codec_name: str, quality: float, init: Path | None, device: str):
    """A trainable model through the codec registry: random initial weights or a checkpoint's."""
    checkpoint = None if init is None else str(init)
    codec = make_codec(codec_name, checkpoint=checkpoint, random_init=init is None, device=device)
    if not isinstance(codec, LearnedCodec):
        raise ValueError(f"{codec_name} is not a learned codec")
    return codec, codec.model(quality)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m icm_privacy.training", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="image folder (COCO file names)")
    parser.add_argument("--annotations", type=Path, required=True, help="COCO instances json (masks -> edges)")
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
    parser.add_argument("--first-n", type=int, help="use only the first N images (by file name)")
    parser.add_argument("--holdout-every", type=int, default=0,
                        help="hold out every N-th image (with and without masks) for validation; 0: none")
    parser.add_argument("--validate-every", type=int, default=500, help="steps between validations")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--decay-at", type=int, help="multiply the learning rate by --decay from this step on")
    parser.add_argument("--decay", type=float, default=0.1)
    parser.add_argument("--objective", choices=OBJECTIVES, default="edge",
                        help="edge: SA-ICM's edge-region distortion; mse: the whole image (the control)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: transforms under bfloat16 autocast, entropy models in float32 (icm-* models)")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between resume states")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0,
                        help="also write a resume state when this much time passed since the last one")
    parser.add_argument("--log", type=Path, help="CSV log (default: beside --out, .csv)")
    parser.add_argument("--log-every", type=int, default=1, help="one log row per N steps (their mean)")
    parser.add_argument("--float16", action="store_true", help="store the final weights in float16 (half the file)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    for option in ("checkpoint_every", "validate_every"):
        if getattr(arguments, option) % arguments.log_every:
            parser.error(f"--{option.replace('_', '-')} must be a multiple of --log-every")
    return arguments


LOG_COLUMNS = ("step", "loss", "bpp", "mse", "edge_mse", "aux_loss")
VALIDATION_COLUMNS = ("step", "psnr", "bpp", "edge_psnr")


def resume_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".resume")


def validation_log_path(log: Path) -> Path:
    return log.with_name(log.name.removesuffix(".csv") + ".validation.csv")


@dataclass
class Progress:
    """What a run has done: steps, its log rows (CSV text) and its validation rows."""

    step: int = 0
    log_rows: list[str] = dataclasses.field(default_factory=list)
    validation_rows: list[str] = dataclasses.field(default_factory=list)


def save_resume_state(path: Path, model, optimizers, rng: np.random.Generator, progress: Progress) -> None:
    """What a killed run needs to continue: weights, Adam moments, both RNGs, the logs so far.

    Adam's moments are stored in bfloat16 (loading casts them back), which halves the state that is
    committed between sessions; weights stay float32. The logs travel in the state because a workflow
    manager deletes a failed job's outputs (the CSVs).
    """
    def compact(optimizer_state: dict) -> dict:
        return {**optimizer_state, "state": {
            index: {name: value.bfloat16() if name.startswith("exp_avg") else value for name, value in moments.items()}
            for index, moments in optimizer_state["state"].items()}}

    with atomic_path(path) as temporary:
        torch.save({"state_dict": model.state_dict(), "optimizers": [compact(o.state_dict()) for o in optimizers],
                    "step": progress.step, "log_rows": progress.log_rows,
                    "validation_rows": progress.validation_rows, "torch_rng": torch.get_rng_state(),
                    "numpy_rng": rng.bit_generator.state}, temporary)


def load_resume_state(path: Path, model, optimizers, rng: np.random.Generator) -> Progress:
    """Restore a state saved by save_resume_state; returns what the run had done."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])  # compressai's: resizes the CDF buffers as needed
        for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)  # casts the moments back to the parameters' dtype
    except Exception as error:
        raise RuntimeError(f"{path}: cannot resume from this training state ({error}); delete it to start over") \
            from error
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]
    return Progress(state["step"], state["log_rows"], state.get("validation_rows", []))


def main(argv: list[str] | None = None) -> list[dict]:
    """Train, writing a resume state every --checkpoint-every steps (or minutes); a rerun continues from it."""
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    multiple = getattr(CODECS.get(args.model), "padding_multiple", 1)
    if args.crop % multiple:
        raise SystemExit(f"--crop {args.crop} must be a multiple of {multiple} for {args.model}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    codec, model = training_model(args.model, args.quality, args.init, args.device)
    bfloat16 = args.precision == "bf16"
    if bfloat16:
        model = use_bfloat16(model)
    sam = SamMasks(args.sam_checkpoint, args.sam_model, args.alpha, str(codec.device)) if args.masks == "sam" else None
    images = load_training_images(args.images, args.annotations, args.first_n, sam,
                                  edges_only=args.objective == "edge")
    training_images, validation_images = split_validation(images, args.holdout_every)
    small = [image.name for image in training_images if min(image.rgb.shape[:2]) < args.crop]
    if small and len(small) < len(training_images):  # all too small: sample_crops says so
        print(f"left out of training, smaller than --crop {args.crop}: {', '.join(small)}", flush=True)
        training_images = [image for image in training_images if image.name not in small]
    rng = np.random.default_rng(args.seed)
    batches = iter(lambda: sample_crops(training_images, args.crop, args.batch_size, rng), None)
    optimizers = make_optimizers(model, args.learning_rate, 1e-3)
    state_path = resume_path(args.out)
    progress = load_resume_state(state_path, model, optimizers, rng) if state_path.is_file() else Progress()
    log_path = args.log or args.out.with_name(args.out.name.split(".")[0] + ".csv")
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def validation_row(step: int) -> str:
        measured = validate(codec, model, validation_images)
        return ",".join([str(step), *(f"{measured[column]:.6g}" for column in VALIDATION_COLUMNS[1:])])

    if validation_images and not progress.validation_rows:
        progress.validation_rows.append(validation_row(0))  # where the run starts from
    history, window = [], []
    last_saved = time.monotonic()
    with log_path.open("w") as log, validation_log_path(log_path).open("w") as validation_log:
        log.write(",".join(LOG_COLUMNS) + "\n" + "".join(row + "\n" for row in progress.log_rows))
        validation_log.write(",".join(VALIDATION_COLUMNS) + "\n" + "".join(r + "\n" for r in progress.validation_rows))
        validation_log.flush()
        for record in training_steps(model, batches, args.steps, args.lmbda, args.learning_rate,
                                     objective=args.objective, optimizers=optimizers, start=progress.step,
                                     decay_at=args.decay_at, decay=args.decay, bfloat16=bfloat16):
            history.append(record)
            window.append(record)
            progress.step = record["step"] + 1
            if progress.step % args.log_every and progress.step < args.steps:
                continue
            mean = {column: np.mean([r[column] for r in window]) for column in LOG_COLUMNS}
            progress.log_rows.append(",".join([str(record["step"]), *(f"{mean[c]:.6g}" for c in LOG_COLUMNS[1:])]))
            log.write(progress.log_rows[-1] + "\n")
            log.flush()
            print(json.dumps({**{c: float(mean[c]) for c in LOG_COLUMNS}, "step": record["step"]}), flush=True)
            window = []
            if validation_images and (progress.step % args.validate_every == 0 or progress.step == args.steps):
                progress.validation_rows.append(validation_row(progress.step))
                validation_log.write(progress.validation_rows[-1] + "\n")
                validation_log.flush()
                print(f"validation: {progress.validation_rows[-1]}", flush=True)
            due = time.monotonic() - last_saved >= 60 * args.checkpoint_minutes
            if progress.step < args.steps and (progress.step % args.checkpoint_every == 0 or due):
                save_resume_state(state_path, model, optimizers, rng, progress)
                last_saved = time.monotonic()
    final = history[-1]["loss"] if history else math.nan
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    save_checkpoint(model, args.out, float16=args.float16, step=args.steps, loss=final, codec=args.model,
                    lmbda=args.lmbda, objective=args.objective, alpha=args.alpha if args.masks == "sam" else None,
                    masks=args.masks, arguments=settings,
                    validation=[image.name for image in validation_images])
    state_path.unlink(missing_ok=True)
    return history


if __name__ == "__main__":
    main()
