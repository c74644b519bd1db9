"""Rule icm_stage (workflow/rules/training.smk): icm_privacy.stages.training.icm_stage."""
from icm_privacy.stages import logged
from icm_privacy.stages.training import icm_stage

with logged(snakemake.log[0]):
    icm_stage(snakemake.wildcards.stage, snakemake.params.training_folder, snakemake.params.datasets,
              snakemake.params.detector, snakemake.threads, snakemake.output[0])
