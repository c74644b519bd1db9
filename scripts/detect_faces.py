"""Snakemake script: detect faces on the original images of one shard."""
from icm_privacy.stages import detect_faces, logged

with logged(snakemake.log[0]):
    detect_faces(snakemake.input[0], snakemake.output[0], snakemake.params.detector,
                 snakemake.params.deepface_home)
