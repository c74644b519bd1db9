"""Rule detect_objects (workflow/rules/detection.smk): icm_privacy.stages.detection.detect_objects."""
from icm_privacy.stages import logged
from icm_privacy.stages.detection import detect_objects

with logged(snakemake.log[0]):
    detect_objects(snakemake.input[0], snakemake.output[0], snakemake.params.settings, snakemake.params.dataset,
                   snakemake.threads)
