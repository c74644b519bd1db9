"""Pixel fidelity of decoded images: PSNR (RGB, Y', face boxes) and MS-SSIM, per image and per codec point.

- PSNR is 10 log10(255^2 / MSE) on 8-bit values. `psnr_rgb` pools the squared errors of all three
  channels; `psnr_y` is on BT.709 luma Y' = 0.2126 R' + 0.7152 G' + 0.0722 B' of the 8-bit RGB (full
  range, the same peak 255), close to what codec papers report on the luma plane; `face_psnr` pools the
  RGB errors of all the pixels inside the image's face boxes (detected on the original).
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
QUALITY_COLUMNS = ["image", "pixels", "mse_rgb", "psnr_rgb", "mse_y", "psnr_y", "ms_ssim", "face_pixels", "face_mse",
                   "face_psnr"]


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


def image_quality(original: np.ndarray, decoded: np.ndarray, face_boxes) -> dict:
    """Every per-image measure of one decoded image (face values NaN when the image has no face box)."""
    region = box_region(original.shape[:2], face_boxes)
    mse_rgb = mean_squared_error(original, decoded)
    mse_y = mean_squared_error(luma(original), luma(decoded))
    face_mse = mean_squared_error(original, decoded, region) if region.any() else math.nan
    return {
        "pixels": original.shape[0] * original.shape[1],
        "mse_rgb": mse_rgb, "psnr_rgb": mse_to_psnr(mse_rgb),
        "mse_y": mse_y, "psnr_y": mse_to_psnr(mse_y),
        "ms_ssim": ms_ssim(original, decoded),
        "face_pixels": int(region.sum()), "face_mse": face_mse,
        "face_psnr": mse_to_psnr(face_mse) if region.any() else math.nan,
    }


def measure_shard(originals_folder: str, decoded_folder: str, faces_csv: str, min_confidence: float) -> pd.DataFrame:
    """Per image of one shard of one codec point: PSNR, Y'-PSNR, MS-SSIM and face-box PSNR."""
    faces = pd.read_csv(faces_csv, dtype={"image": str})
    faces = faces[faces.confidence >= min_confidence]
    rows = []
    for decoded_path in sorted(Path(decoded_folder).glob("[!.]*.png")):
        image_id = decoded_path.stem
        boxes = faces.loc[faces.image == image_id, ["x", "y", "w", "h"]].to_numpy()
        original = read_png(Path(originals_folder) / decoded_path.name)
        rows.append({"image": image_id, **image_quality(original, read_png(decoded_path), boxes)})
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def quality_summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per codec point: mean of per-image PSNR / MS-SSIM and PSNR of the pooled MSE (see the module)."""
    rows = []
    for (codec, quality), images in per_image.groupby(["codec", "quality"], sort=False):
        with_faces = images[images.face_pixels > 0]
        row = {"codec": codec, "quality": quality, "images": len(images)}
        for name, mse, weight, subset in (("psnr_rgb", "mse_rgb", "pixels", images), ("psnr_y", "mse_y", "pixels", images),
                                          ("face_psnr", "face_mse", "face_pixels", with_faces)):
            pooled = np.average(subset[mse], weights=subset[weight]) if len(subset) else math.nan
            row[f"{name}_mean"] = subset[name].mean()
            row[f"{name}_pooled"] = mse_to_psnr(pooled) if len(subset) else math.nan
        row["ms_ssim_mean"] = images.ms_ssim.mean()
        rows.append(row)
    return pd.DataFrame(rows)
