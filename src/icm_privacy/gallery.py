"""What codecs make of the same images at about the same bitrate: a figure like Fig. 1 of Shindo et al.

Per chosen image: the original and, for every codec, its decoded image at the codec point whose bpp
for that image is nearest a target (0.2 bpp by default), with the image's largest face (MTCNN, on the
original) cropped from each beside it, so texture, contours and identity can be compared by eye.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PANEL_INCHES = 2.2  # width of one image panel


@dataclass(frozen=True)
class GalleryCell:
    """One column of one image's row: an image (original or decoded), its face crop and caption."""

    title: str
    image: np.ndarray  # HxWx3 uint8
    face: np.ndarray | None  # the face box cropped from `image`


def nearest_points(rates: pd.DataFrame, image: str, target_bpp: float) -> dict[str, tuple[str, float]]:
    """codec -> (quality, bpp) of its point whose bpp for `image` is nearest `target_bpp` (log scale)."""
    rows = rates[rates.image == image]
    if rows.empty:
        raise ValueError(f"image {image!r} has no coded points in the rates table")
    nearest = {}
    for codec, points in rows.groupby("codec", sort=False):
        best = points.iloc[int(np.argmin(np.abs(np.log(points.bpp.to_numpy()) - np.log(target_bpp))))]
        nearest[codec] = (str(best.quality), float(best.bpp))
    return nearest


def largest_face(faces: pd.DataFrame, image: str, min_confidence: float) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the image's largest face at the confidence threshold, or None."""
    rows = faces[(faces.image == image) & (faces.confidence >= min_confidence)].drop_duplicates("face_id")
    if rows.empty:
        return None
    row = rows.loc[(rows.w * rows.h).idxmax()]
    return int(row.x), int(row.y), int(row.w), int(row.h)


def crop(image: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray | None:
    if box is None:
        return None
    x, y, w, h = box
    return image[max(y, 0):y + h, max(x, 0):x + w]


def gallery_figure(rows: Sequence[Sequence[GalleryCell]], dpi: int = 100) -> Figure:
    """Per image two rows of panels: the images, then their face crops (an empty panel without a face)."""
    if not rows or not all(rows):
        raise ValueError("the gallery needs at least one image with at least one panel")
    columns = max(len(row) for row in rows)
    aspect = max(cell.image.shape[0] / cell.image.shape[1] for row in rows for cell in row)
    heights = [value for _ in rows for value in (aspect, 0.8)]
    figure = Figure(figsize=(columns * PANEL_INCHES, PANEL_INCHES * sum(heights) + 0.3), dpi=dpi,
                    layout="constrained")
    axes = figure.subplots(2 * len(rows), columns, squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax in axes.flat:
        ax.set_axis_off()
    for index, row in enumerate(rows):
        for column, cell in enumerate(row):
            top, bottom = axes[2 * index, column], axes[2 * index + 1, column]
            top.imshow(cell.image)
            top.set_title(cell.title, fontsize=8)
            if cell.face is not None and cell.face.size:
                bottom.imshow(cell.face)
    return figure


def gallery_rows(images: Sequence[str], rates: pd.DataFrame, faces: pd.DataFrame, read_image, target_bpp: float,
                 min_confidence: float, codecs: Sequence[str] | None = None) -> list[list[GalleryCell]]:
    """The cells of `gallery_figure` for `images`; `read_image(point, image)` returns the HxWx3 uint8
    pixels of a point ("original" or "<codec>/<quality>"); `codecs` chooses and orders the columns."""
    rows = []
    for image in images:
        box = largest_face(faces, image, min_confidence)
        original = read_image("original", image)
        cells = [GalleryCell(f"{image}\noriginal", original, crop(original, box))]
        nearest = nearest_points(rates, image, target_bpp)
        for codec in codecs or nearest:
            if codec not in nearest:
                raise ValueError(f"codec {codec!r} has no point for image {image!r}")
            quality, bpp = nearest[codec]
            decoded = read_image(f"{codec}/{quality}", image)
            cells.append(GalleryCell(f"{codec} {quality}\n{bpp:.3f} bpp", decoded, crop(decoded, box)))
        rows.append(cells)
    return rows


def image_reader(folders: Mapping[str, Sequence[str]]):
    """read_image for gallery_rows: a point's PNG of an image, looked up in that point's shard folders."""
    from pathlib import Path

    from .images import read_png

    def read_image(point: str, image: str) -> np.ndarray:
        for folder in folders[point]:
            path = Path(folder) / f"{image}.png"
            if path.is_file():
                return read_png(path)
        raise FileNotFoundError(f"no {image}.png in the folders of {point}: {', '.join(folders[point])}")

    return read_image
