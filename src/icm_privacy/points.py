"""The two things that travel through file names: a codec point and a detector-confidence threshold.

Each has one type that builds its path component and parses it back, so nothing else splits such
strings, rebuilds them, or compares threshold floats read from a table with `==`.

- A codec point is one (codec entry, quality) pair of the configuration. Its key is the entry's label
  and the quality as text, as the configuration wrote it (`37`, not `37.0`): the key names its folders
  (`bitstreams/vvc/37/...`) and its table rows (`codec` = label, `quality` = text).
- A threshold is keyed by its text: three decimals as the study printed them (`0.950`), more where three
  would change the value (`0.9375`), so that every threshold the schema accepts gets its own files and
  finds its own rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import pandas as pd


def format_quality(quality: float) -> str:
    """A quality as text: 32 and 32.0 -> "32", 1.5 -> "1.5"."""
    return str(int(quality)) if float(quality).is_integer() else str(quality)


class PointKey(NamedTuple):
    """A codec point's identity: the entry's label and the quality as text."""

    label: str
    quality: str

    @property
    def path(self) -> str:
        """The point's folder below each stage's folder: "vvc/37"."""
        return f"{self.label}/{self.quality}"

    @classmethod
    def parse(cls, path: str) -> PointKey:
        label, separator, quality = path.partition("/")
        if not (label and separator and quality) or "/" in quality:
            raise ValueError(f"{path!r} is not a codec point path (label/quality)")
        return cls(label, quality)


@dataclass(frozen=True)
class CodecPoint:
    """One (codec entry, quality) pair: the unit that gets its own bitstreams and table row."""

    label: str
    codec: str
    quality: float  # the configuration's number, as YAML read it (37 stays an int)
    options: dict = field(hash=False)
    threads: int

    @property
    def key(self) -> PointKey:
        return PointKey(self.label, format_quality(self.quality))


@dataclass(frozen=True)
class Threshold:
    """A detector-confidence threshold (faces with confidence >= value count)."""

    value: float

    @property
    def text(self) -> str:
        """The threshold in file names and headings: "0.950", or "0.9375" where 3 decimals would round it."""
        short = f"{self.value:.3f}"
        return short if float(short) == self.value else repr(float(self.value))

    @classmethod
    def parse(cls, text: str) -> Threshold:
        threshold = cls(float(text))
        if threshold.text != text:
            raise ValueError(f"{text!r} is not a threshold's text (that would be {threshold.text!r})")
        return threshold

    def selects(self, values: pd.Series) -> pd.Series:
        """Rows whose threshold column (floats read back from a table) is this threshold, compared as text."""
        return values.map(lambda value: Threshold(value).text) == self.text
