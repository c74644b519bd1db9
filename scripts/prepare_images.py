"""Snakemake script: decode a shard's source images to 8-bit RGB PNGs, refusing unreadable ones."""
from icm_privacy.stages import logged, prepare_images

with logged(snakemake.log[0]):
    prepare_images(snakemake.params.sources, snakemake.output[0])
