"""How far an ICM training run has got: one table row per checkpoint or resume state, measured on COCO images.

Per checkpoint: mean bpp of the real bitstream files, mean RGB PSNR, edge and off-edge PSNR (contours.py:
3-px band along the instance-mask boundaries, pixels >= 5 px from them) and YOLOv5n mAP@[.5:.95] of the
decoded images. A resume state (`<stage>.pth.tar.resume`) is first written out as a float16 checkpoint,
as the stage would ship it. The workflow measures shipped codecs; this follows a stage while it trains.

    .venv/bin/python scripts/icm_checkpoint_table.py --images 50 \
        resources/weights/icm/training/icm-task-0.pth.tar.resume resources/weights/icm/training/base-2.pth.tar \
        --init resources/weights/icm/training/icm-task-1.pth.tar
"""
from __future__ import annotations

import argparse
import datetime
import tempfile
from pathlib import Path

import pandas as pd
import torch

from icm_privacy.allocator import keep_freed_memory
from icm_privacy.codecs import make_codec
from icm_privacy.contours import coco_masks, scored_regions
from icm_privacy.detection import Detector, coco_results
from icm_privacy.detection_metrics import evaluate_detections, load_ground_truth
from icm_privacy.images import read_png, read_rgb8
from icm_privacy.quality import image_quality
from icm_privacy.training.loop import save_checkpoint, training_model

DATASET = Path("../shared/datasets/coco-persons")
DETECTOR = Path("../shared/weights/yolov5n.pt")


def as_checkpoint(path: Path, init: Path | None, folder: Path) -> Path:
    """A checkpoint as is; a resume state written out as the float16 checkpoint its stage would ship (its
    model built from `init`, the stage it is fine-tuned from, or random: the entropy tables' sizes match)."""
    if not path.name.endswith(".resume"):
        return path
    _, model = training_model("icm-mse", 0, init, "cpu")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["state_dict"])
    written = folder / path.name.replace(".pth.tar.resume", f"-step{state['step']}.pth.tar")
    save_checkpoint(model, written, float16=True)
    return written


def measure(checkpoint: Path, dataset: Path, count: int, detector: Detector, folder: Path) -> dict:
    coco = load_ground_truth(dataset / "instances.json")
    ids = sorted(coco.imgs)[:count]
    codec = make_codec("icm-mse", checkpoint=str(checkpoint), device="cpu", threads=torch.get_num_threads())
    rows, detections = [], []
    for image_id in ids:
        name = coco.imgs[image_id]["file_name"]
        original = read_rgb8(dataset / "images" / name)
        coded = codec.code(original, 0, folder / "image.lic", folder / "image.png", name)
        decoded = read_png(folder / "image.png")
        masks = coco_masks(coco, image_id)
        quality = image_quality(original, decoded, [], scored_regions(masks) if len(masks) else None)
        rows.append({"bpp": coded.bpp, **{key: quality[key] for key in ("psnr_rgb", "edge_psnr", "off_edge_psnr")}})
        detections += coco_results(detector.detect([decoded])[0], image_id)
    means = pd.DataFrame(rows).mean()
    return {"checkpoint": checkpoint.name, "images": len(ids), **means.round(4).to_dict(),
            "map": round(evaluate_detections(detections, coco, ids)["map"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--init", type=Path,
                        help="for the resume state of a fine-tune: the checkpoint it is fine-tuned from")
    parser.add_argument("--dataset", type=Path, default=DATASET, help="COCO folder: images/ and instances.json")
    parser.add_argument("--images", type=int, default=50, help="the first N images by COCO id")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    detector = Detector(DETECTOR, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        table = pd.DataFrame([measure(as_checkpoint(path, args.init, folder), args.dataset, args.images, detector,
                                      folder) for path in args.checkpoints])
    print(f"# {datetime.date.today()}, {args.dataset} (first {args.images} images), YOLOv5n, "
          f"{torch.get_num_threads()} threads")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
