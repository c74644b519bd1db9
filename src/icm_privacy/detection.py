"""Object detection with a COCO-trained YOLOv5 checkpoint, written out in COCO results format.

The machine task beside privacy: detect objects in the decoded images of one codec point (or in the
originals) and store the detections as a COCO results json, so that scoring them against a dataset's
annotations (detection_metrics.py) is a separate, cheap step.

The official checkpoints are pickled YOLOv5 modules (`models.yolo.Model` in v6.x releases,
`models.yolo.DetectionModel` in v7.0). Rather than installing the YOLOv5 code base, whose PyPI package
pulls in ultralytics, roboflow, boto3, sahi and more, this module gives those pickled class names
small layer classes of its own with the same attributes, and lets `torch.load(weights_only=True)`
rebuild only those classes and a few torch layers: unknown pickled objects are refused, not executed.

Pre- and post-processing follow YOLOv5's evaluation settings for COCO mAP: the long side scaled to
640 px, padded to a multiple of the 32 px stride with gray 114, confidence threshold 0.001,
class-wise NMS at IoU 0.6 with every class above the threshold kept per box, at most 300 boxes.
"""
from __future__ import annotations

import json
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from .files import atomic_path
from .images import read_rgb8
from .torch_compat import nms

OFFICIAL_WEIGHTS = {
    name: f"https://github.com/ultralytics/yolov5/releases/download/v7.0/{name}.pt"
    for name in ("yolov5n", "yolov5s", "yolov5m")
}
DEFAULT_WEIGHTS_DIR = Path("resources/weights")  # relative to the workflow root, like the config's paths

# COCO category id of each of the 80 YOLO classes (COCO numbers 91 categories, 80 of them used).
COCO80_TO_COCO91 = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31,
    32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57,
    58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87,
    88, 89, 90,
)

PAD_VALUE = 114  # YOLOv5 trains and evaluates with gray padding
MAX_NMS_CANDIDATES = 30000  # YOLOv5 caps the boxes entering NMS; only matters for degenerate inputs


class DetectionError(RuntimeError):
    """Detection cannot run or its input is unusable; the message names the file and the problem."""


class WeightsUnavailable(DetectionError):
    """Named weights are not cached and cannot be downloaded."""


# --- YOLOv5's layers, under the names its checkpoints were pickled with --------------------------
# Their sub-layers and settings come from the checkpoint; only the forward passes are defined here.


class Conv(nn.Module):
    """Convolution, batch norm, SiLU (attributes conv, bn, act)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two convolutions with an optional residual connection (cv1, cv2, add)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block: bottlenecks on one half of the channels, concatenated with the other (cv1-3, m)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), dim=1))


class SPPF(nn.Module):
    """Three chained max-pools, concatenated: pooling at growing receptive fields (cv1, cv2, m)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        pooled1 = self.m(x)
        pooled2 = self.m(pooled1)
        return self.cv2(torch.cat((x, pooled1, pooled2, self.m(pooled2)), dim=1))


