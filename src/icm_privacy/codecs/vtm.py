"""VVC with the reference software VTM (EncoderApp / DecoderApp): what the VVC literature reports.

VTM is not in any package registry; give the binaries' paths and a configuration file of the VTM source
tree (default use: `cfg/encoder_intra_vtm.cfg`, all-intra) in config.yaml. Without them, this codec is
refused before any job runs, with a message saying what to set. The shipped configs point at the static
VTM 19.0 build in ../shared/tools/vtm-19.0 (see its PROVENANCE.md).

The RGB image goes in as 10-bit BT.709 limited-range Y'CbCr, 4:2:0 (the VVC common test conditions)
or 4:4:4 (as CompressAI's VTM benchmark codes RGB images). Picture sizes: VTM's conformance window
(`--ConformanceWindowMode=1`) pads to its minimum CU size inside the encoder and signals the real size
in the bitstream, so the decoder (VTM's or ffmpeg's) outputs the picture at the size it was given and no
receiver needs side information. A conformance window is counted in chroma samples, so 4:2:0 can only
signal even sizes: an odd side is first padded by one row/column (edge replication) and cropped after
decoding; 4:4:4 takes any size.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..images import crop_to, pad_to_multiple, padded_size
from .base import Codec, CodecError, CodecUnavailable
from .ffmpeg import rgb_to_yuv, yuv_to_rgb

CHROMA_FORMATS = {"420": ("yuv420p10le", 2), "444": ("yuv444p10le", 1)}  # ffmpeg format, size multiple
FILE_BIT_DEPTH = 10  # the YUV files handed to and read from VTM; the coding bit depth is an option


class VvcVtm(Codec):
    name = "vtm"
    extension = "266"
    description = "VVC via the VTM reference encoder/decoder (all-intra by default), 4:2:0 or 4:4:4"
    quality_range = (0, 63)
    integer_qualities = True

    def __init__(self, encoder: str | None = None, decoder: str | None = None, config: str | None = None,
                 chroma_format: str | int = "420", internal_bit_depth: int = 10, threads: int = 1):
        self.chroma_format = str(chroma_format)
        if self.chroma_format not in CHROMA_FORMATS:
            raise CodecError(f"codec vtm: chroma_format {chroma_format!r} is not one of {', '.join(CHROMA_FORMATS)}")
        if internal_bit_depth not in (8, 10):
            raise CodecError(f"codec vtm: internal_bit_depth {internal_bit_depth!r} is not 8 or 10")
        missing = [key for key, value in (("encoder", encoder), ("decoder", decoder), ("config", config))
                   if not value or not Path(value).is_file()]
        if missing:
            raise CodecUnavailable(
                "codec vtm needs the VTM EncoderApp, DecoderApp and encoder_intra_vtm.cfg; "
                f"set codecs[].options.{'/'.join(missing)} to existing files "
                f"(got encoder={encoder!r}, decoder={decoder!r}, config={config!r})"
            )
        self.encoder, self.decoder, self.config = encoder, decoder, config
        self.internal_bit_depth = internal_bit_depth
        self.pixel_format, self.size_multiple = CHROMA_FORMATS[self.chroma_format]

    def encoder_command(self, yuv: Path, bitstream: Path, width: int, height: int, qp: int,
                        reconstruction: Path | None = None) -> list[str]:
        return [self.encoder, "-c", self.config, "-i", str(yuv), "-b", str(bitstream),
                "-o", str(reconstruction or ""), "-wdt", str(width), "-hgt", str(height), "-fr", "1", "-f", "1",
                "-q", str(qp), f"--InputBitDepth={FILE_BIT_DEPTH}", f"--OutputBitDepth={FILE_BIT_DEPTH}",
                f"--InternalBitDepth={self.internal_bit_depth}", f"--InputChromaFormat={self.chroma_format}",
                f"--ChromaFormatIDC={self.chroma_format}", "--ConformanceWindowMode=1"]

    def decoder_command(self, bitstream: Path, yuv: Path) -> list[str]:
        return [self.decoder, "-b", str(bitstream), "-o", str(yuv), "-d", str(FILE_BIT_DEPTH)]

    @staticmethod
    def _run(command: list[str]) -> None:
        completed = subprocess.run(command, capture_output=True)
        if completed.returncode != 0:
            # VTM prints its errors on stdout ("Error: ...") and aborts; show the last lines of both
            lines = (completed.stdout + completed.stderr).decode(errors="replace").strip().splitlines()
            raise CodecError(f"{Path(command[0]).name} exited with {completed.returncode}: {' | '.join(lines[-3:])}")

    def coded_size(self, width: int, height: int) -> tuple[int, int]:
        """The picture size VTM codes and outputs (its conformance window hides its own CU padding)."""
        return padded_size(width, self.size_multiple), padded_size(height, self.size_multiple)

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path,
               reconstruction_path: Path | None = None) -> None:
        """Encode; with `reconstruction_path`, VTM also writes its reconstruction there (10-bit planar YUV)."""
        picture = pad_to_multiple(rgb, self.size_multiple)
        with tempfile.TemporaryDirectory() as scratch:
            yuv = Path(scratch) / "input.yuv"
            yuv.write_bytes(rgb_to_yuv(picture, self.pixel_format))
            self._run(self.encoder_command(yuv, bitstream_path, picture.shape[1], picture.shape[0], int(quality),
                                           reconstruction_path))

    def decode_yuv(self, bitstream_path: Path, width: int, height: int) -> bytes:
        """DecoderApp's 10-bit planar output for a picture of the original `width` x `height`."""
        coded_width, coded_height = self.coded_size(width, height)
        chroma_samples = 2 * (coded_width // self.size_multiple) * (coded_height // self.size_multiple)
        expected = (coded_width * coded_height + chroma_samples) * 2  # 2 bytes per 10-bit sample
        with tempfile.TemporaryDirectory() as scratch:
            yuv = Path(scratch) / "decoded.yuv"
            self._run(self.decoder_command(bitstream_path, yuv))
            size = yuv.stat().st_size if yuv.is_file() else 0
            if size != expected:
                raise CodecError(f"{Path(self.decoder).name} wrote {size} bytes of YUV from {bitstream_path}, "
                                 f"expected {expected} ({coded_width}x{coded_height} {self.pixel_format})")
            return yuv.read_bytes()

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        coded_width, coded_height = self.coded_size(width, height)
        yuv = self.decode_yuv(bitstream_path, width, height)
        return crop_to(yuv_to_rgb(yuv, coded_width, coded_height, self.pixel_format), width, height).copy()


def vtm_from_folder(folder: str | Path, **options) -> VvcVtm:
    """The vtm codec of a VTM build laid out as ../shared/tools/vtm-19.0 is: EncoderAppStatic,
    DecoderAppStatic and VTM's cfg/ in one folder; all-intra unless options name another config."""
    folder = Path(folder)
    options.setdefault("config", str(folder / "cfg" / "encoder_intra_vtm.cfg"))
    return VvcVtm(encoder=str(folder / "EncoderAppStatic"), decoder=str(folder / "DecoderAppStatic"), **options)
