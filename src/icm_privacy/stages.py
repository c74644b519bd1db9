"""What each workflow step does, given its input and output paths. Rule scripts only call these.

Every step takes a shard of images (the prepared originals, or one codec point's decoded images: a
folder of PNGs) and builds its codec or model once. Every output is written atomically, so an
interrupted job never leaves a file that looks complete.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from .files import atomic_path
from .images import ImageError, read_png, read_rgb8, write_png
from .tables import CROSS_RESOLUTION, STANDARD_ATTACKER
from .weights import use_deepface_home

log = logging.getLogger("icm_privacy")

MANIFEST_COLUMNS = ["image", "source", "width", "height", "status", "reason"]
BD_METRICS = ["mean_cosine", "reid_published", "rank1"]  # compared between codecs at equal bpp or mAP
TABLE1_QUALITY_COLUMNS = ["psnr_rgb_mean", "psnr_y_mean", "ms_ssim_mean", "face_psnr_mean"]  # from quality.py
NOT_READ = "not read"  # manifest status of a dataset folder's file that is no image the run reads


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


def shard_pngs(folder: str | Path) -> list[Path]:
    """The images of one version of a shard, by name (atomic writes' hidden partial files excluded)."""
    return sorted(path for path in Path(folder).glob("*.png") if not path.name.startswith("."))


CODING_COLUMNS = ["image", "bitstream", "bytes", "bpp", "estimated_bpp", "encode_seconds", "decode_seconds",
                  "encode_cpu_seconds"]


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:  # streamed: a large image's PNG is never held whole for this
        return hashlib.file_digest(file, "sha256").hexdigest()


def _finished_image(record_path: Path, key: str, bitstream: Path, decoded: Path) -> list | None:
    """The coding.csv row of an image a killed or failed run of this job finished, if its record is for
    the same work (`key`) and both its files are there with the bytes recorded; else None."""
    try:
        record = json.loads(record_path.read_text())
        if (record["key"] == key and len(record["row"]) == len(CODING_COLUMNS)  # not a record of an older layout
                and record["sha256"] == [_sha256(bitstream), _sha256(decoded)]):
            return record["row"]
    except (OSError, ValueError, KeyError):
        pass
    return None


def code_shard(images_folder: str, bitstream_folder: str, decoded_folder: str, codec: str, quality: float,
               options: dict, threads: int, faces_csv: str | None = None) -> pd.DataFrame:
    """Encode every prepared image of one shard at one codec point, and decode each bitstream file back.

    The codec is built once per job, so a learned codec loads its model once for the whole shard.
    `coding.csv` beside the bitstreams records, per image, the file's bytes and bpp, the model's
    likelihood estimate (learned codecs; empty for the others), the encode and decode seconds (wall
    clock) and the encoder's CPU seconds.
    De-identification codecs also get each image's face boxes, found on the original.

    Each image is coded into a work folder beside the bitstreams (`.shard-N.work`), which the
    scheduler does not delete when the job is killed or fails; a re-run reuses every image whose record
    there matches the work (image bytes, codec, quality, options, threads, face boxes) and whose files
    still hold the recorded bytes, so a crash costs the image in flight. An image the codec fails on is
    logged by name and the others are still coded; the job then fails naming every failed image, and
    the re-run codes only those. Only when all are done do the files move into the output folders.
    """
    from .codecs import CodecError, CodecUnavailable, make_codec
    from .codecs.deidentify import face_boxes

    codec_instance = make_codec(codec, **options, threads=threads)
    faces = pd.read_csv(faces_csv, dtype={"image": str}) if codec_instance.needs_faces else None
    bitstreams, decoded = Path(bitstream_folder), Path(decoded_folder)
    work = bitstreams.with_name(f".{bitstreams.name}.work")
    work.mkdir(parents=True, exist_ok=True)
    image_paths = shard_pngs(images_folder)
    rows, failed = [], {}
    for number, image_path in enumerate(image_paths, 1):
        image_id = image_path.stem
        boxes = None if faces is None else face_boxes(faces, image_id)
        key = json.dumps([_sha256(image_path), codec, quality, options, threads, boxes], sort_keys=True, default=str)
        bitstream, decoded_png = work / f"{image_id}.{codec_instance.extension}", work / f"{image_id}.png"
        record_path = work / f"{image_id}.json"
        row = _finished_image(record_path, key, bitstream, decoded_png)
        if row is not None:
            log.info("[%d/%d] %s: finished by an earlier run of this job, reused", number, len(image_paths), image_id)
            rows.append(row)
            continue
        rgb = read_png(image_path)
        try:
            result = codec_instance.code(rgb, quality, bitstream, decoded_png, image_id, faces=boxes)
        except CodecUnavailable:
            raise  # missing weights or binaries: every other image would fail the same way
        except CodecError as error:
            log.error("[%d/%d] %s failed: %s", number, len(image_paths), image_id, error)
            failed[image_id] = str(error)
            continue
        estimated = codec_instance.estimated_bpp(rgb, quality)
        row = [image_id, bitstream.name, result.bitstream_bytes, result.bpp, estimated,
               result.encode_seconds, result.decode_seconds, result.encode_cpu_seconds]
        with atomic_path(record_path) as temporary:  # written last: the record vouches for both files
            temporary.write_text(json.dumps({"key": key, "row": row, "sha256": [_sha256(bitstream), _sha256(decoded_png)]},
                                            default=float))  # numpy scalars in the row
        rows.append(row)
        log.info("[%d/%d] %s %s q=%s: %d bytes, %.4f bpp, encode %.2f s, decode %.2f s", number, len(image_paths),
                 image_id, codec, quality, result.bitstream_bytes, result.bpp, result.encode_seconds,
                 result.decode_seconds)
    if failed:
        raise CodecError(f"{len(failed)} of {len(image_paths)} images failed (the others are kept in {work} for "
                         "the re-run): " + "; ".join(f"{image}: {error}" for image, error in failed.items()))
    bitstreams.mkdir(parents=True, exist_ok=True)
    decoded.mkdir(parents=True, exist_ok=True)
    for row in rows:
        os.replace(work / row[1], bitstreams / row[1])
        os.replace(work / f"{row[0]}.png", decoded / f"{row[0]}.png")
    coding = pd.DataFrame(rows, columns=CODING_COLUMNS)
    with atomic_path(bitstreams / "coding.csv") as temporary:
        coding.to_csv(temporary, index=False)
    shutil.rmtree(work)
    return coding


def detect_faces(images_folder: str, faces_csv: str, detector_name: str, deepface_home: str) -> None:
    """Detect faces on the original images of one shard (detector loaded once)."""
    use_deepface_home(deepface_home)
    from .faces import detect_faces as detect, faces_frame, load_detector

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
    from .faces import crop_face

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
    from .codecs import make_codec
    from .codecs.downscale import cross_resolution_crops

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


def embed_faces(crops_npz: str, embeddings_npz: str, models: list[str], batch_size: int, deepface_home: str) -> None:
    """Embed every crop of one shard and codec point with each face model.

    All models run in one job: the framework import (seconds) is paid once per job, and adding a
    codec point still adds only that point's jobs.
    """
    use_deepface_home(deepface_home)
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


def tabulate(shard_folders: list[str], faces_csvs: list[str], coded_folders: dict[str, list[str]],
             embedding_files: dict[str, list[str]], models: list[str], reduced_points: list[str], outputs,
             unread: dict[str, str] | None = None) -> None:
    """Gather per-image rates and per-face similarities from every shard and codec point.

    `coded_folders`: codec point ("<codec>/<quality>") -> its shards' bitstream folders.
    `embedding_files`: image version ("original", "<codec>/<quality>", "<point>/reduced", ...) -> its
    shards' embedding files.
    `reduced_points`: downscale points whose faces the cross-resolution attacker also matches; their
    rows in faces.csv have attacker = cross-resolution.
    """
    from .tables import face_similarity_table, rates_table

    manifest = pd.concat([pd.read_csv(Path(folder) / "manifest.csv", dtype={"image": str}) for folder in shard_folders])
    if unread:  # the dataset folder's other files: listed with the reason, never dropped without a word
        manifest = pd.concat([manifest, pd.DataFrame([[Path(path).stem, path, 0, 0, NOT_READ, reason]
                                                      for path, reason in unread.items()], columns=MANIFEST_COLUMNS)])
    accepted = manifest[manifest.status == "accepted"]
    coded = []
    for point, folders in coded_folders.items():
        codec, quality = point.split("/")
        for folder in folders:
            coding = pd.read_csv(Path(folder) / "coding.csv", dtype={"image": str, "bitstream": str})
            coded.append(pd.DataFrame({"codec": codec, "quality": quality, "image": coding.image,
                                       "path": [str(Path(folder) / name) for name in coding.bitstream],
                                       "estimated_bpp": coding.estimated_bpp}))
    bitstreams = pd.concat(coded, ignore_index=True)
    points = list(coded_folders)
    rates = rates_table(accepted, bitstreams)
    faces = pd.concat([pd.read_csv(path, dtype={"image": str, "face_id": str}) for path in faces_csvs])
    embeddings = {model: {point: load_embeddings(embedding_files[point], model) for point in ["original", *points]}
                  for model in models}
    embedded_faces = faces[faces.face_id.isin(embeddings[models[0]]["original"])]
    face_tables = [face_similarity_table(embedded_faces, rates, embeddings).assign(attacker=STANDARD_ATTACKER)]
    for point in reduced_points:  # the cross-resolution attacker: reduced decode vs shrunk original
        codec, quality = point.split("/")
        reduced = {model: {"original": load_embeddings(embedding_files[f"{point}/reduced-original"], model),
                           point: load_embeddings(embedding_files[f"{point}/reduced"], model)}
                   for model in models}
        point_rates = rates[(rates.codec == codec) & (rates.quality == quality)]
        face_tables.append(face_similarity_table(embedded_faces, point_rates, reduced).assign(attacker=CROSS_RESOLUTION))
    face_table = pd.concat(face_tables, ignore_index=True)
    face_table.insert(2, "attacker", face_table.pop("attacker"))
    for table, path in ((rates, outputs.rates), (face_table, outputs.faces), (manifest, outputs.manifest)):
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False)


