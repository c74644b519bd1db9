"""The VVC equivalence answers (docs/vvc_equivalence.md) on hand-made Table 1 rows: which entry stays within
the study's tolerances of the reference, how far bitrates are from the paper's, what val2017 would cost."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icm_privacy.codec_calibration import PAPER_VTM_BPP, equivalence, paper_bpp_deviation, projected_encoding_hours

MODELS = ["SFace", "Facenet"]


def rows(bpp, psnr, cosine, cpu, qps=(32, 35, 37, 40, 47)) -> pd.DataFrame:
    """Table 1 rows of one codec entry, indexed by QP; `cosine` is added to a curve that falls with QP."""
    qps = list(qps)
    base_cosine = np.linspace(0.9, 0.5, len(qps))
    return pd.DataFrame({"bpp_mean": bpp, "psnr": psnr, "mean_cos_SFace": base_cosine + cosine,
                         "mean_cos_Facenet": base_cosine - 0.1 + cosine, "encode_cpu_s": cpu}, index=qps)


REFERENCE = rows(bpp=[0.5, 0.35, 0.27, 0.17, 0.07], psnr=[32.0, 30.5, 29.5, 28.0, 25.0], cosine=0.0, cpu=20.0)


def test_an_entry_identical_to_the_reference_is_equivalent_at_no_cost_difference():
    result = equivalence(REFERENCE.copy(), REFERENCE, MODELS)
    assert result.bd_rate == pytest.approx(0, abs=1e-12)
    assert all(value == pytest.approx(0, abs=1e-12) for value in result.bd_cosine.values())
    assert (result.worst_bpp_deviation, result.worst_cosine_difference, result.cpu_ratio) == (0, 0, 1)
    assert result.within


def test_bits_or_cosines_past_the_tolerance_at_one_qp_break_equivalence():
    cheaper = REFERENCE.assign(encode_cpu_s=2.0)
    within = equivalence(cheaper.assign(bpp_mean=REFERENCE.bpp_mean * 1.04), REFERENCE, MODELS)
    assert within.within and within.cpu_ratio == pytest.approx(0.1)
    assert within.worst_bpp_deviation == pytest.approx(0.04)
    assert within.bd_rate == pytest.approx(0.04, rel=1e-6)  # same PSNR at 4 % more bits everywhere

    more_bits = cheaper.copy()
    more_bits.loc[40, "bpp_mean"] *= 1.06
    assert not equivalence(more_bits, REFERENCE, MODELS).within

    higher_cosine = cheaper.copy()
    higher_cosine.loc[35, "mean_cos_Facenet"] += 0.03
    result = equivalence(higher_cosine, REFERENCE, MODELS)
    assert result.worst_cosine_difference == pytest.approx(0.03) and not result.within


def test_an_entry_missing_one_of_the_references_qps_is_not_called_equivalent():
    partial = REFERENCE.drop(index=47)
    result = equivalence(partial, REFERENCE, MODELS)
    assert result.worst_bpp_deviation == 0 and not result.within


def test_bd_cosine_is_the_cosine_gain_at_equal_bitrate():
    """Same cosine curve at half the bits: at equal bpp the entry's cosine is higher, so BD cosine > 0."""
    result = equivalence(REFERENCE.assign(bpp_mean=REFERENCE.bpp_mean / 2), REFERENCE, MODELS)
    assert result.bd_rate == pytest.approx(-0.5, rel=1e-6)
    assert all(value > 0.02 for value in result.bd_cosine.values())


def test_paper_deviation_uses_the_studys_qps_only():
    bpp = pd.Series({32: 0.524 * 1.1, 37: 0.271 * 0.9, 47: 0.05})
    deviation = paper_bpp_deviation(bpp)
    assert list(deviation.index) == [32, 37]
    assert deviation.to_numpy() == pytest.approx([0.1, -0.1])


def test_projection_needs_every_study_qp_and_scales_with_images_over_cores():
    cpu = pd.Series({32: 30.0, 35: 24.0, 37: 21.0, 40: 17.0, 47: 11.0})  # 47 is not one of the study's QPs
    assert projected_encoding_hours(cpu, cores=16) == pytest.approx(5000 * 92 / 16 / 3600)
    assert projected_encoding_hours(cpu, cores=32) == pytest.approx(projected_encoding_hours(cpu, cores=16) / 2)
    assert np.isnan(projected_encoding_hours(cpu.drop(index=35), cores=16))
    assert sorted(PAPER_VTM_BPP) == [32, 35, 37, 40]
