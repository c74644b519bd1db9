"""Resolution reduction as codec points, the attacker who matches at the reduced resolution, and the
container both this codec and the layered codec (layered.py) write.

`downscale` shrinks the image by the factor given as quality (box filter: each small pixel is the mean
of the f x f pixels it covers), codes the small image with a standard inner codec, and decodes back to
full size with bicubic upsampling for the machine task and the standard attacker. A cross-resolution
attacker instead compares the decoded small image with the original shrunk the same way
(`cross_resolution_crops`): nothing of the upsampling's blur then stands between the two crops.

Container (version 1), big-endian; a reader needs nothing else but the original width and height:

    magic "ICMS" | version u8 | factor u8 | per layer, in order: u32 length + that layer's inner bitstream

Layer 0 (the only layer here) is the downscaled image; the layered codec appends an enhancement layer.
A file cut after any layer is a valid file of fewer layers. Bytes per layer, which add up to the file
size: layer 0 counts the 6-byte header, and every layer its own 4-byte length.
"""
from __future__ import annotations

import math
import struct
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..faces import crop_face
from .base import Codec, CodecError
from .deidentify import inner_codec, resize_rgb, whole_number

MAGIC = b"ICMS"
VERSION = 1
HEADER = struct.Struct(">4sBB")
LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class LayeredFile:
    factor: int
    layers: tuple[bytes, ...]
    layer_bytes: tuple[int, ...]  # file bytes each layer accounts for; they add up to the file size


def write_layers(path: Path, factor: int, layers: Sequence[bytes]) -> None:
    chunks = [HEADER.pack(MAGIC, VERSION, factor)]
    for layer in layers:
        chunks += [LENGTH.pack(len(layer)), layer]
    Path(path).write_bytes(b"".join(chunks))


def read_layers(path: Path) -> LayeredFile:
    data = Path(path).read_bytes()
    if len(data) < HEADER.size:
        raise CodecError(f"{path}: {len(data)} bytes, too short for a layered-container header")
    magic, version, factor = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise CodecError(f"{path}: not a version-{VERSION} layered container (magic {magic!r}, version {version})")
    layers, layer_bytes, offset = [], [], HEADER.size
    while offset < len(data):
        if offset + LENGTH.size > len(data):
            raise CodecError(f"{path}: truncated inside the length of layer {len(layers)}")
        (length,) = LENGTH.unpack_from(data, offset)
        start = offset + LENGTH.size
        if start + length > len(data):
            raise CodecError(f"{path}: layer {len(layers)} needs {length} bytes, {len(data) - start} are left")
        layers.append(data[start:start + length])
        layer_bytes.append(start + length - offset)
        offset = start + length
    if not layers:
        raise CodecError(f"{path}: the container holds no layer")
    layer_bytes[0] += HEADER.size
    return LayeredFile(factor, tuple(layers), tuple(layer_bytes))


def encode_to_bytes(codec: Codec, rgb: np.ndarray, quality: float) -> bytes:
    """A standard codec's bitstream for `rgb`, through a temporary file (codecs write files)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"layer.{codec.extension}"
        codec.encode(rgb, quality, path)
        return path.read_bytes()


def decode_from_bytes(codec: Codec, data: bytes, width: int, height: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"layer.{codec.extension}"
        path.write_bytes(data)
        return codec.decode(path, width, height)


def small_size(width: int, height: int, factor: int) -> tuple[int, int]:
    return math.ceil(width / factor), math.ceil(height / factor)


def downscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Shrink by `factor` with a box filter (partial boxes at the right and bottom edges)."""
    width, height = small_size(rgb.shape[1], rgb.shape[0], factor)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BOX))


def scaled_box(box: Sequence[int], factor: int) -> tuple[int, int, int, int]:
    """The smallest box of the shrunk image that covers `box` (x0, y0, x1, y1) of the original."""
    x0, y0, x1, y1 = (int(v) for v in box[:4])
    return x0 // factor, y0 // factor, math.ceil(x1 / factor), math.ceil(y1 / factor)


def cross_resolution_crops(original: np.ndarray, decoded_small: np.ndarray, boxes: Sequence[Sequence[int]],
                           factor: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The crops a cross-resolution attacker embeds: per box, (original shrunk like the codec does, decoded small).

    `decoded_small` is the codec's decode before upsampling (`Downscale.decode_small`); boxes are in
    original pixels (x0, y0, x1, y1).
    """
    small_original = downscale(original, factor)
    if small_original.shape != decoded_small.shape:
        raise ValueError(f"decoded small image is {decoded_small.shape}, the original shrunk by {factor} is "
                         f"{small_original.shape}")
    boxes = [scaled_box(box, factor) for box in boxes]
    return [crop_face(small_original, box) for box in boxes], [crop_face(decoded_small, box) for box in boxes]


class Downscale(Codec):
    """Shrink by the factor given as quality, code with `inner` ({codec, quality, options}, default JPEG
    95), upsample the decoded image back to full size (bicubic)."""

    name = "downscale"
    extension = "icms"
    description = "downscale by a factor (quality = factor), inner standard codec, bicubic upsampling"
    quality_range = (1, 255)  # the factor is one byte of the container
    integer_qualities = True

    def __init__(self, inner: Mapping | None = None, threads: int = 1):
        self.inner, self.inner_quality = inner_codec(inner, threads)

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        factor = whole_number(quality, "downscaling factor")
        write_layers(bitstream_path, factor, [encode_to_bytes(self.inner, downscale(rgb, factor), self.inner_quality)])

    def decode_small(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        """The decoded image at the reduced resolution, before upsampling."""
        stream = read_layers(bitstream_path)
        return decode_from_bytes(self.inner, stream.layers[0], *small_size(width, height, stream.factor))

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        return resize_rgb(self.decode_small(bitstream_path, width, height), width, height)
