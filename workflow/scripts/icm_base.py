"""Rule icm_base (workflow/rules/training.smk): icm_privacy.stages.training.icm_base."""
from icm_privacy.stages import logged
from icm_privacy.stages.training import icm_base

with logged(snakemake.log[0]):
    icm_base(snakemake.params.training_folder, snakemake.params.images, snakemake.params.annotations,
             snakemake.threads, snakemake.output[0])
