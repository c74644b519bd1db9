"""Rule plot_codec_gallery (workflow/rules/results.smk): icm_privacy.stages.results.plot_codec_gallery."""
from icm_privacy.stages import logged
from icm_privacy.stages.results import plot_codec_gallery

with logged(snakemake.log[0]):
    plot_codec_gallery(snakemake.input.rates, snakemake.input.faces, snakemake.params.folders,
                       snakemake.params.gallery, snakemake.params.min_confidence, snakemake.output)
