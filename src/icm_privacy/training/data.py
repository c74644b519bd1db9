"""What a codec trains on: COCO images, their object edges, held-out validation images and random crops.

Edges come from the COCO instance masks (or Segment Anything's, where its package and a checkpoint are
given): the masks' contour band (contours.py), one pixel across as SA-ICM's Canny edges or wider. Pixels
are read as stored, without EXIF rotation, because COCO masks are drawn on stored pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..contours import coco_masks, contour_band
from ..images import to_rgb8


def edge_map(masks: np.ndarray, width: int = 1) -> np.ndarray:
    """(K, H, W) boolean masks -> (H, W) float32 map, 1 on the masks' contour band `width` px across."""
    if len(masks) == 0:
        raise ValueError("no masks: an image without objects has no edge region to train on")
    return contour_band(masks, width).astype(np.float32)


class SamMasks:
    """Segment Anything's automatic masks, kept when their predicted IoU reaches alpha."""

    def __init__(self, checkpoint: Path, model_type: str, alpha: float, device: str):
        try:
            from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
        except ImportError as error:
            raise RuntimeError("--masks sam needs the segment_anything package (pip install segment-anything)") \
                from error
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"SAM checkpoint {checkpoint} does not exist (--sam-checkpoint)")
        sam = sam_model_registry[model_type](checkpoint=str(checkpoint)).to(device)
        self.generator = SamAutomaticMaskGenerator(sam, pred_iou_thresh=alpha)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        masks = [record["segmentation"] for record in self.generator.generate(rgb)]
        return np.stack(masks) if masks else np.zeros((0, *rgb.shape[:2]), dtype=bool)


@dataclass
class TrainingImage:
    name: str
    rgb: np.ndarray  # HxWx3 uint8
    edges: np.ndarray | None  # HxW float32 in {0, 1}; None: no instance masks (the mse objective only)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def load_training_images(images: Path, annotations: Path, first_n: int | None = None, sam: SamMasks | None = None,
                         edges_only: bool = True, edge_width: int = 1) -> list[TrainingImage]:
    """The images of the folder (sorted by name, i.e. by COCO id) and their edge maps (SAM's when given).

    An image gets an edge map from its COCO instance masks; one the annotations do not list, or whose
    instances are all crowd regions, has none and is kept only with edges_only=False (the mse
    objective needs no masks). Pixels are read as stored, without EXIF rotation, because COCO masks
    are drawn on stored pixels.
    """
    from pycocotools.coco import COCO

    coco = COCO(str(annotations))
    ids = {info["file_name"]: image_id for image_id, info in coco.imgs.items()}
    paths = sorted(path for path in Path(images).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)[:first_n]
    loaded = []
    for path in paths:
        with Image.open(path) as image:
            rgb = to_rgb8(image)
        if sam is not None:
            masks = sam(rgb)
        elif path.name in ids:
            info = coco.imgs[ids[path.name]]
            if rgb.shape[:2] != (info["height"], info["width"]):
                raise ValueError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} pixels, annotations say "
                                 f"{info['width']}x{info['height']}")
            masks = coco_masks(coco, ids[path.name])
        else:
            masks = np.zeros((0, *rgb.shape[:2]), dtype=bool)
        edges = edge_map(masks, edge_width) if len(masks) else None
        if edges is not None or not edges_only:
            loaded.append(TrainingImage(path.stem, rgb, edges))
    if not loaded:
        raise ValueError(f"{images}: no image" + (f" has an instance mask in {annotations}" if edges_only else ""))
    return loaded


def split_validation(images: list[TrainingImage], every: int) -> tuple[list[TrainingImage], list[TrainingImage]]:
    """(training, validation): every `every`-th image with edges and every `every`-th without is held out.

    Both kinds are held out so that validation measures whole-image fidelity and edge fidelity on
    images no step trains on; 0 holds out nothing.
    """
    if every <= 0:
        return images, []
    validation = [group[index] for group in ([i for i in images if i.edges is not None],
                                             [i for i in images if i.edges is None])
                  for index in range(0, len(group), every)]
    held_out = {image.name for image in validation}
    return [image for image in images if image.name not in held_out], validation


def sample_crops(images: list[TrainingImage], crop: int, batch_size: int, rng: np.random.Generator,
                 tries: int = 10):
    """A batch of random crops, mirrored left-right with probability 1/2: (B, 3, crop, crop) images in
    [0, 1] and (B, 1, crop, crop) edge maps (zero for an image without masks).

    A crop without any edge pixel teaches the edge objective only rate, so on an image with edges up to
    `tries` positions are drawn per crop and the first one with an edge is kept.
    """
    small = [image.name for image in images if min(image.rgb.shape[:2]) < crop]
    if small:
        raise ValueError(f"crop {crop} is larger than images {', '.join(small[:5])}")
    pixels, edges = [], []
    for index in rng.integers(len(images), size=batch_size):
        image = images[index]
        image_edges = image.edges if image.edges is not None else np.zeros(image.rgb.shape[:2], np.float32)
        for _ in range(tries if image.edges is not None else 1):
            top = rng.integers(image.rgb.shape[0] - crop + 1)
            left = rng.integers(image.rgb.shape[1] - crop + 1)
            window = (slice(top, top + crop), slice(left, left + crop))
            if image_edges[window].any():
                break
        step = -1 if rng.random() < 0.5 else 1
        pixels.append(image.rgb[window][:, ::step])
        edges.append(image_edges[window][:, ::step])
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.from_numpy(np.stack(edges))[:, None]


