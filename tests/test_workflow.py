"""The real workflow end to end: real vvenc, real MTCNN, real SFace/Facenet/Dlib, on real photos.

The tests read the outputs of the session's shared run (`workflow_run` in conftest.py: three COCO
photos and four identity-labelled demo portraits; VVC at two QPs, a x4 downscale point with its
cross-resolution attacker, an ICM codec trained here) or dry-run variations of its configuration.
"""
from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import (ATTACK_TRAINING, ATTACKED_CODEC, COCO_IMAGES, ICM_CODECS, MISSPELT_INDEX, MODELS, PORTRAITS, REPO,
                      SHARED, SNAKEMAKE, THRESHOLDS, job_counts, shared_dry_run, snakemake, write_workflow_config)
from icm_privacy.codecs import make_codec
from icm_privacy.images import read_png

pytestmark = pytest.mark.integration
COCO_TRAIN2017 = SHARED / "datasets" / "coco-train2017"


@pytest.fixture(scope="module")
def run(workflow_run):
    return workflow_run


@pytest.fixture(scope="module")
def report(run) -> str:
    """The run's offline HTML report (snakemake --report), made once for the tests that read it."""
    folder, config, _ = run
    snakemake(config, "--report", str(folder / "report.html"))
    return (folder / "report.html").read_text(errors="replace")


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
            ("downscale", 4, "cross-resolution"), ("icm-mse", 1, "standard"),
            ("icm-mse", 1, "restored"), ("icm-mse", 1, "adapted")]
        assert (table.images == 7).all()
        assert {f"mean_cos_{m}" for m in MODELS} <= set(table.columns)
        for suffix in ("png", "pdf"):
            assert (folder / "results" / "figures" / f"rate_similarity_conf{threshold}.{suffix}").stat().st_size > 1000
    summary = (folder / "results" / "run_summary.md").read_text()
    assert "accepted: 7; refused: 0" in summary
    # a folder dataset has no instance masks: the contour columns are there, empty, and the summary says why
    assert table.edge_psnr_mean.isna().all() and table.off_edge_psnr_mean.isna().all()
    assert ("## Not measured in this run\n\n- dataset 'folder' has no COCO instance masks: edge_psnr and "
            "off_edge_psnr are NaN") in summary


def test_a_threshold_with_four_decimals_gets_its_own_tables_and_figures(run):
    folder, _, _ = run
    results = folder / "results"
    table = pd.read_csv(results / "tables" / "table1_conf0.9375.csv")
    assert (table.threshold == 0.9375).all() and len(table) == 7
    faces = pd.read_csv(results / "tables" / "faces.csv")
    assert (table.faces.max() == faces[faces.confidence >= 0.9375].face_id.nunique()
            >= pd.read_csv(results / "tables" / "table1_conf0.950.csv").faces.max())
    privacy = pd.read_csv(results / "tables" / "privacy.csv")
    assert set(privacy.min_confidence) == set(THRESHOLDS)
    for figure in ("rate_similarity", "reid_published_vs_bpp", "rank1_vs_bpp"):
        assert (results / "figures" / f"{figure}_conf0.9375.png").stat().st_size > 1000
    assert "## Table 1, detector confidence >= 0.9375" in (results / "run_summary.md").read_text()


def test_second_run_has_nothing_to_do(run):
    _, config, _ = run
    assert "Nothing to be done" in snakemake(config, "--dry-run")


def test_adding_a_qp_schedules_only_that_qp_and_the_aggregation(run):
    folder, _, _ = run
    counts = job_counts(shared_dry_run(folder, [32, 37, 47]))
    aggregation = {"tabulate": 1, "summarise": 1, "tabulate_quality": 1, "plot_rate_similarity": 3,
                   "privacy_metrics": 1, "plot_privacy": 6, "plot_example_faces": 1, "record_config": 1, "all": 1}
    assert counts == {"code_vvc": 1, "crop_faces": 1, "embed_faces": 1, "measure_quality": 1, **aggregation}, counts


def test_privacy_table_and_offline_report(run, report):
    folder, _, _ = run
    privacy = pd.read_csv(folder / "results" / "tables" / "privacy.csv")
    overall = privacy[(privacy.breakdown == "all") & (privacy.min_confidence == 0.95)]
    assert set(overall.model) == set(MODELS) and (overall.gallery_size >= 6).all()
    assert ((overall.reid_published_ci_low <= overall.reid_published)
            & (overall.reid_published <= overall.reid_published_ci_high)).all()
    assert "example_faces.png" in report and "reid_published_vs_bpp" in report and "config.yaml" in report


