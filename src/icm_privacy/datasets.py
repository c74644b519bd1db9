"""Which images a run uses, where they come from, and which shard each belongs to.

A dataset is a COCO-format set (image folder + instances json, read with pycocotools), a plain
folder of images, or the built-in demo: real photos shipped inside PyPI packages (identity-labelled
portraits from face_recognition's tests, and scikit-image's astronaut), so the workflow runs offline.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .sources import PackageFile

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
COCO_PERSON_CATEGORY = 1

FACE_RECOGNITION_SDIST = "face_recognition==1.3.0"


@dataclass(frozen=True)
class DemoPhoto:
    image_id: str
    identity: str
    source: PackageFile
    sha256: str

    @property
    def file_name(self) -> str:
        return self.image_id + Path(self.source.member).suffix


def _portrait(image_id: str, identity: str, sha256: str) -> DemoPhoto:
    member = f"tests/test_images/{image_id}.jpg"
    return DemoPhoto(image_id, identity, PackageFile(FACE_RECOGNITION_SDIST, member, sdist=True), sha256)


DEMO_PHOTOS = {
    photo.image_id: photo
    for photo in (
        _portrait("obama", "obama", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
        _portrait("obama2", "obama", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
        _portrait("obama3", "obama", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
        _portrait("biden", "biden", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
        DemoPhoto("astronaut", "eileen_collins",
                  PackageFile("scikit-image==0.26.0", "skimage/data/astronaut.png", sdist=False),
                  "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    )
}
DEMO_FOLDER = Path("resources/demo")


class DatasetError(ValueError):
    """The dataset configuration points at something that is not there."""


def shard_of(image_id: str, shards: int) -> int:
    """A stable shard for an image: adding or removing other images never moves it."""
    digest = hashlib.sha1(image_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def held_out(image_id: str, every: int) -> bool:
    """One image in `every`, by a hash of its id (unrelated to its shard): kept out of a model's training
    to measure it on."""
    return shard_of(f"{image_id}/held-out", every) == 0


def _select(ids: list[str], dataset: dict, coco_ids: dict[str, int] | None = None) -> list[str]:
    wanted = dataset.get("image_ids")
    if wanted:
        wanted_text = {str(item) for item in wanted}
        unknown = wanted_text - set(ids) - {str(coco_id) for coco_id in (coco_ids or {}).values()}
        if unknown:
            raise DatasetError(f"dataset.image_ids: {', '.join(sorted(unknown))} not in the dataset")
        ids = [i for i in ids if i in wanted_text or (coco_ids and str(coco_ids[i]) in wanted_text)]
    ids = sorted(ids)
    if dataset.get("first_n"):
        ids = ids[: dataset["first_n"]]
    return ids


def _coco_images(dataset: dict) -> dict[str, Path]:
    from pycocotools.coco import COCO

    annotations = Path(dataset["annotations"])
    if not annotations.is_file():
        raise DatasetError(f"dataset.annotations: {annotations} does not exist")
    try:
        coco = COCO(str(annotations))
    except Exception as error:
        raise DatasetError(f"dataset.annotations: {annotations} is not a readable COCO json ({error})") from error
    if "images" not in coco.dataset:
        raise DatasetError(f"dataset.annotations: {annotations} is not a readable COCO json (no 'images' list)")
    image_ids = coco.getImgIds(catIds=[COCO_PERSON_CATEGORY]) if dataset.get("only_with_persons") else coco.getImgIds()
    folder = Path(dataset["images"])
    records = coco.loadImgs(image_ids)
    paths = {Path(record["file_name"]).stem: folder / record["file_name"] for record in records}
    coco_ids = {Path(record["file_name"]).stem: record["id"] for record in records}
    return {image_id: paths[image_id] for image_id in _select(list(paths), dataset, coco_ids)}


def _folder_entries(folder: Path) -> tuple[list[Path], dict[str, str]]:
    """A folder dataset's image files, and every other entry of the folder with why it is not read."""
    images, unread = [], {}
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            unread[str(path)] = "a folder: subfolders are not read"
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            unread[str(path)] = (f"file type '{path.suffix or '(none)'}' is not read "
                                 f"(read: {', '.join(sorted(IMAGE_SUFFIXES))})")
    return images, unread


