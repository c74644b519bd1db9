"""How far one codec setting is from a reference codec at the same quality parameter (vvenc against VTM).

Each image is coded by both at the same QP; per image, the bpp ratio (candidate / reference, bpp from
the bitstream files) and the PSNR difference (8-bit RGB, quality.psnr) are taken, then summarised over
the images of each QP. The equal-quality comparison is bd_metrics.bd_rate over the QPs' mean points.
`equivalence` asks the same of whole workflow runs (Table 1 rows per QP: bpp, PSNR, mean cosines).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .codecs import Codec, bits_per_pixel
from .codecs.base import cpu_seconds
from .bd_metrics import bd_metric_difference, bd_rate
from .quality import psnr


@dataclass(frozen=True)
class CodedImage:
    image: str
    qp: int
    bpp: float
    psnr: float
    seconds: float  # encoding, wall clock
    cpu_seconds: float  # encoding, CPU time of the encoder processes (steadier than wall time on a shared machine)


def code_images(codec: Codec, images: dict[str, np.ndarray], qps: Sequence[int], folder: Path) -> list[CodedImage]:
    """Encode every image at every QP to a bitstream file in `folder` and decode that file: bpp from the
    file's bytes, PSNR of the decoded image, encoding time (the codecs here run external encoders)."""
    folder.mkdir(parents=True, exist_ok=True)
    coded = []
    for qp in qps:
        for name, rgb in images.items():
            bitstream = folder / f"{name}-{qp}.{codec.extension}"
            wall, cpu = time.perf_counter(), cpu_seconds()
            codec.encode(rgb, qp, bitstream)
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
            height, width = rgb.shape[:2]
            decoded = codec.decode(bitstream, width, height)
            coded.append(CodedImage(name, qp, bits_per_pixel(bitstream.stat().st_size, width, height),
                                    psnr(rgb, decoded), wall, cpu))
    return coded


def deviations(reference: Sequence[CodedImage], candidate: Sequence[CodedImage]) -> pd.DataFrame:
    """Per QP: mean bpp of both, mean and worst per-image bpp deviation (ratio - 1), mean and worst PSNR
    difference (candidate - reference, dB), and the candidate's encoding time relative to the reference's."""
    table = pd.DataFrame(reference).merge(pd.DataFrame(candidate), on=["image", "qp"], suffixes=("_ref", ""))
    if len(table) != len(reference):
        raise ValueError(f"the candidate coded {len(table)} of the reference's {len(reference)} (image, QP) pairs")
    table["bpp_deviation"] = table.bpp / table.bpp_ref - 1
    table["psnr_difference"] = table.psnr - table.psnr_ref
    by_qp = table.groupby("qp")
    return pd.DataFrame({
        "bpp_ref": by_qp.bpp_ref.mean(),
        "bpp": by_qp.bpp.mean(),
        "bpp_deviation_mean": by_qp.bpp_deviation.mean(),
        "bpp_deviation_worst": by_qp.bpp_deviation.agg(lambda d: d[d.abs().idxmax()]),
        "psnr_ref": by_qp.psnr_ref.mean(),
        "psnr_difference_mean": by_qp.psnr_difference.mean(),
        "psnr_difference_worst": by_qp.psnr_difference.agg(lambda d: d[d.abs().idxmax()]),
        "cpu_ratio": by_qp.cpu_seconds.sum() / by_qp.cpu_seconds_ref.sum(),
    }).reset_index()


def mismatch_score(table: pd.DataFrame) -> float:
    """One number to rank settings by how well they match the reference: mean |bpp deviation| in %
    plus 20 x mean |PSNR difference| in dB, over QPs (5 % bpp weighs as much as 0.25 dB)."""
    return float(100 * table.bpp_deviation_mean.abs().mean() + 20 * table.psnr_difference_mean.abs().mean())