class Concat(nn.Module):
    """Concatenation of several earlier outputs along dimension d."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, dim=self.d)


class Detect(nn.Module):
    """The head: per level, one 1x1 convolution predicting na anchors x (box, objectness, classes).

    Returns (batch, boxes, 5 + classes) rows: centre x, centre y, width, height in input pixels,
    objectness, class probabilities. The checkpoint stores `anchors` in units of each level's stride.
    """

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        rows = []
        for level, feature in enumerate(features):
            out = self.m[level](feature)
            batch, _, height, width = out.shape
            out = out.view(batch, self.na, self.no, height, width).permute(0, 1, 3, 4, 2).sigmoid()
            stride = self.stride[level].item()
            ys, xs = torch.meshgrid(
                torch.arange(height, device=out.device, dtype=out.dtype),
                torch.arange(width, device=out.device, dtype=out.dtype),
                indexing="ij",
            )
            cell = torch.stack((xs, ys), dim=-1)  # (height, width, 2) as x, y
            anchor_pixels = (self.anchors[level] * stride).view(1, self.na, 1, 1, 2)
            centre = (out[..., 0:2] * 2 - 0.5 + cell) * stride  # the centre may leave its cell by half
            size = (out[..., 2:4] * 2) ** 2 * anchor_pixels  # up to 4x the anchor
            rows.append(torch.cat((centre, size, out[..., 4:]), dim=-1).view(batch, -1, self.no))
        return torch.cat(rows, dim=1)


class YoloV5(nn.Module):
    """The whole network: layers in order; `f` names each layer's inputs, `save` the outputs kept."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model[-1](self.neck_features(x))

    def neck_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """What the Detect head reads: one feature map per output stride (8, 16, 32 px)."""
        outputs: list[torch.Tensor | None] = []
        for layer in self.model[:-1]:
            x = self._inputs(layer, x, outputs)
            x = layer(x)
            outputs.append(x if layer.i in self.save else None)
        return self._inputs(self.model[-1], x, outputs)

    @staticmethod
    def _inputs(layer: nn.Module, x, outputs: list):
        if layer.f == -1:
            return x
        return outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]


_CHECKPOINT_CLASSES = [
    (YoloV5, "models.yolo.Model"),
    (YoloV5, "models.yolo.DetectionModel"),
    (Detect, "models.yolo.Detect"),
    (Conv, "models.common.Conv"),
    (Bottleneck, "models.common.Bottleneck"),
    (C3, "models.common.C3"),
    (SPPF, "models.common.SPPF"),
    (Concat, "models.common.Concat"),
    nn.Conv2d, nn.BatchNorm2d, nn.SiLU, nn.MaxPool2d, nn.Upsample, nn.Sequential, nn.ModuleList, set,
]
_ALLOWED_NAMES = {
    entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}" for entry in _CHECKPOINT_CLASSES
}


def resolve_weights(weights: str | Path, cache_dir: str | Path = DEFAULT_WEIGHTS_DIR) -> Path:
    """A checkpoint path as given, or an official model name (yolov5n/s/m) cached in `cache_dir`.

    A name not yet cached is downloaded from the official YOLOv5 v7.0 release.
    """
    if str(weights) in OFFICIAL_WEIGHTS:
        name = str(weights)
        path = Path(cache_dir) / f"{name}.pt"
        if not path.is_file():
            _download(OFFICIAL_WEIGHTS[name], path)
        return path
    path = Path(weights)
    if not path.is_file():
        raise DetectionError(
            f"{path}: no such checkpoint file (give a path or one of {', '.join(OFFICIAL_WEIGHTS)})"
        )
    return path


def _download(url: str, path: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(path) as temporary:
            temporary.write_bytes(response.read())
    except OSError as error:  # URLError, timeouts and disk errors are all OSErrors
        raise WeightsUnavailable(
            f"cannot download {url} to {path} ({error}); fetch it on a machine with internet access "
            "and place it there, or pass the checkpoint's path instead of its name"
        ) from error


def load_yolov5(path: str | Path, device: str | torch.device = "cpu") -> YoloV5:
    """Rebuild a COCO-trained YOLOv5 detection model from an official checkpoint, float32, in eval mode."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(_CHECKPOINT_CLASSES):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError ... for bad files
        raise DetectionError(
            f"{path}: not a YOLOv5 detection checkpoint this loader can read ({_why_refused(path, error)})"
        ) from error
    model = None
    if isinstance(checkpoint, dict):
        model = checkpoint.get("ema") or checkpoint.get("model")  # training checkpoints keep the EMA
    if not isinstance(model, YoloV5) or not isinstance(model.model[-1], Detect):
        raise DetectionError(f"{path}: holds no YOLOv5 detection model (found {type(model).__name__})")
    if model.model[-1].nc != len(COCO80_TO_COCO91):
        raise DetectionError(f"{path}: model has {model.model[-1].nc} classes, not the 80 COCO classes")
    return model.float().eval().to(device)


def _why_refused(path: Path, error: Exception) -> str:
    """Name the pickled objects that were refused, rather than torch's generic weights_only advice."""
    try:
        foreign = set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) - _ALLOWED_NAMES
    except Exception as unreadable:  # not even a file written by torch.save
        return str(unreadable)
    if not foreign:
        return str(error)
    return f"it pickles {', '.join(sorted(foreign))}, which are not YOLOv5 v6-v7 detection layers"