def measure_quality(originals_folder: str, decoded_folder: str, faces_csv: str, min_confidence: float,
                    quality_csv: str) -> None:
    """PSNR (RGB, Y', face boxes) and MS-SSIM of every decoded image of one shard and codec point."""
    from .quality import measure_shard

    table = measure_shard(originals_folder, decoded_folder, faces_csv, min_confidence)
    log.info("%d images measured", len(table))
    with atomic_path(quality_csv) as temporary:
        table.to_csv(temporary, index=False)


def tabulate_quality(quality_files: dict[str, list[str]], outputs) -> None:
    """Per image x codec point (tables/quality.csv) and per codec point (mean and pooled) quality tables.

    `quality_files`: codec point ("<codec>/<quality>") -> its shards' measure_quality files.
    """
    from .quality import quality_summary

    per_image = pd.concat(
        [pd.read_csv(path, dtype={"image": str}).assign(codec=point.split("/")[0], quality=point.split("/")[1])
         for point, paths in quality_files.items() for path in paths], ignore_index=True)
    per_image = per_image[["codec", "quality", *per_image.columns[:-2]]]
    for table, path in ((per_image, outputs.per_image), (quality_summary(per_image), outputs.summary)):
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
    quality = pd.read_csv(inputs.quality, dtype={"quality": str})[["codec", "quality", *TABLE1_QUALITY_COLUMNS]]
    tables = {}
    for threshold in thresholds:
        tables[threshold] = table1(rates, faces, models, threshold).merge(quality, on=["codec", "quality"], how="left")
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
    unread = manifest[manifest.status == NOT_READ]
    refused = manifest[~manifest.status.isin(["accepted", NOT_READ])]
    listed = len(manifest) - len(unread)
    lines = [
        "# Run summary", "",
        f"- images listed: {listed}; accepted: {listed - len(refused)}; refused: {len(refused)}; "
        f"other files in the dataset folder, not read: {len(unread)}",
        f"- codec points: {rates.groupby(['codec', 'quality']).ngroups}; face models: {', '.join(models)}",
        *[f"- faces with detector confidence >= {t:.3f}: {int(faces[faces.confidence >= t].face_id.nunique())}"
          for t in thresholds],
        "- bpp_mean: mean of per-image bpp; bpp_pooled: total bits / total pixels (both over all accepted images)",
        "",
    ]
    if len(refused):
        lines += ["## Refused images", "", *[f"- {row.reason}" for row in refused.itertuples()], ""]
    if len(unread):
        lines += ["## Files not read", "", *[f"- {row.source}: {row.reason}" for row in unread.itertuples()], ""]
    for threshold, table in tables.items():
        lines += [f"## Table 1, detector confidence >= {threshold:.3f}", "", to_markdown(table)]
    with atomic_path(outputs.summary) as temporary:
        temporary.write_text("\n".join(lines))


