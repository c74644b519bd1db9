"""Face de-identification as codec points: change the pixels inside the face boxes, then a standard codec.

Blur, pixelation, masking, k-Same-Pixel and a plug-in replacer act only inside the boxes MTCNN found on
the original image (the same boxes the evaluation crops), leave every other pixel untouched, and then
hand the whole image to a standard "inner" codec, so the bitstream file is that codec's own file and bpp
means what it means for every other codec. Decoding is the inner codec's decoding. The codec point's
quality is the de-identification strength (sigma, block size, opacity, k); the inner codec's quality is
an option. See docs/deidentification.md for the options and how the workflow passes faces and gallery.
"""
from __future__ import annotations

import importlib
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from .base import Codec, CodecError
from .registry import make_codec

DEFAULT_INNER = {"codec": "jpeg", "quality": 95}


class FaceBox(NamedTuple):
    """A face found on the original image: pixels [x0, x1) x [y0, y1) and the detector's raw confidence."""

    x0: int
    y0: int
    x1: int
    y1: int
    confidence: float


def face_boxes(faces, image_id: str) -> list[FaceBox]:
    """One image's boxes from a faces/shard-K.csv table (columns image, x, y, w, h, confidence)."""
    rows = faces[faces["image"].astype(str) == str(image_id)]
    return [FaceBox(int(r.x), int(r.y), int(r.x + r.w), int(r.y + r.h), float(r.confidence)) for r in rows.itertuples()]


def inner_codec(spec: Mapping | None, threads: int) -> tuple[Codec, float]:
    """The standard codec a wrapping codec hands its image to, from {codec, quality, options}."""

    spec = dict(DEFAULT_INNER if spec is None else spec)
    if not {"codec", "quality"} <= set(spec) <= {"codec", "quality", "options"}:
        raise CodecError(f"inner codec must be given as {{codec, quality, options}}, got keys {sorted(spec)}")
    codec = make_codec(spec["codec"], **spec.get("options", {}), threads=threads)
    if codec.needs_faces:
        raise CodecError(f"inner codec {spec['codec']!r} must be a standard codec, not a de-identification codec")
    low, high = codec.quality_range
    if not low <= spec["quality"] <= high:
        raise CodecError(f"inner quality {spec['quality']} is out of range for {spec['codec']} (allowed {low}..{high})")
    return codec, float(spec["quality"])


def whole_number(quality: float, what: str) -> int:
    if quality != int(quality) or quality < 1:
        raise CodecError(f"{what} must be a whole number >= 1, got {quality}")
    return int(quality)


# --- what happens inside a box ------------------------------------------------------------------

def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resampling (antialiased when shrinking) of an 8-bit RGB image."""
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))


def gaussian_blur(crop: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian of standard deviation `sigma` px, cut at 4 sigma, mirrored at the crop's edges.

    Only the crop's own pixels enter, so the result depends on nothing outside the face box.
    """
    if sigma == 0:
        return crop.copy()
    radius = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    image = crop.astype(np.float64)
    for axis in (0, 1):
        padding = [(0, 0)] * 3
        padding[axis] = (radius, radius)
        padded = np.pad(image, padding, mode="symmetric")
        length = image.shape[axis]
        image = sum(weight * padded.take(range(i, i + length), axis=axis) for i, weight in enumerate(kernel))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def pixelate(crop: np.ndarray, block: int) -> np.ndarray:
    """Each block x block tile (from the box's top-left; partial tiles at the far edges) becomes its mean."""
    result = np.empty_like(crop)
    for y in range(0, crop.shape[0], block):
        for x in range(0, crop.shape[1], block):
            tile = crop[y:y + block, x:x + block]
            result[y:y + block, x:x + block] = np.rint(tile.reshape(-1, 3).mean(axis=0))
    return result


def blend(crop: np.ndarray, replacement: np.ndarray, percent: float) -> np.ndarray:
    """`percent` % of the replacement over the crop: 100 replaces it, 0 keeps it."""
    weight = percent / 100.0
    return np.rint((1 - weight) * crop + weight * replacement.astype(np.float64)).astype(np.uint8)


