"""Rule icm_variant (workflow/rules/training.smk): icm_privacy.stages.training.icm_variant."""
from icm_privacy.stages import logged
from icm_privacy.stages.training import icm_variant

with logged(snakemake.log[0]):
    icm_variant(snakemake.wildcards.stage, snakemake.params.training_folder, snakemake.params.images,
                snakemake.params.annotations, snakemake.threads, snakemake.output[0])
