"""Figures drawn from result tables alone, so restyling never recomputes anything."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_rate_similarity(table: pd.DataFrame, models: list[str], output_stem: str, bpp_column: str = "bpp_mean") -> list[Path]:
    """bpp vs mean cosine similarity: one panel per face model, one curve per codec. Writes PNG and PDF."""
    figure, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False, sharey=True)
    threshold = table.threshold.iloc[0] if len(table) else float("nan")
    for axis, model in zip(axes[0], models):
        for codec, curve in table.groupby("codec", sort=False):
            curve = curve.sort_values(bpp_column)
            axis.plot(curve[bpp_column], curve[f"mean_cos_{model}"], marker="o", label=codec)
        axis.set_title(model)
        axis.set_xlabel(f"bits per pixel ({bpp_column.replace('_', ' ')})")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean cosine similarity\n(original vs decoded face)")
    axes[0][-1].legend(title="codec", fontsize="small")
    figure.suptitle(f"Identity similarity vs rate, faces with confidence ≥ {threshold:.3f}", fontsize="medium")
    figure.tight_layout()
    outputs = [Path(f"{output_stem}.{suffix}") for suffix in ("png", "pdf")]
    for output in outputs:
        output.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(output, dpi=150)
    plt.close(figure)
    return outputs
