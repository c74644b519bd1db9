"""Rule contour_regions (workflow/rules/quality.smk): icm_privacy.stages.quality.contour_regions."""
from icm_privacy.stages import logged
from icm_privacy.stages.quality import contour_regions

with logged(snakemake.log[0]):
    contour_regions(snakemake.input[0], snakemake.params.annotations, snakemake.output[0])
