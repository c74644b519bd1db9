"""Rule privacy_metrics (workflow/rules/privacy.smk): icm_privacy.stages.privacy.privacy_metrics."""
from icm_privacy.stages import logged
from icm_privacy.stages.privacy import privacy_metrics

with logged(snakemake.log[0]):
    privacy_metrics(snakemake.input.faces, snakemake.input.rates, snakemake.params.embedding_files,
                    snakemake.params.models, snakemake.params.thresholds, snakemake.params.dataset,
                    snakemake.params.settings, snakemake.params.views, snakemake.params.reference_codec,
                    snakemake.output, snakemake.params.adapter_files)
