"""Similarities, bpp aggregates, Table 1 and BD differences on small hand-made data with known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icm_privacy.embeddings import cosine_similarity
from icm_privacy.faces import clip_box, crop_face
from icm_privacy.plots import curve_labels
from icm_privacy.tables import face_similarity_table, rate_bd_table, rates_table, table1, to_markdown


def test_cosine_similarity_known_values():
    first = np.array([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    second = np.array([[0.0, 3.0], [2.0, 2.0], [-1.0, 0.0]])
    assert cosine_similarity(first, second) == pytest.approx([0.0, 1.0, -1.0])


@pytest.mark.parametrize(
    "box, clipped",
    [
        ((10, 20, 30, 40), (10, 20, 40, 60)),  # inside
        ((-5, -6, 20, 20), (0, 0, 15, 14)),  # over the top-left corner
        ((90, 70, 30, 30), (90, 70, 100, 80)),  # over the bottom-right corner
        ((120, 10, 5, 5), None),  # entirely outside
        ((10, 10, 0, 5), None),  # empty
    ],
)
def test_boxes_are_clipped_to_the_image(box, clipped):
    assert clip_box(*box, width=100, height=80) == clipped


def test_crop_takes_exactly_the_box():
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    crop = crop_face(image, (2, 1, 5, 4))
    assert crop.shape == (3, 3, 3) and np.array_equal(crop[0, 0], image[1, 2])


@pytest.fixture
def rates(tmp_path):
    manifest = pd.DataFrame({"image": ["a", "b"], "width": [100, 300], "height": [100, 100]})
    rows = []
    for quality, sizes in (("32", (1250, 1250)), ("40", (125, 625))):
        for image, size in zip(("a", "b"), sizes):
            path = tmp_path / f"{image}-{quality}.266"
            path.write_bytes(b"x" * size)
            rows.append(("vvc", quality, image, str(path)))
    return rates_table(manifest, pd.DataFrame(rows, columns=["codec", "quality", "image", "path"]))


def test_rates_come_from_file_bytes(rates):
    row = rates[(rates.image == "a") & (rates.quality == "32")].iloc[0]
    assert row.bytes == 1250 and row.bpp == pytest.approx(1.0)


def test_table1_reports_mean_and_pooled_bpp_and_faces_per_threshold(rates):
    faces = pd.DataFrame({"face_id": ["a_f0", "a_f1", "b_f0"], "image": ["a", "a", "b"],
                          "confidence": [0.99, 0.96, 0.98]})
    unit = np.eye(3)
    embeddings = {"M": {"original": {"a_f0": unit[0], "a_f1": unit[1], "b_f0": unit[2]},
                        "vvc/32": {"a_f0": unit[0], "a_f1": unit[1], "b_f0": unit[2]},
                        "vvc/40": {"a_f0": unit[0], "a_f1": unit[0], "b_f0": -unit[2]}}}
    face_table = face_similarity_table(faces, rates, embeddings)
    assert len(face_table) == 6
    at_40 = face_table[face_table.quality == "40"].set_index("face_id")
    assert at_40.cos_M.to_dict() == pytest.approx({"a_f0": 1.0, "a_f1": 0.0, "b_f0": -1.0})
    assert at_40.bpp["b_f0"] == pytest.approx(8 * 625 / 30000)

    table = table1(rates, face_table, ["M"], 0.975).set_index("quality")
    # image a: 1.0 bpp, image b: 8*1250/30000 = 0.333 bpp -> mean 0.667, pooled 8*2500/40000 = 0.5
    assert table.loc["32", "bpp_mean"] == pytest.approx((1.0 + 1 / 3) / 2)
    assert table.loc["32", "bpp_pooled"] == pytest.approx(0.5)
    assert table.loc["40", "faces"] == 2  # a_f1 (0.96) is below 0.975
    assert table.loc["40", "mean_cos_M"] == pytest.approx(0.0)  # mean of 1.0 and -1.0
    assert table.loc["32", "mean_cos_M"] == pytest.approx(1.0)
    assert table1(rates, face_table, ["M"], 0.95).set_index("quality").loc["40", "faces"] == 3
    assert "| vvc | 32 |" in to_markdown(table.reset_index()[["codec", "quality", "faces"]])


def test_table1_gets_a_likelihood_bpp_column_only_when_a_codec_estimates_one(rates):
    faces = pd.DataFrame(columns=["codec", "quality", "face_id", "image", "confidence"])
    assert "bpp_estimated" not in table1(rates, faces, [], 0.95).columns
    learned = rates[rates.quality == "32"].assign(codec="mbt2018", quality="3", estimated_bpp=[0.2, 0.4])
    mixed = pd.concat([rates.assign(estimated_bpp=np.nan), learned], ignore_index=True)
    table = table1(mixed, faces, [], 0.95).set_index(["codec", "quality"])
    assert table.loc[("mbt2018", "3"), "bpp_estimated"] == pytest.approx(0.3)
    assert np.isnan(table.loc[("vvc", "32"), "bpp_estimated"])
    assert table.loc[("mbt2018", "3"), "bpp_mean"] == table.loc[("vvc", "32"), "bpp_mean"]  # the file's rate


def test_table1_puts_a_cross_resolution_row_after_its_points_standard_row(rates):
    faces = pd.DataFrame({"face_id": ["a_f0", "b_f0"], "image": ["a", "b"], "confidence": [0.99, 0.99]})
    unit = np.eye(2)
    same = {"a_f0": unit[0], "b_f0": unit[1]}
    standard = face_similarity_table(faces, rates, {"M": {"original": same, "vvc/32": same,
                                                          "vvc/40": {"a_f0": unit[1], "b_f0": unit[0]}}})
    reduced = face_similarity_table(faces, rates[rates.quality == "40"], {"M": {"original": same, "vvc/40": same}})
    face_table = pd.concat([standard.assign(attacker="standard"), reduced.assign(attacker="cross-resolution")])
    table = table1(rates, face_table, ["M"], 0.95)
    assert list(zip(table.quality, table.attacker)) == [("32", "standard"), ("40", "standard"), ("40", "cross-resolution")]
    assert table.mean_cos_M.tolist() == pytest.approx([1.0, 0.0, 1.0])
    assert table.bpp_mean.iloc[1] == table.bpp_mean.iloc[2] and (table.faces == 2).all()
    assert curve_labels(table).tolist() == ["vvc", "vvc", "vvc (cross-resolution attacker)"]


def test_rate_bd_table_gives_each_codec_against_each_other_with_opposite_signs():
    """Codec b is a shifted 1 dB and 0.02 mAP above codec a at every bitrate: BD +1 dB / +0.02 one way,
    -1 / -0.02 the other, and b needs fewer bits for the same PSNR; a single-point codec gets NaN and why."""
    bpp = np.array([0.1, 0.2, 0.4, 0.8])
    psnr = 30 + 3 * np.log2(bpp / 0.1)  # 3 dB per doubling
    rows = [{"codec": codec, "quality": str(q), "attacker": "standard", "bpp_mean": rate,
             "psnr_rgb_mean": value + shift, "detection_map": 0.2 + 0.05 * q + shift / 50}
            for codec, shift in (("a", 0.0), ("b", 1.0)) for q, (rate, value) in enumerate(zip(bpp, psnr))]
    rows.append({"codec": "c", "quality": "1", "attacker": "standard", "bpp_mean": 0.3, "psnr_rgb_mean": 31.0,
                 "detection_map": 0.2})
    table = rate_bd_table(pd.DataFrame(rows)).set_index(["codec", "reference_codec"])

    assert list(table.columns) == ["bpp_low", "bpp_high", "bd_psnr_rgb_mean", "bd_detection_map", "bd_rate_psnr",
                                   "note"]
    assert len(table) == 6
    assert table.loc[("b", "a"), "bd_psnr_rgb_mean"] == pytest.approx(1.0)
    assert table.loc[("a", "b"), "bd_psnr_rgb_mean"] == pytest.approx(-1.0)
    assert table.loc[("b", "a"), "bd_detection_map"] == pytest.approx(0.02)
    # 1 dB at 3 dB per doubling: b needs 2^(-1/3) of a's bits
    assert table.loc[("b", "a"), "bd_rate_psnr"] == pytest.approx(2 ** (-1 / 3) - 1, abs=1e-3)
    assert (table.loc[("b", "a"), "bpp_low"], table.loc[("b", "a"), "bpp_high"]) == (0.1, 0.8)
    assert np.isnan(table.loc[("c", "a"), "bd_psnr_rgb_mean"])
    assert "codec A has 1 point(s)" in table.loc[("c", "a"), "note"]
