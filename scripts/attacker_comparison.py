"""The study's question under each attacker, from a finished run: re-identification and rank-1 of every
codec point per attacker with 95 % intervals, and each codec against a reference codec at equal bitrate
and at equal detection mAP (Bjøntegaard-style, as privacy_bd.csv and frontier_bd.csv compute them), as
Markdown tables (docs/privacy_metrics.md, "The study's question under the attackers who learn").

    .venv/bin/python scripts/attacker_comparison.py --results results/coco-persons-icm --reference vvc
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from icm_privacy.points import Threshold
from icm_privacy.privacy import bd_difference_table
from icm_privacy.tables import to_markdown

METRICS = ("reid_published", "rank1")


def point_table(frontier: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """One row per codec point and attacker: bpp, mAP, and each metric with its interval per model."""
    rows = []
    for (codec, quality, attacker), point in frontier.groupby(["codec", "quality", "attacker"], sort=False):
        by_model = point.set_index("model")
        row = {"codec": codec, "q": quality, "attacker": attacker, "bpp": round(point.bpp.iloc[0], 3),
               "mAP": round(point["map"].iloc[0], 3)}
        for metric in METRICS:
            row[metric] = " / ".join(f"{by_model.loc[m, metric]:.2f} [{by_model.loc[m, f'{metric}_ci_low']:.2f}, "
                                     f"{by_model.loc[m, f'{metric}_ci_high']:.2f}]" for m in models)
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["codec", "q", "attacker"], key=lambda c: c.map(str), kind="stable")


def differences(frontier: pd.DataFrame, reference: str, models: list[str]) -> pd.DataFrame:
    """Codec minus reference per attacker, metric and axis (bpp: log scale; map: linear), one cell per model."""
    rows = []
    for attacker, rows_of in frontier.groupby("attacker", sort=False):
        for axis in ("bpp", "map"):
            table = bd_difference_table(rows_of, list(METRICS), reference, axis=axis)
            for (codec, metric), cell in table.groupby(["codec", "metric"], sort=False):
                values = cell.set_index("model").bd_difference
                rows.append({"codec": codec, "attacker": attacker, "metric": metric,
                             "equal": "bitrate" if axis == "bpp" else "detection mAP",
                             "difference (SFace / Facenet / Dlib order of the run)":
                                 " / ".join(f"{values.get(m, float('nan')):+.3f}" for m in models)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a finished run's results folder")
    parser.add_argument("--reference", default="vvc", help="the codec the others are compared with")
    parser.add_argument("--threshold", type=float, default=0.95, help="MTCNN confidence of the analysed faces")
    arguments = parser.parse_args()
    frontier = pd.read_csv(arguments.results / "tables" / "frontier.csv", dtype={"quality": str})
    frontier = frontier[Threshold(arguments.threshold).selects(frontier.min_confidence) & (frontier.breakdown == "all")]
    models = list(dict.fromkeys(frontier.model))
    print(f"# {arguments.results}: faces with MTCNN confidence >= {Threshold(arguments.threshold).text}, models "
          f"{' / '.join(models)}\n")
    print("## Every codec point, per attacker (95 % bootstrap intervals over images)\n")
    print(to_markdown(point_table(frontier, models)))
    print(f"## Against {arguments.reference}, per attacker (negative: less identity than {arguments.reference})\n")
    print(to_markdown(differences(frontier, arguments.reference, models)))


if __name__ == "__main__":
    main()
