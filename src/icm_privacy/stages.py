"""What each workflow step does, given its input and output paths. Rule scripts only call these.

Per-image steps (prepare, code) take one image; model steps (detect, embed) take a shard of images
and load their model once. Every output is written atomically, so an interrupted job never leaves a
file that looks complete.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from .files import atomic_path
from .images import ImageError, read_png, read_rgb8, write_png

log = logging.getLogger("icm_privacy")

MANIFEST_COLUMNS = ["image", "source", "width", "height", "status", "reason"]


@contextlib.contextmanager
def logged(log_path: str):
    """Send this step's messages and any error (with its traceback) to the rule's log file."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file:
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
        try:
            yield
        except Exception as error:
            traceback.print_exc(file=log_file)
            print(f"error: {error}", file=sys.stderr)  # the one-line reason, shown by Snakemake too
            raise


def prepare_images(sources: dict[str, str], output_folder: str) -> pd.DataFrame:
    """Decode each source image to 8-bit RGB PNG; refuse unreadable ones with the reason, keep going."""
    folder = Path(output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for image_id, source in sources.items():
        try:
            rgb = read_rgb8(source)
        except ImageError as error:
            log.warning("refused %s", error)
            rows.append([image_id, source, 0, 0, "refused", str(error)])
            continue
        write_png(rgb, folder / f"{image_id}.png")
        rows.append([image_id, source, rgb.shape[1], rgb.shape[0], "accepted", ""])
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    with atomic_path(folder / "manifest.csv") as temporary:
        manifest.to_csv(temporary, index=False)
    return manifest


def accepted_images(manifest_path: str | Path) -> list[str]:
    manifest = pd.read_csv(manifest_path, dtype={"image": str})
    return manifest.loc[manifest.status == "accepted", "image"].tolist()


def code_image(image_path: str, bitstream_path: str, decoded_path: str, codec: str, quality: float,
               options: dict, threads: int, faces_csv: str | None = None) -> None:
    """Encode one prepared image with one codec point, then decode the bitstream file back.

    De-identification codecs also get the image's face boxes, found on the original.
    """
    from .codecs import make_codec
    from .codecs.deidentify import face_boxes

    codec_instance = make_codec(codec, **options, threads=threads)
    image_id = Path(image_path).stem
    boxes = None
    if codec_instance.needs_faces:
        boxes = face_boxes(pd.read_csv(faces_csv, dtype={"image": str}), image_id)
    result = codec_instance.code(read_png(image_path), quality, Path(bitstream_path), Path(decoded_path),
                                 image_id, faces=boxes)
    log.info("%s q=%s %s: %d bytes, %.4f bpp, encode %.2f s, decode %.2f s", codec, quality,
             Path(image_path).stem, result.bitstream_bytes, result.bpp, result.encode_seconds, result.decode_seconds)


def detect_faces(image_paths: dict[str, str], faces_csv: str, detector_name: str = "mtcnn") -> None:
    """Detect faces on the original images of one shard (detector loaded once)."""
    from .faces import detect_faces as detect, faces_frame, load_detector

    detector = load_detector(detector_name)
    rows = []
    for image_id, path in image_paths.items():
        found = detect(detector, image_id, read_png(path))
        log.info("%s: %d faces", image_id, len(found))
        rows.extend(found)
    with atomic_path(faces_csv) as temporary:
        faces_frame(rows).to_csv(temporary, index=False)


def crop_faces(faces_csv: str, image_paths: dict[str, str], crops_npz: str, min_confidence: float) -> None:
    """Crop every face box (confidence >= the lowest threshold) from one version of the shard's images."""
    from .faces import crop_face

    faces = pd.read_csv(faces_csv, dtype={"image": str, "face_id": str})
    faces = faces[faces.confidence >= min_confidence]
    crops = {}
    for image_id, image_faces in faces.groupby("image"):
        rgb = read_png(image_paths[image_id])
        for face in image_faces.itertuples():
            crops[face.face_id] = crop_face(rgb, (face.x, face.y, face.x + face.w, face.y + face.h))
    with atomic_path(crops_npz) as temporary:
        np.savez_compressed(temporary, **crops)


def embed_faces(crops_npz: str, embeddings_npz: str, models: list[str], batch_size: int) -> None:
    """Embed every crop of one shard and codec point with each face model.

    All models run in one job: the framework import (seconds) is paid once per job, and adding a
    codec point still adds only that point's jobs.
    """
    from .embeddings import embed_crops

    with np.load(crops_npz) as crops:
        face_ids = list(crops.files)
        face_crops = [crops[face_id] for face_id in face_ids]
    vectors = {}
    for model in models:
        vectors[model] = embed_crops(face_crops, model, batch_size)
        log.info("%s: %d faces embedded", model, len(face_ids))
    with atomic_path(embeddings_npz) as temporary:
        np.savez(temporary, face_ids=np.asarray(face_ids, dtype=str), **vectors)


def load_embeddings(paths: list[str], model: str) -> dict[str, np.ndarray]:
    """face id -> embedding by `model`, from several shard files."""
    vectors = {}
    for path in paths:
        with np.load(path) as data:
            vectors.update(zip(data["face_ids"].tolist(), data[model]))
    return vectors


def tabulate(shard_folders: list[str], faces_csvs: list[str], results: str, points: list[str], models: list[str],
             extensions: dict[str, str], outputs) -> None:
    """Gather per-image rates and per-face similarities from every shard and codec point."""
    from .tables import face_similarity_table, rates_table

    manifest = pd.concat([pd.read_csv(Path(folder) / "manifest.csv", dtype={"image": str}) for folder in shard_folders])
    accepted = manifest[manifest.status == "accepted"]
    bitstreams = pd.DataFrame(
        [(codec, quality, image, f"{results}/bitstreams/{codec}/{quality}/{image}.{extensions[codec]}")
         for codec, quality in (point.split("/") for point in points) for image in accepted.image],
        columns=["codec", "quality", "image", "path"],
    )
    rates = rates_table(accepted, bitstreams)
    faces = pd.concat([pd.read_csv(path, dtype={"image": str, "face_id": str}) for path in faces_csvs])
    embeddings = {
        model: {point: load_embeddings(sorted(Path(results, "embeddings", point).glob("shard-*.npz")), model)
                for point in ["original", *points]}
        for model in models
    }
    embedded_faces = faces[faces.face_id.isin(embeddings[models[0]]["original"])]
    face_table = face_similarity_table(embedded_faces, rates, embeddings)
    for table, path in ((rates, outputs.rates), (face_table, outputs.faces), (manifest, outputs.manifest)):
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False)


