"""Rule record_config (workflow/rules/results.smk): icm_privacy.stages.results.record_config."""
from icm_privacy.stages import logged
from icm_privacy.stages.results import record_config

with logged(snakemake.log[0]):
    record_config(snakemake.params.config, snakemake.output[0], snakemake.params.skipped)
