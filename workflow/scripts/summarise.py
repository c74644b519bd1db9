"""Rule summarise (workflow/rules/results.smk): icm_privacy.stages.results.summarise."""
from icm_privacy.stages import logged
from icm_privacy.stages.results import summarise

with logged(snakemake.log[0]):
    summarise(snakemake.input, snakemake.params.models, snakemake.params.thresholds, snakemake.output,
              snakemake.params.skipped, snakemake.params.unmeasured)
