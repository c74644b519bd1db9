"""Result tables: per-image rates, per-face similarities, the study's Table 1 per threshold, and the
codecs' Bjøntegaard differences against each other.

Two bpp aggregates are reported for every codec point, because papers use both: `bpp_mean` is the
mean of per-image bpp (each image counts once), `bpp_pooled` is total bits / total pixels (large
images weigh more). Both are over every accepted image of the dataset, with or without faces.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from .bd_metrics import bd_metric_difference, bd_rate
from .codecs.base import bits_per_pixel
from .embeddings import cosine_similarity

POINT_COLUMNS = ["codec", "quality"]
# Who matches a decoded face against its original (the `attacker` column of faces.csv, Table 1, privacy.csv).
STANDARD_ATTACKER = "standard"  # original crop vs the same box of the full-size decoded image
CROSS_RESOLUTION = "cross-resolution"  # decode before upsampling vs the original shrunk the same way


def rates_table(manifest: pd.DataFrame, bitstreams: pd.DataFrame) -> pd.DataFrame:
    """Per image x codec point: bitstream bytes and bpp from the file. `bitstreams` has codec, quality,
    image, path, and optionally estimated_bpp (a learned model's likelihood estimate), kept as is."""
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
    """The study's Table 1 at one confidence threshold: bpp, face count, mean cosine per model.

    One row per codec point and attacker: every point has a "standard" row (original crop vs decoded
    crop); downscale points may add a "cross-resolution" row (face_table's attacker column).
    """
    by_point = rates.groupby(POINT_COLUMNS, sort=False)
    summary = pd.DataFrame({
        "images": by_point.image.count(),
        "bpp_mean": by_point.bpp.mean(),
        "bpp_pooled": by_point.apply(lambda r: 8.0 * r.bytes.sum() / (r.width * r.height).sum(), include_groups=False),
    })
    if "estimated_bpp" in rates and rates.estimated_bpp.notna().any():  # only learned codecs have one
        summary["bpp_estimated"] = by_point.estimated_bpp.mean()
    summary = summary.reset_index()
    summary["order"] = range(len(summary))
    faces = face_table if "attacker" in face_table else face_table.assign(attacker=STANDARD_ATTACKER)
    confident = faces[faces.confidence >= threshold]
    by_view = confident.groupby([*POINT_COLUMNS, "attacker"], sort=False)
    views = pd.DataFrame({"faces": by_view.face_id.count(),
                          **{f"mean_cos_{model}": by_view[f"cos_{model}"].mean() for model in models}})
    # every point keeps its standard row, also where no face reaches the threshold
    keys = pd.concat([summary[POINT_COLUMNS].assign(attacker=STANDARD_ATTACKER),
                      views.index.to_frame(index=False)]).drop_duplicates()
    table = (keys.merge(summary, on=POINT_COLUMNS).merge(views.reset_index(), on=[*POINT_COLUMNS, "attacker"], how="left")
             .assign(other_attacker=lambda t: t.attacker != STANDARD_ATTACKER)
             .sort_values(["order", "other_attacker"], kind="stable").drop(columns=["order", "other_attacker"]))
    table["faces"] = table["faces"].fillna(0).astype(int)
    table.insert(0, "threshold", threshold)
    return table.reset_index(drop=True)


# Table 1 columns compared at equal bitrate by rate_bd_table, where a run has them (quality.py, detection)
RATE_BD_METRICS = ("psnr_rgb_mean", "ms_ssim_mean", "face_psnr_mean", "edge_psnr_mean", "off_edge_psnr_mean",
                   "detection_map")


def rate_bd_table(table: pd.DataFrame) -> pd.DataFrame:
    """Every codec against every other at equal bitrate: Bjøntegaard differences over `bpp_mean`.

    table: Table 1 (one threshold; its quality and mAP columns do not depend on it), standard rows.
    One row per ordered pair: `bd_<metric>` is codec minus reference_codec averaged over the bpp range
    both cover (log bpp, PCHIP: `bd_metrics`), `bd_rate_psnr` the bitrate ratio - 1 at equal RGB PSNR
    (negative: codec needs fewer bits); `bpp_low`/`bpp_high` is that common range, `note` why a value
    is missing.
    """
    standard = table[table.attacker == STANDARD_ATTACKER]
    metrics = [metric for metric in RATE_BD_METRICS if metric in standard]
    rows = []
    for codec, reference in itertools.permutations(dict.fromkeys(standard.codec), 2):
        curve, other = standard[standard.codec == codec], standard[standard.codec == reference]
        row = {"codec": codec, "reference_codec": reference,
               "bpp_low": max(curve.bpp_mean.min(), other.bpp_mean.min()),
               "bpp_high": min(curve.bpp_mean.max(), other.bpp_mean.max())}
        reasons = []
        for metric in metrics:
            difference = bd_metric_difference(curve.bpp_mean, curve[metric], other.bpp_mean, other[metric])
            row[f"bd_{metric}"] = difference.value
            reasons += [f"{metric}: {difference.reason}"] if difference.reason else []
        row["bd_rate_psnr"] = bd_rate(curve.bpp_mean, curve.psnr_rgb_mean, other.bpp_mean, other.psnr_rgb_mean)
        rows.append({**row, "note": "; ".join(reasons)})
    return pd.DataFrame(rows, columns=["codec", "reference_codec", "bpp_low", "bpp_high",
                                       *[f"bd_{metric}" for metric in metrics], "bd_rate_psnr", "note"])


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A plain Markdown table (no extra dependency)."""
    def cell(value):
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
