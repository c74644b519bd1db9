"""Codec points and thresholds: one type each builds the path component and parses it back."""
from __future__ import annotations

import io

import pandas as pd
import pytest

from icm_privacy.config import codec_points, validate_config
from icm_privacy.points import CodecPoint, PointKey, Threshold, format_quality


def test_a_point_key_is_the_label_and_the_quality_as_the_config_wrote_it():
    config = validate_config({"dataset": {"kind": "demo"}, "codecs": [
        {"codec": "vvc", "qualities": [37, 40.0]}, {"codec": "jpegxl", "label": "jxl-fast", "qualities": [1.5]}]})
    points = codec_points(config)
    assert [point.key.path for point in points] == ["vvc/37", "vvc/40", "jxl-fast/1.5"]
    assert [type(point.quality) for point in points] == [int, float, float]  # the codec gets the config's number
    assert PointKey.parse("jxl-fast/1.5") == ("jxl-fast", "1.5") == points[2].key
    for text in ("vvc", "vvc/", "/37", "vvc/37/reduced"):
        with pytest.raises(ValueError, match="not a codec point path"):
            PointKey.parse(text)


def test_format_quality_drops_a_zero_fraction_only():
    assert [format_quality(q) for q in (32, 32.0, 1.5, 0.25)] == ["32", "32", "1.5", "0.25"]
    assert CodecPoint("a", "jpeg", 5, {}, 1).key == ("a", "5")


def test_a_threshold_keeps_three_decimals_unless_they_would_change_it():
    assert [Threshold(t).text for t in (0.95, 0.975, 0.9, 0.9375, 0.12345)] == [
        "0.950", "0.975", "0.900", "0.9375", "0.12345"]
    assert Threshold.parse("0.9375") == Threshold(0.9375)
    with pytest.raises(ValueError, match="not a threshold's text"):
        Threshold.parse("0.95")  # the file names say 0.950


def test_a_threshold_selects_rows_by_text_not_by_float_equality():
    written = pd.DataFrame({"min_confidence": [0.9375, 0.95, 0.95 + 1e-17, 0.975]})
    table = pd.read_csv(io.StringIO(written.to_csv(index=False)))  # floats read back from a CSV
    assert Threshold(0.9375).selects(table.min_confidence).tolist() == [True, False, False, False]
    assert Threshold(0.95).selects(table.min_confidence).tolist() == [False, True, True, False]
