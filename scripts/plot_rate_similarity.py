"""Snakemake script: bpp vs mean cosine similarity figure from one Table 1."""
from pathlib import Path

import pandas as pd

from icm_privacy.plots import plot_rate_similarity
from icm_privacy.stages import logged

with logged(snakemake.log[0]):
    stem = str(Path(snakemake.output[0]).with_suffix(""))
    plot_rate_similarity(pd.read_csv(snakemake.input[0]), snakemake.params.models, stem)
