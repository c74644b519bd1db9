"""Snakemake script: the cross-resolution attacker's crops of one downscale point and shard."""
from icm_privacy.stages import crop_faces_reduced, logged

with logged(snakemake.log[0]):
    crop_faces_reduced(snakemake.input.faces, snakemake.input.images, snakemake.input.bitstreams,
                       snakemake.params.options, int(float(snakemake.wildcards.quality)),
                       snakemake.params.min_confidence, snakemake.output)
