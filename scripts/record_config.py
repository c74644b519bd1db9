"""Snakemake script: write the exact, validated configuration of this run (defaults filled in)."""
import yaml

from icm_privacy.files import atomic_path
from icm_privacy.stages import logged

with logged(snakemake.log[0]), atomic_path(snakemake.output[0]) as temporary:
    temporary.write_text(yaml.safe_dump(dict(snakemake.params.config), sort_keys=False))
