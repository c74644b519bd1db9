"""Rule tabulate_attackers (workflow/rules/attackers.smk): icm_privacy.stages.attackers.tabulate_attackers."""
from icm_privacy.stages import logged
from icm_privacy.stages.attackers import tabulate_attackers

with logged(snakemake.log[0]):
    tabulate_attackers(snakemake.input.restorers, snakemake.params.adapter_csvs, snakemake.output)
