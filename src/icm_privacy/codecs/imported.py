"""Bitstreams and decoded images made elsewhere (your own GPU pipeline), imported for the privacy analysis.

    - codec: import
      label: my-codec
      qualities: [1, 2]
      options: {root: /data/my-codec, extension: bin}

expects, for every image of the dataset and every quality, `<root>/<quality>/<image id>.<extension>`
(the bitstream: bpp comes from its bytes) and `<root>/<quality>/<image id>.png` (what decoding it gave,
the size of the original image). The files are checked when the configuration is loaded, before any
job runs: missing, empty, unreadable, wrong-sized and extra files are reported by name. A code job
copies each bitstream and its decoded image into the run; nothing is coded or timed here, so the
encode and decode seconds in coding.csv are empty.
"""
from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..files import atomic_path
from ..images import read_png, upright_size, write_png
from ..points import format_quality
from .base import Codec, CodecError, CodingResult, bits_per_pixel


class ImportedCodec(Codec):
    name = "import"
    extension = "bin"  # each instance takes its `extension` option
    description = "bitstreams and decoded PNGs made elsewhere: <root>/<quality>/<image id>.<extension> and .png"

    def __init__(self, root: str | None = None, extension: str | None = None, threads: int = 1):
        if not root or not Path(root).is_dir():
            raise CodecError(f"option 'root': {root!r} is not a folder (it holds <quality>/<image id>.<extension> "
                             "and .png)")
        if not extension or not str(extension).isalnum():
            raise CodecError(f"option 'extension': {extension!r} must be the bitstreams' extension, letters and "
                             "digits without the dot")
        self.root = Path(root)
        self.extension = str(extension)

    def folder(self, quality: float) -> Path:
        return self.root / format_quality(quality)

    def files(self, quality: float, image_ids) -> list[Path]:
        """The imported files of these images at `quality`: their code job's inputs, so that replacing one
        re-runs that job."""
        folder = self.folder(quality)
        return [folder / f"{image_id}.{suffix}" for image_id in image_ids for suffix in (self.extension, "png")]

    def check_files(self, sizes: Mapping[str, tuple[int, int] | None], qualities: Sequence[float]) -> list[str]:
        """Every problem with the files for these images (id -> original width, height; None when unknown)
        and qualities, one line per file."""
        problems = []
        for quality in qualities:
            folder = self.folder(quality)
            if not folder.is_dir():
                problems.append(f"missing folder {folder}")
                continue
            expected = {f"{image_id}.{suffix}" for image_id in sizes for suffix in (self.extension, "png")}
            present = {path.name for path in folder.iterdir()}
            problems += [f"missing {folder / name}" for name in sorted(expected - present)]
            problems += [f"extra file {folder / name}" for name in sorted(present - expected)]
            for image_id, size in sizes.items():
                bitstream, decoded = folder / f"{image_id}.{self.extension}", folder / f"{image_id}.png"
                if bitstream.is_file() and bitstream.stat().st_size == 0:
                    problems.append(f"empty bitstream {bitstream}")
                if decoded.is_file():
                    problems += self._check_decoded(decoded, size)
        return problems

    @staticmethod
    def _check_decoded(path: Path, size: tuple[int, int] | None) -> list[str]:
        from PIL import Image

        try:
            with Image.open(path) as image:
                image.verify()  # the whole file's structure and checksums, without decoding pixels
            found = upright_size(path)
        except Exception as error:  # Pillow raises many types for broken files
            return [f"unreadable {path} ({error})"]
        if size is not None and found != size:
            return [f"wrong size {path}: {found[0]}x{found[1]}, the original is {size[0]}x{size[1]}"]
        return []

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        raise CodecError("imported bitstreams were made elsewhere: this codec only reads them (see code())")

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        """The decoded image imported beside `bitstream_path`."""
        decoded = read_png(bitstream_path.with_suffix(".png"))
        if decoded.shape[:2] != (height, width):
            raise CodecError(f"{bitstream_path.with_suffix('.png')} is {decoded.shape[1]}x{decoded.shape[0]}, "
                             f"expected {width}x{height}")
        return decoded

    def code(self, rgb: np.ndarray, quality: float, bitstream_path: Path, decoded_path: Path, image_name: str,
             faces: Sequence | None = None) -> CodingResult:
        """Copy the imported bitstream and its decoded image into the run."""
        height, width = rgb.shape[:2]
        source = self.folder(quality) / f"{image_name}.{self.extension}"
        try:
            decoded = self.decode(source, width, height)
            with atomic_path(bitstream_path) as temporary:
                shutil.copyfile(source, temporary)
        except Exception as error:
            raise CodecError(f"codec {self.name}, quality {quality}, image {image_name}: {error}") from error
        write_png(decoded, decoded_path)
        num_bytes = Path(bitstream_path).stat().st_size
        return CodingResult(num_bytes, bits_per_pixel(num_bytes, width, height), math.nan, math.nan, math.nan)
