"""Rate curves drawn from result tables alone, so restyling a figure never recomputes anything.

Figures are matplotlib Figure objects without pyplot (no global state, no display needed);
`save_figure` writes PNG and PDF atomically.
"""
from __future__ import annotations

import os

import pandas as pd
from matplotlib.figure import Figure

from .files import atomic_path
from .points import Threshold
from .tables import STANDARD_ATTACKER


def save_figure(figure: Figure, png_path: str | os.PathLike, pdf_path: str | os.PathLike) -> None:
    """Write the figure as PNG (at the figure's dpi) and as PDF, each atomically."""
    for path in (png_path, pdf_path):
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=figure.dpi)


def curve_labels(table: pd.DataFrame) -> pd.Series:
    """One curve per codec, and one more per other attacker where a table has attacker rows."""
    labels = table["codec"].astype(str)
    if "attacker" in table:
        other = table["attacker"] != STANDARD_ATTACKER
        labels = labels.where(~other, labels + " (" + table["attacker"].astype(str) + " attacker)")
    return labels


def _curves(axis, table: pd.DataFrame, x: str, y: str) -> None:
    for label, curve in table.groupby(curve_labels(table), sort=False):
        curve = curve.sort_values(x)
        axis.plot(curve[x], curve[y], marker="o", label=label)
    axis.set_xlabel("bits per pixel (mean over images)")
    axis.grid(alpha=0.3)


def plot_rate_similarity(table: pd.DataFrame, models: list[str], output_stem: str) -> None:
    """bpp vs mean cosine similarity (Table 1): one panel per face model, one curve per codec."""
    figure = Figure(figsize=(4.2 * len(models), 3.6), dpi=150, layout="constrained")
    axes = figure.subplots(1, len(models), squeeze=False, sharey=True)[0]
    for axis, model in zip(axes, models):
        _curves(axis, table, "bpp_mean", f"mean_cos_{model}")
        axis.set_title(model)
    axes[0].set_ylabel("mean cosine similarity\n(original vs decoded face)")
    axes[-1].legend(title="codec", fontsize="small")
    threshold = Threshold(table.threshold.iloc[0]).text if len(table) else "(no rows)"
    figure.suptitle(f"Identity similarity vs rate, faces with confidence ≥ {threshold}", fontsize="medium")
    save_figure(figure, f"{output_stem}.png", f"{output_stem}.pdf")


def plot_rate_accuracy(table: pd.DataFrame, output_stem: str) -> None:
    """bpp vs COCO mAP of the detector on decoded images, the originals' mAP as a reference line."""
    figure = Figure(figsize=(4.6, 3.6), dpi=150, layout="constrained")
    axis = figure.subplots()
    _curves(axis, table[table.codec != "original"], "bpp_mean", "map")
    for reference in table[table.codec == "original"].itertuples():
        axis.axhline(reference.map, color="gray", linestyle="--", label="original images")
    axis.set_ylabel("detection mAP@[.5:.95]")
    axis.legend(fontsize="small")
    save_figure(figure, f"{output_stem}.png", f"{output_stem}.pdf")


def plot_training_curves(logs: dict[str, pd.DataFrame], validation: dict[str, pd.DataFrame],
                         png_path: str | os.PathLike, pdf_path: str | os.PathLike) -> None:
    """Training curves of each stage (label -> its CSV logs): the loss on training crops, and PSNR, bpp
    and edge PSNR on the held-out validation images (whole images, coded as the codec codes them)."""
    figure = Figure(figsize=(10, 7), layout="constrained")
    loss, psnr, bpp, edge_psnr = figure.subplots(2, 2).flat
    for label, log in logs.items():
        loss.plot(log.step, log.loss, label=label, linewidth=0.8)
    loss.set(title="loss on training crops", xlabel="step", yscale="log")
    for axis, column, title in ((psnr, "psnr", "validation PSNR (dB)"), (bpp, "bpp", "validation bpp"),
                                (edge_psnr, "edge_psnr", "validation PSNR on object edges (dB)")):
        for label, table in validation.items():
            axis.plot(table.step, table[column], marker=".", label=label)
        axis.set(title=title, xlabel="step")
    loss.legend(fontsize="small")
    save_figure(figure, png_path, pdf_path)
