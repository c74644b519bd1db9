"""Snakemake script: the trained icm-* checkpoints with their sha256 manifest, and the training curves."""
from pathlib import Path

import pandas as pd

from icm_privacy.plots import plot_training_logs
from icm_privacy.stages import logged
from icm_privacy.training import ship_icm_weights

with logged(snakemake.log[0]):
    ship_icm_weights(dict(zip(snakemake.params.points, snakemake.input.checkpoints)),
                     Path(snakemake.output.manifest).parent)
    logs = {Path(path).name.removesuffix(".csv"): pd.read_csv(path) for path in snakemake.input.logs}
    plot_training_logs(logs, snakemake.output.png, snakemake.output.pdf)
