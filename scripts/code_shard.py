"""Snakemake script: code one shard's images at one codec point; decode each bitstream file back."""
from icm_privacy.stages import code_shard, logged

with logged(snakemake.log[0]):
    code_shard(snakemake.input.images, snakemake.output.bitstreams, snakemake.output.decoded,
               snakemake.params.codec, float(snakemake.wildcards.quality), snakemake.params.options,
               snakemake.threads, snakemake.input.get("faces"))
