"""Snakemake script: encode one image at one codec point and decode the bitstream file back."""
from icm_privacy.stages import code_image, logged

with logged(snakemake.log[0]):
    code_image(snakemake.input.image, snakemake.output.bitstream, snakemake.output.decoded,
               snakemake.params.codec, float(snakemake.wildcards.quality), snakemake.params.options,
               snakemake.threads, snakemake.input.get("faces"))
