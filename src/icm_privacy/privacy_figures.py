"""Figures of the privacy metrics: metric curves against bpp or detection mAP, and a panel of example faces.

Figures are built as matplotlib Figure objects without pyplot (no global state, no display
backend needed); plots.save_figure writes the PNG (Agg) and the PDF.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from .plots import curve_labels
from .points import Threshold

CURVE_PANEL_INCHES = (3.2, 2.8)  # width, height of one face model's panel
FACE_PANEL_INCHES = 1.5  # side of one face crop's panel
CAPTION_INCHES = 0.3  # room under each crop for its similarity
HEADER_INCHES = 0.3  # room above the first row for the column titles


X_LABELS = {"bpp": "bits per pixel (mean over images)", "map": "detection mAP@[.5:.95] (YOLOv5)"}


def metric_curves_figure(
    table: pd.DataFrame,
    metric: str,
    *,
    threshold: Threshold,
    x: str = "bpp",
    breakdown: str = "all",
    bin_name: str = "all",
    ylabel: str | None = None,
) -> Figure:
    """One panel per face model, one curve per codec: `metric` against `x`, with its 95 % CI band.

    x: "bpp" (mean bpp, log axis: the rate curves) or "map" (detection mAP, linear axis: the
    privacy-utility frontier, "at equal detection accuracy, how much identity is left").
    table: privacy.privacy_table's output (needs codec, x, model, min_confidence, breakdown, bin,
    metric and metric_ci_low/_ci_high).
    """
    rows = table[threshold.selects(table["min_confidence"]) & (table["breakdown"] == breakdown) & (table["bin"] == bin_name)]
    if rows.empty:
        raise ValueError(f"no rows for min_confidence={threshold.text}, breakdown={breakdown!r}, bin={bin_name!r}")
    models = list(dict.fromkeys(rows["model"]))
    width, height = CURVE_PANEL_INCHES
    figure = Figure(figsize=(width * len(models), height), layout="constrained")
    axes = figure.subplots(1, len(models), sharex=True, sharey=True, squeeze=False)[0]
    # Limits from x, not from plotted data: a model whose metric is all NaN still gets its axis.
    if x == "bpp":
        axes[0].set_xlim(rows[x].min() / 1.25, rows[x].max() * 1.25)
    else:
        margin = 0.05 * (rows[x].max() - rows[x].min()) or 0.01
        axes[0].set_xlim(rows[x].min() - margin, rows[x].max() + margin)
    for ax, model in zip(axes, models):
        curves = rows[rows["model"] == model]
        if curves[metric].isna().all():
            ax.text(0.5, 0.5, f"{metric} undefined\n(see the table's note)", ha="center", va="center",
                    transform=ax.transAxes, fontsize="small")
        for label, curve in curves.groupby(curve_labels(curves), sort=False):
            curve = curve.sort_values(x)
            (line,) = ax.plot(curve[x], curve[metric], marker="o", markersize=3, label=label)
            ax.fill_between(
                curve[x], curve[f"{metric}_ci_low"], curve[f"{metric}_ci_high"],
                color=line.get_color(), alpha=0.2, linewidth=0,
            )
        if x == "bpp":
            ax.set_xscale("log")  # codec points are spaced roughly evenly in log bitrate
            # Plain 0.1, 0.2, 0.5, 1 labels: bpp curves often span less than a decade.
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(str(model))
        ax.set_xlabel(X_LABELS.get(x, x))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel or metric)
    axes[-1].legend(title="codec", fontsize="small")
    return figure


def _check_crop(crop: np.ndarray, where: str) -> None:
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"{where}: expected an HxWx3 uint8 RGB crop, got {crop.dtype} {crop.shape}")


def _show_crop(ax, crop: np.ndarray, caption: str) -> None:
    ax.imshow(crop)
    # Ticks and frame hidden rather than axis off, so the x label (the caption) stays visible.
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(caption, fontsize=8)


def example_faces_figure(
    original_crops: Sequence[np.ndarray],
    decoded: Mapping[str, Sequence[tuple[np.ndarray, float]]],
    *,
    dpi: int = 100,
) -> Figure:
    """One row per face: its original crop, then its crop decoded at each codec point, similarity under each.

    decoded: codec point label (e.g. 'jpeg q=30') -> one (crop, cosine similarity) per original crop.
    Size: (1 + points) * FACE_PANEL_INCHES wide, HEADER_INCHES + faces * (FACE_PANEL_INCHES +
    CAPTION_INCHES) high.
    """
    if not original_crops or not decoded:
        raise ValueError("need at least one face and one codec point")
    for label, pairs in decoded.items():
        if len(pairs) != len(original_crops):
            raise ValueError(f"{label}: {len(pairs)} decoded crops for {len(original_crops)} original crops")
    n_faces, n_columns = len(original_crops), 1 + len(decoded)
    height = HEADER_INCHES + n_faces * (FACE_PANEL_INCHES + CAPTION_INCHES)
    figure = Figure(figsize=(n_columns * FACE_PANEL_INCHES, height), dpi=dpi, layout="constrained")
    axes = figure.subplots(n_faces, n_columns, squeeze=False)
    for face, original in enumerate(original_crops):
        _check_crop(original, f"original crop {face}")
        _show_crop(axes[face, 0], original, "original")
        for column, (label, pairs) in enumerate(decoded.items(), start=1):
            crop, similarity = pairs[face]
            _check_crop(crop, f"{label}, crop {face}")
            _show_crop(axes[face, column], crop, f"cos {similarity:.3f}")
    for ax, title in zip(axes[0], ["original", *decoded]):
        ax.set_title(title, fontsize=9)
    return figure
