"""Bjøntegaard-style differences between two codecs' curves, computed by the `bjontegaard` package.

`bjontegaard` (FAU Erlangen, the implementation behind JVET's BD sheets in Python) interpolates each
curve piecewise-cubically (PCHIP, shape-preserving, as in the JCT-VC/JVET common-test-condition BD
sheets) and averages the difference over the interval both curves cover. This module adds what our
tables need around it: points with a NaN metric are dropped, a curve that cannot be formed gives NaN
with the reason instead of an exception, and any quantity can be the axis (bpp on a log scale, or a
linear one such as detection mAP for the privacy-utility frontier).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class BDDifference(NamedTuple):
    """Average metric difference at equal bitrate; reason says why value is NaN ('' otherwise)."""

    value: float
    reason: str


def _curve(x: Sequence[float], metric: Sequence[float], name: str, axis: str,
           log_x: bool) -> tuple[np.ndarray, np.ndarray] | str:
    """The curve's points sorted by x (log x for bitrates), or the reason they cannot form a curve."""
    x, metric = np.asarray(x, dtype=np.float64), np.asarray(metric, dtype=np.float64)
    if x.shape != metric.shape:
        return f"codec {name}: {x.size} {axis} values but {metric.size} metric values"
    usable = np.isfinite(x) & np.isfinite(metric)
    x, metric = x[usable], metric[usable]
    if x.size < 2:
        return f"codec {name} has {x.size} point(s) with a finite metric; a curve needs >= 2"
    if log_x and (x <= 0).any():
        return f"codec {name} has {axis} <= 0; log({axis}) is undefined"
    order = np.argsort(x)
    if np.any(np.diff(x[order]) == 0):
        return f"codec {name} has repeated {axis} values; metric is not a function of {axis}"
    return (np.log(x[order]) if log_x else x[order]), metric[order]


def bd_metric_difference(
    bpp_a: Sequence[float], metric_a: Sequence[float], bpp_b: Sequence[float], metric_b: Sequence[float],
    *, axis: str = "bpp", log_x: bool = True,
) -> BDDifference:
    """Average of metric_A - metric_B at equal bitrate over the bitrates both codecs cover.

    Bjøntegaard's delta-PSNR with the metric in place of PSNR (`bjontegaard.bd_linear` over log bpp,
    PCHIP): it needs >= 2 points per codec (2 points give the straight line through them), where
    Bjøntegaard's original cubic polynomial needs 4. The value is in the metric's units: for a rate in
    [0, 1], x100 gives percentage points, and a negative value means codec A re-identifies less than
    codec B at the same bitrate. Another x axis (`axis` names it in messages; `log_x=False` for a linear
    one, such as detection mAP) gives the average difference at equal values of that quantity instead.
    """
    import bjontegaard

    curve_a = _curve(bpp_a, metric_a, "A", axis, log_x)
    curve_b = _curve(bpp_b, metric_b, "B", axis, log_x)
    for curve in (curve_a, curve_b):
        if isinstance(curve, str):
            return BDDifference(np.nan, curve)
    if min(curve_a[0][-1], curve_b[0][-1]) <= max(curve_a[0][0], curve_b[0][0]):
        return BDDifference(np.nan, f"the codecs' {axis} ranges do not overlap")
    difference = bjontegaard.bd_linear(*curve_b, *curve_a, method="pchip", require_matching_points=False,
                                       min_overlap=0)
    return BDDifference(float(difference), "")


def bd_rate(bpp_a: Sequence[float], psnr_a: Sequence[float], bpp_b: Sequence[float], psnr_b: Sequence[float]) -> float:
    """Bjøntegaard delta rate of codec A against B: the mean bitrate ratio - 1 at equal PSNR.

    bd_metric_difference with the axes swapped: log(bpp) as the metric, interpolated over PSNR
    across the PSNR range both codecs cover (what `bjontegaard.bd_rate` computes, with NaN and the
    reason where the curves cannot be formed or do not overlap). Negative: A needs fewer bits for the
    same PSNR.
    """
    difference = bd_metric_difference(psnr_a, np.log(bpp_a), psnr_b, np.log(bpp_b), axis="PSNR", log_x=False)
    return float(np.expm1(difference.value))
