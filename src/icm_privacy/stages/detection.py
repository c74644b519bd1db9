"""Rules of workflow/rules/detection.smk: YOLOv5 on the originals and every decoded image, COCO mAP
per codec point, and its curve against bpp."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_path
from ..points import PointKey
from . import shard_pngs

log = logging.getLogger("icm_privacy")

ORIGINAL = "original"  # the detections of the original images, beside the codec points'


def detect_objects(images_folder: str, detections_json: str, settings: dict, dataset: dict, threads: int) -> None:
    """YOLOv5 on one shard of one image version; COCO results json (model loaded once per job)."""
    import torch

    from ..datasets import coco_image_ids
    from ..detection import Detector, write_detections

    torch.set_num_threads(threads)  # more threads than cores makes OpenMP spin on busy machines
    detector = Detector(settings["weights"], device=settings["device"], batch_size=settings["batch_size"])
    run = write_detections(shard_pngs(images_folder), detections_json, detector, coco_image_ids(dataset))
    log.info("%d images, %d detections, %.2f s", run.images, run.detections, run.seconds)


def detection_accuracy(detections: dict[str, list[str]], rates_csv: str, manifest_csv: str, dataset: dict,
                       output_csv: str) -> None:
    """COCO mAP, AP50, AP75 and person AP per codec point (and the originals), with the point's mean bpp."""
    from ..datasets import coco_image_ids
    from ..detection_metrics import detection_table

    manifest = pd.read_csv(manifest_csv, dtype={"image": str})
    coco_ids = coco_image_ids(dataset)
    evaluated = [coco_ids[image] for image in manifest.loc[manifest.status == "accepted", "image"]]
    rates = pd.read_csv(rates_csv, dtype={"image": str, "quality": str})
    mean_bpp = rates.groupby(["codec", "quality"]).bpp.mean()
    points = []
    for point, files in detections.items():
        codec, quality = (point, "") if point == ORIGINAL else PointKey.parse(point)
        bpp = float(mean_bpp.get((codec, quality), np.nan))
        points.append({"codec": codec, "quality": quality, "bpp_mean": bpp, "detections": files, "image_ids": evaluated})
    table = detection_table(dataset["annotations"], points)
    with atomic_path(output_csv) as temporary:
        table.to_csv(temporary, index=False)


def plot_rate_accuracy(detection_csv: str, png_path: str) -> None:
    """bpp vs detection mAP per codec, the originals' mAP as a line; PNG and PDF beside it."""
    from ..plots import plot_rate_accuracy as plot

    plot(pd.read_csv(detection_csv), str(Path(png_path).with_suffix("")))

