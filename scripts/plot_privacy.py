"""Snakemake script: one privacy metric against bpp or detection mAP, one panel per face model."""
from icm_privacy.stages import logged, plot_privacy

with logged(snakemake.log[0]):
    plot_privacy(snakemake.input[0], snakemake.wildcards.metric, float(snakemake.wildcards.t), snakemake.params.x,
                 snakemake.output)
