"""Rule plot_frontier (workflow/rules/privacy.smk): icm_privacy.stages.privacy.plot_frontier."""
from icm_privacy.stages import logged
from icm_privacy.stages.privacy import plot_frontier

with logged(snakemake.log[0]):
    plot_frontier(snakemake.input[0], snakemake.wildcards.metric, snakemake.wildcards.t, snakemake.output)
