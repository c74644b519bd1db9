"""YOLOv5 detection and COCO mAP: pure logic on small hand-made inputs, then the real checkpoint on
real COCO photos and real VVC-decoded images (about 1-2 minutes on 2 cores)."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.cocoeval import COCOeval

from icm_privacy import detection
from icm_privacy.codecs import make_codec
from icm_privacy.datasets import coco_image_ids
from icm_privacy.detection import (
    COCO80_TO_COCO91,
    DetectionError,
    Detector,
    Letterbox,
    WeightsUnavailable,
    coco_image_id,
    letterbox,
    load_yolov5,
    resolve_weights,
    select_detections,
    to_original_pixels,
    write_detections,
)
from icm_privacy.detection_metrics import (
    DetectionEvaluationError,
    detection_table,
    evaluate_detections,
    load_ground_truth,
)
from icm_privacy.datasets import DatasetError, detection_skip_reason
from icm_privacy.images import read_rgb8
from conftest import YOLOV5N

pytestmark = pytest.mark.heavy  # real models or binaries: not in the quick lane

SUBSET = 12  # images coded per QP: the first by COCO id


@pytest.fixture(scope="module")
def instances(coco_persons) -> Path:
    return coco_persons / "instances.json"


@pytest.fixture(scope="module")
def stem_to_id(instances) -> dict[str, int]:
    return coco_image_ids({"annotations": instances})


# --- pre- and post-processing --------------------------------------------------------------------


def test_letterbox_keeps_size_and_pads_to_the_stride_centred():
    rgb = np.full((426, 640, 3), 7, dtype=np.uint8)
    padded, placement = letterbox(rgb)
    assert padded.shape == (448, 640, 3)
    assert placement == Letterbox(scale=1.0, left=0, top=11)
    assert (padded[:11] == 114).all() and (padded[437:] == 114).all()
    assert (padded[11:437] == 7).all()


def test_letterbox_shrinks_the_long_side_by_averaging():
    checkerboard = np.indices((960, 1280)).sum(axis=0) % 2 * 200  # 0/200 alternating pixels
    rgb = np.repeat(checkerboard[:, :, None], 3, axis=2).astype(np.uint8)
    padded, placement = letterbox(rgb)
    assert padded.shape == (480, 640, 3) and placement.scale == 0.5
    assert np.abs(padded.astype(int) - 100).max() <= 1  # each 2x2 block averages to 100, no aliasing


def test_boxes_map_back_to_original_pixels_and_are_clipped():
    placement = Letterbox(scale=0.5, left=0, top=16)
    # boxes given in network input pixels: original (100, 40)-(300, 240) and one spilling out of the image
    boxes = torch.tensor([[50.0, 36.0, 150.0, 136.0, 0.9, 3.0], [-10.0, 10.0, 700.0, 200.0, 0.5, 0.0]])
    original = to_original_pixels(boxes, placement, width=1280, height=300)
    assert torch.allclose(original[0], torch.tensor([100.0, 40.0, 300.0, 240.0, 0.9, 3.0]))
    assert torch.allclose(original[1, :4], torch.tensor([0.0, 0.0, 1280.0, 300.0]))


def _prediction(rows: list[tuple]) -> torch.Tensor:
    """Raw head rows (cx, cy, w, h, objectness, {class: probability}) for 80 classes."""
    out = torch.zeros((len(rows), 85))
    for index, (cx, cy, w, h, objectness, classes) in enumerate(rows):
        out[index, :5] = torch.tensor([cx, cy, w, h, objectness])
        for label, probability in classes.items():
            out[index, 5 + label] = probability
    return out


def test_select_detections_suppresses_per_class_and_keeps_runner_up_classes():
    prediction = _prediction([
        (100, 100, 50, 50, 0.9, {0: 0.9, 1: 0.5}),  # a person that might be a bicycle
        (102, 101, 50, 50, 0.8, {0: 0.9}),  # same object again, IoU ~0.9: suppressed
        (400, 300, 60, 40, 0.9, {2: 0.9}),  # another object
        (250, 250, 30, 30, 0.0005, {5: 1.0}),  # objectness under the threshold
    ])
    selected = select_detections(prediction, conf_threshold=0.001, iou_threshold=0.6, max_detections=300)
    found = {(int(label), round(float(score), 3)) for label, score in zip(selected[:, 5], selected[:, 4])}
    assert found == {(0, 0.81), (2, 0.81), (1, 0.45)}
    assert torch.allclose(selected[selected[:, 5] == 1][0, :4], torch.tensor([75.0, 75.0, 125.0, 125.0]))
    capped = select_detections(prediction, 0.001, 0.6, max_detections=2)
    assert sorted(capped[:, 5].tolist()) == [0.0, 2.0]  # the two best scores survive the cap


def test_select_detections_on_nothing_returns_an_empty_table():
    assert select_detections(_prediction([(10, 10, 5, 5, 0.0, {})]), 0.001, 0.6, 300).shape == (0, 6)


# --- image ids and weights -------------------------------------------------------------------------


def test_image_ids_come_from_stems_or_a_mapping():
    assert coco_image_id(Path("decoded/vvc/37/000000000139.png")) == 139
    assert coco_image_id(Path("obama.png")) == "obama"
    assert coco_image_id(Path("a/000000000139.png"), {"000000000139": 7}) == 7
    with pytest.raises(DetectionError, match=r"a/x\.png.*'x' is not in the given image id mapping"):
        coco_image_id(Path("a/x.png"), {"y": 1})


def test_missing_weights_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(DetectionError, match=r"nothing\.pt: no such checkpoint file"):
        resolve_weights(tmp_path / "nothing.pt")
    monkeypatch.setitem(detection.OFFICIAL_WEIGHTS, "yolov5s", "http://127.0.0.1:9/yolov5s.pt")
    with pytest.raises(WeightsUnavailable, match=r"cannot download http://127\.0\.0\.1:9/yolov5s\.pt to .*yolov5s\.pt"):
        resolve_weights("yolov5s", tmp_path / "cache")
    assert not (tmp_path / "cache" / "yolov5s.pt").exists()  # no partial file left under the final name


class NotYolo(torch.nn.Module):
    pass


def test_checkpoints_that_are_not_yolov5_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DetectionError, match=r"garbage\.pt: not a YOLOv5 detection checkpoint"):
        load_yolov5(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": NotYolo()}, foreign)  # unpickling it would import this test module: refused
    with pytest.raises(DetectionError, match=r"foreign\.pt: .*it pickles test_detection\.NotYolo, which are not YOLOv5"):
        load_yolov5(foreign)
    plain = tmp_path / "weights_only.pt"
    torch.save({"model": {"conv.weight": torch.zeros(1)}}, plain)
    with pytest.raises(DetectionError, match=r"weights_only\.pt: holds no YOLOv5 detection model"):
        load_yolov5(plain)


# --- evaluation on hand-made cases -------------------------------------------------------------------


def _perfect_predictions(instances: Path) -> list[dict]:
    annotations = json.loads(instances.read_text())["annotations"]
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in annotations
        if not a["iscrowd"]
    ]


def test_ground_truth_as_predictions_scores_ap_one(instances):
    metrics = evaluate_detections(_perfect_predictions(instances), instances)
    assert metrics["images"] == 50
    assert metrics["map"] == pytest.approx(1.0) and metrics["ap50"] == pytest.approx(1.0)
    assert metrics["ap_person"] == pytest.approx(1.0)


def test_missed_images_and_no_detections_lower_ap(instances):
    ground_truth = load_ground_truth(instances)
    perfect = _perfect_predictions(instances)
    half = sorted(ground_truth.getImgIds())[:25]
    partial = evaluate_detections([p for p in perfect if p["image_id"] in half], ground_truth)
    assert 0.2 < partial["map"] < 0.8
    nothing = evaluate_detections([], ground_truth)
    assert nothing["map"] == 0.0 and nothing["detections"] == 0
    # restricted to the images it covers, the same partial set is perfect again
    assert evaluate_detections(perfect, ground_truth, half)["map"] == pytest.approx(1.0)


def test_a_box_with_iou_0675_counts_at_ap50_but_not_ap75(tmp_path):
    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps({
        "images": [{"id": 1, "width": 100, "height": 100, "file_name": "1.png"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}],
    }))
    # 40 x 27 inside the 40 x 40 box: IoU 0.675, which passes the thresholds 0.50, 0.55, 0.60, 0.65 of ten
    metrics = evaluate_detections([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 27], "score": 0.9}], instances)
    assert metrics["ap50"] == pytest.approx(1.0) and metrics["ap75"] == pytest.approx(0.0)
    assert metrics["map"] == pytest.approx(0.4) and metrics["ap_person"] == pytest.approx(0.4)


def test_detections_of_unknown_images_and_unannotated_datasets_are_named(instances, tmp_path):
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]))
    with pytest.raises(DetectionEvaluationError, match=r"detections\.json: image ids \[999\] are not in the annotations"):
        evaluate_detections(detections, instances)
    assert detection_skip_reason(instances, "coco") is None
    assert detection_skip_reason(None, "demo") == "dataset 'demo' has no COCO instance annotations: detection mAP is skipped"
    with pytest.raises(DatasetError, match=r"missing\.json: cannot read COCO annotations"):
        detection_skip_reason(tmp_path / "missing.json", "coco")


# --- the real checkpoint on real photos -------------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    # One torch thread: on a machine shared with other jobs two threads spin and wait (this file took
    # 222 s with two, 75 s with one, at load average 10); on an idle machine one costs a few seconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Detector(YOLOV5N, batch_size=8)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ground_truth(instances):
    return load_ground_truth(instances)


@pytest.fixture(scope="module")
def originals(coco_persons, stem_to_id) -> list[Path]:
    return sorted(coco_persons.glob("images/*.jpg"), key=lambda path: stem_to_id[path.stem])


@pytest.fixture(scope="module")
def original_detections(detector, originals, stem_to_id, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("detections") / "originals.json"
    run = write_detections(originals, output, detector, stem_to_id)
    assert run.images == 50 and run.detections == len(json.loads(output.read_text()))
    return output


def test_yolo_classes_map_to_the_coco_categories_of_the_same_name(detector, ground_truth):
    names = {category["id"]: category["name"] for category in ground_truth.dataset["categories"]}
    assert [names[category_id] for category_id in COCO80_TO_COCO91] == detector.model.names


def test_yolov5n_map_on_coco_originals_is_plausible(original_detections, ground_truth):
    records = json.loads(original_detections.read_text())
    assert {"image_id", "category_id", "bbox", "score"} == set(records[0])
    assert max(sum(r["image_id"] == i for r in records) for i in ground_truth.getImgIds()) <= 300
    metrics = evaluate_detections(original_detections, ground_truth)
    # YOLOv5n: 28.0 mAP on COCO val2017. Measured on these 50 images: 24.9 (AP50 41.1, person AP 40.2);
    # boxes not shifted back by the letterbox padding score 20.0 (checked by breaking it on purpose).
    assert metrics["map"] == pytest.approx(0.249, abs=0.015)
    assert metrics["ap50"] == pytest.approx(0.411, abs=0.02)
    assert metrics["ap_person"] == pytest.approx(0.402, abs=0.03)
    # the same numbers as pycocotools' own summary
    with contextlib.redirect_stdout(io.StringIO()):
        reference = COCOeval(ground_truth, ground_truth.loadRes(str(original_detections)), "bbox")
        reference.evaluate(), reference.accumulate(), reference.summarize()
    assert metrics["map"] == pytest.approx(reference.stats[0]) and metrics["ap50"] == pytest.approx(reference.stats[1])


def test_detections_do_not_depend_on_batch_company(detector, originals):
    images = [read_rgb8(path) for path in originals[:4]]
    assert len({image.shape for image in images}) > 1  # mixed sizes exercise the grouping by padded size
    together = detector.detect(images)
    for image, batched in zip(images, together):
        alone = detector.detect([image])[0]
        assert np.allclose(alone[:20], batched[:20], atol=0.05)


def test_vvc_at_qp47_loses_map_that_qp22_keeps(
    detector, originals, original_detections, ground_truth, stem_to_id, tmp_path
):
    subset = originals[:SUBSET]
    ids = [stem_to_id[path.stem] for path in subset]
    codec = make_codec("vvc", preset="faster")
    points = [{"codec": "original", "qp": None, "detections": original_detections, "image_ids": ids}]
    for qp in (22, 47):
        decoded = []
        for path in subset:
            decoded.append(tmp_path / f"{qp}" / f"{path.stem}.png")
            codec.code(read_rgb8(path), qp, tmp_path / f"{qp}" / f"{path.stem}.266", decoded[-1], path.name)
        output = tmp_path / f"vvc-{qp}.json"
        write_detections(decoded, output, detector, stem_to_id)
        points.append({"codec": "vvc", "qp": qp, "detections": output, "image_ids": ids})
    table = detection_table(ground_truth, points)
    assert list(table.columns[:2]) == ["codec", "qp"] and (table["images"] == SUBSET).all()
    original, qp22, qp47 = table["map"].tolist()
    # measured: 0.321 (original), 0.321 (QP 22), 0.210 (QP 47)
    assert abs(qp22 - original) < 0.03  # nearly transparent coding keeps the machine task
    assert qp47 < qp22 - 0.06  # heavy coding costs mAP
