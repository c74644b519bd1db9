"""Rule tabulate_quality (workflow/rules/quality.smk): icm_privacy.stages.quality.tabulate_quality."""
from icm_privacy.stages import logged
from icm_privacy.stages.quality import tabulate_quality

with logged(snakemake.log[0]):
    tabulate_quality(snakemake.params.quality_files, snakemake.output)
