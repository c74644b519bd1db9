"""Object contours from instance masks: the region an edge codec is trained on and the regions it is scored on.

- `boundary`: the pixels of each mask that have a 4-neighbour outside it, united over the masks (a mask
  touching the image border has a boundary there, as Canny would draw it). On binary masks this is the
  one-pixel edge SA-ICM takes from Segment Anything's masks with Canny, without Canny's thresholds.
- `contour_band(masks, width)`: the boundary widened to a band `width` pixels across (3: the boundary
  pixel, one inside, one outside), where `edge_psnr` is measured.
- `off_contour(masks, distance)`: pixels at least `distance` pixels (Euclidean) from every boundary
  pixel, where `off_edge_psnr` is measured: texture and background, away from any object's outline.
The training of icm-edge and the quality metrics both call these, so the codec is trained on the band it
is scored on (docs/icm_training.md). Masks come from COCO instance annotations (crowd regions left out),
drawn on the stored pixels.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

EDGE_BAND_WIDTH = 3  # px across: edge_psnr's region
OFF_EDGE_DISTANCE = 5  # px from every boundary: off_edge_psnr's region


def coco_masks(coco, image_id: int) -> np.ndarray:
    """(K, H, W) boolean masks of the non-crowd instances of one COCO image (a pycocotools COCO)."""
    info = coco.imgs[image_id]
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=False))
    masks = [coco.annToMask(annotation).astype(bool) for annotation in annotations]
    return np.stack(masks) if masks else np.zeros((0, info["height"], info["width"]), dtype=bool)


def boundary(masks: np.ndarray) -> np.ndarray:
    """(K, H, W) boolean masks -> (H, W) boolean map of every mask's boundary pixels."""
    if len(masks) == 0:
        raise ValueError("no masks: an image without objects has no contour")
    edges = np.zeros(masks.shape[1:], dtype=bool)
    for mask in masks:
        edges |= mask & ~ndimage.binary_erosion(mask, border_value=0)
    return edges


def contour_band(masks: np.ndarray, width: int = EDGE_BAND_WIDTH) -> np.ndarray:
    """(H, W) boolean band `width` (odd) pixels across, centred on the masks' boundaries."""
    if width < 1 or width % 2 == 0:
        raise ValueError(f"contour band width {width}: must be an odd number of pixels >= 1")
    edges = boundary(masks)
    if width == 1:
        return edges
    return ndimage.binary_dilation(edges, structure=np.ones((3, 3), bool), iterations=width // 2)


def off_contour(masks: np.ndarray, distance: float = OFF_EDGE_DISTANCE) -> np.ndarray:
    """(H, W) boolean map of the pixels at least `distance` pixels from every boundary pixel."""
    return ndimage.distance_transform_edt(~boundary(masks)) >= distance


def scored_regions(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edge band, off-contour region) of one image's masks: where edge_psnr and off_edge_psnr are measured."""
    return contour_band(masks), off_contour(masks)
