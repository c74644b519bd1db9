"""Rule plot_rate_accuracy (workflow/rules/detection.smk): icm_privacy.stages.detection.plot_rate_accuracy."""
from icm_privacy.stages import logged
from icm_privacy.stages.detection import plot_rate_accuracy

with logged(snakemake.log[0]):
    plot_rate_accuracy(snakemake.input[0], snakemake.output.png)