def test_an_optional_entry_that_cannot_run_is_skipped_and_listed_in_summary_report_and_config(run, report):
    folder, _, log = run
    reason = "option 'encode': program 'avifencc' is not an executable file or on PATH"
    line = f"codecs.{MISSPELT_INDEX} (entry 'avif-cli', codec command, optional) is skipped: {reason}"
    assert f"icm-privacy: {line}" in log
    summary = (folder / "results" / "run_summary.md").read_text()
    assert f"## Codec entries skipped (optional, cannot run on this machine)\n\n- {line}" in summary
    assert not list((folder / "results" / "bitstreams").glob("avif-cli*"))
    recorded = folder / "results" / "config.yaml"
    assert recorded.read_text().startswith(f"# {line}\n")
    assert yaml.safe_load(recorded.read_text())["codecs"][MISSPELT_INDEX]["label"] == "avif-cli"  # the entry as written
    embedded = re.search(r'"data_uri": "data:text/markdown;charset=utf8;filename=run_summary\.md;base64,([^"]+)"',
                         report)
    assert line in base64.b64decode(embedded.group(1)).decode()


def test_an_entry_that_cannot_run_stops_the_run_before_any_job_naming_it(run):
    folder, _, _ = run
    required = write_workflow_config(folder, [32, 47], optional=False)
    refused = subprocess.run([*SNAKEMAKE, "--configfile", str(required), "--dry-run"], cwd=REPO,
                             capture_output=True, text=True)
    assert refused.returncode != 0
    assert (f"icm-privacy: config key codecs.{MISSPELT_INDEX} (entry 'avif-cli'): cannot run on this machine: "
            "option 'encode': program 'avifencc' is not an executable file or on PATH") in refused.stderr
    assert "Job stats" not in refused.stdout + refused.stderr and "Traceback" not in refused.stderr


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
    assert counts == {"plot_rate_similarity": 3, "plot_privacy": 6, "plot_example_faces": 1, "all": 1}, counts


def test_icm_codecs_run_without_a_download_and_reach_table1_psnr_and_the_example_faces(run):
    folder, _, log = run
    skipped = [line for line in log.splitlines() if ", optional) is skipped" in line]
    assert len(skipped) == 1 and "'avif-cli'" in skipped[0]  # the ICM codecs ran
    table = pd.read_csv(folder / "results" / "tables" / "table1_conf0.950.csv").query(
        "codec in @ICM_CODECS and attacker == 'standard'")
    assert len(table) == len(ICM_CODECS) and (table.faces >= 6).all() and (table.bpp_mean > 0).all()
    quality = pd.read_csv(folder / "results" / "tables" / "quality.csv", dtype={"image": str})
    assert len(quality) == 7 * 4 and quality.psnr_rgb.between(10, 60).all() and quality.psnr_y.between(10, 60).all()
    assert quality.ms_ssim.between(0, 1).all()  # every demo photo is large enough for five scales
    assert quality[quality.image.isin(PORTRAITS)].face_psnr.notna().all()  # each portrait's face box
    assert table[["psnr_rgb_mean", "ms_ssim_mean", "face_psnr_mean"]].notna().all().all()  # in Table 1 too
    with np.load(folder / "results" / "crops" / "original" / "shard-0.npz") as original:
        shown = set(original.files)
    for codec in ICM_CODECS:  # the example-face figure shows every codec point's crops of the largest faces
        with np.load(folder / "results" / "crops" / codec / "1" / "shard-0.npz") as crops:
            assert set(crops.files) == shown


