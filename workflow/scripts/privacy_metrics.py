"""Rule privacy_metrics (workflow/rules/privacy.smk): icm_privacy.stages.privacy.privacy_metrics."""
from icm_privacy.stages import logged
from icm_privacy.stages.privacy import privacy_metrics

with logged(snakemake.log[0]):
    privacy_metrics(snakemake.input.faces, snakemake.input.rates, snakemake.params.embedding_files,
                    snakemake.params.points, snakemake.params.models, snakemake.params.thresholds,
                    snakemake.params.dataset, snakemake.params.settings, snakemake.params.reduced_points,
                    snakemake.params.reference_codec, snakemake.output)
