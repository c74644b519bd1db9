"""Rule restore_faces (workflow/rules/attackers.smk): icm_privacy.stages.attackers.restore_faces."""
from icm_privacy.stages import logged
from icm_privacy.stages.attackers import restore_faces

with logged(snakemake.log[0]):
    restore_faces(snakemake.input.faces, snakemake.input.images, snakemake.input.restorer, snakemake.wildcards.quality,
                  snakemake.params.min_confidence, snakemake.params.gpu, snakemake.threads, snakemake.output[0])
