"""Rule privacy_utility_frontier (workflow/rules/privacy.smk): icm_privacy.stages.privacy.privacy_utility_frontier."""
from icm_privacy.stages import logged
from icm_privacy.stages.privacy import privacy_utility_frontier

with logged(snakemake.log[0]):
    privacy_utility_frontier(snakemake.input.privacy, snakemake.input.detection, snakemake.params.reference_codec,
                             snakemake.output)
