"""The real workflow end to end: real vvenc, real MTCNN, real SFace/Facenet/Dlib, on real photos.

One module-scoped run on three COCO photos (faces of 33-44 px) and the four identity-labelled demo
portraits, VVC at two QPs and a x4 downscale point (with its cross-resolution attacker); the tests
then read its outputs. About 3-4 minutes on 2 cores.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from icm_privacy.codecs import make_codec
from icm_privacy.datasets import DEMO_PHOTOS
from icm_privacy.images import read_png
from icm_privacy.sources import fetch_package_file

pytestmark = pytest.mark.integration

COCO_IMAGES = ["000000109313", "000000084533", "000000000790"]
PORTRAITS = ["obama", "obama2", "obama3", "biden"]
MODELS = ["SFace", "Facenet", "Dlib"]
ICM_CODECS = ["icm-edge", "icm-mse"]  # trained here, shipped in resources/weights/icm: the demo's ICM rows
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2"]


def write_config(folder: Path, qualities: list[int]) -> Path:
    config = {
        "results": str(folder / "results"),
        "dataset": {"kind": "folder", "images": str(folder / "images")},
        "codecs": [{"codec": "vvc", "qualities": qualities, "options": {"preset": "faster"}},
                   {"codec": "downscale", "qualities": [4], "options": {"inner": {"codec": "jpeg", "quality": 75}}},
                   *({"codec": codec, "qualities": [1]} for codec in ICM_CODECS)],
        "faces": {"models": MODELS},
    }
    path = folder / f"config-{len(qualities)}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(config: Path, *arguments: str) -> str:
    completed = subprocess.run([*SNAKEMAKE, "--configfile", str(config), *arguments], cwd=REPO,
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout + completed.stderr


def job_counts(dry_run_output: str) -> dict[str, int]:
    block = dry_run_output.split("Job stats:")[1].split("total")[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.M)}


@pytest.fixture(scope="module")
def run(tmp_path_factory, coco_persons):
    folder = tmp_path_factory.mktemp("workflow")
    images = folder / "images"
    images.mkdir()
    for image_id in COCO_IMAGES:
        (images / f"{image_id}.jpg").symlink_to(coco_persons / "images" / f"{image_id}.jpg")
    for image_id in PORTRAITS:
        photo = DEMO_PHOTOS[image_id]
        fetch_package_file(photo.source, photo.sha256, images / photo.file_name, REPO / "resources" / "cache")
    config = write_config(folder, [32, 47])
    log = snakemake(config)
    return folder, config, log


def test_bitstreams_exist_and_decode_to_the_published_images(run):
    folder, _, _ = run
    codec = make_codec("vvc")
    for image_id in COCO_IMAGES + PORTRAITS:
        for qp in (32, 47):
            bitstream = folder / "results" / "bitstreams" / "vvc" / str(qp) / "shard-0" / f"{image_id}.266"
            decoded = read_png(folder / "results" / "decoded" / "vvc" / str(qp) / "shard-0" / f"{image_id}.png")
            assert bitstream.stat().st_size > 0
            assert np.array_equal(codec.decode(bitstream, decoded.shape[1], decoded.shape[0]), decoded)


def test_bpp_falls_as_qp_rises(run):
    folder, _, _ = run
    rates = pd.read_csv(folder / "results" / "tables" / "rates.csv", dtype={"image": str}).query("codec == 'vvc'")
    by_qp = rates.pivot(index="image", columns="quality", values="bpp")
    assert (by_qp[32] > by_qp[47]).all(), by_qp
    assert (by_qp[32] > 8 * rates.bytes.min() / (rates.width * rates.height).max()).all()


def test_similarity_falls_from_qp32_to_qp47_for_reasonable_faces(run):
    folder, _, _ = run
    faces = pd.read_csv(folder / "results" / "tables" / "faces.csv", dtype={"image": str}).query("codec == 'vvc'")
    reasonable = faces[(faces.short_side >= 32) & (faces.confidence >= 0.95)]
    assert reasonable.face_id.nunique() >= 6  # the 4 portraits and at least 2 COCO faces
    for model in MODELS:
        means = reasonable.groupby("quality")[f"cos_{model}"].mean()
        assert means[32] > means[47], f"{model}: {means.to_dict()}"
        assert means[32] > 0.8, f"{model}: QP 32 should keep most identity, got {means[32]:.3f}"


def test_same_person_scores_higher_than_different_people_with_each_model(run):
    folder, _, _ = run
    with np.load(folder / "results" / "embeddings" / "original" / "shard-0.npz") as data:
        face_ids = data["face_ids"].tolist()
        for model in MODELS:
            vectors = {face_id: vector / np.linalg.norm(vector) for face_id, vector in zip(face_ids, data[model])}
            obama = [vectors[f"{name}_f0"] for name in ("obama", "obama2", "obama3")]
            biden = vectors["biden_f0"]
            same = min(float(a @ b) for i, a in enumerate(obama) for b in obama[i + 1:])
            different = max(float(a @ biden) for a in obama)
            assert same > different, f"{model}: same-person {same:.3f} vs different-person {different:.3f}"


def test_table1_and_figures_are_written_per_threshold(run):
    folder, _, _ = run
    for threshold in ("0.950", "0.975"):
        table = pd.read_csv(folder / "results" / "tables" / f"table1_conf{threshold}.csv")
        assert list(zip(table.codec, table.quality, table.attacker)) == [
            ("vvc", 32, "standard"), ("vvc", 47, "standard"), ("downscale", 4, "standard"),
            ("downscale", 4, "cross-resolution"), ("icm-edge", 1, "standard"), ("icm-mse", 1, "standard")]
        assert (table.images == 7).all()
        assert {f"mean_cos_{m}" for m in MODELS} <= set(table.columns)
        for suffix in ("png", "pdf"):
            assert (folder / "results" / "figures" / f"rate_similarity_conf{threshold}.{suffix}").stat().st_size > 1000
    assert "accepted: 7; refused: 0" in (folder / "results" / "run_summary.md").read_text()


def test_second_run_has_nothing_to_do(run):
    _, config, _ = run
    assert "Nothing to be done" in snakemake(config, "--dry-run")


def test_adding_a_qp_schedules_only_that_qp_and_the_aggregation(run):
    folder, _, _ = run
    counts = job_counts(snakemake(write_config(folder, [32, 37, 47]), "--dry-run"))
    aggregation = {"tabulate": 1, "summarise": 1, "tabulate_quality": 1, "plot_rate_similarity": 2,
                   "privacy_metrics": 1, "plot_privacy": 4, "plot_example_faces": 1, "record_config": 1, "all": 1}
    assert counts == {"code_vvc": 1, "crop_faces": 1, "embed_faces": 1, "measure_quality": 1, **aggregation}, counts


def test_privacy_table_and_offline_report(run):
    folder, config, _ = run
    privacy = pd.read_csv(folder / "results" / "tables" / "privacy.csv")
    overall = privacy[(privacy.breakdown == "all") & (privacy.min_confidence == 0.95)]
    assert set(overall.model) == set(MODELS) and (overall.gallery_size >= 6).all()
    assert ((overall.reid_published_ci_low <= overall.reid_published)
            & (overall.reid_published <= overall.reid_published_ci_high)).all()
    report = folder / "report.html"
    snakemake(config, "--report", str(report))
    html = report.read_text(errors="replace")
    assert "example_faces.png" in html and "reid_published_vs_bpp" in html and "config.yaml" in html


def test_cross_resolution_attacker_is_reported_beside_the_standard_one_and_matches_better(run):
    """At x4 the attacker who compares at the reduced resolution (decode before upsampling vs the
    original shrunk the same way) keeps more identity than the one comparing full-size crops."""
    folder, _, _ = run
    table = pd.read_csv(folder / "results" / "tables" / "table1_conf0.950.csv").query("codec == 'downscale'")
    standard, cross = (table[table.attacker == name].iloc[0] for name in ("standard", "cross-resolution"))
    assert standard.bpp_mean == cross.bpp_mean and standard.faces == cross.faces >= 6
    for model in MODELS:
        print(f"{model}: standard {standard[f'mean_cos_{model}']:.3f}, cross-resolution {cross[f'mean_cos_{model}']:.3f}")
        assert cross[f"mean_cos_{model}"] >= standard[f"mean_cos_{model}"], model
    privacy = pd.read_csv(folder / "results" / "tables" / "privacy.csv")
    overall = privacy[(privacy.breakdown == "all") & (privacy.min_confidence == 0.95) & (privacy.codec == "downscale")]
    assert sorted(overall.attacker.unique()) == ["cross-resolution", "standard"]
    reid = overall.groupby("attacker").reid_published.mean()
    assert reid["cross-resolution"] >= reid["standard"], reid


def test_figures_regenerate_from_tables_alone(run):
    folder, config, _ = run
    for figure in (folder / "results" / "figures").glob("*"):
        figure.unlink()
    counts = job_counts(snakemake(config, "--dry-run"))
    assert counts == {"plot_rate_similarity": 2, "plot_privacy": 4, "plot_example_faces": 1, "all": 1}, counts


def test_icm_codecs_run_without_a_download_and_reach_table1_psnr_and_the_example_faces(run):
    folder, _, log = run
    assert not [codec for codec in ICM_CODECS if f"codec entry '{codec}' is skipped" in log]
    table = pd.read_csv(folder / "results" / "tables" / "table1_conf0.950.csv").query("codec in @ICM_CODECS")
    assert len(table) == 2 and (table.faces >= 6).all() and (table.bpp_mean > 0).all()
    quality = pd.read_csv(folder / "results" / "tables" / "quality.csv", dtype={"image": str})
    assert len(quality) == 7 * 5 and quality.psnr_rgb.between(10, 60).all() and quality.psnr_y.between(10, 60).all()
    assert quality.ms_ssim.between(0, 1).all()  # every demo photo is large enough for five scales
    assert quality[quality.image.isin(PORTRAITS)].face_psnr.notna().all()  # each portrait's face box
    assert table[["psnr_rgb_mean", "ms_ssim_mean", "face_psnr_mean"]].notna().all().all()  # in Table 1 too
    with np.load(folder / "results" / "crops" / "original" / "shard-0.npz") as original:
        shown = set(original.files)
    for codec in ICM_CODECS:  # the example-face figure shows every codec point's crops of the largest faces
        with np.load(folder / "results" / "crops" / codec / "1" / "shard-0.npz") as crops:
            assert set(crops.files) == shown