def _stacked_embeddings(paths: list[str], models: list[str], face_ids: list[str]) -> dict[str, np.ndarray]:
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


def privacy_metrics(faces_table_csv: str, rates_csv: str, embedding_files: dict[str, list[str]], points: list[str],
                    models: list[str], thresholds: list[float], identities: dict | None, settings: dict,
                    reduced_points: list[str], reference_codec: str, outputs) -> None:
    """Re-identification, identification and TAR@FAR with bootstrap intervals, and BD-style summaries.

    `embedding_files`: image version -> its shards' embedding files, as for `tabulate`.

    The cross-resolution attacker of each of `reduced_points` is its own analysis: its gallery, and the
    impostor pairs that calibrate its thresholds, are the originals shrunk like that point's images.
    """
    from .privacy import bd_difference_table, privacy_table

    face_table = pd.read_csv(faces_table_csv, dtype={"image": str, "face_id": str, "quality": str})
    faces = face_table.drop_duplicates("face_id").sort_values("face_id").reset_index(drop=True)
    face_ids = faces.face_id.tolist()
    rates = pd.read_csv(rates_csv, dtype={"image": str, "quality": str})
    mean_bpp = rates.groupby(["codec", "quality"]).bpp.mean().to_dict()

    def analysis(reference_version: str, probe_versions: dict[str, str], attacker: str) -> pd.DataFrame:
        table = privacy_table(
            faces, _stacked_embeddings(embedding_files[reference_version], models, face_ids),
            {tuple(point.split("/")): _stacked_embeddings(embedding_files[version], models, face_ids)
             for point, version in probe_versions.items()},
            mean_bpp, confidence_thresholds=thresholds, identity_labels=identities,
            n_resamples=settings["n_resamples"], seed=settings["seed"],
        )
        table.insert(2, "attacker", attacker)
        return table

    standard = analysis("original", {point: point for point in points}, STANDARD_ATTACKER)
    table = pd.concat([standard, *(analysis(f"{point}/reduced-original", {point: f"{point}/reduced"}, CROSS_RESOLUTION)
                                   for point in reduced_points)], ignore_index=True)
    differences = bd_difference_table(standard, BD_METRICS, reference_codec)
    for frame, path in ((table, outputs.table), (differences, outputs.differences)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False)


