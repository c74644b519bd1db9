"""Rule crop_faces_reduced (workflow/rules/faces.smk): icm_privacy.stages.faces.crop_faces_reduced."""
from icm_privacy.stages import logged
from icm_privacy.stages.faces import crop_faces_reduced

with logged(snakemake.log[0]):
    crop_faces_reduced(snakemake.input.faces, snakemake.input.images, snakemake.input.bitstreams,
                       snakemake.params.options, snakemake.params.factor, snakemake.params.min_confidence,
                       snakemake.output)
