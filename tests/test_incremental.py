"""Adding a codec point to a finished run schedules only that point's jobs and the aggregation.

The session's shared run (conftest.py `workflow_run`: VVC QP 32 and 47 among other codecs), then a dry
run with QP 37 added: no image is prepared again, no face detection reruns, no job of an old point
reruns. With `keep_decoded: false` a small run of its own (two COCO person photos, VVC QP 40, SFace)
deletes the decoded images once read, and a second run finds nothing to do.
"""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import scheduled_jobs as jobs, shared_dry_run

ROOT = Path(__file__).resolve().parents[1]
COCO_IMAGES = ROOT.parent / "shared" / "datasets" / "coco-persons" / "images"
IMAGES = ["000000000790", "000000192699"]  # two faces each above both confidence thresholds
DOWNLOAD_RULES = {"demo_photo", "provision_weights"}
# Rules with a job per image, shard or codec point; the others aggregate over the whole run.
PER_ITEM_RULES = {"prepare_images", "code_vvc", "detect_faces", "crop_faces", "embed_faces", "measure_quality"}

pytestmark = pytest.mark.integration


def snakemake(config: Path, *options: str) -> str:
    command = [sys.executable, "-m", "snakemake", "--configfile", str(config), *options]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result.stdout + result.stderr


def write_config(path: Path, images: Path, results: Path, qps: list[int], **settings) -> Path:
    path.write_text(yaml.safe_dump({
        "results": str(results),
        "shards": 1,
        "dataset": {"kind": "folder", "images": str(images)},
        "codecs": [{"codec": "vvc", "qualities": qps, "options": {"preset": "faster", "qpa": False}}],
        "faces": {"models": ["SFace"]},
        **settings,
    }))
    return path


def linked_images(tmp_path: Path) -> Path:
    if not COCO_IMAGES.is_dir():
        pytest.skip(f"{COCO_IMAGES} is not here")
    images = tmp_path / "images"
    images.mkdir()
    for image in IMAGES:
        (images / f"{image}.jpg").symlink_to(COCO_IMAGES / f"{image}.jpg")
    return images


def test_adding_a_qp_schedules_only_the_new_point_and_the_aggregation(workflow_run):
    folder, _, log = workflow_run
    results = folder / "results"

    first = jobs(log)
    assert first[("code_vvc", "quality=32, shard=0")] == 1  # the log parser sees the run
    assert {rule for rule, _ in first} >= PER_ITEM_RULES
    assert (results / "tables" / "table1_conf0.950.csv").is_file()

    second = jobs(shared_dry_run(folder, [32, 37, 47]))
    assert Counter({job: n for job, n in second.items() if job[0] in PER_ITEM_RULES}) == Counter({
        ("code_vvc", "quality=37, shard=0"): 1,
        ("crop_faces", "point=vvc/37, shard=0"): 1,
        ("embed_faces", "version=vvc/37, shard=0"): 1,
        ("measure_quality", "point=vvc/37, shard=0"): 1,
    })
    # The rest is aggregation over all points (tables, figures, `all`): jobs the first run also
    # had, downloads excluded, among them the tables and the rate-similarity curves.
    rest = {job for job in second if job[0] not in PER_ITEM_RULES}
    aggregation = {job for job in first if job[0] not in PER_ITEM_RULES | DOWNLOAD_RULES}
    assert rest <= aggregation, rest - aggregation
    assert {("tabulate", ""), ("summarise", ""), ("plot_rate_similarity", "t=0.950"),
            ("plot_rate_similarity", "t=0.975"), ("all", "")} <= rest


@pytest.mark.quick  # the quick lane's one end-to-end run: small, and every stage of the DAG
def test_decoded_images_not_kept_are_deleted_once_read_and_nothing_reruns(tmp_path):
    results = tmp_path / "results"
    config = write_config(tmp_path / "config.yaml", linked_images(tmp_path), results, [40], keep_decoded=False)
    snakemake(config)
    assert not (results / "decoded" / "vvc" / "40" / "shard-0").exists()
    assert sorted(path.stem for path in (results / "bitstreams" / "vvc" / "40" / "shard-0").glob("*.266")) == IMAGES
    for read_them in ("crops/vvc/40/shard-0.npz", "quality/vvc/40/shard-0.csv", "run_summary.md"):
        assert (results / read_them).is_file(), read_them
    assert jobs(snakemake(config, "--dry-run")) == Counter()  # a deleted temporary folder is no reason to rerun