def privacy_utility_frontier(privacy_csv: str, detection_csv: str, reference_codec: str, outputs) -> None:
    """Privacy against the machine task: each codec point's privacy rows (standard attacker) with its
    detection mAP, and how much identity each codec leaves at equal detection mAP compared with the
    reference codec (the BD-style difference over mAP instead of bpp)."""
    from .privacy import bd_difference_table

    privacy = pd.read_csv(privacy_csv, dtype={"quality": str})
    detection = pd.read_csv(detection_csv, dtype={"quality": str})
    frontier = privacy[privacy.attacker == STANDARD_ATTACKER].merge(
        detection[["codec", "quality", "map"]], on=["codec", "quality"], how="inner")
    differences = bd_difference_table(frontier, BD_METRICS, reference_codec, axis="map")
    for frame, path in ((frontier, outputs.table), (differences, outputs.differences)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False)


def plot_privacy(table_csv: str, metric: str, threshold: float, x: str, outputs) -> None:
    """One privacy metric against `x`: bpp (privacy.csv) or detection mAP (frontier.csv)."""
    from .plots import save_figure
    from .privacy_figures import metric_curves_figure

    table = pd.read_csv(table_csv)
    labels = {"reid_published": "re-identification rate\n(DeepFace threshold)", "rank1": "rank-1 identification rate"}
    figure = metric_curves_figure(table, metric, min_confidence=threshold, x=x, ylabel=labels.get(metric, metric))
    save_figure(figure, outputs.png, outputs.pdf)


def plot_example_faces(faces_table_csv: str, crop_files: dict[str, list[str]], points: list[str], model: str,
                       count: int, outputs) -> None:
    """The largest faces: original crop beside each codec point's decoded crop, with its similarity.

    `crop_files`: "original" and each codec point -> its shards' crop files.
    """
    from .plots import save_figure
    from .privacy_figures import example_faces_figure

    face_table = pd.read_csv(faces_table_csv, dtype={"image": str, "face_id": str, "quality": str})
    largest = (face_table.drop_duplicates("face_id").sort_values("short_side", ascending=False)
               .face_id.head(count).tolist())

    def crops(point):
        found = {}
        for path in crop_files[point]:
            with np.load(path) as data:
                found.update({face_id: data[face_id] for face_id in largest if face_id in data.files})
        return [found[face_id] for face_id in largest]

    standard = face_table[face_table.attacker == STANDARD_ATTACKER]
    similarity = standard.set_index(["codec", "quality", "face_id"])[f"cos_{model}"]
    decoded = {}
    for point in points:
        codec, quality = point.split("/")
        decoded[f"{codec} {quality}"] = list(zip(crops(point), (similarity[(codec, quality, f)] for f in largest)))
    save_figure(example_faces_figure(crops("original"), decoded), outputs.png, outputs.pdf)


def detect_objects(images_folder: str, detections_json: str, settings: dict, dataset: dict, threads: int) -> None:
    """YOLOv5 on one shard of one image version; COCO results json (model loaded once per job)."""
    import torch

    from .datasets import coco_image_ids
    from .detection import Detector, write_detections

    torch.set_num_threads(threads)  # more threads than cores makes OpenMP spin on busy machines
    detector = Detector(settings["weights"], device=settings["device"], batch_size=settings["batch_size"])
    run = write_detections(shard_pngs(images_folder), detections_json, detector, coco_image_ids(dataset))
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