class FaceGallery:
    """Original face crops for k-Same-Pixel, each also shrunk to a small template for the nearest search.

    "Nearest" is the Euclidean distance between templates (RGB, template x template px), the pixel-space
    distance of Newton et al.'s k-Same-Pixel. Ties go to the earlier gallery entry.
    """

    def __init__(self, crops: Sequence[np.ndarray], template: int):
        if not crops:
            raise CodecError("the k-Same gallery holds no faces")
        self.crops = list(crops)
        self.template = template
        self.templates = np.stack([self._template(crop) for crop in self.crops])

    @classmethod
    def load(cls, source: str | Path, template: int) -> FaceGallery:
        """Every array of an .npz file, or of every .npz file in a folder (sorted by name), is one face crop."""
        source = Path(source)
        files = sorted(source.glob("*.npz")) if source.is_dir() else [source]
        if not files or not files[0].is_file():
            raise CodecError(f"k-Same gallery {source}: no .npz file of face crops there")
        crops = []
        for path in files:
            with np.load(path) as arrays:
                crops.extend(arrays[name] for name in arrays.files)
        return cls(crops, template)

    def _template(self, crop: np.ndarray) -> np.ndarray:
        return resize_rgb(crop, self.template, self.template).astype(np.float32).ravel()

    def nearest(self, crop: np.ndarray, k: int) -> np.ndarray:
        """Indices of the k gallery faces nearest to `crop`, nearest first."""
        if k > len(self.crops):
            raise CodecError(f"k = {k} but the k-Same gallery holds only {len(self.crops)} faces")
        distances = np.linalg.norm(self.templates - self._template(crop), axis=1)
        return np.argsort(distances, kind="stable")[:k]

    def average(self, crop: np.ndarray, k: int) -> np.ndarray:
        """The pixel mean of the k nearest gallery faces, each resized to the crop's size."""
        height, width = crop.shape[:2]
        faces = [resize_rgb(self.crops[i], width, height).astype(np.float64) for i in self.nearest(crop, k)]
        return np.rint(np.mean(faces, axis=0)).astype(np.uint8)


# --- the codecs ------------------------------------------------------------------------------------

class DeidentifyingCodec(Codec):
    """De-identify the faces of an image given their boxes, then code the whole image with `inner`.

    Options common to all: `inner` = {codec, quality, options} (default JPEG quality 95), and
    `min_confidence`: only boxes whose detector confidence reaches it are de-identified.
    """

    needs_faces = True
    extension = "bin"  # each instance takes its inner codec's: the file is that codec's bitstream

    def __init__(self, inner: Mapping | None = None, min_confidence: float = 0.0, threads: int = 1):
        self.inner, self.inner_quality = inner_codec(inner, threads)
        self.extension = self.inner.extension
        self.min_confidence = float(min_confidence)

    @abstractmethod
    def replace(self, crop: np.ndarray, strength: float) -> np.ndarray:
        """The de-identified version of one face crop, of the same shape."""

    def deidentify(self, rgb: np.ndarray, strength: float, faces: Sequence) -> np.ndarray:
        """The image the inner codec receives: boxes replaced (each from original pixels), the rest a copy."""
        height, width = rgb.shape[:2]
        result = rgb.copy()
        for face in map(FaceBox._make, faces):
            if not (0 <= face.x0 < face.x1 <= width and 0 <= face.y0 < face.y1 <= height):
                raise CodecError(f"face box {tuple(face[:4])} is not inside the {width}x{height} image")
            if face.confidence >= self.min_confidence:
                result[face.y0:face.y1, face.x0:face.x1] = self.replace(rgb[face.y0:face.y1, face.x0:face.x1], strength)
        return result

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path, *, faces: Sequence) -> None:
        self.inner.encode(self.deidentify(rgb, quality, faces), self.inner_quality, bitstream_path)

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        return self.inner.decode(bitstream_path, width, height)


class FaceBlur(DeidentifyingCodec):
    name = "face-blur"
    description = "Gaussian blur of each face box (quality = sigma in px), then the inner codec"
    quality_range = (0, 1000)

    def replace(self, crop: np.ndarray, strength: float) -> np.ndarray:
        return gaussian_blur(crop, strength)


