"""Rules of workflow/rules/training.smk: the icm-* training recipe (icm_recipe.py), stage by stage in the
training folder the repository carries, then the shipped weights and the curves."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..files import atomic_path


def icm_stage(name: str, training_folder: str, datasets: str, detector: str, threads: int, checkpoint: str) -> None:
    """Train (or resume, or find done) one stage of the recipe; its checkpoint is copied to the output."""
    from ..icm_recipe import run_stage

    trained = run_stage(Path(training_folder), name, Path(datasets), threads, detector=Path(detector))
    with atomic_path(checkpoint) as temporary:
        shutil.copyfile(trained, temporary)


def icm_weights(training_folder: str, manifest: str, png: str, pdf: str) -> None:
    """Ship the trained stages beside `manifest` (sha256 and training record per file) and draw the
    training and validation curves."""
    from ..icm_recipe import curves, ship
    from ..plots import plot_training_curves

    ship(Path(training_folder), Path(manifest).parent)
    plot_training_curves(*curves(Path(training_folder)), png, pdf)
