"""Rule train_restorer (workflow/rules/attackers.smk): icm_privacy.stages.attackers.train_restorer."""
from icm_privacy.stages import logged
from icm_privacy.stages.attackers import train_restorer

with logged(snakemake.log[0]):
    train_restorer(snakemake.input.images, snakemake.input.faces, snakemake.params.decoded_folders,
                   snakemake.params.settings, snakemake.params.min_confidence, snakemake.wildcards.label,
                   snakemake.params.gpu, snakemake.threads, snakemake.output)
