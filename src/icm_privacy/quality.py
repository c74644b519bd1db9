"""Pixel fidelity of decoded images: PSNR (RGB, Y', face boxes) and MS-SSIM, per image and per codec point.

- PSNR is 10 log10(255^2 / MSE) on 8-bit values. `psnr_rgb` pools the squared errors of all three
  channels; `psnr_y` is on BT.709 luma Y' = 0.2126 R' + 0.7152 G' + 0.0722 B' of the 8-bit RGB (full
  range, the same peak 255), close to what codec papers report on the luma plane; `face_psnr` pools the
  RGB errors of all the pixels inside the image's face boxes (detected on the original).
- Contour fidelity, for datasets with instance masks (contours.py): `edge_psnr` pools the RGB errors of
  the 3-px band along the masks' boundaries, `off_edge_psnr` those of the pixels at least 5 px from every
  boundary (texture and background). An ICM codec trained on edges keeps the first and may drop the second.
- MS-SSIM is pytorch-msssim's (Wang et al. 2003: five scales, 11x11 Gaussian window, sigma 1.5, the
  published scale weights; the implementation CompressAI reports with) on RGB with data range 255. It
  needs a short side above 160 px (four halvings of an 11-px window); smaller images get NaN.
- Per codec point: `*_mean` is the mean of per-image values (each image counts once, like bpp_mean);
  `*_pooled` is the PSNR of the pooled MSE (total squared error / total samples: large images count
  more, like bpp_pooled). MS-SSIM has a mean only.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .images import read_png

BT709_LUMA = np.array([0.2126, 0.7152, 0.0722])
MS_SSIM_MIN_SIDE = 161  # pytorch-msssim's limit for 5 scales and an 11-px window
REGIONS = ("face", "edge", "off_edge")  # PSNR over part of the image: face boxes, contour band, off the contours
QUALITY_COLUMNS = ["image", "pixels", "mse_rgb", "psnr_rgb", "mse_y", "psnr_y", "ms_ssim",
                   *[f"{region}_{column}" for region in REGIONS for column in ("pixels", "mse", "psnr")]]


def mse_to_psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def mean_squared_error(original: np.ndarray, decoded: np.ndarray, region: np.ndarray | None = None) -> float:
    """MSE of HxW(x3) images over the pixels where the HxW boolean `region` is True (all by default)."""
    if original.shape != decoded.shape:
        raise ValueError(f"image shapes differ: {original.shape} and {decoded.shape}")
    squared = (original.astype(np.float64) - decoded.astype(np.float64)) ** 2
    if region is not None:
        if not region.any():
            raise ValueError("empty region: PSNR is undefined")
        squared = squared[region]
    return float(squared.mean())


def psnr(original: np.ndarray, decoded: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR in dB of HxWx3 uint8 images, over the pixels where the HxW boolean `region` is True."""
    return mse_to_psnr(mean_squared_error(original, decoded, region))


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.709 Y' of 8-bit R'G'B', as float on the same 0-255 scale."""
    return rgb.astype(np.float64) @ BT709_LUMA


def ms_ssim(original: np.ndarray, decoded: np.ndarray) -> float:
    """MS-SSIM of two HxWx3 uint8 images (pytorch-msssim, data range 255); NaN below MS_SSIM_MIN_SIDE.

    Computed in float32: on decoded COCO photos within 5e-6 of the float64 result at a third of its
    CPU time (0.14 against 0.39 CPU-s per 640x480 image, one thread; tests/test_quality.py checks 1e-4).
    """
    if min(original.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    import torch
    from pytorch_msssim import ms_ssim as library_ms_ssim

    tensors = [torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None] for image in (original, decoded)]
    return float(library_ms_ssim(*tensors, data_range=255))


def box_region(shape: tuple[int, int], boxes) -> np.ndarray:
    """HxW mask of the union of (x, y, w, h) boxes, clipped to the image."""
    region = np.zeros(shape, dtype=bool)
    for x, y, w, h in boxes:
        region[max(int(y), 0) : int(y + h), max(int(x), 0) : int(x + w)] = True
    return region


def region_quality(original: np.ndarray, decoded: np.ndarray, name: str, region: np.ndarray | None) -> dict:
    """`<name>_pixels`, `_mse` and `_psnr` over the HxW boolean `region` (NaN where it is None or empty)."""
    if region is None or not region.any():
        return {f"{name}_pixels": 0, f"{name}_mse": math.nan, f"{name}_psnr": math.nan}
    mse = mean_squared_error(original, decoded, region)
    return {f"{name}_pixels": int(region.sum()), f"{name}_mse": mse, f"{name}_psnr": mse_to_psnr(mse)}


def image_quality(original: np.ndarray, decoded: np.ndarray, face_boxes,
                  contour_regions: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Every per-image measure of one decoded image; `contour_regions` is (edge band, off-contour region)
    from contours.scored_regions (contour values NaN without them, face values NaN without a face box)."""
    edge, off_edge = contour_regions if contour_regions is not None else (None, None)
    mse_rgb = mean_squared_error(original, decoded)
    mse_y = mean_squared_error(luma(original), luma(decoded))
    return {
        "pixels": original.shape[0] * original.shape[1],
        "mse_rgb": mse_rgb, "psnr_rgb": mse_to_psnr(mse_rgb),
        "mse_y": mse_y, "psnr_y": mse_to_psnr(mse_y),
        "ms_ssim": ms_ssim(original, decoded),
        **region_quality(original, decoded, "face", box_region(original.shape[:2], face_boxes)),
        **region_quality(original, decoded, "edge", edge),
        **region_quality(original, decoded, "off_edge", off_edge),
    }


