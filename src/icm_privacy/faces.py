"""Faces: MTCNN detection (through DeepFace, as in the study) on original images, and box crops.

Detection runs on the ORIGINAL image only; the same box is then cropped from the original and from
every decoded image, so a codec is judged on the pixels where a face really was. The confidence kept
is the detector's raw score: DeepFace.extract_faces rounds it to 2 decimals, which would let 0.947
pass a 0.95 threshold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

FACE_COLUMNS = [
    "face_id", "image", "confidence", "x", "y", "w", "h", "short_side",
    "left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y", "nose_x", "nose_y",
    "mouth_left_x", "mouth_left_y", "mouth_right_x", "mouth_right_y",
]


def load_detector(name: str = "mtcnn"):
    """Build DeepFace's detector once per job."""
    from deepface.modules.modeling import build_model

    return build_model(task="face_detector", model_name=name)


def clip_box(x: int, y: int, w: int, h: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Clip a detector box to the image; return (x0, y0, x1, y1), or None if nothing is left inside."""
    x0, y0 = max(int(x), 0), max(int(y), 0)
    x1, y1 = min(int(x) + int(w), width), min(int(y) + int(h), height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def crop_face(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def _point(landmark) -> tuple[float, float]:
    return (float(landmark[0]), float(landmark[1])) if landmark is not None else (np.nan, np.nan)


def detect_faces(detector, image_id: str, rgb: np.ndarray) -> list[dict]:
    """Every face the detector reports, with raw confidence, clipped box and five landmarks."""
    height, width = rgb.shape[:2]
    faces = []
    regions = detector.detect_faces(np.ascontiguousarray(rgb[:, :, ::-1]))  # DeepFace detectors take BGR
    for region in sorted(regions, key=lambda r: (-float(r.confidence), r.x, r.y)):
        box = clip_box(region.x, region.y, region.w, region.h, width, height)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        row = {"face_id": f"{image_id}_f{len(faces)}", "image": image_id, "confidence": float(region.confidence),
               "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0, "short_side": min(x1 - x0, y1 - y0)}
        for name in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right"):
            row[f"{name}_x"], row[f"{name}_y"] = _point(getattr(region, name, None))
        faces.append(row)
    return faces


def faces_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=FACE_COLUMNS)
