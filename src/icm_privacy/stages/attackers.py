"""Rules of workflow/rules/attackers.smk: the attackers who learn from a codec's output. Their training
images (coco-train2017, never an evaluated image) are prepared, their faces found, coded and embedded by
the evaluated images' own rules in the attacker training folder; here a restorer is trained per codec
entry and an embedding adapter fitted per codec point, and the restorer is applied to the evaluated faces.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_path
from ..images import read_png
from . import shard_pngs

log = logging.getLogger("icm_privacy")

MIN_USEFUL_GAIN_DB = 0.3  # a restorer gaining less than this is not yet a restorer (issue 30): the summary says so


def _faces(faces_csvs: list[str], min_confidence: float) -> pd.DataFrame:
    """The faces that are cropped and scored (confidence >= the lowest threshold), from every shard."""
    faces = pd.concat([pd.read_csv(path, dtype={"image": str, "face_id": str}) for path in faces_csvs])
    return faces[faces.confidence >= min_confidence]


def _boxes(faces: pd.DataFrame) -> list[tuple[int, int, int, int]]:
    return [(face.x, face.y, face.x + face.w, face.y + face.h) for face in faces.itertuples()]


def fit_adapters(original_files: list[str], decoded_files: list[str], faces_csvs: list[str], models: list[str],
                 min_confidence: float, outputs) -> None:
    """One codec point's embedding adapters, one per face model, fitted on the attacker's training faces
    (their original and decoded crops' embeddings), and how much each moves held-out faces toward their
    originals (`outputs.adapters`: the fitted maps; `outputs.fit`: one row per model)."""
    from ..embedding_adapter import EmbeddingAdapter, save_adapters
    from ..embeddings import load_embeddings

    faces = _faces(faces_csvs, min_confidence).set_index("face_id")
    adapters, rows = {}, []
    for model in models:
        original, decoded = load_embeddings(original_files, model), load_embeddings(decoded_files, model)
        face_ids = sorted(set(original) & set(decoded))
        adapter = EmbeddingAdapter().fit(np.stack([decoded[f] for f in face_ids]), np.stack([original[f] for f in face_ids]),
                                         faces.loc[face_ids, "image"].to_numpy())
        adapters[model] = adapter
        rows.append({"model": model, "faces": len(face_ids), "images": faces.loc[face_ids, "image"].nunique(),
                     "relative_penalty": adapter.relative_penalty_, "cv_cosine_decoded": adapter.cv_cosine_decoded_,
                     "cv_cosine_adapted": adapter.cv_cosine_adapted_})
        log.info("%s: %d faces, penalty %g x variance, held-out mean cosine %.4f -> %.4f", model, len(face_ids),
                 adapter.relative_penalty_, adapter.cv_cosine_decoded_, adapter.cv_cosine_adapted_)
    save_adapters(adapters, outputs.adapters)
    with atomic_path(outputs.fit) as temporary:
        pd.DataFrame(rows).to_csv(temporary, index=False)


def _training_images(image_folders: list[str], decoded_folders: dict[str, list[str]], faces: pd.DataFrame):
    """Every training image with its decode at each quality and its face boxes."""
    from ..restoration import TrainingImage

    by_image = dict(list(faces.groupby("image")))
    images = []
    for shard, folder in enumerate(image_folders):
        for path in shard_pngs(folder):
            decoded = {quality: read_png(Path(folders[shard]) / path.name) for quality, folders in decoded_folders.items()}
            boxes = _boxes(by_image[path.stem]) if path.stem in by_image else []
            images.append(TrainingImage(path.stem, read_png(path), decoded, boxes))
    return images


def train_restorer(image_folders: list[str], faces_csvs: list[str], decoded_folders: dict[str, list[str]],
                   settings: dict, min_confidence: float, label: str, gpu: bool, threads: int, outputs) -> None:
    """Train one codec entry's restorer on the attacker's training images, except one in
    `settings["holdout_every"]`, and measure on those held-out images, per codec point, the PSNR of the
    decoded and of the restored images against the originals (whole images, and the face boxes)."""
    from ..datasets import held_out
    from ..quality import box_region, psnr
    from ..restoration import FaceRestorer, device_for

    images = _training_images(image_folders, decoded_folders, _faces(faces_csvs, min_confidence))
    kept = [image for image in images if not held_out(image.image_id, settings["holdout_every"])]
    tested = [image for image in images if held_out(image.image_id, settings["holdout_every"])]
    if not tested or not kept:
        raise ValueError(f"{label}: {len(kept)} training and {len(tested)} held-out images; the restorer needs both "
                         "(raise privacy.attack_training.first_n or lower holdout_every)")
    restorer = FaceRestorer(steps=settings["steps"], batch_size=settings["batch_size"], patch=settings["patch"],
                            threads=threads, device=device_for(gpu)).fit(kept, list(decoded_folders))
    log.info("%s: %d steps on %d images (%d faces) in %.0f CPU-s, %.0f s", label, restorer.steps, len(kept),
             sum(len(image.faces) for image in kept), restorer.cpu_seconds_, restorer.wall_seconds_)
    restorer.save(outputs.restorer)
    rows = []
    for quality in restorer.qualities_:
        measured = []
        for image in tested:
            decoded, restored = image.decoded[quality], restorer.restore(image.decoded[quality], quality)
            faces = box_region(decoded.shape[:2], [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in image.faces])
            measured.append([psnr(image.original, decoded), psnr(image.original, restored),
                             *((psnr(image.original, decoded, faces), psnr(image.original, restored, faces))
                               if faces.any() else (np.nan, np.nan))])
        decoded_psnr, restored_psnr, decoded_face, restored_face = np.nanmean(np.array(measured, dtype=float), axis=0)
        rows.append({"codec": label, "quality": quality, "holdout_images": len(tested),
                     "psnr_decoded": decoded_psnr, "psnr_restored": restored_psnr, "psnr_gain": restored_psnr - decoded_psnr,
                     "face_psnr_decoded": decoded_face, "face_psnr_restored": restored_face,
                     "face_psnr_gain": restored_face - decoded_face,
                     "training_images": len(kept), "training_faces": sum(len(image.faces) for image in kept),
                     "steps": restorer.steps, "parameters": restorer.parameters_, "device": restorer.device,
                     "cpu_seconds": restorer.cpu_seconds_, "wall_seconds": restorer.wall_seconds_,
                     "final_loss": restorer.history_[-1][1]})
        log.info("%s %s: PSNR %.2f -> %.2f dB on %d held-out images", label, quality, decoded_psnr, restored_psnr, len(tested))
    with atomic_path(outputs.measured) as temporary:
        pd.DataFrame(rows).to_csv(temporary, index=False)


def restore_faces(faces_csv: str, decoded_folder: str, restorer_path: str, quality: str, min_confidence: float,
                  gpu: bool, threads: int, crops_npz: str) -> None:
    """The restoration attacker's face crops for one codec point and shard: each face box of the decoded
    image, restored by the entry's restorer (computed on a window around the box, the same pixels as
    restoring the whole image)."""
    from ..restoration import FaceRestorer, device_for

    restorer = FaceRestorer.load(restorer_path, threads=threads, device=device_for(gpu))
    crops = {}
    for image_id, image_faces in _faces([faces_csv], min_confidence).groupby("image"):
        decoded = read_png(Path(decoded_folder) / f"{image_id}.png")
        crops.update(zip(image_faces.face_id, restorer.restore_boxes(decoded, quality, _boxes(image_faces))))
    with atomic_path(crops_npz) as temporary:
        np.savez_compressed(temporary, **crops)


def tabulate_attackers(restorer_csvs: list[str], adapter_csvs: dict[str, str], outputs) -> None:
    """The learning attackers' training record in two tables: each restorer's PSNR gain per codec point on
    held-out training images with its training cost (`outputs.restorers`), and each adapter's fit per
    codec point and face model (`outputs.adapters`)."""
    from ..points import PointKey

    def gathered(tables: list[pd.DataFrame]) -> pd.DataFrame:  # empty where that attacker is off
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    restorers = gathered([pd.read_csv(path, dtype={"quality": str}) for path in restorer_csvs])
    adapters = gathered([pd.read_csv(path).assign(codec=key.label, quality=key.quality)
                         for key, path in ((PointKey.parse(point), path) for point, path in adapter_csvs.items())])
    if len(adapters):
        adapters = adapters[["codec", "quality", *adapters.columns.drop(["codec", "quality"])]]
    for table, path in ((restorers, outputs.restorers), (adapters, outputs.adapters)):
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False)
