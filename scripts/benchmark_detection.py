"""Detection speed and COCO mAP per codec point on a COCO-format dataset (default: shared coco-persons).

Detects on every original image, then codes the first --subset images (by COCO id) at each QP with
a real codec and detects on the decoded PNGs; prints one row per point: images, bpp, seconds per
image (decode + inference + NMS; model loading excluded) in wall-clock and in CPU time of all threads,
mAP@[.5:.95], AP50, person AP.

    .venv/bin/python scripts/benchmark_detection.py --qps 22 32 37 47
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from icm_privacy.codecs import make_codec
from icm_privacy.datasets import coco_image_ids
from icm_privacy.detection import Detector, write_detections
from icm_privacy.detection_metrics import evaluate_detections, load_ground_truth
from icm_privacy.images import read_rgb8

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# Python puts this script's folder first on sys.path; the workflow's scripts there (tabulate.py) would
# shadow packages of the same name that torch imports, even at exit.
sys.path.remove(str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=SHARED / "datasets/coco-persons",
                        help="folder with images/ and instances.json")
    parser.add_argument("--weights", default=str(SHARED / "weights/yolov5n.pt"), help="checkpoint path or yolov5n/s/m")
    parser.add_argument("--subset", type=int, default=16, help="images coded per QP (the first by COCO id)")
    parser.add_argument("--codec", default="vvc")
    parser.add_argument("--preset", default="faster")
    parser.add_argument("--qps", type=float, nargs="+", default=[22, 32, 37, 47])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 gives load-independent CPU times)")
    parser.add_argument("--workdir", type=Path, help="keep bitstreams, decoded PNGs and detections here")
    args = parser.parse_args()

    annotations = args.dataset / "instances.json"
    ground_truth = load_ground_truth(annotations)
    stem_to_id = coco_image_ids({"annotations": annotations})
    originals = sorted(args.dataset.glob("images/*"), key=lambda path: stem_to_id[path.stem])
    subset = originals[: args.subset]

    if args.threads:
        torch.set_num_threads(args.threads)
    detector = Detector(args.weights, device=args.device, batch_size=args.batch_size)
    print(f"detector {detector.weights} on {detector.device}, {torch.get_num_threads()} CPU threads, "
          f"load average {os.getloadavg()[0]:.1f}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="benchmark_detection_"))
    rows = []

    def measure(point: str, quality: float | None, paths: list[Path], bpp: float | None) -> None:
        output = workdir / "detections" / f"{point}-{quality or 0:g}-{len(paths)}.json"
        cpu_started = time.process_time()
        run = write_detections(paths, output, detector, stem_to_id)
        cpu_seconds = time.process_time() - cpu_started  # all threads; less hurt than wall time by other jobs
        metrics = evaluate_detections(output, ground_truth, [stem_to_id[path.stem] for path in paths])
        rows.append({"point": point, "quality": quality, "images": len(paths), "bpp": bpp,
                     "s_per_image": run.seconds / len(paths), "cpu_s_per_image": cpu_seconds / len(paths),
                     **{key: metrics[key] for key in ("map", "ap50", "ap_person")}})
        print(rows[-1], flush=True)

    measure("original", None, originals, None)
    measure("original", None, subset, None)
    codec = make_codec(args.codec, preset=args.preset)
    for qp in args.qps:
        folder = workdir / args.codec / f"{qp:g}"
        decoded, bpp = [], []
        for path in subset:
            decoded.append(folder / f"{path.stem}.png")
            coded = codec.code(read_rgb8(path), qp, folder / f"{path.stem}.{codec.extension}", decoded[-1], path.name)
            bpp.append(coded.bpp)
        measure(args.codec, qp, decoded, sum(bpp) / len(bpp))

    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}", na_rep="-"))
    print(f"\nload average {os.getloadavg()[0]:.1f}; files in {workdir}")


if __name__ == "__main__":
    main()
