"""The recipe of the shipped icm-* codecs: stages run one after another, each resumable.

icm-mse: a base trained with the mse objective on coco-train (a held-out validation set aside), continued
(base-2), its other rate points fine-tuned from it. icm-edge: SA-ICM's edge objective from random
weights (edge-base), its other rate points fine-tuned from that with the same objective. icm-task: the
detector-feature objective (YOLOv5n's neck features), fine-tuned from the mse base-2. icm-edge and
icm-task train on coco-train2017 (train2017 images only; its own held-out validation set).

A stage is one run of the training CLI (`python -m icm_privacy.training`) whose arguments are written out
here; its checkpoint (`<stage>.pth.tar`, float16) marks it done, and only a stage in progress has a
resume state (`<stage>.pth.tar.resume`, float16 weights and bfloat16 Adam moments, written every 200
steps or 5 minutes), so the folder can be committed between sessions and training continues from it on
any machine: `python -m icm_privacy.icm_recipe --folder DIR` (`--device cuda` on a GPU;
scripts/train_icm_on_gpu.sh runs stages side by side there). A base whose fine-tunes are all done is
done too: its checkpoint may leave the folder once no codec ships it.

`ship` writes manifest.json for the codecs whose stages are all done (per file: its path, sha256,
objective, lambda, steps of base and fine-tune, data, every training argument); the files stay where
they were trained, so no weight file is in the tree twice. docs/icm_training.md.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_path
from .sources import sha256_of

# `training` (torch, scipy) is imported where a function needs it: the workflow reads STAGES whenever
# Snakemake starts, and importing torch there cost every start 1.8 s.
ARCHITECTURE = "compressai MeanScaleHyperprior(N=64, M=96)"
DATASETS = Path("../shared/datasets")  # from the repository root, as the workflow reads it
DETECTOR = Path("../shared/weights/yolov5n.pt")  # the official YOLOv5n COCO checkpoint
# Every stage: crops of 256x256, 12-24 held-out images (every 14th with and every 14th without masks),
# validation every 500 steps, a resume state every 200 steps or 5 minutes.
SETTINGS = ["--crop", "256", "--seed", "0", "--holdout-every", "14", "--validate-every", "500",
            "--checkpoint-every", "200", "--checkpoint-minutes", "5", "--log-every", "10", "--float16"]


@dataclass(frozen=True)
class Stage:
    """One training run of the recipe; `init` names the stage it is fine-tuned from (None: random weights).

    `data` is a folder of DATASETS (images/ and instances.json); `precision` auto picks bfloat16 where the
    machine computes it natively (training.loop.pick_precision); `edge_width` is the contour band the edge
    objective weighs; `pixel_lmbda` the task objective's pixel term; `quantization` what the synthesis
    transforms see in training (training.loop.hyperprior_forward).
    """

    name: str
    objective: str
    lmbda: float
    steps: int
    learning_rate: float
    init: str | None = None
    batch_size: int = 8
    data: str = "coco-train2017"
    precision: str = "auto"
    edge_width: int = 1
    pixel_lmbda: float = 0.0
    quantization: str = "noise"

    @property
    def decay_at(self) -> int:
        """The learning rate drops tenfold for the last 15 % of the steps."""
        return int(self.steps * 0.85)

    def arguments(self, folder: Path, datasets: Path = DATASETS, threads: int | None = None,
                  device: str = "cpu", detector: Path = DETECTOR) -> list[str]:
        model = "icm-edge" if self.objective == "edge" else "icm-mse"  # one architecture: any icm-* name
        data = Path(datasets) / self.data
        run = [f"--model={model}", f"--objective={self.objective}", f"--lmbda={self.lmbda}", f"--steps={self.steps}",
               f"--batch-size={self.batch_size}", f"--learning-rate={self.learning_rate}",
               f"--decay-at={self.decay_at}", f"--device={device}", f"--precision={self.precision}",
               f"--edge-width={self.edge_width}", f"--quantization={self.quantization}"]
        task = [f"--detector={detector}", f"--pixel-lmbda={self.pixel_lmbda}"] if self.objective == "task" else []
        init = [] if self.init is None else [f"--init={checkpoint_path(folder, self.init)}"]
        extra = [] if threads is None else [f"--threads={threads}"]
        return ["--images", str(data / "images"), "--annotations", str(data / "instances.json"), "--out",
                str(checkpoint_path(folder, self.name)), *SETTINGS, *run, *task, *init, *extra]


# icm-mse: the base ran on a 2-core CPU (24,000 steps of 8 crops), base-2 and the fine-tunes on one GPU
# with 16 crops a step (2026-12, coco-train). lambdas: CompressAI's mbt2018-mean scale around its quality
# 3 (0.0067).
MSE_STAGES = (
    Stage("base", "mse", 0.0067, 24_000, 3e-4, data="coco-train", precision="bf16"),
    Stage("base-2", "mse", 0.0067, 5_000, 1e-4, init="base", batch_size=16, data="coco-train", precision="bf16"),
    *(Stage(name, "mse", lmbda, 3_000, 1e-4, init="base-2", batch_size=16, data="coco-train", precision="bf16")
      for name, lmbda in (("icm-mse-1", 0.0009), ("icm-mse-2", 0.0025), ("icm-mse-4", 0.025), ("icm-mse-0", 0.0005))),
)
# The first icm-edge: the edge objective fine-tuned from the mse base-2 (changed it little, see
# docs/icm_training.md); shipped until the edge line below, trained from random weights, is done.
EDGE_FROM_MSE_STAGES = tuple(
    Stage(name, "edge", lmbda, 3_000, 1e-4, init="base-2", batch_size=16, data="coco-train", precision="bf16")
    for name, lmbda in (("icm-edge-1", 0.1), ("icm-edge-2", 0.5), ("icm-edge-3", 2.5), ("icm-edge-0", 0.03)))
# icm-edge: from random weights on the 3-px contour band edge_psnr is measured on (docs/icm_training.md
# says why); lambda 0.05 is SA-ICM's published one. Ships (edge-0, edge-base, edge-2, edge-3 as rate points
# 0-3) in place of the icm-edge-* stages above once trained.
EDGE_STAGES = (
    Stage("edge-base", "edge", 0.05, 12_000, 3e-4, edge_width=3),
    *(Stage(name, "edge", lmbda, 3_000, 1e-4, init="edge-base", edge_width=3)
      for name, lmbda in (("edge-2", 0.15), ("edge-0", 0.015), ("edge-3", 0.5))),
)
# icm-task: the mse base-2 fine-tuned on YOLOv5n's neck features at lambda 0.4 (icm-task-1), its other
# rate points fine-tuned from that, the decoder fed rounded latents (hyperprior_forward says why).
# Measured on base-2's output, a step of 1 bpp buys ~0.9 of feature mse around 0.5 bpp and ~4 around
# 0.1 bpp, so lambda 0.15-2.5 spans the study's rates; the pixel term (lambda 2e-4 x the feature lambda)
# is ~10 % of the feature term at base-2.
TASK_STAGES = (
    Stage("icm-task-1", "task", 0.4, 1_500, 1e-4, init="base-2", pixel_lmbda=8e-05, quantization="rounded"),
    *(Stage(name, "task", lmbda, 800, 1e-4, init="icm-task-1", pixel_lmbda=round(2e-4 * lmbda, 8),
            quantization="rounded")
      for name, lmbda in (("icm-task-2", 1.0), ("icm-task-0", 0.15), ("icm-task-3", 2.5))),
)
STAGES = (*MSE_STAGES, *EDGE_FROM_MSE_STAGES, *EDGE_STAGES, *TASK_STAGES)
BASES = ("base", "base-2", "edge-base", "icm-task-1")  # stages others are fine-tuned from
FINE_TUNES = tuple(stage.name for stage in STAGES if stage.name not in BASES)
# codec -> rate point (quality) -> stage; rate points are numbered from the fewest bits up
SHIPPED = {
    "icm-mse": {"0": "icm-mse-0", "1": "icm-mse-1", "2": "icm-mse-2", "3": "base-2", "4": "icm-mse-4"},
    "icm-edge": {"0": "icm-edge-0", "1": "icm-edge-1", "2": "icm-edge-2", "3": "icm-edge-3"},
    "icm-task": {"0": "icm-task-0", "1": "icm-task-1", "2": "icm-task-2", "3": "icm-task-3"},
}


def checkpoint_path(folder: Path, stage: str) -> Path:
    return Path(folder) / f"{stage}.pth.tar"


def stage_named(name: str) -> Stage:
    return next(stage for stage in STAGES if stage.name == name)


def lineage(name: str) -> list[Stage]:
    """The stage and every stage it descends from, itself first."""
    chain = [stage_named(name)]
    while chain[-1].init is not None:
        chain.append(stage_named(chain[-1].init))
    return chain


def is_done(folder: Path, name: str) -> bool:
    """Its checkpoint is there, or every stage fine-tuned from it is done (it is needed no more)."""
    if checkpoint_path(folder, name).is_file():
        return True
    children = [stage.name for stage in STAGES if stage.init == name]
    return bool(children) and all(is_done(folder, child) for child in children)


def status(folder: Path) -> dict[str, str]:
    """stage -> "done", "in progress" (a resume state exists) or "waiting"."""
    from .training.loop import resume_path

    def state(stage: Stage) -> str:
        if is_done(folder, stage.name):
            return "done"
        return "in progress" if resume_path(checkpoint_path(folder, stage.name)).is_file() else "waiting"

    return {stage.name: state(stage) for stage in STAGES}


def run_stage(folder: Path, name: str, datasets: Path = DATASETS, threads: int | None = None, device: str = "cpu",
              detector: Path = DETECTOR) -> Path:
    """Train stage `name` unless it is done (the stage in progress resumes); its checkpoint."""
    from .training.cli import main as train

    stage = stage_named(name)
    if not is_done(folder, name):
        print(f"icm recipe: stage {name} ({stage.objective}, lambda {stage.lmbda}, {stage.steps} steps)", flush=True)
        train(stage.arguments(folder, datasets, threads, device, detector))
    return checkpoint_path(folder, name)


def run_recipe(folder: Path, datasets: Path = DATASETS, threads: int | None = None, until: str | None = None,
               device: str = "cpu", detector: Path = DETECTOR) -> None:
    """Run every stage not done yet, in order, up to and including `until`."""
    for stage in STAGES:
        run_stage(folder, stage.name, datasets, threads, device, detector)
        if stage.name == until:
            break


def ship(folder: Path, weights_dir: Path) -> dict:
    """Write `weights_dir`/manifest.json for every codec of SHIPPED whose stages are all trained; each
    entry names its file where it was trained (relative to `weights_dir`)."""
    import torch

    codecs = {}
    for codec, points in SHIPPED.items():
        if not all(checkpoint_path(folder, stage).is_file() for stage in points.values()):
            print(f"icm recipe: {codec} not shipped, not all of its stages are trained", flush=True)
            continue
        for rate, stage in points.items():
            source = checkpoint_path(folder, stage)
            saved = torch.load(source, map_location="cpu", weights_only=True)
            chain = lineage(stage)
            codecs.setdefault(codec, {})[rate] = {
                "file": os.path.relpath(source, weights_dir), "sha256": sha256_of(source), "stage": stage,
                "objective": saved["objective"], "lmbda": saved["lmbda"],
                "base_steps": sum(link.steps for link in chain if link.name in BASES),
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

    from .training.loop import validation_log_path

    logs, validation = {}, {}
    for stage in STAGES:
        log = checkpoint_path(folder, stage.name).with_suffix("").with_suffix(".csv")
        if log.is_file():
            logs[stage.name] = pd.read_csv(log)
            validation[stage.name] = pd.read_csv(validation_log_path(log))
    return logs, validation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m icm_privacy.icm_recipe", description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="the stages' checkpoints, logs and resume state")
    parser.add_argument("--datasets", type=Path, default=DATASETS,
                        help="the folder holding each stage's dataset (coco-train, coco-train2017)")
    parser.add_argument("--detector", type=Path, default=DETECTOR, help="YOLOv5n checkpoint of the task objective")
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
        if init is not None and not is_done(args.folder, name) and not checkpoint_path(args.folder, init).is_file():
            parser.error(f"stage {name} is fine-tuned from {init}, which is not done in {args.folder}")
        run_stage(args.folder, name, args.datasets, args.threads, args.device, args.detector)
    if not args.stage:
        run_recipe(args.folder, args.datasets, args.threads, args.until, args.device, args.detector)
    if args.ship:
        ship(args.folder, args.ship)


if __name__ == "__main__":
    main()
