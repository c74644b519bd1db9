"""Rule icm_weights (workflow/rules/training.smk): icm_privacy.stages.training.icm_weights."""
from icm_privacy.stages import logged
from icm_privacy.stages.training import icm_weights

with logged(snakemake.log[0]):
    icm_weights(snakemake.params.training_folder, snakemake.output.manifest, snakemake.output.png,
                snakemake.output.pdf)
