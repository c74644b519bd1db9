"""Face embeddings with DeepFace models, on crops given as they are (no re-detection, no alignment).

DeepFace.represent with detector_backend="skip" takes a list of images and runs one batched forward
pass; the model is built once per process and cached by DeepFace, so a job pays the load once.
"""
from __future__ import annotations

import numpy as np


def embed_crops(crops_rgb: list[np.ndarray], model_name: str, batch_size: int = 64) -> np.ndarray:
    """Return an (n, d) float32 array: one embedding per crop, in order."""
    from deepface import DeepFace

    vectors = []
    for start in range(0, len(crops_rgb), batch_size):
        batch_bgr = [np.ascontiguousarray(crop[:, :, ::-1]) for crop in crops_rgb[start:start + batch_size]]
        results = DeepFace.represent(img_path=batch_bgr, model_name=model_name, detector_backend="skip",
                                     enforce_detection=False, align=False)
        if len(batch_bgr) == 1:  # DeepFace returns a flat list for a single image
            results = [results]
        vectors.extend(faces[0]["embedding"] for faces in results)
    if not vectors:
        return np.zeros((0, 0), dtype=np.float32)
    return np.asarray(vectors, dtype=np.float32)


def cosine_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays."""
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    return np.sum(first * second, axis=1) / np.where(norms == 0, np.nan, norms)


def load_embeddings(paths: list[str], model: str) -> dict[str, np.ndarray]:
    """face id -> embedding by `model`, from several shard files."""
    vectors = {}
    for path in paths:
        with np.load(path) as data:
            vectors.update(zip(data["face_ids"].tolist(), data[model]))
    return vectors


def stacked_embeddings(paths: list[str], models: list[str], face_ids: list[str]) -> dict[str, np.ndarray]:
    """model -> (faces, d) array of the faces' embeddings in `face_ids` order, from several shard files."""
    return {model: np.stack([vectors[f] for f in face_ids])
            for model in models for vectors in [load_embeddings(paths, model)]}
