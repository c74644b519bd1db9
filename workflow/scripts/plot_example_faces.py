"""Rule plot_example_faces (workflow/rules/privacy.smk): icm_privacy.stages.privacy.plot_example_faces."""
from icm_privacy.stages import logged
from icm_privacy.stages.privacy import plot_example_faces

with logged(snakemake.log[0]):
    plot_example_faces(snakemake.input.faces, snakemake.params.crop_files, snakemake.params.points,
                       snakemake.params.model, snakemake.params.faces_shown, snakemake.output)