# --- pre-processing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed in the network input: scaled by `scale`, then shifted by the padding."""

    scale: float
    left: int
    top: int


def letterbox(rgb: np.ndarray, size: int = 640, stride: int = 32) -> tuple[np.ndarray, Letterbox]:
    """Scale the long side to `size` and pad (gray, centred) to the next multiple of `stride`.

    Minimal rectangular padding rather than a square keeps 640x480 images at 640x480, as YOLOv5's
    detect.py does per image (its val.py pads whole batches to a shared shape instead; see
    docs/detection.md). Shrinking averages pixel areas (box filter) so fine detail does not alias.
    """
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    new_width, new_height = round(width * scale), round(height * scale)
    if (new_width, new_height) != (width, height):
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        rgb = np.asarray(Image.fromarray(rgb).resize((new_width, new_height), resample))
    pad_width, pad_height = -new_width % stride, -new_height % stride
    left, top = pad_width // 2, pad_height // 2
    padded = np.pad(
        rgb,
        ((top, pad_height - top), (left, pad_width - left), (0, 0)),
        mode="constant",
        constant_values=PAD_VALUE,
    )
    return padded, Letterbox(scale, left, top)


# --- post-processing --------------------------------------------------------------------------------


def select_detections(
    prediction: torch.Tensor, conf_threshold: float, iou_threshold: float, max_detections: int
) -> torch.Tensor:
    """Turn one image's raw head output into (n, 6) rows: x1, y1, x2, y2, score, class.

    score = objectness x class probability; a box yields one row per class whose score passes the
    threshold (mAP rewards keeping the runner-up classes). NMS runs per class: boxes are shifted by
    a class-dependent offset larger than the image, so boxes of different classes never overlap.
    """
    candidates = prediction[prediction[:, 4] > conf_threshold]
    class_scores = candidates[:, 5:] * candidates[:, 4:5]
    rows, classes = torch.nonzero(class_scores > conf_threshold, as_tuple=True)
    scores = class_scores[rows, classes]
    if len(scores) > MAX_NMS_CANDIDATES:
        scores, top = scores.topk(MAX_NMS_CANDIDATES)
        rows, classes = rows[top], classes[top]
    centre, size = candidates[rows, 0:2], candidates[rows, 2:4]
    boxes = torch.cat((centre - size / 2, centre + size / 2), dim=1)
    if len(boxes) == 0:
        return torch.zeros((0, 6))
    offsets = classes.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)
    keep = nms(boxes + offsets, scores, iou_threshold)[:max_detections]
    return torch.cat((boxes[keep], scores[keep, None], classes[keep, None].to(boxes.dtype)), dim=1)


def to_original_pixels(detections: torch.Tensor, placement: Letterbox, width: int, height: int) -> torch.Tensor:
    """Undo the letterbox on x1, y1, x2, y2 and clip the boxes to the original image."""
    boxes = detections[:, :4].clone()
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - placement.left) / placement.scale).clamp(0, width)
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - placement.top) / placement.scale).clamp(0, height)
    return torch.cat((boxes, detections[:, 4:]), dim=1)


