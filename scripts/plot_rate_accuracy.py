"""Snakemake script: bpp vs detection mAP figure from the detection table."""
from pathlib import Path

import pandas as pd

from icm_privacy.plots import plot_rate_accuracy
from icm_privacy.stages import logged

with logged(snakemake.log[0]):
    plot_rate_accuracy(pd.read_csv(snakemake.input[0]), str(Path(snakemake.output[0]).with_suffix("")))
