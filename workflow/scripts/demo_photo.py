"""Rule demo_photo (workflow/rules/data.smk): icm_privacy.stages.data.demo_photo."""
from icm_privacy.stages import logged
from icm_privacy.stages.data import demo_photo

with logged(snakemake.log[0]):
    demo_photo(snakemake.output[0], snakemake.params.cache)
