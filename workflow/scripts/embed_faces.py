"""Rule embed_faces (workflow/rules/faces.smk): icm_privacy.stages.faces.embed_faces."""
from icm_privacy.stages import logged
from icm_privacy.stages.faces import embed_faces

with logged(snakemake.log[0]):
    embed_faces(snakemake.input.crops, snakemake.output[0], snakemake.params.models, snakemake.params.batch_size,
                snakemake.params.deepface_home)
