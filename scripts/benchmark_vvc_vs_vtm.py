"""Which vvenc setting makes a QP mean what it means in VTM all-intra: per-image bpp and PSNR against VTM.

Codes real coco-persons images (centre crops, to keep VTM affordable) with the VTM build and with vvenc
(ffmpeg's libvvenc) at each preset, in vvenc's own QP mapping (`calibration: none`) and in all-intra
mode at each IntraQPOffset (`calibration: vtm` with IntraQPOffset overridden), and optionally VTM in
4:4:4; prints a dated table of
deviations from VTM per QP, each setting's Bjøntegaard delta rate against VTM (PSNR as the quality),
and the best-matching offset per preset (codec_calibration.mismatch_score). Times are CPU seconds of
the encoder processes.

    .venv/bin/python scripts/benchmark_vvc_vs_vtm.py
    .venv/bin/python scripts/benchmark_vvc_vs_vtm.py --first-n 8 --crop 256 --qps 32 35 37 40 47
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

from icm_privacy.codec_calibration import bd_rate_against, code_images, deviations, mismatch_score
from icm_privacy.codecs import make_codec
from icm_privacy.codecs.vtm import vtm_from_folder
from icm_privacy.datasets import list_images
from icm_privacy.images import read_rgb8

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def centre_crop(rgb, size: int):
    if size <= 0:
        return rgb
    top, left = max((rgb.shape[0] - size) // 2, 0), max((rgb.shape[1] - size) // 2, 0)
    return rgb[top:top + size, left:left + size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vtm", type=Path, default=SHARED / "tools/vtm-19.0", help="folder of the VTM build")
    parser.add_argument("--dataset", type=Path, default=SHARED / "datasets/coco-persons")
    parser.add_argument("--first-n", type=int, default=8, help="images, the first N by id")
    parser.add_argument("--crop", type=int, default=256, help="centre crop side in px (0: whole images)")
    parser.add_argument("--qps", type=int, nargs="+", default=[32, 35, 37, 40, 47])
    parser.add_argument("--presets", nargs="*", default=["faster", "medium", "slow"])
    parser.add_argument("--offsets", type=int, nargs="*", default=[0, -1, -2], help="IntraQPOffset values to try")
    parser.add_argument("--vtm-444", action="store_true", help="also VTM in 4:4:4 (as CompressAI codes RGB images)")
    args = parser.parse_args()

    sources = list_images({"kind": "coco", "images": str(args.dataset / "images"),
                           "annotations": str(args.dataset / "instances.json"), "first_n": args.first_n})
    images = {name: centre_crop(read_rgb8(path), args.crop) for name, path in sources.items()}
    print(f"# vvenc against VTM all-intra, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"command: {' '.join(sys.argv)}")
    print(f"{len(images)} coco-persons images ({', '.join(images)}), "
          f"{'centre crops ' + str(args.crop) + ' px' if args.crop else 'whole images'}, QPs {args.qps}, "
          f"load average {os.getloadavg()[0]:.1f} at start\n")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        reference = code_images(vtm_from_folder(args.vtm), images, args.qps, scratch / "vtm")
        for qp in args.qps:
            at_qp = [r for r in reference if r.qp == qp]
            print(f"VTM QP {qp}: CPU {sum(r.cpu_seconds for r in at_qp) / len(at_qp):.1f} s/image "
                  f"(wall {sum(r.seconds for r in at_qp) / len(at_qp):.1f} s)")
        print()
        settings = {("VTM 4:4:4", "-"): vtm_from_folder(args.vtm, chroma_format="444")} if args.vtm_444 else {}
        for preset in args.presets:
            settings[preset, "none"] = make_codec("vvc", preset=preset, calibration="none")
            for offset in args.offsets:
                settings[preset, f"vtm, IntraQPOffset={offset}"] = make_codec(
                    "vvc", preset=preset, vvenc_params=f"IntraQPOffset={offset}")
        print("| preset | calibration | QP | VTM bpp | vvenc bpp | bpp dev. mean | bpp dev. worst | VTM PSNR "
              "| PSNR diff. mean | PSNR diff. worst | CPU vs VTM |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        summary = []
        for (preset, calibration), codec in settings.items():
            coded = code_images(codec, images, args.qps, scratch / preset / calibration)
            table = deviations(reference, coded)
            for row in table.itertuples():
                print(f"| {preset} | {calibration} | {row.qp} | {row.bpp_ref:.4f} | {row.bpp:.4f} "
                      f"| {100 * row.bpp_deviation_mean:+.1f} % | {100 * row.bpp_deviation_worst:+.1f} % "
                      f"| {row.psnr_ref:.2f} | {row.psnr_difference_mean:+.2f} | {row.psnr_difference_worst:+.2f} "
                      f"| {row.cpu_ratio:.3f} |", flush=True)
            cpu_share = sum(c.cpu_seconds for c in coded) / sum(r.cpu_seconds for r in reference)
            summary.append((preset, calibration, mismatch_score(table), bd_rate_against(reference, coded), cpu_share))
    print("\n| preset | calibration | mismatch score | BD-rate vs VTM (PSNR) | CPU vs VTM | best offset of the preset |")
    print("|---|---|---|---|---|---|")
    for preset, calibration, score, rate, cpu_share in summary:
        offsets = [s for s in summary if s[0] == preset and s[1].startswith("vtm, ")]
        best = offsets and min(offsets, key=lambda s: s[2])[1] == calibration
        print(f"| {preset} | {calibration} | {score:.1f} | {100 * rate:+.1f} % | {cpu_share:.3f} | {'yes' if best else ''} |")


if __name__ == "__main__":
    main()
