"""Standard codecs driven through the ffmpeg binary that the `imageio-ffmpeg` wheel ships.

The image is handed to ffmpeg as raw 8-bit RGB with explicit colour handling on both sides, because
letting ffmpeg guess (e.g. from a JPEG) mislabels full-range pixels as limited range and costs several
dB. RGB <-> Y'CbCr uses BT.709 limited range, 4:2:0, with accurate rounding. Sizes are padded to even
(edge replication) for the 4:2:0 codecs and cropped back after decoding.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from ..images import crop_to, pad_to_multiple, padded_size
from .base import Codec, CodecError

SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int"
YCBCR_LABELS = ["-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]


def ffmpeg_executable() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(arguments: list[str], stdin: bytes | memoryview | None = None) -> bytes:
    # -xerror: stop at the first error; without it, ffmpeg 9 retries a truncated JPEG XL file forever
    command = [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-xerror", "-y", *arguments]
    completed = subprocess.run(command, input=stdin, capture_output=True)
    if completed.returncode != 0:
        lines = completed.stderr.decode(errors="replace").strip().splitlines()
        shown = lines if len(lines) <= 3 else [*lines[:2], "...", lines[-1]]  # the cause comes first
        raise CodecError(f"ffmpeg exited with {completed.returncode}: {' | '.join(shown)}")
    return completed.stdout


class FfmpegCodec(Codec):
    """An ffmpeg encoder: subclasses give the muxer, the pixel format and the encoder arguments."""

    muxer: str
    pixel_format: str  # what the encoder codes; "rgb24" means no Y'CbCr conversion on our side
    padding = 2  # 4:2:0 needs even sizes
    minimum_size = 1  # smaller pictures are padded up to this (edge replication), and cropped back

    def __init__(self, preset: str | None = None, threads: int = 1):
        self.preset = preset
        self.threads = threads

    def encoder_arguments(self, quality: float) -> list[str]:
        raise NotImplementedError

    def _colour_arguments(self, direction: str) -> list[str]:
        if self.pixel_format == "rgb24":
            return []
        return ["-vf", f"scale={direction}_color_matrix=bt709:{direction}_range=tv", "-sws_flags", SWS_FLAGS]

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        padded = np.ascontiguousarray(pad_to_multiple(rgb, self.padding, self.minimum_size))
        height, width = padded.shape[:2]
        raw_input = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-i", "pipe:0"]
        labels = YCBCR_LABELS if self.pixel_format != "rgb24" else []
        run_ffmpeg(
            [*raw_input, *self._colour_arguments("out"), "-pix_fmt", self.pixel_format, *labels,
             "-frames:v", "1", "-threads", str(self.threads), *self.encoder_arguments(quality),
             "-f", self.muxer, str(bitstream_path)],
            stdin=memoryview(padded).cast("B"),  # no copy of the image
        )

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        raw = run_ffmpeg(["-i", str(bitstream_path), *self._colour_arguments("in"),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        padded_height = padded_size(height, self.padding, self.minimum_size)
        padded_width = padded_size(width, self.padding, self.minimum_size)
        expected = padded_width * padded_height * 3
        if len(raw) != expected:
            raise CodecError(
                f"decoded {len(raw)} bytes from {bitstream_path}, expected {padded_width}x{padded_height} RGB"
            )
        return crop_to(np.frombuffer(raw, np.uint8).reshape(padded_height, padded_width, 3), width, height).copy()


# vvenc settings that make a QP mean a VTM all-intra QP (see VvcVvenc), found by
# scripts/benchmark_vvc_vs_vtm.py; "none" keeps vvenc's own mapping.
VVENC_CALIBRATIONS = {"vtm": "GOPSize=1:IntraPeriod=1:IntraQPOffset=-1:AccessUnitDelimiter=0", "none": ""}


class VvcVvenc(FfmpegCodec):
    """VVC (H.266) intra coding with Fraunhofer's vvenc; decoded by ffmpeg's native VVC decoder.

    A QP means what it means in VTM all-intra (`calibration: vtm`, the default): vvenc codes the picture
    in its all-intra structure (GOPSize=1, IntraPeriod=1: VTM's intra lambda instead of the one of an
    intra picture inside a random-access GOP), at slice QP = QP - 1 (IntraQPOffset=-1: vvenc's
    presets code less efficiently than VTM, and one QP step lower matched VTM's bpp and PSNR best on
    coco-persons, docs/vvc_equivalence.md), without access unit delimiters (VTM writes none).
    `calibration: none` is vvenc's own default mapping (what this codec did before; +38-71 % bpp
    against VTM at the same QP on coco-persons crops, QP 32-47). `vvenc_params` ("key=value:key=value") are added last and override.
    Perceptual QP adaptation (`qpa`) is off by default: with it on, +12-88 % bytes at QP 37 on COCO photos.

    ffmpeg's libvvenc wrapper gives the encoder an output buffer of width x height bytes, so a picture
    whose bitstream would need more than 8 bits per (padded) pixel fails with "Generic error in an
    external library": very low QPs (<= 19 on noise), and tiny pictures, whose parameter sets alone
    exceed that; pictures are therefore padded to at least one 64x64 CTU.
    """

    name = "vvc"
    extension = "266"
    muxer = "vvc"
    pixel_format = "yuv420p10le"  # the only input format vvenc takes
    minimum_size = 64
    quality_range = (0, 63)
    integer_qualities = True
    description = "VVC via libvvenc (ffmpeg), 4:2:0 10-bit, raw Annex-B"

    def __init__(self, preset: str = "medium", qpa: bool = False, calibration: str = "vtm",
                 vvenc_params: str | None = None, threads: int = 1):
        super().__init__(preset, threads)
        if calibration not in VVENC_CALIBRATIONS:
            raise CodecError(f"codec vvc: calibration {calibration!r} is not one of {', '.join(VVENC_CALIBRATIONS)}")
        self.qpa = qpa
        self.calibration = calibration
        self.vvenc_params = ":".join(p for p in (VVENC_CALIBRATIONS[calibration], vvenc_params) if p)

    def encoder_arguments(self, quality: float) -> list[str]:
        arguments = ["-c:v", "libvvenc", "-preset", self.preset, "-qp", str(int(quality)), "-qpa", str(int(self.qpa))]
        return [*arguments, "-vvenc-params", self.vvenc_params] if self.vvenc_params else arguments

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        try:
            super().encode(rgb, quality, bitstream_path)
        except CodecError as error:
            if "Generic error in an external library" not in str(error):
                raise
            raise CodecError(f"{error} (libvvenc through ffmpeg cannot write a picture of more than 8 bits per "
                             "pixel: use a higher QP)") from error


class HevcX265(FfmpegCodec):
    name = "hevc"
    extension = "265"
    muxer = "hevc"
    pixel_format = "yuv420p10le"
    description = "HEVC via libx265 (ffmpeg), constant QP, 4:2:0 10-bit, raw Annex-B"
    minimum_size = 16  # x265: "Image size is too small" below 16x16
    # info=0: no SEI with x265's version and option string (about 2.3 kB per picture, counted as rate)
    quality_range = (0, 51)
    integer_qualities = True

    def __init__(self, preset: str = "medium", threads: int = 1):
        super().__init__(preset, threads)

    def encoder_arguments(self, quality: float) -> list[str]:
        return ["-c:v", "libx265", "-preset", self.preset, "-qp", str(int(quality)), "-x265-params", "log-level=error:info=0"]


class Av1Aom(FfmpegCodec):
    name = "av1"
    extension = "obu"
    muxer = "obu"
    pixel_format = "yuv420p10le"
    description = "AV1 still picture via libaom (ffmpeg), constant quality (crf), 4:2:0 10-bit, OBU stream"
    quality_range = (0, 63)
    integer_qualities = True

    def __init__(self, cpu_used: int = 6, threads: int = 1):
        super().__init__(None, threads)
        self.cpu_used = cpu_used

    def encoder_arguments(self, quality: float) -> list[str]:
        return ["-c:v", "libaom-av1", "-still-picture", "1", "-crf", str(int(quality)), "-b:v", "0",
                "-cpu-used", str(self.cpu_used)]


class JpegXl(FfmpegCodec):
    name = "jpegxl"
    extension = "jxl"
    muxer = "image2"
    pixel_format = "rgb24"  # libjxl converts to its own XYB space
    padding = 1
    description = "JPEG XL via libjxl (ffmpeg); quality = Butteraugli distance (lower is better)"
    quality_range = (0.0, 15.0)

    def __init__(self, effort: int = 7, threads: int = 1):
        super().__init__(None, threads)
        self.effort = effort

    def encoder_arguments(self, quality: float) -> list[str]:
        return ["-c:v", "libjxl", "-distance", str(float(quality)), "-effort", str(self.effort), "-update", "1"]


def rgb_to_yuv(rgb: np.ndarray, pixel_format: str = "yuv420p10le") -> bytes:
    """Planar Y'CbCr (BT.709, limited range) of an RGB image in an ffmpeg `pixel_format` (e.g. yuv420p10le,
    yuv444p10le); 4:2:0 needs an even-sized image."""
    height, width = rgb.shape[:2]
    return run_ffmpeg(
        ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-i", "pipe:0",
         "-vf", "scale=out_color_matrix=bt709:out_range=tv", "-sws_flags", SWS_FLAGS,
         "-f", "rawvideo", "-pix_fmt", pixel_format, "pipe:1"],
        stdin=memoryview(np.ascontiguousarray(rgb)).cast("B"),
    )


def yuv_to_rgb(yuv: bytes, width: int, height: int, pixel_format: str = "yuv420p10le") -> np.ndarray:
    raw = run_ffmpeg(
        ["-f", "rawvideo", "-pix_fmt", pixel_format, "-s", f"{width}x{height}", "-i", "pipe:0",
         "-vf", "scale=in_color_matrix=bt709:in_range=tv", "-sws_flags", SWS_FLAGS,
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        stdin=yuv,
    )
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy()
