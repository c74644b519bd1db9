"""Example plug-ins for `codec: plugin` (docs/own_codec.md); put this folder on PYTHONPATH.

`Jpeg2000` is a Codec subclass: encode an RGB image into a file, decode that file back. `hyperprior` is
a model factory: it returns an untrained CompressAI-style model for a quality; the workflow loads your
checkpoint into it and codes through the package's container.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from icm_privacy.codecs import Codec


class Jpeg2000(Codec):
    name = "jpeg2000"
    extension = "j2k"
    description = "JPEG 2000 (OpenJPEG through Pillow), raw codestream; quality = compression ratio"
    quality_range = (1, 1000)

    def __init__(self, irreversible: bool = True, threads: int = 1):
        self.irreversible = irreversible  # the 9/7 wavelet (lossy); False: the reversible 5/3 one
        self.threads = threads  # OpenJPEG runs single-threaded through Pillow; accepted like every codec

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        Image.fromarray(rgb).save(bitstream_path, format="JPEG2000", no_jp2=True, quality_mode="rates",
                                  quality_layers=[float(quality)], irreversible=self.irreversible)

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        with Image.open(bitstream_path) as image:
            return np.asarray(image.convert("RGB"))


def hyperprior(quality: int, channels: int = 128):
    """Your own scale-hyperprior width; give the checkpoint you trained for each quality."""
    from compressai.models import ScaleHyperprior

    return ScaleHyperprior(N=channels, M=192)
