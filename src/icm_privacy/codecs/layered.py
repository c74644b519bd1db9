"""A two-layer scalable codec built from a standard codec: a low-resolution base and a residual enhancement.

Base layer: the image shrunk by `factor` (box filter), coded with the standard codec at the point's
quality; decoded, it is upsampled back (bicubic), exactly as the `downscale` codec does.
Enhancement layer: the residual (original - upsampled decoded base), offset by 128 and clipped to
8 bits, coded with the same codec at `enhancement_quality`. The encoder uses the decoded base, so the
decoder's base + residual matches what the encoder subtracted.

Both layers live in one container (format in downscale.py); the file cut after layer 0 is a valid
base-only file, byte-identical to a `downscale` file with the same factor and inner codec. `layers=1`
writes that cut file, so base-only and base+enhancement become two codec points of the workflow whose
bpp comes from their file sizes, i.e. cumulative bytes per layer. docs/layered_coding.md has the design.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .base import Codec, CodecError
from .deidentify import resize_rgb
from .downscale import decode_from_bytes, downscale, encode_to_bytes, read_layers, small_size, write_layers
from .registry import make_codec

RESIDUAL_OFFSET = 128  # residuals beyond -128..127 are clipped; they are rare on photos


class Layered(Codec):
    name = "layered"
    extension = "icms"
    description = "scalable: base = image downscaled by a factor, enhancement = coded residual (quality = base quality)"

    def __init__(self, codec: str = "jpeg", options: Mapping | None = None, factor: int = 4,
                 enhancement_quality: float | None = None, layers: int = 2, threads: int = 1):
        if layers not in (1, 2):
            raise CodecError(f"layers must be 1 (base only) or 2 (base + enhancement), got {layers}")

        self.codec = make_codec(codec, **(options or {}), threads=threads)
        self.factor = int(factor)
        self.enhancement_quality = enhancement_quality
        self.layers = layers

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        height, width = rgb.shape[:2]
        base = encode_to_bytes(self.codec, downscale(rgb, self.factor), quality)
        streams = [base]
        if self.layers == 2:
            prediction = self._upsampled_base(base, width, height)
            residual = np.clip(rgb.astype(np.int16) - prediction + RESIDUAL_OFFSET, 0, 255).astype(np.uint8)
            enhancement_quality = quality if self.enhancement_quality is None else self.enhancement_quality
            streams.append(encode_to_bytes(self.codec, residual, enhancement_quality))
        write_layers(bitstream_path, self.factor, streams)

    def _upsampled_base(self, base: bytes, width: int, height: int) -> np.ndarray:
        small = decode_from_bytes(self.codec, base, *small_size(width, height, self.factor))
        return resize_rgb(small, width, height)

    def decode(self, bitstream_path: Path, width: int, height: int, layer: int | None = None) -> np.ndarray:
        """Layer 0: the upsampled base; layer 1: base + enhancement; None: the highest layer in the file."""
        stream = read_layers(bitstream_path)
        if stream.factor != self.factor:
            raise CodecError(f"{bitstream_path}: coded with factor {stream.factor}, this codec uses {self.factor}")
        layer = len(stream.layers) - 1 if layer is None else layer
        if not 0 <= layer < len(stream.layers):
            raise CodecError(f"{bitstream_path}: holds layers 0..{len(stream.layers) - 1}, layer {layer} asked for")
        base = self._upsampled_base(stream.layers[0], width, height)
        if layer == 0:
            return base
        residual = decode_from_bytes(self.codec, stream.layers[1], width, height)
        return np.clip(base.astype(np.int16) + residual - RESIDUAL_OFFSET, 0, 255).astype(np.uint8)

    @staticmethod
    def layer_bytes(bitstream_path: Path) -> tuple[int, ...]:
        """File bytes per layer (header counted with layer 0); their running sum is each layer's rate."""
        return read_layers(bitstream_path).layer_bytes