# --- the detector -----------------------------------------------------------------------------------


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Detector:
    """A YOLOv5 model loaded once, detecting in batches.

    Images are batched only with images of the same padded size, so an image's detections do not
    depend on which other images share its job or batch.
    """

    def __init__(
        self,
        weights: str | Path = "yolov5n",
        *,
        device: str = "auto",
        image_size: int = 640,
        batch_size: int = 16,
        conf_threshold: float = 0.001,
        iou_threshold: float = 0.6,
        max_detections: int = 300,
        cache_dir: str | Path = DEFAULT_WEIGHTS_DIR,
    ):
        self.weights = resolve_weights(weights, cache_dir)
        self.device = pick_device(device)
        self.model = load_yolov5(self.weights, self.device)
        self.image_size = image_size
        self.batch_size = batch_size
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per HxWx3 uint8 RGB image, an (n, 6) float array: x1, y1, x2, y2 (original pixels), score, class."""
        placed = [letterbox(rgb, self.image_size) for rgb in images]
        same_size = defaultdict(list)
        for index, (padded, _) in enumerate(placed):
            same_size[padded.shape].append(index)
        results: list[np.ndarray | None] = [None] * len(images)
        for indices in same_size.values():
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                pixels = np.stack([placed[i][0] for i in batch]).transpose(0, 3, 1, 2)
                tensor = torch.from_numpy(pixels).to(self.device).float() / 255
                # Post-processing runs on the CPU: results then do not depend on the device's NMS kernel.
                predictions = self.model(tensor).cpu()
                for i, prediction in zip(batch, predictions):
                    selected = select_detections(
                        prediction, self.conf_threshold, self.iou_threshold, self.max_detections
                    )
                    height, width = images[i].shape[:2]
                    results[i] = to_original_pixels(selected, placed[i][1], width, height).numpy()
        return results

    def detect_files(
        self, paths: Iterable[str | Path], image_ids: Mapping[str, int] | None = None
    ) -> list[dict]:
        """COCO results (image_id, category_id, bbox [x, y, w, h], score) for image files, in file order.

        Files are decoded a few batches at a time, so a job's memory does not grow with its length.
        """
        paths = [Path(path) for path in paths]
        ids = [coco_image_id(path, image_ids) for path in paths]
        results = []
        chunk = 4 * self.batch_size
        for start in range(0, len(paths), chunk):
            images = [read_rgb8(path) for path in paths[start : start + chunk]]
            for image_id, detections in zip(ids[start : start + chunk], self.detect(images)):
                results.extend(coco_results(detections, image_id))
        return results


def coco_results(detections: np.ndarray, image_id: int | str) -> list[dict]:
    """COCO results records for one image's (n, 6) detections; coordinates to 1/1000 pixel."""
    return [
        {
            "image_id": image_id,
            "category_id": COCO80_TO_COCO91[int(label)],
            "bbox": [round(float(x1), 3), round(float(y1), 3), round(float(x2 - x1), 3), round(float(y2 - y1), 3)],
            "score": round(float(score), 5),
        }
        for x1, y1, x2, y2, score, label in detections
    ]


def coco_image_id(path: str | Path, image_ids: Mapping[str, int] | None = None) -> int | str:
    """An image's id in the results: `image_ids[stem]` when a mapping is given (for COCO datasets:
    datasets.coco_image_ids), else the stem itself, as an integer when it is one (COCO names files
    by zero-padded id: 000000000139 -> 139)."""
    stem = Path(path).stem
    if image_ids is not None:
        if stem not in image_ids:
            raise DetectionError(f"{path}: image {stem!r} is not in the given image id mapping")
        return image_ids[stem]
    return int(stem) if stem.isdigit() else stem


@dataclass(frozen=True)
class DetectionRun:
    images: int
    detections: int
    seconds: float  # decoding, inference and post-processing; model loading excluded


def write_detections(
    paths: Sequence[str | Path],
    output: str | Path,
    detector: Detector,
    image_ids: Mapping[str, int] | None = None,
) -> DetectionRun:
    """Detect objects in `paths` and write one COCO results json (a list of records) to `output`."""
    started = time.perf_counter()
    results = detector.detect_files(paths, image_ids)
    seconds = time.perf_counter() - started
    with atomic_path(output) as temporary:
        temporary.write_text(json.dumps(results))
    return DetectionRun(len(paths), len(results), seconds)
