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


def test_every_stage_but_the_base_is_fine_tuned_from_it_and_every_shipped_point_is_a_stage():
    names = [stage.name for stage in icm_recipe.STAGES]
    assert names[0] == "base" and len(set(names)) == len(names)
    assert all(stage.init == "base" for stage in icm_recipe.STAGES[1:])
    shipped = [stage for points in icm_recipe.SHIPPED.values() for stage in points.values()]
    assert sorted(shipped) == sorted(names)
    for codec, points in icm_recipe.SHIPPED.items():  # rate points are numbered from the fewest bits up
        lambdas = [icm_recipe.stage_named(points[rate]).lmbda for rate in sorted(points, key=int)]
        assert lambdas == sorted(lambdas) and len(lambdas) >= 3, codec
        assert {icm_recipe.stage_named(stage).objective for stage in points.values()} == {codec.split("-")[1]}


@pytest.mark.heavy
def test_training_continues_from_the_committed_state_with_its_step_count_and_logs(tmp_path, coco_train):
    in_progress = [name for name, state in icm_recipe.status(TRAINING_FOLDER).items() if state == "in progress"]
    assert len(in_progress) == 1, f"{TRAINING_FOLDER}: one stage in progress expected, found {in_progress}"
    stage = icm_recipe.stage_named(in_progress[0])
    folder = tmp_path / "training"
    shutil.copytree(TRAINING_FOLDER, folder)
    state = torch.load(training.resume_path(icm_recipe.checkpoint_path(folder, stage.name)), weights_only=True)
    done = state["step"]
    assert done > 0 and len(state["log_rows"]) == done // 10 and state["validation_rows"]

    arguments = stage.arguments(folder, coco_train / "images", coco_train / "instances.json", threads=2)
    history = training.main([*arguments, f"--steps={done + 2}"])  # two more steps, then the stage's checkpoint

    assert [record["step"] for record in history] == [done, done + 1]
    log = pd.read_csv(folder / f"{stage.name}.csv")
    assert log.step.tolist() == [int(row.split(",")[0]) for row in state["log_rows"]] + [done + 1]
    validation = pd.read_csv(folder / f"{stage.name}.validation.csv")
    assert validation.step.tolist()[-1] == done + 2 and len(validation) == len(state["validation_rows"]) + 1
    saved = torch.load(icm_recipe.checkpoint_path(folder, stage.name), weights_only=True)
    assert saved["step"] == done + 2 and saved["arguments"]["lmbda"] == stage.lmbda
    assert {value.dtype for value in saved["state_dict"].values() if value.is_floating_point()} <= {
        torch.float16, torch.float32}  # parameters float16; buffers such as the scale table float32


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
                stage.objective, stage.lmbda, icm_recipe.STAGES[0].steps)
            assert entry["fine_tune_steps"] == (0 if stage_name == "base" else stage.steps)
            assert entry["data"]["validation"] == ["000000000139"] and "--lmbda" not in entry["arguments"]
    assert json.loads((tmp_path / "weights" / "manifest.json").read_text()) == manifest
    codec = make_codec("icm-edge", weights_dir=tmp_path / "weights", device="cpu")
    assert codec.model("2") is not None  # sha256 checked, weights load strictly
