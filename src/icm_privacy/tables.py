"""Result tables: per-image rates, per-face similarities, and the study's Table 1 per threshold.

Two bpp aggregates are reported for every codec point, because papers use both: `bpp_mean` is the
mean of per-image bpp (each image counts once), `bpp_pooled` is total bits / total pixels (large
images weigh more). Both are over every accepted image of the dataset, with or without faces.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .codecs.base import bits_per_pixel
from .embeddings import cosine_similarity

POINT_COLUMNS = ["codec", "quality"]


def rates_table(manifest: pd.DataFrame, bitstreams: pd.DataFrame) -> pd.DataFrame:
    """Per image x codec point: bitstream bytes and bpp. `bitstreams` has codec, quality, image, path."""
    sizes = manifest.set_index("image")[["width", "height"]]
    rates = bitstreams.join(sizes, on="image")
    rates["bytes"] = [Path(path).stat().st_size for path in rates.path]
    rates["bpp"] = [bits_per_pixel(b, w, h) for b, w, h in zip(rates.bytes, rates.width, rates.height)]
    return rates.drop(columns="path")


def face_similarity_table(faces: pd.DataFrame, rates: pd.DataFrame,
                          embeddings: dict[str, dict[str, dict[str, np.ndarray]]]) -> pd.DataFrame:
    """One row per face x codec point: face record, the image's bpp, and `cos_<model>` per model.

    `embeddings[model][point]` maps face id -> vector, with point "original" for the originals and
    "<codec>/<quality>" for decoded images.
    """
    rows = []
    for point in rates[POINT_COLUMNS].drop_duplicates().itertuples(index=False):
        point_rates = rates[(rates.codec == point.codec) & (rates.quality == point.quality)].set_index("image")
        block = faces.copy()
        block.insert(0, "codec", point.codec)
        block.insert(1, "quality", point.quality)
        block["bpp"] = block.image.map(point_rates.bpp)
        for model, by_point in embeddings.items():
            originals = by_point["original"]
            decoded = by_point[f"{point.codec}/{point.quality}"]
            kept = [face_id in originals and face_id in decoded for face_id in block.face_id]
            similarity = np.full(len(block), np.nan)
            if any(kept):
                ids = block.face_id[kept]
                similarity[np.flatnonzero(kept)] = cosine_similarity(
                    np.stack([originals[i] for i in ids]), np.stack([decoded[i] for i in ids]))
            block[f"cos_{model}"] = similarity
        rows.append(block)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def table1(rates: pd.DataFrame, face_table: pd.DataFrame, models: list[str], threshold: float) -> pd.DataFrame:
    """The study's Table 1 at one confidence threshold: bpp, face count, mean cosine per model."""
    by_point = rates.groupby(POINT_COLUMNS, sort=False)
    summary = pd.DataFrame({
        "images": by_point.image.count(),
        "bpp_mean": by_point.bpp.mean(),
        "bpp_pooled": by_point.apply(lambda r: 8.0 * r.bytes.sum() / (r.width * r.height).sum(), include_groups=False),
    })
    confident = face_table[face_table.confidence >= threshold]
    faces_by_point = confident.groupby(POINT_COLUMNS, sort=False)
    summary["faces"] = faces_by_point.face_id.count()
    for model in models:
        summary[f"mean_cos_{model}"] = faces_by_point[f"cos_{model}"].mean()
    summary["faces"] = summary["faces"].fillna(0).astype(int)
    summary.insert(0, "threshold", threshold)
    return summary.reset_index()


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A plain Markdown table (no extra dependency)."""
    def cell(value):
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
