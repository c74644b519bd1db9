"""The VVC equivalence table (docs/vvc_equivalence.md) from a finished run of the workflow.

Reads the run's tables (rates.csv and faces.csv for Table 1, quality_summary.csv, privacy.csv, detection.csv) and the coding jobs'
encoder CPU seconds (coding.csv; CPU rather than wall clock, which grows with the machine's load), prints
one row per codec point, the Bjøntegaard comparisons against the reference entry, the two answers: (a)
which entry's bpp is nearest the study's published VTM bitrates, (b) which vvenc entries stay within the
cosine and bpp tolerances of the reference at every QP, with their encoding CPU time relative to it, and
the encoding cost of the COCO val2017 reproduction (the study's 4 QPs) projected from the measured CPU
seconds per image.

    .venv/bin/python scripts/vvc_equivalence_table.py results/coco-persons-vvc-equivalence
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from icm_privacy.codec_calibration import (PAPER_IMAGES, PAPER_VTM_BPP, equivalence, paper_bpp_deviation,
                                           projected_encoding_hours)
from icm_privacy.config import format_quality
from icm_privacy.tables import table1, to_markdown



def encode_seconds_per_image(results: Path, label: str, quality: int) -> tuple[float, float]:
    """Mean encoder CPU seconds and wall-clock seconds per image of a codec point (its jobs' coding.csv)."""
    files = sorted((results / "bitstreams" / label / str(quality)).glob("shard-*/coding.csv"))
    coding = pd.concat([pd.read_csv(path) for path in files])
    if "encode_cpu_seconds" not in coding:
        raise SystemExit(f"{files[0]}: no encode_cpu_seconds column (coded before the codecs recorded CPU time); "
                         "re-run the coding jobs of this point")
    return float(coding.encode_cpu_seconds.mean()), float(coding.encode_seconds.mean())


def point_table(results: Path, threshold: str, models: list[str]) -> pd.DataFrame:
    tables = results / "tables"
    def read(name):  # qualities as numbers in every table ("32" in paths, 32.0 in some tables)
        frame = pd.read_csv(tables / name).dropna(subset=["quality"])
        return frame.astype({"quality": float})

    # Table 1 from the run's rates and per-face similarities (the package's own table1)
    table = table1(read("rates.csv"), read("faces.csv"), models, float(threshold))
    table = table[table.attacker == "standard"].drop(columns=["attacker", "threshold"])
    psnr = read("quality_summary.csv").set_index(["codec", "quality"]).psnr_rgb_mean.rename("psnr")
    privacy = read("privacy.csv")
    privacy = privacy[(privacy.breakdown == "all") & np.isclose(privacy.min_confidence, float(threshold))]
    reid = privacy.pivot_table(index=["codec", "quality"], columns="model", values="reid_published")
    reid.columns = [f"reid_{model}" for model in reid.columns]
    detection = read("detection.csv")
    table = (table.join(psnr, on=["codec", "quality"]).join(reid, on=["codec", "quality"])
             .merge(detection[["codec", "quality", "map"]], on=["codec", "quality"], how="left"))
    seconds = [encode_seconds_per_image(results, c, int(q)) for c, q in zip(table.codec, table.quality)]
    table["encode_cpu_s"], table["encode_wall_s"] = zip(*seconds)
    columns = ["codec", "quality", "images", "bpp_mean", "bpp_pooled", "psnr", "faces",
               *[f"mean_cos_{m}" for m in models], *[f"reid_{m}" for m in models], "map", "encode_cpu_s",
               "encode_wall_s"]
    return table[columns]


def markdown(table: pd.DataFrame) -> str:
    return to_markdown(table.assign(quality=table.quality.map(format_quality)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--threshold", default="0.950", help="MTCNN confidence of the faces counted")
    parser.add_argument("--models", nargs="+", default=["SFace", "Facenet", "Dlib"])
    parser.add_argument("--reference", default="vtm-420")
    parser.add_argument("--cosine-tolerance", type=float, default=0.02)
    parser.add_argument("--bpp-tolerance", type=float, default=0.05)
    parser.add_argument("--cores", type=int, default=16, help="cores of the projected val2017 run")
    args = parser.parse_args()
    table = point_table(args.results, args.threshold, args.models)
    print(markdown(table), "\n")

    reference = table[table.codec == args.reference].set_index("quality")
    print(f"Against {args.reference} (BD: PCHIP over the QPs each has; bpp = per-image mean; equal-QP "
          "deviations at the reference's QPs):\n")
    print("| entry | BD-rate (PSNR) | " + " | ".join(f"BD mean cosine {m}" for m in args.models)
          + " | max abs. bpp dev. at equal QP | max abs. cosine diff. at equal QP | encode CPU vs reference | within tolerances |")
    print("|---|---|" + "---|" * len(args.models) + "---|---|---|---|")
    for codec, entry in table[table.codec != args.reference].groupby("codec", sort=False):
        result = equivalence(entry.set_index("quality"), reference, args.models, args.bpp_tolerance,
                             args.cosine_tolerance)
        print(f"| {codec} | {100 * result.bd_rate:+.1f} % | " + " | ".join(f"{result.bd_cosine[m]:+.4f}" for m in args.models)
              + f" | {100 * result.worst_bpp_deviation:.1f} % | {result.worst_cosine_difference:.4f}"
              + f" | {result.cpu_ratio:.3f} | {'yes' if result.within else 'no'} |")

    print("\nbpp (mean over images) against the study's VTM rows on COCO val2017:\n")
    print("| entry | " + " | ".join(f"QP {q} (paper {b})" for q, b in PAPER_VTM_BPP.items()) + " | mean abs. deviation |")
    print("|---|" + "---|" * (len(PAPER_VTM_BPP) + 1))
    for codec, entry in table.groupby("codec", sort=False):
        bpp = entry.set_index("quality").bpp_mean
        deviations = paper_bpp_deviation(bpp)
        print(f"| {codec} | " + " | ".join(f"{bpp[q]:.3f} ({100 * deviations[q]:+.1f} %)" if q in deviations.index else ""
                                          for q in PAPER_VTM_BPP)
              + f" | {100 * deviations.abs().mean():.1f} % over {len(deviations)} QPs |")

    print(f"\nEncoding the {PAPER_IMAGES} val2017 images at QP {', '.join(map(str, PAPER_VTM_BPP))}, one encoder per "
          f"core on {args.cores} cores (measured CPU s per image x images / cores):\n")
    print(f"| entry | CPU s per image, 4 QPs | hours on {args.cores} cores |\n|---|---|---|")
    for codec, entry in table.groupby("codec", sort=False):
        cpu = entry.set_index("quality").encode_cpu_s
        hours = projected_encoding_hours(cpu, args.cores)
        if np.isfinite(hours):
            print(f"| {codec} | {cpu[list(PAPER_VTM_BPP)].sum():.1f} | {hours:.2f} |")


if __name__ == "__main__":
    main()
