"""Rules of workflow/rules/quality.smk: pixel fidelity (PSNR RGB, Y', face boxes; MS-SSIM) of every
decoded image, per codec point and shard, then one table per image and per codec point."""
from __future__ import annotations

import logging

import pandas as pd

from ..files import atomic_path
from ..points import PointKey

log = logging.getLogger("icm_privacy")


def measure_quality(originals_folder: str, decoded_folder: str, faces_csv: str, min_confidence: float,
                    quality_csv: str) -> None:
    """PSNR (RGB, Y', face boxes) and MS-SSIM of every decoded image of one shard and codec point."""
    from ..quality import measure_shard

    table = measure_shard(originals_folder, decoded_folder, faces_csv, min_confidence)
    log.info("%d images measured", len(table))
    with atomic_path(quality_csv) as temporary:
        table.to_csv(temporary, index=False)


def tabulate_quality(quality_files: dict[str, list[str]], outputs) -> None:
    """Per image x codec point (tables/quality.csv) and per codec point (mean and pooled) quality tables.

    `quality_files`: codec point ("<codec>/<quality>") -> its shards' measure_quality files.
    """
    from ..quality import quality_summary

    per_image = pd.concat(
        [pd.read_csv(path, dtype={"image": str}).assign(codec=key.label, quality=key.quality)
         for point, paths in quality_files.items() for key in [PointKey.parse(point)] for path in paths],
        ignore_index=True)
    per_image = per_image[["codec", "quality", *per_image.columns[:-2]]]
    for table, path in ((per_image, outputs.per_image), (quality_summary(per_image), outputs.summary)):
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False)
