"""The codec registry: name -> Codec class, filled by codecs/__init__.py with every codec it imports.

A module of its own so that codecs which wrap another codec (de-identification, downscale, layered)
can build it by name without importing the package that imports them.
"""
from __future__ import annotations

from .base import Codec, CodecError

CODECS: dict[str, type[Codec]] = {}


def make_codec(name: str, **options) -> Codec:
    try:
        codec_class = CODECS[name]
    except KeyError:
        raise CodecError(f"unknown codec {name!r}; known codecs: {', '.join(sorted(CODECS))}") from None
    return codec_class(**options)
