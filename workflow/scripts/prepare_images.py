"""Rule prepare_images (workflow/rules/data.smk): icm_privacy.stages.data.prepare_images."""
from icm_privacy.stages import logged
from icm_privacy.stages.data import prepare_images

with logged(snakemake.log[0]):
    prepare_images(snakemake.params.sources, snakemake.output[0])
