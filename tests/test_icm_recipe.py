"""The icm-* training recipe: its stages, the committed training state, and the shipped manifest."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from conftest import REPO, SHARED, YOLOV5N
from icm_privacy import icm_recipe
from icm_privacy.codecs import make_codec
from icm_privacy.sources import sha256_of
from icm_privacy.training import cli, loop

WEIGHTS_DIR = REPO / "resources" / "weights" / "icm"
TRAINING_FOLDER = WEIGHTS_DIR / "training"
DATASETS = SHARED / "datasets"


@pytest.fixture(scope="module")
def datasets():
    missing = [name for name in ("coco-train", "coco-train2017") if not (DATASETS / name / "instances.json").is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in {DATASETS}")
    return DATASETS


def test_every_stage_descends_from_a_base_trained_from_random_weights_and_every_shipped_point_is_a_stage():
    names = [stage.name for stage in icm_recipe.STAGES]
    assert len(set(names)) == len(names) and set(icm_recipe.BASES) <= set(names)
    for name in icm_recipe.FINE_TUNES:
        assert icm_recipe.stage_named(name).init in icm_recipe.BASES, name
    for name in names:  # every line starts from random weights
        assert icm_recipe.lineage(name)[-1].init is None
    assert icm_recipe.stage_named("edge-base").init is None  # icm-edge owes nothing to the mse objective
    task_line = [name for name in names if icm_recipe.stage_named(name).objective == "task"]
    assert icm_recipe.lineage(task_line[-1])[-2].name == "base-2"  # fine-tuned from the mse codec's base
    shipped = [stage for points in icm_recipe.SHIPPED.values() for stage in points.values()]
    assert len(set(shipped)) == len(shipped) and set(shipped) <= set(names)
    for codec, points in icm_recipe.SHIPPED.items():  # rate points are numbered from the fewest bits up
        lambdas = [icm_recipe.stage_named(points[rate]).lmbda for rate in sorted(points, key=int)]
        assert lambdas == sorted(lambdas) and len(lambdas) >= 4, codec
        assert {icm_recipe.stage_named(stage).objective for stage in points.values()} == {codec.split("-")[1]}
    earlier = {stage.name for stage in (*icm_recipe.MSE_STAGES, *icm_recipe.EDGE_FROM_MSE_STAGES)}
    assert {stage.data for stage in icm_recipe.STAGES if stage.name not in earlier} == {"coco-train2017"}


def test_a_stage_records_its_data_and_device_and_cannot_start_before_the_stage_it_is_fine_tuned_from(
        tmp_path, capsys):
    stage = icm_recipe.stage_named("icm-task-0")
    settings = cli.parse_arguments(stage.arguments(tmp_path, DATASETS, device="cuda"))
    assert (settings.batch_size, settings.device, settings.init.name) == (8, "cuda", "icm-task-1.pth.tar")
    assert (settings.objective, settings.detector, settings.images) == (
        "task", icm_recipe.DETECTOR, DATASETS / "coco-train2017" / "images")
    assert settings.pixel_lmbda == pytest.approx(2e-4 * stage.lmbda)
    with pytest.raises(SystemExit):
        icm_recipe.main(["--folder", str(tmp_path), "--stage", "icm-task-0"])
    assert "stage icm-task-0 is fine-tuned from icm-task-1, which is not done" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_base_is_done_once_every_stage_fine_tuned_from_it_is_so_its_checkpoint_may_leave(tmp_path):
    fine_tuned = [stage.name for stage in icm_recipe.STAGES if stage.init == "base-2"]
    for name in ["base", *fine_tuned[:-1]]:
        icm_recipe.checkpoint_path(tmp_path, name).touch()
    assert icm_recipe.is_done(tmp_path, "base") and not icm_recipe.is_done(tmp_path, "base-2")
    icm_recipe.checkpoint_path(tmp_path, "base").unlink()
    icm_recipe.checkpoint_path(tmp_path, fine_tuned[-1]).touch()
    assert icm_recipe.is_done(tmp_path, "base-2") and icm_recipe.is_done(tmp_path, "base")  # no file: retired


def test_no_weight_file_is_in_the_tree_twice_and_every_one_is_shipped_or_in_training():
    manifest = json.loads((WEIGHTS_DIR / "manifest.json").read_text())
    shipped = {(WEIGHTS_DIR / entry["file"]).resolve() for points in manifest["codecs"].values()
               for entry in points.values()}
    files = sorted(WEIGHTS_DIR.rglob("*.pth.tar"))
    assert {path.resolve() for path in files} == shipped  # no checkpoint no codec ships
    assert len({sha256_of(path) for path in files}) == len(files)
    status = icm_recipe.status(TRAINING_FOLDER)
    for state in TRAINING_FOLDER.glob("*.resume"):  # a stage in progress: slim state only
        assert status[state.name.removesuffix(".pth.tar.resume")] == "in progress"
        saved = torch.load(state, weights_only=True)
        assert {value.dtype for name, value in saved["state_dict"].items() if name.endswith("weight")} == {torch.float16}
        assert state.stat().st_size < 12e6


@pytest.mark.heavy
def test_the_finished_stages_have_full_logs_and_a_rerun_trains_nothing(tmp_path, datasets):
    """Every stage with a checkpoint ran to its last step (the resume from a committed state between
    sessions is what tests/test_training.py kills and resumes)."""
    folder = tmp_path / "training"
    shutil.copytree(TRAINING_FOLDER, folder, ignore=shutil.ignore_patterns("*.resume"))
    finished = [stage for stage in icm_recipe.STAGES if icm_recipe.checkpoint_path(folder, stage.name).is_file()]
    assert {name for points in icm_recipe.SHIPPED.values() for name in points.values()} & {
        stage.name for stage in finished}
    for stage in finished:
        saved = torch.load(icm_recipe.checkpoint_path(folder, stage.name), weights_only=True)
        assert (saved["step"], saved["lmbda"], saved["objective"]) == (stage.steps, stage.lmbda, stage.objective)
        assert (saved["arguments"]["learning_rate"], saved["arguments"]["batch_size"]) == (
            stage.learning_rate, stage.batch_size)
        assert pd.read_csv(folder / f"{stage.name}.csv").step.tolist() == list(range(9, stage.steps, 10))
        validation = pd.read_csv(folder / f"{stage.name}.validation.csv")
        assert validation.step.tolist() == [*range(0, stage.steps, 500), stage.steps], stage.name
        assert {value.dtype for value in saved["state_dict"].values() if value.is_floating_point()} <= {
            torch.float16, torch.float32}  # parameters float16; buffers such as the scale table float32

    written = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    for stage in finished:
        icm_recipe.run_stage(folder, stage.name, datasets)
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == written


@pytest.mark.heavy
def test_ship_writes_each_point_with_its_training_record_and_a_manifest_the_codecs_accept(tmp_path):
    folder = tmp_path / "training"
    for stage in icm_recipe.STAGES:  # one random model per stage stands in for the trained ones
        _, model = loop.training_model("icm-mse", 1, None, "cpu")
        settings = vars(cli.parse_arguments(stage.arguments(folder, DATASETS, detector=YOLOV5N)))
        loop.save_checkpoint(model, icm_recipe.checkpoint_path(folder, stage.name), float16=True,
                             step=stage.steps, codec="icm", lmbda=stage.lmbda, objective=stage.objective,
                             masks="coco", arguments={k: str(v) for k, v in settings.items()},
                             validation=["000000000139"])
    manifest = icm_recipe.ship(folder, tmp_path / "weights")
    for codec, points in icm_recipe.SHIPPED.items():
        for rate, stage_name in points.items():
            entry, stage = manifest["codecs"][codec][rate], icm_recipe.stage_named(stage_name)
            assert entry["file"] == f"../training/{stage_name}.pth.tar"  # where it was trained: no copy
            assert entry["sha256"] == sha256_of(tmp_path / "weights" / entry["file"])
            bases = [link.steps for link in icm_recipe.lineage(stage_name) if link.name in icm_recipe.BASES]
            assert (entry["objective"], entry["lmbda"], entry["base_steps"]) == (stage.objective, stage.lmbda, sum(bases))
            assert entry["fine_tune_steps"] == (0 if stage_name in icm_recipe.BASES else stage.steps)
            assert entry["data"]["validation"] == ["000000000139"] and "--lmbda" not in entry["arguments"]
    assert json.loads((tmp_path / "weights" / "manifest.json").read_text()) == manifest
    assert not list((tmp_path / "weights").glob("*.pth.tar"))
    for name in icm_recipe.SHIPPED:
        codec = make_codec(name, weights_dir=tmp_path / "weights", device="cpu")
        assert codec.model("2") is not None  # sha256 checked, weights load strictly

    icm_recipe.checkpoint_path(folder, icm_recipe.SHIPPED["icm-task"]["0"]).unlink()
    assert "icm-task" not in icm_recipe.ship(folder, tmp_path / "weights")["codecs"]  # a codec ships whole


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
