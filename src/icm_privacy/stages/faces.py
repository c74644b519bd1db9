"""Rules of workflow/rules/faces.smk: faces found once per shard on the originals, the same boxes
cropped from every version of the images, each crop embedded with every face model."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_path
from ..images import read_png
from ..weights import use_deepface_home
from . import shard_pngs

log = logging.getLogger("icm_privacy")


def detect_faces(images_folder: str, faces_csv: str, detector_name: str, deepface_home: str) -> None:
    """Detect faces on the original images of one shard (detector loaded once)."""
    use_deepface_home(deepface_home)
    from ..faces import detect_faces as detect, faces_frame, load_detector

    detector = load_detector(detector_name)
    rows = []
    image_paths = shard_pngs(images_folder)
    for number, path in enumerate(image_paths, 1):
        found = detect(detector, path.stem, read_png(path))
        log.info("[%d/%d] %s: %d faces", number, len(image_paths), path.stem, len(found))
        rows.extend(found)
    with atomic_path(faces_csv) as temporary:
        faces_frame(rows).to_csv(temporary, index=False)


def crop_faces(faces_csv: str, images_folder: str, crops_npz: str, min_confidence: float) -> None:
    """Crop every face box (confidence >= the lowest threshold) from one version of the shard's images."""
    from ..faces import crop_face

    faces = pd.read_csv(faces_csv, dtype={"image": str, "face_id": str})
    faces = faces[faces.confidence >= min_confidence]
    crops = {}
    for image_id, image_faces in faces.groupby("image"):
        rgb = read_png(Path(images_folder) / f"{image_id}.png")
        for face in image_faces.itertuples():
            crops[face.face_id] = crop_face(rgb, (face.x, face.y, face.x + face.w, face.y + face.h))
    with atomic_path(crops_npz) as temporary:
        np.savez_compressed(temporary, **crops)


def crop_faces_reduced(faces_csv: str, images_folder: str, bitstream_folder: str, options: dict, factor: int,
                       min_confidence: float, outputs) -> None:
    """The cross-resolution attacker's crops for one downscale point and shard: each face box, scaled
    by 1/factor, cut from the bitstream's decode before upsampling (`outputs.decoded`) and from the
    original shrunk the same way (`outputs.original`)."""
    from ..codecs import make_codec
    from ..codecs.downscale import cross_resolution_crops

    codec = make_codec("downscale", **options)
    faces = pd.read_csv(faces_csv, dtype={"image": str, "face_id": str})
    faces = faces[faces.confidence >= min_confidence]
    decoded_crops, original_crops = {}, {}
    for image_id, image_faces in faces.groupby("image"):
        original = read_png(Path(images_folder) / f"{image_id}.png")
        height, width = original.shape[:2]
        small = codec.decode_small(Path(bitstream_folder) / f"{image_id}.{codec.extension}", width, height)
        boxes = [(face.x, face.y, face.x + face.w, face.y + face.h) for face in image_faces.itertuples()]
        shrunk_crops, small_crops = cross_resolution_crops(original, small, boxes, factor)
        original_crops.update(zip(image_faces.face_id, shrunk_crops))
        decoded_crops.update(zip(image_faces.face_id, small_crops))
    for crops, path in ((decoded_crops, outputs.decoded), (original_crops, outputs.original)):
        with atomic_path(path) as temporary:
            np.savez_compressed(temporary, **crops)


def provision_weights(model: str, deepface_home: str, cache: str, marker: str) -> None:
    """Put `model`'s weights where DeepFace looks (checked by sha256), and write this run's marker."""
    from ..weights import provision

    weights = provision(model, Path(deepface_home), Path(cache))
    with atomic_path(marker) as temporary:
        temporary.write_text(f"{weights}\n")



def embed_faces(crops_npz: str, embeddings_npz: str, models: list[str], batch_size: int, deepface_home: str) -> None:
    """Embed every crop of one shard and codec point with each face model.

    All models run in one job: the framework import (seconds) is paid once per job, and adding a
    codec point still adds only that point's jobs.
    """
    use_deepface_home(deepface_home)
    from ..embeddings import embed_crops

    with np.load(crops_npz) as crops:
        face_ids = list(crops.files)
        face_crops = [crops[face_id] for face_id in face_ids]
    vectors = {}
    for model in models:
        started = time.process_time()  # this process's CPU, every thread: the model's build and forward passes
        vectors[model] = embed_crops(face_crops, model, batch_size)
        log.info("%s: %d faces embedded, %.2f CPU-s", model, len(face_ids), time.process_time() - started)
    with atomic_path(embeddings_npz) as temporary:
        np.savez(temporary, face_ids=np.asarray(face_ids, dtype=str), **vectors)
