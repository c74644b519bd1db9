"""Snakemake script: image quality per image and per codec point (mean and pooled)."""
from icm_privacy.stages import logged, tabulate_quality

with logged(snakemake.log[0]):
    tabulate_quality(snakemake.params.quality_files, snakemake.output)
