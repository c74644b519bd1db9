"""Snakemake script: privacy metrics against detection mAP per codec point, and BD-style differences over mAP."""
from icm_privacy.stages import logged, privacy_utility_frontier

with logged(snakemake.log[0]):
    privacy_utility_frontier(snakemake.input.privacy, snakemake.input.detection, snakemake.params.reference_codec,
                             snakemake.output)