def summarise(inputs, models: list[str], thresholds: list[float], outputs) -> None:
    """Write Table 1 (CSV and Markdown) per confidence threshold, and a run summary."""
    from .tables import table1, to_markdown

    # qualities stay text ("32", "1.5"), as in paths: tables are joined on them
    rates = pd.read_csv(inputs.rates, dtype={"image": str, "quality": str})
    faces = pd.read_csv(inputs.faces, dtype={"image": str, "face_id": str, "quality": str})
    manifest = pd.read_csv(inputs.manifest, dtype={"image": str})
    detection = (pd.read_csv(inputs.detection, dtype={"quality": str}) if "detection" in inputs.keys() else None)
    tables = {}
    for threshold in thresholds:
        tables[threshold] = table1(rates, faces, models, threshold)
        if detection is not None:  # the study's "detection accuracy" column
            tables[threshold] = tables[threshold].merge(
                detection[["codec", "quality", "map"]].rename(columns={"map": "detection_map"}),
                on=["codec", "quality"], how="left")
        for output in outputs.tables:
            if f"conf{threshold:.3f}." in output:
                with atomic_path(output) as temporary:
                    if output.endswith(".csv"):
                        tables[threshold].to_csv(temporary, index=False)
                    else:
                        temporary.write_text(to_markdown(tables[threshold]))
    refused = manifest[manifest.status != "accepted"]
    lines = [
        "# Run summary", "",
        f"- images listed: {len(manifest)}; accepted: {len(manifest) - len(refused)}; refused: {len(refused)}",
        f"- codec points: {rates.groupby(['codec', 'quality']).ngroups}; face models: {', '.join(models)}",
        *[f"- faces with detector confidence >= {t:.3f}: {int(faces[faces.confidence >= t].face_id.nunique())}"
          for t in thresholds],
        "- bpp_mean: mean of per-image bpp; bpp_pooled: total bits / total pixels (both over all accepted images)",
        "",
    ]
    if len(refused):
        lines += ["## Refused images", "", *[f"- {row.reason}" for row in refused.itertuples()], ""]
    for threshold, table in tables.items():
        lines += [f"## Table 1, detector confidence >= {threshold:.3f}", "", to_markdown(table)]
    with atomic_path(outputs.summary) as temporary:
        temporary.write_text("\n".join(lines))


def _stacked_embeddings(results: str, point: str, models: list[str], face_ids: list[str]) -> dict[str, np.ndarray]:
    paths = sorted(Path(results, "embeddings", point).glob("shard-*.npz"))
    return {model: np.stack([vectors[f] for f in face_ids])
            for model in models for vectors in [load_embeddings(paths, model)]}


def identity_labels(dataset: dict) -> dict[str, str] | None:
    """Person identities by image or face id: built in for the demo, else from the optional CSV."""
    from .datasets import DEMO_PHOTOS

    if dataset["kind"] == "demo":
        return {image_id: photo.identity for image_id, photo in DEMO_PHOTOS.items()}
    if dataset.get("identities"):
        labels = pd.read_csv(dataset["identities"], dtype=str)
        return dict(zip(labels["key"], labels["identity"]))
    return None


