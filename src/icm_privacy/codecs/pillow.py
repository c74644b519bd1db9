"""In-process still-image codecs through Pillow (libjpeg, libwebp)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .base import Codec


class PillowCodec(Codec):
    pillow_format: str

    def __init__(self, threads: int = 1):
        self.threads = threads  # single-threaded libraries; accepted for a uniform interface

    def save_options(self, quality: float) -> dict:
        return {"quality": int(quality)}

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        Image.fromarray(rgb).save(bitstream_path, format=self.pillow_format, **self.save_options(quality))

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        with Image.open(bitstream_path) as image:
            return np.asarray(image.convert("RGB"))


class Jpeg(PillowCodec):
    name = "jpeg"
    extension = "jpg"
    pillow_format = "JPEG"
    description = "JPEG via libjpeg (Pillow), 4:2:0, quality 1-95"
    quality_range = (1, 95)
    integer_qualities = True

    def save_options(self, quality: float) -> dict:
        return {"quality": int(quality), "subsampling": 2, "optimize": True}


class WebP(PillowCodec):
    name = "webp"
    extension = "webp"
    pillow_format = "WEBP"
    description = "WebP lossy via libwebp (Pillow), quality 0-100"
    quality_range = (0, 100)
    integer_qualities = True

    def save_options(self, quality: float) -> dict:
        return {"quality": int(quality), "method": 6}
