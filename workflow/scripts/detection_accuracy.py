"""Rule detection_accuracy (workflow/rules/detection.smk): icm_privacy.stages.detection.detection_accuracy."""
from icm_privacy.stages import logged
from icm_privacy.stages.detection import detection_accuracy

with logged(snakemake.log[0]):
    detection_accuracy(snakemake.params.detections, snakemake.input.rates, snakemake.input.manifest,
                       snakemake.params.dataset, snakemake.output[0])
