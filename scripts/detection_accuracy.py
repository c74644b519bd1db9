"""Snakemake script: COCO detection accuracy of every codec point and of the originals."""
from icm_privacy.stages import detection_accuracy, logged

with logged(snakemake.log[0]):
    detection_accuracy(snakemake.params.detections, snakemake.input.rates, snakemake.input.manifest,
                       snakemake.params.dataset, snakemake.output[0])
