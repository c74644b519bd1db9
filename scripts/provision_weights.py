"""Snakemake script: put one face model's weights under $DEEPFACE_HOME, sha256-checked; mark it done."""
from pathlib import Path

from icm_privacy.files import atomic_path
from icm_privacy.stages import logged
from icm_privacy.weights import provision

with logged(snakemake.log[0]):
    weights = provision(snakemake.params.model, Path(snakemake.params.deepface_home), Path(snakemake.params.cache))
    with atomic_path(snakemake.output[0]) as temporary:
        temporary.write_text(f"{weights}\n")
