"""Codec registry: a codec is reached by its name; adding one is a module and a line here."""
from __future__ import annotations

from .base import Codec, CodecError, CodecUnavailable, CodingResult, bits_per_pixel
from .command import CommandCodec
from .deidentify import DEIDENTIFYING_CODECS
from .downscale import Downscale
from .ffmpeg import Av1Aom, HevcX265, JpegXl, VvcVvenc
from .icm import ICM_CODECS
from .imported import ImportedCodec
from .layered import Layered
from .learned import LEARNED_CODECS
from .pillow import Jpeg, WebP
from .plugin import Plugin
from .registry import CODECS, make_codec
from .vtm import VvcVtm

CODECS.update({
    codec.name: codec
    for codec in (VvcVvenc, VvcVtm, HevcX265, Av1Aom, JpegXl, Jpeg, WebP, *LEARNED_CODECS, *ICM_CODECS,
                  *DEIDENTIFYING_CODECS, Downscale, Layered,
                  Plugin, CommandCodec, ImportedCodec)  # your own codec: docs/own_codec.md
})


__all__ = ["CODECS", "Codec", "CodecError", "CodecUnavailable", "CodingResult", "bits_per_pixel", "make_codec"]
