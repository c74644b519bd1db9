"""Snakemake script: put one face model's weights under $DEEPFACE_HOME, sha256-checked."""
from pathlib import Path

from icm_privacy.stages import logged
from icm_privacy.weights import provision

with logged(snakemake.log[0]):
    provision(snakemake.params.model, Path(snakemake.params.deepface_home), Path(snakemake.params.cache))
