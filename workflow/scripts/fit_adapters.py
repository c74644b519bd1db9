"""Rule fit_adapters (workflow/rules/attackers.smk): icm_privacy.stages.attackers.fit_adapters."""
from icm_privacy.stages import logged
from icm_privacy.stages.attackers import fit_adapters

with logged(snakemake.log[0]):
    fit_adapters(snakemake.input.original, snakemake.input.decoded, snakemake.input.faces, snakemake.params.models,
                 snakemake.params.min_confidence, snakemake.output)
