"""Snakemake script: one run of the icm-* training recipe (the base, or a variant fine-tuned from it)."""
from pathlib import Path

from icm_privacy.stages import logged
from icm_privacy.training import icm_arguments, main

with logged(snakemake.log[0]):
    variant = dict(snakemake.wildcards)
    main(icm_arguments(Path(snakemake.params.images), Path(snakemake.params.annotations),
                       Path(snakemake.output.checkpoint), variant.get("codec"), variant.get("rate"),
                       snakemake.input.get("base"), snakemake.threads))
