"""VVC with the reference software VTM (EncoderApp / DecoderApp), when the user provides it.

VTM is not in any package registry; give the binaries' paths and the all-intra configuration file
(`cfg/encoder_intra_vtm.cfg` of the VTM source tree) in config.yaml. Without them, this codec is
refused before any job runs, with a message saying what to set.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..images import crop_to, pad_to_multiple, padded_size
from .base import Codec, CodecError, CodecUnavailable
from .ffmpeg import rgb_to_yuv420p10, yuv420p10_to_rgb

MIN_CU_SIZE = 8  # VTM needs picture sizes that are multiples of the minimum CU size


class VvcVtm(Codec):
    name = "vtm"
    extension = "vvc"
    description = "VVC via the VTM reference encoder/decoder, all-intra, 4:2:0 10-bit"
    quality_range = (0, 63)

    def __init__(self, encoder: str | None = None, decoder: str | None = None, config: str | None = None,
                 threads: int = 1):
        missing = [key for key, value in (("encoder", encoder), ("decoder", decoder), ("config", config))
                   if not value or not Path(value).is_file()]
        if missing:
            raise CodecUnavailable(
                "codec vtm needs the VTM EncoderApp, DecoderApp and encoder_intra_vtm.cfg; "
                f"set codecs[].options.{'/'.join(missing)} to existing files "
                f"(got encoder={encoder!r}, decoder={decoder!r}, config={config!r})"
            )
        self.encoder, self.decoder, self.config = encoder, decoder, config

    def encoder_command(self, yuv: Path, bitstream: Path, width: int, height: int, qp: int) -> list[str]:
        return [self.encoder, "-c", self.config, "-i", str(yuv), "-b", str(bitstream), "-o", "",
                "-wdt", str(width), "-hgt", str(height), "-fr", "1", "-f", "1", "-q", str(qp),
                "--InputBitDepth=10", "--InternalBitDepth=10", "--InputChromaFormat=420"]

    def decoder_command(self, bitstream: Path, yuv: Path) -> list[str]:
        return [self.decoder, "-b", str(bitstream), "-o", str(yuv), "-d", "10"]

    @staticmethod
    def _run(command: list[str]) -> None:
        completed = subprocess.run(command, capture_output=True)
        if completed.returncode != 0:
            tail = completed.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise CodecError(f"{Path(command[0]).name} exited with {completed.returncode}: {' | '.join(tail)}")

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        padded = pad_to_multiple(rgb, MIN_CU_SIZE)
        with tempfile.TemporaryDirectory() as scratch:
            yuv = Path(scratch) / "input.yuv"
            yuv.write_bytes(rgb_to_yuv420p10(padded))
            self._run(self.encoder_command(yuv, bitstream_path, padded.shape[1], padded.shape[0], int(quality)))

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        padded_width = padded_size(width, MIN_CU_SIZE)
        padded_height = padded_size(height, MIN_CU_SIZE)
        expected = padded_width * padded_height * 3  # 4:2:0 (1.5 samples per pixel) x 2 bytes
        with tempfile.TemporaryDirectory() as scratch:
            yuv = Path(scratch) / "decoded.yuv"
            self._run(self.decoder_command(bitstream_path, yuv))
            size = yuv.stat().st_size if yuv.is_file() else 0
            if size != expected:
                raise CodecError(f"{Path(self.decoder).name} wrote {size} bytes of YUV from {bitstream_path}, "
                                 f"expected {expected} ({padded_width}x{padded_height} 4:2:0 10-bit)")
            rgb = yuv420p10_to_rgb(yuv.read_bytes(), padded_width, padded_height)
        return crop_to(rgb, width, height).copy()
