"""The recipe of the shipped icm-edge / icm-mse codecs: stages run one after another, each resumable.

A base is trained with the mse objective on all coco-train images but a held-out validation set, then
continued (base-2); every other rate point is fine-tuned from it, with the mse objective (whole image)
or SA-ICM's edge objective (object edges from the COCO instance masks, so on the images that have
masks). A stage is one run of the training CLI (`icm_privacy.training`) whose arguments are written out
here; its checkpoint (`<stage>.pth.tar`, float16) marks it done, and only a stage in progress has a
resume state (`<stage>.pth.tar.resume`, written every 5 minutes), so the folder can be committed between
sessions and training continues from it on any machine: `python -m icm_privacy.icm_recipe --folder DIR`
(`--device cuda` on a GPU; scripts/train_icm_on_gpu.sh runs the fine-tunes side by side there).

`ship` copies the finished stages to the codecs' weights folder with manifest.json (per file: sha256,
objective, lambda, steps of base and fine-tune, data, every training argument). docs/icm_training.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_path
from .sources import sha256_of

# `training` (torch, scipy) is imported where a function needs it: the workflow reads STAGES whenever
# Snakemake starts, and importing torch there cost every start 1.8 s.
ARCHITECTURE = "compressai MeanScaleHyperprior(N=64, M=96)"
COCO_TRAIN = Path("../shared/datasets/coco-train")  # from the repository root, as the workflow reads it
# Every stage: crops of 256x256, bfloat16 transforms, 12 held-out images (every 14th with and every 14th
# without masks), validation every 500 steps, a resume state every 200 steps or 5 minutes.
SETTINGS = ["--crop", "256", "--seed", "0", "--precision", "bf16",
            "--holdout-every", "14", "--validate-every", "500", "--checkpoint-every", "200",
            "--checkpoint-minutes", "5", "--log-every", "10", "--float16"]


@dataclass(frozen=True)
class Stage:
    """One training run of the recipe; `init` names the stage it is fine-tuned from (None: random weights)."""

    name: str
    objective: str
    lmbda: float
    steps: int
    learning_rate: float
    init: str | None = None
    batch_size: int = 8

    @property
    def decay_at(self) -> int:
        """The learning rate drops tenfold for the last 15 % of the steps."""
        return int(self.steps * 0.85)

    def arguments(self, folder: Path, images: Path, annotations: Path, threads: int | None = None,
                  device: str = "cpu") -> list[str]:
        model = "icm-edge" if self.objective == "edge" else "icm-mse"
        run = [f"--model={model}", f"--objective={self.objective}", f"--lmbda={self.lmbda}", f"--steps={self.steps}",
               f"--batch-size={self.batch_size}", f"--learning-rate={self.learning_rate}",
               f"--decay-at={self.decay_at}", f"--device={device}"]
        init = [] if self.init is None else [f"--init={checkpoint_path(folder, self.init)}"]
        extra = [] if threads is None else [f"--threads={threads}"]
        return ["--images", str(images), "--annotations", str(annotations), "--out",
                str(checkpoint_path(folder, self.name)), *SETTINGS, *run, *init, *extra]


# The base ran on a 2-core CPU (24,000 steps of 8 crops); base-2 and the fine-tunes ran on one
# GPU (scripts/train_icm_on_gpu.sh), with 16 crops a step: base-2 continues the base at a lower learning
# rate, and every rate point is fine-tuned from it.
# lambdas: the mse ones are CompressAI's mbt2018-mean scale around its quality 3 (0.0067); the edge map
# covers ~1 % of a crop's pixels, so an edge lambda ~80x the mse one weighs distortion alike.
STAGES = (
    Stage("base", "mse", 0.0067, 24_000, 3e-4),
    Stage("base-2", "mse", 0.0067, 5_000, 1e-4, init="base", batch_size=16),
    *(Stage(name, objective, lmbda, 3_000, 1e-4, init="base-2", batch_size=16) for name, objective, lmbda in (
        ("icm-mse-1", "mse", 0.0009), ("icm-mse-2", "mse", 0.0025), ("icm-mse-4", "mse", 0.025),
        ("icm-edge-1", "edge", 0.1), ("icm-edge-2", "edge", 0.5), ("icm-edge-3", "edge", 2.5),
        ("icm-mse-0", "mse", 0.0005), ("icm-edge-0", "edge", 0.03))),
)
BASES = ("base", "base-2")  # the chain every rate point is fine-tuned from
FINE_TUNES = tuple(stage.name for stage in STAGES if stage.name not in BASES)
# codec -> rate point (quality) -> stage; rate points are numbered from the fewest bits up
SHIPPED = {
    "icm-mse": {"0": "icm-mse-0", "1": "icm-mse-1", "2": "icm-mse-2", "3": "base-2", "4": "icm-mse-4"},
    "icm-edge": {"0": "icm-edge-0", "1": "icm-edge-1", "2": "icm-edge-2", "3": "icm-edge-3"},
}


def checkpoint_path(folder: Path, stage: str) -> Path:
    return Path(folder) / f"{stage}.pth.tar"


def stage_named(name: str) -> Stage:
    return next(stage for stage in STAGES if stage.name == name)


def status(folder: Path) -> dict[str, str]:
    """stage -> "done", "in progress" (a resume state exists) or "waiting"."""
    from . import training

    def state(stage: Stage) -> str:
        checkpoint = checkpoint_path(folder, stage.name)
        if checkpoint.is_file():
            return "done"
        return "in progress" if training.resume_path(checkpoint).is_file() else "waiting"

    return {stage.name: state(stage) for stage in STAGES}


def run_stage(folder: Path, name: str, images: Path, annotations: Path, threads: int | None = None,
              device: str = "cpu") -> Path:
    """Train stage `name` unless its checkpoint is there (the stage in progress resumes); its checkpoint."""
    from . import training

    stage, checkpoint = stage_named(name), checkpoint_path(folder, name)
    if not checkpoint.is_file():
        print(f"icm recipe: stage {name} ({stage.objective}, lambda {stage.lmbda}, {stage.steps} steps)", flush=True)
        training.main(stage.arguments(folder, images, annotations, threads, device))
    return checkpoint


def run_recipe(folder: Path, images: Path, annotations: Path, threads: int | None = None,
               until: str | None = None, device: str = "cpu") -> None:
    """Run every stage not done yet, in order, up to and including `until`."""
    for stage in STAGES:
        run_stage(folder, stage.name, images, annotations, threads, device)
        if stage.name == until:
            break


def ship(folder: Path, weights_dir: Path) -> dict:
    """Copy the finished stages of SHIPPED into `weights_dir` beside the manifest the icm codecs check."""
    import torch

    base_steps = sum(torch.load(checkpoint_path(folder, name), map_location="cpu", weights_only=True)["step"]
                     for name in BASES)
    codecs = {}
    for codec, points in SHIPPED.items():
        for rate, stage in points.items():
            source, name = checkpoint_path(folder, stage), f"{codec}-{rate}.pth.tar"
            with atomic_path(Path(weights_dir) / name) as temporary:
                shutil.copyfile(source, temporary)
            saved = torch.load(source, map_location="cpu", weights_only=True)
            codecs.setdefault(codec, {})[rate] = {
                "file": name, "sha256": sha256_of(Path(weights_dir) / name), "stage": stage,
                "objective": saved["objective"], "lmbda": saved["lmbda"], "base_steps": base_steps,
                "fine_tune_steps": 0 if stage in BASES else saved["step"],
                "data": {"images": saved["arguments"]["images"], "masks": saved["masks"],
                         "validation": saved["validation"]},
                "arguments": saved["arguments"]}
    manifest = {"architecture": ARCHITECTURE, "storage": "float16 parameters", "codecs": codecs}
    with atomic_path(Path(weights_dir) / "manifest.json") as temporary:
        temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def curves(folder: Path) -> tuple[dict, dict]:
    """The training logs and validation logs of every stage that has begun: stage -> table."""
    import pandas as pd

    from . import training

    logs, validation = {}, {}
    for stage in STAGES:
        log = checkpoint_path(folder, stage.name).with_suffix("").with_suffix(".csv")
        if log.is_file():
            logs[stage.name] = pd.read_csv(log)
            validation[stage.name] = pd.read_csv(training.validation_log_path(log))
    return logs, validation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m icm_privacy.icm_recipe", description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="the stages' checkpoints, logs and resume state")
    parser.add_argument("--images", type=Path, default=COCO_TRAIN / "images")
    parser.add_argument("--annotations", type=Path, default=COCO_TRAIN / "instances.json")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (scripts/train_icm_on_gpu.sh)")
    stages = [stage.name for stage in STAGES]
    parser.add_argument("--until", choices=stages, help="stop after this stage")
    parser.add_argument("--stage", choices=stages, action="append",
                        help="run only this stage (repeatable); the stage it is fine-tuned from must be done")
    parser.add_argument("--ship", type=Path, metavar="WEIGHTS_DIR", help="afterwards, ship the weights there")
    args = parser.parse_args(argv)
    for name in args.stage or []:
        init = stage_named(name).init
        if init is not None and not checkpoint_path(args.folder, init).is_file():
            parser.error(f"stage {name} is fine-tuned from {init}, which is not done in {args.folder}")
        run_stage(args.folder, name, args.images, args.annotations, args.threads, args.device)
    if not args.stage:
        run_recipe(args.folder, args.images, args.annotations, args.threads, args.until, args.device)
    if args.ship:
        ship(args.folder, args.ship)


if __name__ == "__main__":
    main()
