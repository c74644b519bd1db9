"""Rule plot_privacy (workflow/rules/privacy.smk): icm_privacy.stages.privacy.plot_privacy."""
from icm_privacy.stages import logged
from icm_privacy.stages.privacy import plot_privacy

with logged(snakemake.log[0]):
    plot_privacy(snakemake.input[0], snakemake.wildcards.metric, snakemake.wildcards.t, snakemake.output)
