"""Your own encoder and decoder programs, given as two command-line templates in the config.

    - codec: command
      label: my-vvc
      qualities: [32, 37]
      options:
        encode: "EncoderApp -c intra.cfg -i {input} -b {output} -wdt {width} -hgt {height} -q {quality} -f 1"
        decode: "DecoderApp -b {input} -o {output} -d 10"
        pixel_format: yuv420p10   # what {input} of encode and {output} of decode hold: png, yuv420p10, yuv444p10
        extension: "266"          # of the bitstream files
        size_multiple: 2          # pad (edge replication) to multiples of this; cropped back after decoding
        quality_range: [0, 63]    # what the programs accept, checked before any job (default: anything)
        integer_qualities: true   # qualities must be whole numbers (default false)

A template is split like a shell line (shlex) and each word is filled in with str.format; no shell runs
it, so paths with spaces stay one argument (wrap it in `sh -c '...'` for pipes). Literal braces, which a
shell's `{ ...; }` group or `${VAR}` inside `sh -c` needs, are written doubled: `{{ ...; }}`, `${{VAR}}`
(`$VAR` needs none). Raw YUV is planar, 10 bits in
little-endian 16-bit words, BT.709 limited range, converted with the same ffmpeg settings as the
built-in codecs; {width} and {height} are the padded picture's. The bitstream file is what the encode
command wrote to {output}: bpp comes from its bytes, like every other codec's.
"""
from __future__ import annotations

import math
import shlex
import shutil
import string
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..images import crop_to, pad_to_multiple, padded_size, read_png, write_png
from .base import Codec, CodecError, CodecUnavailable
from .ffmpeg import rgb_to_yuv, yuv_to_rgb
from .learned import quality_key

# pixel format option -> (ffmpeg's name, file suffix, 10-bit samples per pixel, size multiple)
PIXEL_FORMATS = {
    "png": (None, "png", None, 1),
    "yuv420p10": ("yuv420p10le", "yuv", 1.5, 2),
    "yuv444p10": ("yuv444p10le", "yuv", 3, 1),
}
PLACEHOLDERS = {
    "encode": {"input", "output", "quality", "width", "height", "threads"},
    "decode": {"input", "output", "width", "height", "threads"},
}
REQUIRED_PLACEHOLDERS = {"input", "output"}
OUTPUT_LINES = 5  # of the failed command's stderr shown in the error


def parse_template(key: str, template: str) -> list[str]:
    """The template's words; refused (naming the option) when a required placeholder is missing or
    an unknown one is used."""
    if not isinstance(template, str) or not template.strip():
        raise CodecError(f"option {key!r} must be a command line, got {template!r}")
    try:
        words = shlex.split(template)
        used = {field for word in words for _, field, _, _ in string.Formatter().parse(word) if field is not None}
    except ValueError as error:  # unbalanced quotes or braces
        raise CodecError(f"option {key!r}: cannot parse {template!r} ({error})") from None
    if missing := REQUIRED_PLACEHOLDERS - used:
        raise CodecError(f"option {key!r} has no {{{'}, {'.join(sorted(missing))}}} placeholder: {template!r}")
    if unknown := used - PLACEHOLDERS[key]:
        raise CodecError(f"option {key!r}: unknown placeholder {{{'}, {'.join(sorted(unknown))}}}; "
                         f"allowed: {', '.join(sorted(PLACEHOLDERS[key]))}. Braces that are not placeholders "
                         "(a shell's { ...; } group, ${VAR}) are written doubled: {{ ...; }}, ${{VAR}}")
    return words


