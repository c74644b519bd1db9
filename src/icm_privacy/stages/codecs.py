"""Rules of workflow/rules/codecs.smk: `code_<label>`, one rule per codec entry, all running `code`."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd

from ..files import atomic_path
from ..images import read_png
from ..points import format_quality
from . import shard_pngs

log = logging.getLogger("icm_privacy")

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


def code(images_folder: str, bitstream_folder: str, decoded_folder: str, codec: str, quality: float,
         options: dict, threads: int, faces_csv: str | None = None, label: str | None = None) -> pd.DataFrame:
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
    Messages name the configuration's entry (`label`, default the codec's name) and quality.
    """
    from ..codecs import CodecError, CodecUnavailable, make_codec
    from ..codecs.deidentify import face_boxes

    point = f"{label or codec} quality {format_quality(quality)}"
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
            log.error("[%d/%d] %s, %s failed: %s", number, len(image_paths), point, image_id, error)
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
                 image_id, label or codec, format_quality(quality), result.bitstream_bytes, result.bpp,
                 result.encode_seconds, result.decode_seconds)
    if failed:
        raise CodecError(f"{point}: {len(failed)} of {len(image_paths)} images failed (the others are kept in {work} for "
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