def measure_shard(originals_folder: str, decoded_folder: str, faces_csv: str, min_confidence: float,
                  contours_npz: str | None = None) -> pd.DataFrame:
    """Per image of one shard of one codec point: PSNR, Y'-PSNR, MS-SSIM, face-box PSNR and, given the
    shard's contour regions (stages.quality.contour_regions), edge and off-edge PSNR."""
    faces = pd.read_csv(faces_csv, dtype={"image": str})
    faces = faces[faces.confidence >= min_confidence]
    regions = np.load(contours_npz) if contours_npz else {}
    rows = []
    for decoded_path in sorted(Path(decoded_folder).glob("[!.]*.png")):
        image_id = decoded_path.stem
        boxes = faces.loc[faces.image == image_id, ["x", "y", "w", "h"]].to_numpy()
        original = read_png(Path(originals_folder) / decoded_path.name)
        contour_regions = ((regions[f"{image_id}/edge"], regions[f"{image_id}/off_edge"])
                           if f"{image_id}/edge" in regions else None)
        rows.append({"image": image_id, **image_quality(original, read_png(decoded_path), boxes, contour_regions)})
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def quality_summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per codec point: mean of per-image PSNR / MS-SSIM and PSNR of the pooled MSE (see the module)."""
    rows = []
    for (codec, quality), images in per_image.groupby(["codec", "quality"], sort=False):
        row = {"codec": codec, "quality": quality, "images": len(images)}
        whole = [("psnr_rgb", "mse_rgb", "pixels", images), ("psnr_y", "mse_y", "pixels", images)]
        parts = [(f"{region}_psnr", f"{region}_mse", f"{region}_pixels", images[images[f"{region}_pixels"] > 0])
                 for region in REGIONS]
        for name, mse, weight, subset in (*whole, *parts):
            pooled = np.average(subset[mse], weights=subset[weight]) if len(subset) else math.nan
            row[f"{name}_mean"] = subset[name].mean()
            row[f"{name}_pooled"] = mse_to_psnr(pooled) if len(subset) else math.nan
        row["ms_ssim_mean"] = images.ms_ssim.mean()
        rows.append(row)
    return pd.DataFrame(rows)
