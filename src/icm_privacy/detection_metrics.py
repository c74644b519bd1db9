"""COCO box mAP of detections (a COCO results json) against a dataset's instance annotations.

pycocotools' COCOeval does the matching; the numbers are read from its accumulated precision table
(all areas, 100 detections per image, as COCO reports them) instead of its printed summary, so the
person-class AP comes from the same run. Values are fractions in [0, 1]; NaN where the evaluated
images hold no annotation of the class (COCOeval's -1).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


class DetectionEvaluationError(ValueError):
    """Annotations or detections that cannot be evaluated; the message names the file."""


def load_ground_truth(annotations: str | Path) -> COCO:
    """Load a COCO instances json (pycocotools' progress messages silenced)."""
    path = Path(annotations)
    try:
        dataset = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DetectionEvaluationError(f"{path}: cannot read COCO annotations ({error})") from error
    missing = [key for key in ("images", "annotations", "categories") if key not in dataset]
    if missing:
        raise DetectionEvaluationError(f"{path}: not a COCO instances json (no {', '.join(missing)})")
    ground_truth = COCO()
    ground_truth.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth.createIndex()
    return ground_truth


def _read_detections(detections: str | Path | Sequence[str | Path] | list[dict]) -> tuple[list[dict], str]:
    """Records, and a name for messages, from a results json, several (one per shard), or the records."""
    if isinstance(detections, (str, Path)):
        return _read_results_json(Path(detections)), str(detections)
    items = list(detections)
    if items and all(isinstance(item, (str, Path)) for item in items):
        return [record for path in items for record in _read_results_json(Path(path))], ", ".join(map(str, items))
    return items, "detections"


def _read_results_json(path: Path) -> list[dict]:
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DetectionEvaluationError(f"{path}: cannot read detections ({error})") from error
    if not isinstance(records, list):
        raise DetectionEvaluationError(f"{path}: not a COCO results json (expected a list of records)")
    return records


def evaluate_detections(
    detections: str | Path | Sequence[str | Path] | list[dict],
    ground_truth: COCO | str | Path,
    image_ids: Iterable[int] | None = None,
) -> dict[str, float | int]:
    """mAP@[.5:.95], AP50, AP75 and person AP of COCO results on `image_ids` (default: every annotated image).

    `detections`: a COCO results json, several (one per shard of a codec point), or the records.
    Give `image_ids` whenever the detections cover a subset: an image missing from the results is
    then an image where nothing was found, not an image left out.
    """
    if not isinstance(ground_truth, COCO):
        ground_truth = load_ground_truth(ground_truth)
    records, source = _read_detections(detections)
    known = set(ground_truth.getImgIds())
    image_ids = sorted(known if image_ids is None else set(image_ids))
    unknown = sorted({record["image_id"] for record in records} - known, key=str)
    if unknown or not set(image_ids) <= known:
        strays = unknown or sorted(set(image_ids) - known, key=str)
        raise DetectionEvaluationError(
            f"{source}: image ids {strays[:5]} are not in the annotations (are stems mapped to COCO ids?)"
        )
    wanted = set(image_ids)
    # copies: loadRes adds fields (area, id, segmentation) to the records it is given
    evaluated = [dict(record) for record in records if record["image_id"] in wanted]

    with contextlib.redirect_stdout(io.StringIO()):
        results = _results_coco(ground_truth, evaluated)
        evaluation = COCOeval(ground_truth, results, iouType="bbox")
        evaluation.params.imgIds = image_ids
        evaluation.evaluate()
        evaluation.accumulate()

    # precision: [IoU threshold, recall level, category, area range, max detections]; area "all", 100 dets
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    iou_thresholds = list(np.round(evaluation.params.iouThrs, 2))
    categories = ground_truth.loadCats(ground_truth.getCatIds())
    person = [category["id"] for category in categories if category["name"] == "person"]
    person_index = evaluation.params.catIds.index(person[0]) if person else None
    return {
        "images": len(image_ids),
        "detections": len(evaluated),
        "map": _mean_precision(precision),
        "ap50": _mean_precision(precision[iou_thresholds.index(0.5)]),
        "ap75": _mean_precision(precision[iou_thresholds.index(0.75)]),
        "ap_person": math.nan if person_index is None else _mean_precision(precision[..., person_index]),
    }


def _results_coco(ground_truth: COCO, records: list[dict]) -> COCO:
    """pycocotools' loadRes, which cannot take an empty list: no detections is a valid result (AP 0)."""
    if records:
        return ground_truth.loadRes(records)
    results = COCO()
    results.dataset = {key: ground_truth.dataset[key] for key in ("images", "categories")} | {"annotations": []}
    results.createIndex()
    return results


def _mean_precision(precision: np.ndarray) -> float:
    """COCO's AP: the mean over the entries that exist (-1 marks a class absent from the images)."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else math.nan


def detection_table(
    ground_truth: COCO | str | Path, points: Iterable[Mapping[str, object]]
) -> pd.DataFrame:
    """One row per codec point: its labels (codec, quality, ...) followed by its detection metrics.

    Each point is a mapping with `detections` (results json or jsons), optionally `image_ids`, and any labels.
    """
    if not isinstance(ground_truth, COCO):
        ground_truth = load_ground_truth(ground_truth)
    rows = []
    for point in points:
        labels = {key: value for key, value in point.items() if key not in ("detections", "image_ids")}
        metrics = evaluate_detections(point["detections"], ground_truth, point.get("image_ids"))
        rows.append({**labels, **metrics})
    return pd.DataFrame(rows)