class CommandCodec(Codec):
    name = "command"
    extension = "bin"  # each instance takes its `extension` option
    description = "your own encoder/decoder programs as two command-line templates (options encode, decode)"

    def __init__(self, encode: str | None = None, decode: str | None = None, pixel_format: str = "png",
                 extension: str = "bin", size_multiple: int = 1, quality_range: list[float] | None = None,
                 integer_qualities: bool = False, threads: int = 1):
        if quality_range is not None:
            if (not isinstance(quality_range, (list, tuple)) or len(quality_range) != 2
                    or not all(isinstance(bound, (int, float)) for bound in quality_range)
                    or quality_range[0] > quality_range[1]):
                raise CodecError(f"option 'quality_range': {quality_range!r} must be [lowest, highest]")
            self.quality_range = tuple(quality_range)
        self.integer_qualities = bool(integer_qualities)
        self.encode_words = parse_template("encode", encode)
        self.decode_words = parse_template("decode", decode)
        if pixel_format not in PIXEL_FORMATS:
            raise CodecError(f"option 'pixel_format': {pixel_format!r} is not one of {', '.join(PIXEL_FORMATS)}")
        if not str(extension).isalnum():
            raise CodecError(f"option 'extension': {extension!r} must be letters and digits (no dot)")
        if not isinstance(size_multiple, int) or size_multiple < 1:
            raise CodecError(f"option 'size_multiple': {size_multiple!r} must be a positive integer")
        for key, words in (("encode", self.encode_words), ("decode", self.decode_words)):
            if shutil.which(words[0]) is None:
                raise CodecUnavailable(f"option {key!r}: program {words[0]!r} is not an executable file or on PATH")
        self.ffmpeg_format, self.suffix, self.samples_per_pixel, chroma_multiple = PIXEL_FORMATS[pixel_format]
        self.size_multiple = math.lcm(size_multiple, chroma_multiple)
        self.extension = str(extension)
        self.threads = threads

    def _run(self, key: str, words: list[str], **values) -> None:
        command = [word.format(**values) for word in words]
        try:
            completed = subprocess.run(command, capture_output=True)
        except OSError as error:
            raise CodecError(f"{key} command {shlex.join(command)} could not start: {error}") from None
        if completed.returncode != 0:
            # the cause is usually on stderr; some programs (VTM) print their errors on stdout
            output = (completed.stderr or completed.stdout).decode(errors="replace").strip().splitlines()
            raise CodecError(f"{key} command exited with {completed.returncode}: {shlex.join(command)}\n"
                             + "\n".join(output[-OUTPUT_LINES:]))

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        picture = pad_to_multiple(rgb, self.size_multiple)
        height, width = picture.shape[:2]
        with tempfile.TemporaryDirectory() as scratch:
            source = Path(scratch) / f"input.{self.suffix}"
            if self.ffmpeg_format is None:
                write_png(picture, source)
            else:
                source.write_bytes(rgb_to_yuv(picture, self.ffmpeg_format))
            self._run("encode", self.encode_words, input=source, output=bitstream_path, quality=quality_key(quality),
                      width=width, height=height, threads=self.threads)

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        coded_width, coded_height = padded_size(width, self.size_multiple), padded_size(height, self.size_multiple)
        with tempfile.TemporaryDirectory() as scratch:
            output = Path(scratch) / f"decoded.{self.suffix}"
            self._run("decode", self.decode_words, input=bitstream_path, output=output, width=coded_width,
                      height=coded_height, threads=self.threads)
            if not output.is_file():
                raise CodecError(f"decode command wrote no {{output}} file ({output.name})")
            if self.ffmpeg_format is None:
                picture = read_png(output)
            else:
                expected = int(coded_width * coded_height * self.samples_per_pixel) * 2
                if output.stat().st_size != expected:
                    raise CodecError(f"decode command wrote {output.stat().st_size} bytes, expected {expected} "
                                     f"({coded_width}x{coded_height} {self.ffmpeg_format})")
                picture = yuv_to_rgb(output.read_bytes(), coded_width, coded_height, self.ffmpeg_format)
        if picture.shape[:2] != (coded_height, coded_width):
            raise CodecError(f"decode command wrote a {picture.shape[1]}x{picture.shape[0]} picture, "
                             f"expected {coded_width}x{coded_height}")
        return crop_to(picture, width, height).copy()