def privacy_metrics(faces_table_csv: str, rates_csv: str, results: str, points: list[str], models: list[str],
                    thresholds: list[float], identities: dict | None, settings: dict, outputs) -> None:
    """Re-identification, identification and TAR@FAR with bootstrap intervals, and BD-style summaries."""
    from .privacy import bd_difference_table, privacy_table

    face_table = pd.read_csv(faces_table_csv, dtype={"image": str, "face_id": str, "quality": str})
    faces = face_table.drop_duplicates("face_id").sort_values("face_id").reset_index(drop=True)
    face_ids = faces.face_id.tolist()
    point_keys = [tuple(point.split("/")) for point in points]
    rates = pd.read_csv(rates_csv, dtype={"image": str, "quality": str})
    mean_bpp = rates.groupby(["codec", "quality"]).bpp.mean().to_dict()
    table = privacy_table(
        faces, _stacked_embeddings(results, "original", models, face_ids),
        {key: _stacked_embeddings(results, "/".join(key), models, face_ids) for key in point_keys},
        mean_bpp, confidence_thresholds=thresholds, identity_labels=identities,
        n_resamples=settings["n_resamples"], seed=settings["seed"],
    )
    reference = settings.get("reference_codec") or point_keys[0][0]
    differences = bd_difference_table(table, ["mean_cosine", "reid_published", "rank1"], reference)
    for frame, path in ((table, outputs.table), (differences, outputs.differences)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False)


def plot_privacy(privacy_csv: str, metric: str, threshold: float, outputs) -> None:
    from .plots import save_figure
    from .privacy_figures import metric_vs_bpp_figure

    table = pd.read_csv(privacy_csv)
    labels = {"reid_published": "re-identification rate\n(DeepFace threshold)", "rank1": "rank-1 identification rate"}
    figure = metric_vs_bpp_figure(table, metric, min_confidence=threshold, ylabel=labels.get(metric, metric))
    save_figure(figure, outputs.png, outputs.pdf)


def plot_example_faces(faces_table_csv: str, results: str, points: list[str], model: str, count: int, outputs) -> None:
    """The largest faces: original crop beside each codec point's decoded crop, with its similarity."""
    from .plots import save_figure
    from .privacy_figures import example_faces_figure

    face_table = pd.read_csv(faces_table_csv, dtype={"image": str, "face_id": str, "quality": str})
    largest = (face_table.drop_duplicates("face_id").sort_values("short_side", ascending=False)
               .face_id.head(count).tolist())

    def crops(point):
        found = {}
        for path in sorted(Path(results, "crops", point).glob("shard-*.npz")):
            with np.load(path) as data:
                found.update({face_id: data[face_id] for face_id in largest if face_id in data.files})
        return [found[face_id] for face_id in largest]

    similarity = face_table.set_index(["codec", "quality", "face_id"])[f"cos_{model}"]
    decoded = {}
    for point in points:
        codec, quality = point.split("/")
        decoded[f"{codec} {quality}"] = list(zip(crops(point), (similarity[(codec, quality, f)] for f in largest)))
    save_figure(example_faces_figure(crops("original"), decoded), outputs.png, outputs.pdf)


def detect_objects(image_paths: list[str], detections_json: str, settings: dict, dataset: dict, threads: int) -> None:
    """YOLOv5 on one shard of one image version; COCO results json (model loaded once per job)."""
    import torch

    from .datasets import coco_image_ids
    from .detection import Detector, write_detections

    torch.set_num_threads(threads)  # more threads than cores makes OpenMP spin on busy machines
    detector = Detector(settings["weights"], device=settings["device"], batch_size=settings["batch_size"])
    run = write_detections(image_paths, detections_json, detector, coco_image_ids(dataset))
    log.info("%d images, %d detections, %.2f s", run.images, run.detections, run.seconds)


def detection_accuracy(detections: dict[str, list[str]], rates_csv: str, manifest_csv: str, dataset: dict,
                       output_csv: str) -> None:
    """COCO mAP, AP50, AP75 and person AP per codec point (and the originals), with the point's mean bpp."""
    from .datasets import coco_image_ids
    from .detection_metrics import detection_table

    manifest = pd.read_csv(manifest_csv, dtype={"image": str})
    coco_ids = coco_image_ids(dataset)
    evaluated = [coco_ids[image] for image in manifest.loc[manifest.status == "accepted", "image"]]
    rates = pd.read_csv(rates_csv, dtype={"image": str, "quality": str})
    mean_bpp = rates.groupby(["codec", "quality"]).bpp.mean()
    points = []
    for point, files in detections.items():
        codec, quality = point.split("/") if "/" in point else (point, "")
        bpp = float(mean_bpp.get((codec, quality), np.nan))
        points.append({"codec": codec, "quality": quality, "bpp_mean": bpp, "detections": files, "image_ids": evaluated})
    table = detection_table(dataset["annotations"], points)
    with atomic_path(output_csv) as temporary:
        table.to_csv(temporary, index=False)
