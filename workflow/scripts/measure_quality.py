"""Rule measure_quality (workflow/rules/quality.smk): icm_privacy.stages.quality.measure_quality."""
from icm_privacy.stages import logged
from icm_privacy.stages.quality import measure_quality

with logged(snakemake.log[0]):
    measure_quality(snakemake.input.images, snakemake.input.decoded, snakemake.input.faces,
                    snakemake.params.min_confidence, snakemake.output[0], snakemake.input.get("contours"))
