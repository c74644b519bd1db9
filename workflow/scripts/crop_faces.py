"""Rule crop_faces (workflow/rules/faces.smk): icm_privacy.stages.faces.crop_faces."""
from icm_privacy.stages import logged
from icm_privacy.stages.faces import crop_faces

with logged(snakemake.log[0]):
    crop_faces(snakemake.input.faces, snakemake.input.images, snakemake.output[0], snakemake.params.min_confidence)