def bd_rate_against(reference: Sequence[CodedImage], candidate: Sequence[CodedImage]) -> float:
    """Bjøntegaard delta rate of the candidate against the reference over the QPs' mean (bpp, PSNR) points."""
    def curve(coded):
        means = pd.DataFrame(coded).groupby("qp")[["bpp", "psnr"]].mean()
        return means.bpp.to_numpy(), means.psnr.to_numpy()

    return bd_rate(*curve(candidate), *curve(reference))


# The study's VTM rows (Shindo et al., Table 1): mean bpp per QP on the 5000 COCO val2017 images.
PAPER_VTM_BPP = {32: 0.524, 35: 0.357, 37: 0.271, 40: 0.172}
PAPER_IMAGES = 5000


@dataclass(frozen=True)
class Equivalence:
    """A codec entry of a workflow run against the reference entry (both: Table 1 rows per QP)."""
    bd_rate: float  # at equal RGB PSNR
    bd_cosine: dict[str, float]  # mean cosine at equal bpp, entry - reference, per model
    worst_bpp_deviation: float  # max over the reference's QPs of |bpp_mean ratio - 1| at equal QP
    worst_cosine_difference: float  # max over those QPs and the models of |mean cosine difference|
    cpu_ratio: float  # encoder CPU seconds over those QPs, entry / reference
    within: bool  # both worst values inside the tolerances, at every QP of the reference


def equivalence(entry: pd.DataFrame, reference: pd.DataFrame, models: Sequence[str],
                bpp_tolerance: float = 0.05, cosine_tolerance: float = 0.02) -> Equivalence:
    """Compare two codec entries, each a frame indexed by QP with bpp_mean, psnr, mean_cos_<model> and
    encode_cpu_s (mean per image). Equal-QP deviations are taken at the reference's QPs; an entry that
    lacks one of them is not within the tolerances (its deviation there is unknown)."""
    shared = reference.index.intersection(entry.index)
    bpp_deviation = (entry.bpp_mean[shared] / reference.bpp_mean[shared] - 1).abs().max()
    cosine_difference = max((entry[f"mean_cos_{m}"][shared] - reference[f"mean_cos_{m}"][shared]).abs().max()
                            for m in models)
    return Equivalence(
        bd_rate=bd_rate(entry.bpp_mean, entry.psnr, reference.bpp_mean, reference.psnr),
        bd_cosine={m: bd_metric_difference(entry.bpp_mean, entry[f"mean_cos_{m}"], reference.bpp_mean,
                                           reference[f"mean_cos_{m}"]).value for m in models},
        worst_bpp_deviation=float(bpp_deviation),
        worst_cosine_difference=float(cosine_difference),
        cpu_ratio=float(entry.encode_cpu_s[shared].sum() / reference.encode_cpu_s[shared].sum()),
        within=bool(len(shared) == len(reference) and bpp_deviation <= bpp_tolerance
                    and cosine_difference <= cosine_tolerance),
    )


def paper_bpp_deviation(bpp_by_qp: pd.Series) -> pd.Series:
    """bpp / the study's VTM bpp - 1, at each of the study's QPs that `bpp_by_qp` (indexed by QP) has."""
    paper = pd.Series(PAPER_VTM_BPP, dtype=float)
    shared = paper.index.intersection(bpp_by_qp.index)
    return bpp_by_qp[shared] / paper[shared] - 1


def projected_encoding_hours(cpu_seconds_by_qp: pd.Series, cores: int, images: int = PAPER_IMAGES) -> float:
    """Wall-clock hours to encode `images` images at every QP of `cpu_seconds_by_qp` (mean encoder CPU
    seconds per image, indexed by QP) with one single-threaded encoder per core, as the workflow schedules
    them; NaN unless every one of the study's QPs was measured."""
    cpu = cpu_seconds_by_qp.reindex(list(PAPER_VTM_BPP))
    return float(images * cpu.sum() / cores / 3600) if cpu.notna().all() else float("nan")
