"""Snakemake script: Table 1 per confidence threshold, and the run summary."""
from icm_privacy.stages import logged, summarise

with logged(snakemake.log[0]):
    summarise(snakemake.input, snakemake.params.models, snakemake.params.thresholds, snakemake.output)
