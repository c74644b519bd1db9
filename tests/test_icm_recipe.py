"""The icm-* training recipe: its stages, the committed training state, and the shipped manifest."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from conftest import REPO, SHARED
from icm_privacy import icm_recipe, training
from icm_privacy.codecs import make_codec
from icm_privacy.sources import sha256_of

TRAINING_FOLDER = REPO / "resources" / "weights" / "icm" / "training"
COCO_TRAIN = SHARED / "datasets" / "coco-train"


@pytest.fixture(scope="module")
def coco_train():
    if not (COCO_TRAIN / "instances.json").is_file():
        pytest.skip(f"the coco-train images are not at {COCO_TRAIN}")
    return COCO_TRAIN


def test_the_bases_form_a_chain_every_other_stage_is_fine_tuned_from_and_every_shipped_point_is_a_stage():
    names = [stage.name for stage in icm_recipe.STAGES]
    assert names[:len(icm_recipe.BASES)] == list(icm_recipe.BASES) and len(set(names)) == len(names)
    assert [icm_recipe.stage_named(name).init for name in icm_recipe.BASES] == [None, *icm_recipe.BASES[:-1]]
    assert names == [*icm_recipe.BASES, *icm_recipe.FINE_TUNES]
    assert all(icm_recipe.stage_named(name).init == icm_recipe.BASES[-1] for name in icm_recipe.FINE_TUNES)
    shipped = [stage for points in icm_recipe.SHIPPED.values() for stage in points.values()]
    assert sorted(shipped) == sorted(names[len(icm_recipe.BASES) - 1:])  # the first base is no codec
    for codec, points in icm_recipe.SHIPPED.items():  # rate points are numbered from the fewest bits up
        lambdas = [icm_recipe.stage_named(points[rate]).lmbda for rate in sorted(points, key=int)]
        assert lambdas == sorted(lambdas) and len(lambdas) >= 3, codec
        assert {icm_recipe.stage_named(stage).objective for stage in points.values()} == {codec.split("-")[1]}


def test_a_stage_records_its_batch_and_device_and_cannot_start_before_the_stage_it_is_fine_tuned_from(
        tmp_path, capsys):
    stage = icm_recipe.stage_named("icm-edge-1")
    settings = training.parse_arguments(stage.arguments(tmp_path, tmp_path, tmp_path / "a.json", device="cuda"))
    assert (settings.batch_size, settings.device, settings.init.name) == (16, "cuda", "base-2.pth.tar")
    with pytest.raises(SystemExit):
        icm_recipe.main(["--folder", str(tmp_path), "--stage", "icm-edge-1"])
    assert "stage icm-edge-1 is fine-tuned from base-2, which is not done" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.heavy
def test_the_committed_recipe_is_finished_with_full_logs_and_a_rerun_trains_nothing(tmp_path, coco_train):
    """Every stage ran to its last step (the resume from a committed state between sessions is what
    tests/test_training.py kills and resumes; the base resumed that way across sessions)."""
    assert set(icm_recipe.status(TRAINING_FOLDER).values()) == {"done"}, icm_recipe.status(TRAINING_FOLDER)
    folder = tmp_path / "training"
    shutil.copytree(TRAINING_FOLDER, folder)
    for stage in icm_recipe.STAGES:
        saved = torch.load(icm_recipe.checkpoint_path(folder, stage.name), weights_only=True)
        assert (saved["step"], saved["lmbda"], saved["objective"]) == (stage.steps, stage.lmbda, stage.objective)
        assert (saved["arguments"]["learning_rate"], saved["arguments"]["batch_size"]) == (
            stage.learning_rate, stage.batch_size)
        assert pd.read_csv(folder / f"{stage.name}.csv").step.tolist() == list(range(9, stage.steps, 10))
        validation = pd.read_csv(folder / f"{stage.name}.validation.csv")
        assert validation.step.tolist() == list(range(0, stage.steps + 1, 500)), stage.name
        assert {value.dtype for value in saved["state_dict"].values() if value.is_floating_point()} <= {
            torch.float16, torch.float32}  # parameters float16; buffers such as the scale table float32

    written = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    icm_recipe.run_recipe(folder, coco_train / "images", coco_train / "instances.json")
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == written


@pytest.mark.heavy
def test_ship_writes_each_point_with_its_training_record_and_a_manifest_the_codecs_accept(tmp_path, coco_persons):
    folder = tmp_path / "training"
    for stage in icm_recipe.STAGES:  # one random model per stage stands in for the trained ones
        _, model = training.training_model(f"icm-{stage.objective}", 1, None, "cpu")
        arguments = stage.arguments(folder, coco_persons / "images", coco_persons / "instances.json")
        settings = vars(training.parse_arguments(arguments))
        training.save_checkpoint(model, icm_recipe.checkpoint_path(folder, stage.name), float16=True,
                                 step=stage.steps, codec="icm", lmbda=stage.lmbda, objective=stage.objective,
                                 masks="coco", arguments={k: str(v) for k, v in settings.items()},
                                 validation=["000000000139"])
    manifest = icm_recipe.ship(folder, tmp_path / "weights")
    for codec, points in icm_recipe.SHIPPED.items():
        for rate, stage_name in points.items():
            entry, stage = manifest["codecs"][codec][rate], icm_recipe.stage_named(stage_name)
            assert entry["sha256"] == sha256_of(tmp_path / "weights" / entry["file"])
            assert (entry["objective"], entry["lmbda"], entry["base_steps"]) == (
                stage.objective, stage.lmbda, sum(icm_recipe.stage_named(name).steps for name in icm_recipe.BASES))
            assert entry["fine_tune_steps"] == (0 if stage_name in icm_recipe.BASES else stage.steps)
            assert entry["data"]["validation"] == ["000000000139"] and "--lmbda" not in entry["arguments"]
    assert json.loads((tmp_path / "weights" / "manifest.json").read_text()) == manifest
    codec = make_codec("icm-edge", weights_dir=tmp_path / "weights", device="cpu")
    assert codec.model("2") is not None  # sha256 checked, weights load strictly


def test_the_jobs_of_an_icm_codec_carry_its_shipped_weights_so_new_weights_rerun_them(tmp_path):
    from icm_privacy.config import entry_source

    manifest = json.loads((REPO / "resources" / "weights" / "icm" / "manifest.json").read_text())
    shipped = entry_source({"codec": "icm-mse", "options": {}})
    points = sorted(manifest["codecs"]["icm-mse"].items())
    assert shipped.split() == [f"{rate}:{entry['sha256']}" for rate, entry in points]
    manifest["codecs"]["icm-mse"]["0"]["sha256"] = "0" * 64  # what retraining one point does
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    retrained = entry_source({"codec": "icm-mse", "options": {"weights_dir": str(tmp_path)}})
    assert retrained != shipped and retrained.split()[1:] == shipped.split()[1:]
    assert entry_source({"codec": "icm-edge", "options": {"weights_dir": str(tmp_path / "none")}}) == ""
