"""Rule plot_rate_similarity (workflow/rules/results.smk): icm_privacy.stages.results.plot_rate_similarity."""
from icm_privacy.stages import logged
from icm_privacy.stages.results import plot_rate_similarity

with logged(snakemake.log[0]):
    plot_rate_similarity(snakemake.input[0], snakemake.params.models, snakemake.output[0])
