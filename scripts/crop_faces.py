"""Snakemake script: crop the detected face boxes from one version (original or decoded) of a shard."""
from icm_privacy.stages import crop_faces, logged

with logged(snakemake.log[0]):
    crop_faces(snakemake.input.faces, snakemake.input.images, snakemake.output[0], snakemake.params.min_confidence)
