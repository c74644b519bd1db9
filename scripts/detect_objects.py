"""Snakemake script: YOLOv5 object detection on one shard of one image version."""
from icm_privacy.stages import detect_objects, logged

with logged(snakemake.log[0]):
    detect_objects(snakemake.input[0], snakemake.output[0], snakemake.params.settings, snakemake.params.dataset,
                   snakemake.threads)
