"""Snakemake script: per-image rates and per-face similarity tables."""
from icm_privacy.stages import logged, tabulate

with logged(snakemake.log[0]):
    tabulate(snakemake.input.shards, snakemake.input.faces, snakemake.params.coded_folders,
             snakemake.params.embedding_files, snakemake.params.models, snakemake.params.reduced_points,
             snakemake.output, snakemake.params.unread)