def unread_files(dataset: dict) -> dict[str, str]:
    """Path -> reason for every entry of a folder dataset that the run does not read, so that none
    leaves the study unnoticed (the shard manifests and run_summary.md list them)."""
    if dataset["kind"] != "folder":
        return {}
    return _folder_entries(Path(dataset["images"]))[1]


def list_images(dataset: dict) -> dict[str, Path]:
    """Map image id (file stem) -> source file, in id order, as the configuration selects them."""
    kind = dataset["kind"]
    if kind == "demo":
        return {i: DEMO_FOLDER / DEMO_PHOTOS[i].file_name for i in _select(list(DEMO_PHOTOS), dataset)}
    folder = Path(dataset["images"])
    if not folder.is_dir():
        raise DatasetError(f"dataset.images: {folder} is not a folder")
    if kind == "coco":
        return _coco_images(dataset)
    files = {}
    for path in _folder_entries(folder)[0]:
        if path.stem in files:  # the id names every output of the image: it must be unique
            raise DatasetError(f"dataset.images: {files[path.stem]} and {path} have the same image id {path.stem!r}")
        files[path.stem] = path
    if not files:
        raise DatasetError(f"dataset.images: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return {image_id: files[image_id] for image_id in _select(list(files), dataset)}


def attack_training_images(training: dict, evaluated: dict[str, Path]) -> dict[str, Path]:
    """The learning attackers' training images (`privacy.attack_training`): the first N images with a
    person of its COCO set, refused when any of them is an evaluated image (same id or same file), so
    that no evaluated face can enter an attacker's training."""
    images = list_images({"kind": "coco", "images": training["images"], "annotations": training["annotations"],
                          "only_with_persons": True, "first_n": training["first_n"]})
    evaluated_files = {Path(path).resolve() for path in evaluated.values()}
    shared = sorted(image_id for image_id, path in images.items()
                    if image_id in evaluated or Path(path).resolve() in evaluated_files)
    if shared:
        raise DatasetError(f"privacy.attack_training: {len(shared)} training images are evaluated images too "
                           f"({', '.join(shared[:10])}); train the attackers on other images")
    return images


def coco_image_ids(dataset: dict) -> dict[str, int]:
    """For COCO datasets: image id (file stem) -> numeric COCO image id."""
    import json

    records = json.loads(Path(dataset["annotations"]).read_text())["images"]
    return {Path(record["file_name"]).stem: record["id"] for record in records}


def identity_labels(dataset: dict) -> dict[str, str] | None:
    """Person identities by image or face id: built in for the demo, else from the optional CSV."""
    import pandas as pd

    if dataset["kind"] == "demo":
        return {image_id: photo.identity for image_id, photo in DEMO_PHOTOS.items()}
    if dataset.get("identities"):
        labels = pd.read_csv(dataset["identities"], dtype=str)
        return dict(zip(labels["key"], labels["identity"]))
    return None


def _annotation_records(annotations: str | Path) -> list[dict]:
    """The `annotations` list of a COCO file, read as plain JSON (the scheduler asks at start-up and needs
    no pycocotools for it); a file that cannot be read is an error, not a skip."""
    import json

    try:
        return json.loads(Path(annotations).read_text())["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{annotations}: cannot read COCO annotations ({error!r})") from error


def detection_skip_reason(annotations: str | Path | None, dataset_kind: str) -> str | None:
    """Why detection mAP cannot be computed for the dataset, or None when its annotations can be used.

    A dataset without instance annotations (a plain image folder, the demo photos) is skipped with
    this message.
    """
    if annotations is None:
        return f"dataset {dataset_kind!r} has no COCO instance annotations: detection mAP is skipped"
    if not any("bbox" in record for record in _annotation_records(annotations)):
        return f"dataset {dataset_kind!r}: {annotations} holds no box annotations: detection mAP is skipped"
    return None


def contour_skip_reason(annotations: str | Path | None, dataset_kind: str) -> str | None:
    """Why edge_psnr and off_edge_psnr (quality.py) are NaN for the dataset, or None when it has instance masks."""
    if annotations is None:
        return f"dataset {dataset_kind!r} has no COCO instance masks: edge_psnr and off_edge_psnr are NaN"
    if not any(record.get("segmentation") and not record.get("iscrowd") for record in _annotation_records(annotations)):
        return f"dataset {dataset_kind!r}: {annotations} holds no instance masks: edge_psnr and off_edge_psnr are NaN"
    return None
