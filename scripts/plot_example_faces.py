"""Snakemake script: example faces, original next to every codec point's decoded crop."""
from icm_privacy.stages import logged, plot_example_faces

with logged(snakemake.log[0]):
    plot_example_faces(snakemake.input.faces, snakemake.params.crop_files, snakemake.params.points,
                       snakemake.params.model, snakemake.params.faces_shown, snakemake.output)