def test_learning_attackers_train_on_their_own_images_never_on_an_evaluated_one(run):
    """Checked on the files: every image, face, crop and embedding an attacker learnt from is one of its
    own coco-train2017 images, and none is an evaluated image or face."""
    folder, _, _ = run
    results, training = folder / "results", folder / "results" / "attackers" / "training"
    manifest = pd.read_csv(training / "images" / "shard-0" / "manifest.csv", dtype={"image": str})
    evaluated = pd.read_csv(results / "tables" / "images.csv", dtype={"image": str})
    assert len(manifest) == ATTACK_TRAINING["first_n"] and (manifest.status == "accepted").all()
    assert {Path(source).resolve().parent for source in manifest.source} == {(COCO_TRAIN2017 / "images").resolve()}
    assert not set(manifest.image) & set(evaluated.image)
    assert not {Path(source).resolve() for source in manifest.source} & {Path(source).resolve() for source in evaluated.source}
    training_faces = pd.read_csv(training / "faces" / "shard-0.csv", dtype={"image": str, "face_id": str})
    evaluated_faces = set(pd.read_csv(results / "tables" / "faces.csv", dtype={"face_id": str}).face_id)
    assert set(training_faces.image) <= set(manifest.image) and len(training_faces) >= 4
    learnt_from = [*(training / "crops").rglob("*.npz"), *(training / "embeddings").rglob("*.npz")]
    assert len(learnt_from) == 4  # crops and embeddings of the originals and of icm-mse 1
    for path in learnt_from:
        with np.load(path) as data:
            face_ids = set(data["face_ids"] if "face_ids" in data.files else data.files)
        assert face_ids and face_ids <= set(training_faces.face_id) and not face_ids & evaluated_faces, path
    decoded = {path.stem for path in (training / "decoded" / ATTACKED_CODEC / "1" / "shard-0").glob("*.png")}
    assert decoded == set(manifest.image)  # what the restorer trained and was measured on
    restorer = pd.read_csv(results / "attackers" / "restorers" / f"{ATTACKED_CODEC}.csv")
    assert (restorer.training_images + restorer.holdout_images == len(manifest)).all()


def test_restored_and_adapted_attackers_are_reported_beside_the_naive_one(run):
    from icm_privacy.embedding_adapter import load_adapters
    from icm_privacy.embeddings import cosine_similarity, load_embeddings

    folder, _, _ = run
    results = folder / "results"
    table = pd.read_csv(results / "tables" / "table1_conf0.950.csv")
    assert list(table.query("codec == @ATTACKED_CODEC").attacker) == ["standard", "restored", "adapted"]
    assert set(table.query("codec == 'vvc'").attacker) == {"standard"}  # only the configured entry is attacked
    assert np.isfinite(table.query("codec == @ATTACKED_CODEC")[[f"mean_cos_{m}" for m in MODELS]].to_numpy()).all()
    # the adapted attacker's similarities are those of the decoded embeddings mapped by the point's adapters
    faces = pd.read_csv(results / "tables" / "faces.csv", dtype={"face_id": str}).query(
        "codec == @ATTACKED_CODEC and attacker == 'adapted'")
    adapters = load_adapters(results / "attackers" / "adapters" / ATTACKED_CODEC / "1.npz")
    for model in MODELS:
        original = load_embeddings([str(results / "embeddings" / "original" / "shard-0.npz")], model)
        decoded = load_embeddings([str(results / "embeddings" / ATTACKED_CODEC / "1" / "shard-0.npz")], model)
        expected = cosine_similarity(np.stack([original[f] for f in faces.face_id]),
                                     adapters[model].transform(np.stack([decoded[f] for f in faces.face_id])))
        assert np.allclose(faces[f"cos_{model}"], expected), model
    # the restored attacker's crops: the same boxes as the decoded crops, other pixels
    with np.load(results / "crops" / ATTACKED_CODEC / "1" / "shard-0.npz") as plain, \
            np.load(results / "crops" / ATTACKED_CODEC / "1" / "restored" / "shard-0.npz") as restored:
        assert sorted(plain.files) == sorted(restored.files)
        assert all(plain[f].shape == restored[f].shape for f in plain.files)
        assert any(not np.array_equal(plain[f], restored[f]) for f in plain.files)
    privacy = pd.read_csv(results / "tables" / "privacy.csv").query("codec == @ATTACKED_CODEC")
    assert set(privacy.attacker) == {"standard", "restored", "adapted"}
    # BD differences per attacker against the reference codec's curve under the same attacker (vvc has the standard one)
    assert set(pd.read_csv(results / "tables" / "privacy_bd.csv").attacker) == {"standard"}
    restorers = pd.read_csv(results / "tables" / "restorers.csv", dtype={"quality": str})
    assert restorers[["codec", "quality", "steps"]].values.tolist() == [[ATTACKED_CODEC, "1", ATTACK_TRAINING["steps"]]]
    assert restorers.cpu_seconds.iloc[0] > 0 and 15 < restorers.psnr_decoded.iloc[0] < 45
    adapters_table = pd.read_csv(results / "tables" / "adapters.csv")
    assert sorted(adapters_table.model) == sorted(MODELS) and (adapters_table.faces >= 4).all()
    summary = (results / "run_summary.md").read_text()
    assert "## Attackers who learn" in summary and "Embedding adapters" in summary
