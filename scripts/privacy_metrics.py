"""Snakemake script: privacy metrics (re-ID, rank-k, TAR@FAR with bootstrap CIs) and BD-style summaries."""
from icm_privacy.stages import identity_labels, logged, privacy_metrics

with logged(snakemake.log[0]):
    privacy_metrics(snakemake.input.faces, snakemake.input.rates, snakemake.params.embedding_files,
                    snakemake.params.points, snakemake.params.models, snakemake.params.thresholds,
                    identity_labels(snakemake.params.dataset), snakemake.params.settings,
                    snakemake.params.reduced_points, snakemake.params.reference_codec, snakemake.output)
