"""The codec gallery (a figure like the study's Fig. 1): which point each codec shows, which face, which panels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icm_privacy.gallery import gallery_figure, gallery_rows, largest_face, nearest_points

RATES = pd.DataFrame({"image": ["a"] * 5 + ["b"], "codec": ["vvc", "vvc", "vvc", "icm", "icm", "vvc"],
                      "quality": ["32", "37", "40", "0", "1", "37"], "bpp": [0.5, 0.29, 0.18, 0.08, 0.25, 0.3]})
FACES = pd.DataFrame({"face_id": ["a-0", "a-1", "a-2"], "image": ["a"] * 3, "confidence": [0.99, 0.96, 0.90],
                      "x": [0, 4, 10], "y": [0, 2, 10], "w": [2, 4, 9], "h": [2, 6, 9]})


def test_each_codec_shows_its_point_nearest_the_target_bitrate_on_a_log_scale():
    assert nearest_points(RATES, "a", 0.2) == {"vvc": ("40", 0.18), "icm": ("1", 0.25)}
    assert nearest_points(RATES, "a", 0.13)["icm"] == ("0", 0.08)  # log: 0.13/0.08 < 0.25/0.13
    with pytest.raises(ValueError, match="image 'c'"):
        nearest_points(RATES, "c", 0.2)


def test_the_face_shown_is_the_largest_at_the_confidence_threshold():
    assert largest_face(FACES, "a", 0.95) == (4, 2, 4, 6)  # the 9x9 face is under the threshold
    assert largest_face(FACES, "b", 0.95) is None


def test_every_image_gets_a_row_of_panels_and_a_row_of_face_crops():
    pixels = {point: np.full((12, 20, 3), shade, np.uint8) for shade, point in enumerate(["original", "vvc/40", "icm/1"])}
    rows = gallery_rows(["a"], RATES, FACES, lambda point, image: pixels[point], 0.2, 0.95, codecs=["icm", "vvc"])
    assert [cell.title for cell in rows[0]] == ["a\noriginal", "icm 1\n0.250 bpp", "vvc 40\n0.180 bpp"]
    assert rows[0][1].face.shape == (6, 4, 3) and (rows[0][1].face == 2).all()  # cut from icm's decoded image
    figure = gallery_figure(rows)
    assert len(figure.axes) == 2 * 3 and sum(bool(ax.images) for ax in figure.axes) == 6
    with pytest.raises(ValueError, match="codec 'jpeg' has no point"):
        gallery_rows(["a"], RATES, FACES, lambda point, image: pixels[point], 0.2, 0.95, codecs=["jpeg"])
