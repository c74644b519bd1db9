"""How far one codec setting is from a reference codec at the same quality parameter (vvenc against VTM).

Each image is coded by both at the same QP; per image, the bpp ratio (candidate / reference, bpp from
the bitstream files) and the PSNR difference (8-bit RGB, quality.psnr) are taken, then summarised over
the images of each QP. The equal-quality comparison is privacy.bd_rate over the QPs' mean points.
"""
from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .codecs import Codec, bits_per_pixel
from .privacy import bd_rate
from .quality import psnr


@dataclass(frozen=True)
class CodedImage:
    image: str
    qp: int
    bpp: float
    psnr: float
    seconds: float  # encoding, wall clock
    cpu_seconds: float  # encoding, CPU time of the encoder processes (steadier than wall time on a shared machine)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def code_images(codec: Codec, images: dict[str, np.ndarray], qps: Sequence[int], folder: Path) -> list[CodedImage]:
    """Encode every image at every QP to a bitstream file in `folder` and decode that file: bpp from the
    file's bytes, PSNR of the decoded image, encoding time (the codecs here run external encoders)."""
    folder.mkdir(parents=True, exist_ok=True)
    coded = []
    for qp in qps:
        for name, rgb in images.items():
            bitstream = folder / f"{name}-{qp}.{codec.extension}"
            wall, cpu = time.perf_counter(), _children_cpu()
            codec.encode(rgb, qp, bitstream)
            wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
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