class FacePixelate(DeidentifyingCodec):
    name = "face-pixelate"
    description = "pixelation of each face box (quality = block size in px), then the inner codec"
    quality_range = (1, 4096)

    def replace(self, crop: np.ndarray, strength: float) -> np.ndarray:
        return pixelate(crop, whole_number(strength, "block size"))


class FaceMask(DeidentifyingCodec):
    """A solid colour over each face; quality = its opacity in %, so 100 is a solid mask."""

    name = "face-mask"
    description = "solid colour over each face box (quality = opacity in %), then the inner codec"
    quality_range = (0, 100)

    def __init__(self, colour: Sequence[int] = (0, 0, 0), inner: Mapping | None = None, min_confidence: float = 0.0,
                 threads: int = 1):
        super().__init__(inner, min_confidence, threads)
        self.colour = np.asarray(colour, dtype=np.uint8).reshape(3)

    def replace(self, crop: np.ndarray, strength: float) -> np.ndarray:
        return blend(crop, np.broadcast_to(self.colour, crop.shape), strength)


class KSamePixel(DeidentifyingCodec):
    """k-Same-Pixel (Newton, Sweeney and Malin 2005): each face becomes the mean of its k nearest gallery faces.

    `gallery`: an .npz file or a folder of .npz files whose arrays are original face crops, e.g. the
    workflow's crops/original/. Newton et al. de-identify the gallery itself, so a face is its own nearest
    neighbour and k = 1 changes nothing: the guarantee is that each output stands for k originals.
    Read when first needed, because the workflow makes the gallery after the configuration is checked.
    """

    name = "k-same-pixel"
    description = "k-Same-Pixel: each face box becomes the mean of its k nearest gallery faces (quality = k)"
    quality_range = (1, 1_000_000)

    def __init__(self, gallery: str, template: int = 32, inner: Mapping | None = None, min_confidence: float = 0.0,
                 threads: int = 1):
        super().__init__(inner, min_confidence, threads)
        self.gallery_source = gallery
        self.template = int(template)

    @cached_property
    def gallery(self) -> FaceGallery:
        return FaceGallery.load(self.gallery_source, self.template)

    def replace(self, crop: np.ndarray, strength: float) -> np.ndarray:
        return self.gallery.average(crop, whole_number(strength, "k"))


class FaceReplace(DeidentifyingCodec):
    """The plug-in point for a generative face replacer (a GAN or diffusion in-painter, ...).

    `replacer`: a callable, or "module:name" of one, given an HxWx3 uint8 RGB face crop and returning an
    RGB uint8 face of any size (resized to the box). Quality = the opacity in % of the generated face.
    """

    name = "face-replace"
    description = "a plug-in generator replaces each face box (quality = opacity in %), then the inner codec"
    quality_range = (0, 100)

    def __init__(self, replacer: str | Callable[[np.ndarray], np.ndarray], inner: Mapping | None = None,
                 min_confidence: float = 0.0, threads: int = 1):
        super().__init__(inner, min_confidence, threads)
        if isinstance(replacer, str):
            module, _, attribute = replacer.partition(":")
            try:
                replacer = getattr(importlib.import_module(module), attribute)
            except (ImportError, AttributeError, ValueError) as error:
                raise CodecError(f"replacer {replacer!r}: cannot import it as 'module:function' ({error})") from None
        self.replacer = replacer

    def replace(self, crop: np.ndarray, strength: float) -> np.ndarray:
        generated = np.asarray(self.replacer(crop.copy()))
        if generated.ndim != 3 or generated.shape[2] != 3 or generated.dtype != np.uint8:
            raise CodecError(f"replacer returned {generated.shape} {generated.dtype}, expected an HxWx3 uint8 RGB face")
        height, width = crop.shape[:2]
        return blend(crop, resize_rgb(np.ascontiguousarray(generated), width, height), strength)


DEIDENTIFYING_CODECS = (FaceBlur, FacePixelate, FaceMask, KSamePixel, FaceReplace)
