"""`python -m icm_privacy.training`: one resumable training run, with CSV logs of its steps and validations.

Every --checkpoint-every steps (or --checkpoint-minutes) a resume state is written beside --out and a
rerun continues from it; `<out stem>.csv` logs the mean of every --log-every steps' terms (step, loss,
bpp, mse, edge_mse, aux_loss, and feature_mse for the task objective) and `<out stem>.validation.csv`
the held-out images' PSNR, bpp and edge PSNR every --validate-every steps.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..allocator import keep_freed_memory
from ..codecs import CODECS
from .data import SamMasks, load_training_images, sample_crops, split_validation
from .loop import (PAPER_LAMBDA, Progress, check_hyperprior, load_resume_state, make_optimizers, pick_precision,
                   resume_path, save_checkpoint, save_resume_state, training_model, training_steps, use_bfloat16,
                   validate, validation_log_path)
from .objectives import OBJECTIVES, DetectorFeatures

PAPER_ALPHAS = (0.78, 0.93)


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
    parser.add_argument("--edge-width", type=int, default=1,
                        help="px across the contour band the edge objective weighs (1: SA-ICM's edges)")
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
                        help="edge: SA-ICM's edge-region distortion; mse: the whole image (the control); "
                             "task: the --detector's features")
    parser.add_argument("--detector", type=Path, help="YOLOv5 checkpoint whose neck features the task objective compares")
    parser.add_argument("--pixel-lmbda", type=float, default=0.0,
                        help="task objective: weight of an added 255^2 x pixel mse term")
    parser.add_argument("--quantization", choices=["noise", "rounded"], default="noise",
                        help="what the synthesis transforms see in training: noisy latents (as SA-ICM/TCM train), "
                             "or latents rounded as in a bitstream, straight-through (icm-* models)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32",
                        help="bf16: transforms under bfloat16 autocast, entropy models in float32 (icm-* models); "
                             "auto: bf16 where the device computes it natively, else fp32")
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
    if (arguments.objective == "task") != (arguments.detector is not None):
        parser.error("--detector goes with --objective task, and the task objective needs it")
    if arguments.detector is not None and not arguments.detector.is_file():
        parser.error(f"--detector {arguments.detector}: no such file")
    return arguments


LOG_COLUMNS = ("step", "loss", "bpp", "mse", "edge_mse", "aux_loss")
TASK_LOG_COLUMNS = (*LOG_COLUMNS, "feature_mse")
VALIDATION_COLUMNS = ("step", "psnr", "bpp", "edge_psnr")


def main(argv: list[str] | None = None) -> list[dict]:
    """Train, writing a resume state every --checkpoint-every steps (or minutes); a rerun continues from it."""
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    multiple = getattr(CODECS.get(args.model), "padding_multiple", 1)
    if args.crop % multiple:
        raise SystemExit(f"--crop {args.crop} must be a multiple of {multiple} for {args.model}")
    keep_freed_memory()  # a step then reuses its activations' memory (allocator.py)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    codec, model = training_model(args.model, args.quality, args.init, args.device)
    args.precision = pick_precision(args.precision, codec.device)
    bfloat16 = args.precision == "bf16"
    if bfloat16:
        model = use_bfloat16(model)
    rounded = args.quantization == "rounded"
    if rounded:
        check_hyperprior(model, "--quantization rounded")
    detector = DetectorFeatures(args.detector, codec.device) if args.detector else None
    columns = TASK_LOG_COLUMNS if detector else LOG_COLUMNS
    sam = SamMasks(args.sam_checkpoint, args.sam_model, args.alpha, str(codec.device)) if args.masks == "sam" else None
    images = load_training_images(args.images, args.annotations, args.first_n, sam,
                                  edges_only=args.objective == "edge",
                                  edge_width=args.edge_width)
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
        log.write(",".join(columns) + "\n" + "".join(row + "\n" for row in progress.log_rows))
        validation_log.write(",".join(VALIDATION_COLUMNS) + "\n" + "".join(r + "\n" for r in progress.validation_rows))
        validation_log.flush()
        for record in training_steps(model, batches, args.steps, args.lmbda, args.learning_rate,
                                     objective=args.objective, optimizers=optimizers, start=progress.step,
                                     decay_at=args.decay_at, decay=args.decay, bfloat16=bfloat16,
                                     detector=detector, pixel_lmbda=args.pixel_lmbda, rounded=rounded):
            history.append(record)
            window.append(record)
            progress.step = record["step"] + 1
            if progress.step % args.log_every and progress.step < args.steps:
                continue
            mean = {column: np.mean([r[column] for r in window]) for column in columns}
            progress.log_rows.append(",".join([str(record["step"]), *(f"{mean[c]:.6g}" for c in columns[1:])]))
            log.write(progress.log_rows[-1] + "\n")
            log.flush()
            print(json.dumps({**{c: float(mean[c]) for c in columns}, "step": record["step"]}), flush=True)
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
