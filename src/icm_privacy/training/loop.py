"""The training loop: optimisers, steps (float32 or bfloat16 transforms), validation, checkpoints and resume states."""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..codecs import make_codec
from ..codecs.learned import LearnedCodec
from ..files import atomic_path
from .data import TrainingImage
from .objectives import DetectorFeatures, rate_distortion_loss

PAPER_LAMBDA = 0.05


def make_optimizers(model, learning_rate: float, aux_learning_rate: float):
    """As in CompressAI/TCM training: Adam on the network, a second Adam on the entropy bottleneck's quantiles."""
    parameters = dict(model.named_parameters())
    quantiles = [name for name in parameters if name.endswith(".quantiles")]
    optimizer = torch.optim.Adam([p for n, p in parameters.items() if n not in quantiles], lr=learning_rate)
    return optimizer, torch.optim.Adam([parameters[n] for n in quantiles], lr=aux_learning_rate)


def hyperprior_forward(model, x, bfloat16: bool = False, rounded: bool = False) -> dict:
    """A mean-scale hyperprior's training forward, with its four transforms under bfloat16 autocast (on
    x's device) and/or the synthesis transforms fed rounded latents.

    bfloat16: the entropy models and everything after them stay float32 (bfloat16 keeps 3 significant
    digits, too coarse for likelihoods, and the rate term is what the codec's bits follow). Measured on a
    CPU with AVX512-BF16 (batch 8 x 256x256, 2 threads): 0.43 s per step with channels-last weights
    against 1.6 s in float32.
    rounded: h_s and g_s see z and y rounded as the codec rounds them (around the medians and the
    predicted means), with straight-through gradients, while the rate still comes from the noisy
    latents. With noise only, a decoder trained on YOLOv5n's features learned noise it never gets from a
    bitstream: after 1,100 steps its feature error on held-out crops was on the mse codec's curve with
    noise and 43 % above it with rounding (docs/icm_training.md).
    """
    from compressai.ops import quantize_ste

    autocast = functools.partial(torch.autocast, x.device.type, dtype=torch.bfloat16, enabled=bfloat16)
    with autocast():
        y = model.g_a(x)
    with autocast():
        z = model.h_a(y.float())
    z_hat, z_likelihoods = model.entropy_bottleneck(z.float())
    if rounded:
        medians = model.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        z_hat = quantize_ste(z.float() - medians) + medians
    with autocast():
        gaussian_params = model.h_s(z_hat)
    scales_hat, means_hat = gaussian_params.float().chunk(2, 1)
    y_hat, y_likelihoods = model.gaussian_conditional(y.float(), scales_hat, means=means_hat)
    if rounded:
        y_hat = quantize_ste(y.float() - means_hat) + means_hat
    with autocast():
        x_hat = model.g_s(y_hat)
    return {"x_hat": x_hat.float(), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}


def check_hyperprior(model, option: str) -> None:
    """hyperprior_forward is written for mean-scale hyperpriors (the icm-* codecs) only."""
    from compressai.models import MeanScaleHyperprior

    if type(model) is not MeanScaleHyperprior:
        raise SystemExit(f"{option} is implemented for MeanScaleHyperprior (the icm-* codecs), not {type(model).__name__}")


def use_bfloat16(model):
    """The model in channels-last layout for hyperprior_forward's bfloat16 transforms."""
    check_hyperprior(model, "--precision bf16")
    return model.to(memory_format=torch.channels_last)


def pick_precision(precision: str, device: torch.device) -> str:
    """`precision` itself, or for "auto" bf16 where the device computes bfloat16 natively, else fp32.

    On a CPU without AVX512-BF16 or AMX, bfloat16 is emulated: measured on such a CPU (batch 8 x 256^2,
    2 threads) a step took 1.8 s in bf16 and 1.0 s in fp32; on one with them, 0.43 s against 1.6 s.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").is_file() else []
    return "bf16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "fp32"


def learning_rate_at(step: int, learning_rate: float, decay_at: int | None, decay: float) -> float:
    """A step schedule: the rate, times `decay` from step `decay_at` on (a function of the step, so resuming keeps it)."""
    return learning_rate * (decay if decay_at is not None and step >= decay_at else 1.0)


def training_steps(model, batches, steps: int, lmbda: float = PAPER_LAMBDA, learning_rate: float = 1e-4,
                   aux_learning_rate: float = 1e-3, clip_norm: float = 1.0, objective: str = "edge",
                   optimizers=None, start: int = 0, decay_at: int | None = None, decay: float = 0.1,
                   bfloat16: bool = False, detector: DetectorFeatures | None = None, pixel_lmbda: float = 0.0,
                   rounded: bool = False):
    """Optimize `model` for steps start .. steps-1 with batches of (x, edges) from the iterator `batches`,
    yielding each step's numbers.

    Gradient norm clipped, as in CompressAI/TCM training. `optimizers` (from make_optimizers) carry
    Adam's state across calls, which resuming needs; bfloat16 needs the model from use_bfloat16; the
    task objective needs the frozen `detector` (objectives.py); rounded: see hyperprior_forward.
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
        output = hyperprior_forward(model, x, bfloat16, rounded) if bfloat16 or rounded else model(x)
        terms = rate_distortion_loss(output, x, edges, lmbda, objective, detector, pixel_lmbda)
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
    from ..quality import mse_to_psnr, psnr

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

    The parameters are stored in float16 and Adam's moments in bfloat16 (loading casts both back to
    float32), which quarters the state that is committed between sessions; a resume rounds the weights
    once, a relative change of about 5e-4. The logs travel in the state because a workflow manager
    deletes a failed job's outputs (the CSVs).
    """
    parameters = {name for name, _ in model.named_parameters()}

    def compact(optimizer_state: dict) -> dict:
        return {**optimizer_state, "state": {
            index: {name: value.bfloat16() if name.startswith("exp_avg") else value for name, value in moments.items()}
            for index, moments in optimizer_state["state"].items()}}

    weights = {name: value.half() if name in parameters else value for name, value in model.state_dict().items()}
    with atomic_path(path) as temporary:
        torch.save({"state_dict": weights, "optimizers": [compact(o.state_dict()) for o in optimizers],
                    "step": progress.step, "log_rows": progress.log_rows,
                    "validation_rows": progress.validation_rows, "torch_rng": torch.get_rng_state(),
                    "numpy_rng": rng.bit_generator.state}, temporary)


def load_resume_state(path: Path, model, optimizers, rng: np.random.Generator) -> Progress:
    """Restore a state saved by save_resume_state; returns what the run had done."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])  # compressai's: resizes the CDF buffers, casts to float32
        for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)  # casts the moments back to the parameters' dtype
    except Exception as error:
        raise RuntimeError(f"{path}: cannot resume from this training state ({error}); delete it to start over") \
            from error
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]
    return Progress(state["step"], state["log_rows"], state.get("validation_rows", []))


