"""Rule detect_faces (workflow/rules/faces.smk): icm_privacy.stages.faces.detect_faces."""
from icm_privacy.stages import logged
from icm_privacy.stages.faces import detect_faces

with logged(snakemake.log[0]):
    detect_faces(snakemake.input[0], snakemake.output[0], snakemake.params.detector, snakemake.params.deepface_home)
