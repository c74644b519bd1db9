"""Snakemake script: embed the face crops of one shard and codec point with every face model."""
from icm_privacy.stages import embed_faces, logged

with logged(snakemake.log[0]):
    embed_faces(snakemake.input.crops, snakemake.output[0], snakemake.params.models, snakemake.params.batch_size,
                snakemake.params.deepface_home)
