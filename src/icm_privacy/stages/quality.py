"""Rules of workflow/rules/quality.smk: pixel fidelity (PSNR RGB, Y', face boxes, contour band and off it;
MS-SSIM) of every decoded image, per codec point and shard, then one table per image and per codec point."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_path
from ..points import PointKey

log = logging.getLogger("icm_privacy")


def contour_regions(originals_folder: str, annotations: str, regions_npz: str) -> None:
    """Per image of one shard: the contour band and the off-contour region of its COCO instance masks
    (contours.scored_regions), as `<image>/edge` and `<image>/off_edge` boolean arrays; an image without
    masks, or whose size differs from its annotation's, has none (its contour PSNRs are NaN)."""
    from pycocotools.coco import COCO

    from ..contours import coco_masks, scored_regions
    from ..datasets import coco_image_ids
    from ..images import read_png

    coco = COCO(annotations)
    ids = coco_image_ids({"annotations": annotations})
    regions = {}
    for path in sorted(Path(originals_folder).glob("[!.]*.png")):
        masks = coco_masks(coco, ids[path.stem]) if path.stem in ids else np.zeros((0, 1, 1), bool)
        shape = read_png(path).shape[:2]
        if len(masks) and masks.shape[1:] != shape:
            log.warning("%s: %dx%d pixels, its masks %dx%d: no contour PSNR", path, shape[1], shape[0],
                        masks.shape[2], masks.shape[1])
        elif len(masks):
            regions[f"{path.stem}/edge"], regions[f"{path.stem}/off_edge"] = scored_regions(masks)
    log.info("%d of the shard's images have contour regions", len(regions) // 2)
    with atomic_path(regions_npz) as temporary, temporary.open("wb") as file:
        np.savez_compressed(file, **regions)


def measure_quality(originals_folder: str, decoded_folder: str, faces_csv: str, min_confidence: float,
                    quality_csv: str, contours_npz: str | None = None) -> None:
    """PSNR (RGB, Y', face boxes, contours) and MS-SSIM of every decoded image of one shard and codec point."""
    from ..quality import measure_shard

    table = measure_shard(originals_folder, decoded_folder, faces_csv, min_confidence, contours_npz)
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
