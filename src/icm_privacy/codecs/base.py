"""The one Codec interface: encode an RGB image to a bitstream file, decode that file back.

Every codec point (codec, quality) writes its bitstream to disk; decoding reads only that file
(plus the original width and height, the one piece of side information a receiver is assumed
to know, as a VTM conformance window would signal). bpp is computed from the file's bytes.
"""
from __future__ import annotations

import resource
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_path
from ..images import write_png


class CodecError(RuntimeError):
    """A codec failed; the message names the codec, the quality and the image."""


class CodecUnavailable(CodecError):
    """A codec cannot run on this machine (missing binary, missing weights)."""


def bits_per_pixel(num_bytes: int, width: int, height: int) -> float:
    """bpp = 8 x file bytes / (width x height of the original image)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return 8.0 * num_bytes / (width * height)


def cpu_seconds() -> float:
    """CPU seconds used so far by this process (all its threads) and its finished child processes, so an
    encoder run as a program (VTM, ffmpeg) is counted as well as one run in Python."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class CodingResult:
    bitstream_bytes: int
    bpp: float
    encode_seconds: float
    decode_seconds: float
    encode_cpu_seconds: float  # wall-clock seconds grow with the machine's load; CPU seconds price a run


class Codec(ABC):
    """A codec is a name, a bitstream file extension, and encode/decode.

    Subclasses take their settings (preset, binary paths, ...) as keyword options and receive
    the quality parameter (a QP, a JPEG quality, a model quality index) per call.
    """

    name: str
    extension: str
    description: str = ""
    quality_range: tuple[float, float] = (float("-inf"), float("inf"))  # checked before any job runs
    integer_qualities: bool = False  # True: a quality must be a whole number (checked before any job runs)
    # De-identification codecs (deidentify.py) change the pixels inside the face boxes found on the
    # original; code() must then be given those boxes, and passes them to encode() as `faces=`.
    needs_faces: bool = False
    # How the workflow schedules this codec's jobs: the conda env (envs/<name>.yaml) and whether a
    # job can use a GPU (learned codecs); standard codecs run their CPU encoders.
    conda_env: str = "codecs"
    uses_gpu: bool = False

    @abstractmethod
    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        """Compress an HxWx3 uint8 RGB image into `bitstream_path`."""

    @abstractmethod
    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        """Read `bitstream_path` alone and return the HxWx3 uint8 RGB reconstruction."""

    def estimated_bpp(self, rgb: np.ndarray, quality: float) -> float | None:
        """The rate a model's likelihoods predict without entropy coding (learned codecs; papers
        often report it); None for codecs that have no such estimate."""
        return None

    def code(
        self, rgb: np.ndarray, quality: float, bitstream_path: Path, decoded_path: Path, image_name: str,
        faces: Sequence | None = None,
    ) -> CodingResult:
        """Encode to a file, decode from that file, write the decoded PNG; time both halves (and the
        encoder's CPU time).

        The bitstream gets its final name only once it has decoded to an image of the right size, so
        a failed or interrupted job never leaves a bitstream that looks usable.
        """
        height, width = rgb.shape[:2]
        where = f"codec {self.name}, quality {quality}, image {image_name}"
        if self.needs_faces and faces is None:
            raise CodecError(f"{where}: this codec de-identifies faces and needs the image's face boxes (faces=)")
        encode_options = {"faces": faces} if self.needs_faces else {}
        try:
            with atomic_path(bitstream_path) as temporary:
                started, started_cpu = time.perf_counter(), cpu_seconds()
                self.encode(rgb, quality, temporary, **encode_options)
                encoded, encoded_cpu = time.perf_counter(), cpu_seconds()
                if not temporary.is_file() or temporary.stat().st_size == 0:
                    raise CodecError("encoder wrote no bitstream (empty or missing file)")
                decoded = self.decode(temporary, width, height)
                finished = time.perf_counter()
                if decoded.shape != rgb.shape or decoded.dtype != np.uint8:
                    raise CodecError(f"decoder returned {decoded.shape} {decoded.dtype}, expected {rgb.shape} uint8")
        except CodecUnavailable:
            raise
        except Exception as error:
            raise CodecError(f"{where}: {error}") from error
        write_png(decoded, decoded_path)
        num_bytes = Path(bitstream_path).stat().st_size
        return CodingResult(num_bytes, bits_per_pixel(num_bytes, width, height), encoded - started, finished - encoded,
                            encoded_cpu - started_cpu)
