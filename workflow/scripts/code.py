"""Rule code_<label> (workflow/rules/codecs.smk): icm_privacy.stages.codecs.code."""
from icm_privacy.stages import logged
from icm_privacy.stages.codecs import code

with logged(snakemake.log[0]):
    code(snakemake.input.images, snakemake.output.bitstreams, snakemake.output.decoded, snakemake.params.codec,
         snakemake.params.quality, snakemake.params.options, snakemake.threads,
         snakemake.input.get("faces"), snakemake.params.label)
