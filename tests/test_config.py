"""The configuration is refused before any job runs, naming the key and the allowed values."""
from __future__ import annotations

import copy

import pytest
import yaml

from icm_privacy.config import ConfigError, codec_points, load_config, validate_config
from conftest import REPO


def minimal():
    return {"dataset": {"kind": "demo"}, "codecs": [{"codec": "vvc", "qualities": [32, 37]}]}


def test_shipped_configs_are_valid_and_defaults_are_filled():
    for path in [REPO / "config.yaml", *sorted((REPO / "workflow" / "configs").glob("*.yaml"))]:
        config = load_config(path)
        assert config["faces"]["thresholds"], path
    config = validate_config(minimal())
    assert config["faces"]["thresholds"] == [0.950, 0.975]
    assert config["faces"]["models"] == ["SFace", "Facenet", "Dlib"]
    assert config["shards"] == 1 and config["codecs"][0]["label"] == "vvc"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["codecs"][0].update(codec="h266"), r"codecs\.0\.codec \(entry 'h266'\): unknown codec 'h266'; allowed: .*vvc"),
        (lambda c: c["codecs"][0].update(qualities=[32, 70]), r"codecs\.0\.qualities \(entry 'vvc'\): 70 is out of range for codec vvc \(allowed 0\.\.63\)"),
        (lambda c: c.update(faces={"models": []}), r"faces\.models: \[\] should be non-empty"),
        (lambda c: c.update(faces={"models": ["Facenet", "FaceX"]}), r"faces\.models\.1: 'FaceX' is not one of"),
        (lambda c: c.update(resolution=3), r"\(top level\): Additional properties are not allowed \('resolution'"),
        (lambda c: c["dataset"].update(kind="coco"), r"dataset: 'images' is a required property"),
        (lambda c: c.update(codecs=[{"codec": "jpeg", "qualities": [50]}, {"codec": "jpeg", "qualities": [10]}]),
         r"codecs\.1\.label \(entry 'jpeg'\): 'jpeg' is used twice"),
        (lambda c: c.update(privacy={"attackers": ["restored", "gan"]}), r"privacy\.attackers\.1: 'gan' is not one of"),
        (lambda c: c.update(privacy={"attack_training": {"codecs": ["vvc", "jpeg"]}}),
         r"privacy\.attack_training\.codecs\.1: no codec entry is labelled 'jpeg'; labels: vvc"),
        (lambda c: c["codecs"].append({"codec": "k-same-pixel", "qualities": [2]})
         or c.update(privacy={"attack_training": {"codecs": ["k-same-pixel"]}}),
         r"privacy\.attack_training\.codecs\.0: entry 'k-same-pixel' \(codec k-same-pixel\) cannot be attacked: its "
         r"output holds faces of the evaluated images"),
    ],
    ids=["unknown-codec", "qp-out-of-range", "empty-models", "unknown-model", "unknown-key", "coco-needs-images", "duplicate-label",
         "unknown-attacker", "attacked-label-unknown", "k-same-not-attackable"],
)
def test_invalid_config_names_the_offending_key(change, message):
    config = minimal()
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_codec_points_enumerate_every_quality_of_every_entry():
    config = validate_config({"dataset": {"kind": "demo"}, "codecs": [
        {"codec": "vvc", "qualities": [32, 37]},
        {"codec": "jpegxl", "label": "jxl-fast", "qualities": [1.5], "options": {"effort": 3}},
    ]})
    points = codec_points(config)
    assert [(p.label, p.key.quality) for p in points] == [("vvc", "32"), ("vvc", "37"), ("jxl-fast", "1.5")]
    assert points[2].options == {"effort": 3}


def test_learning_attackers_attack_every_entry_that_can_code_new_images_and_are_off_by_default():
    from icm_privacy.config import attacked_points

    entries = [{"codec": "vvc", "qualities": [32, 37]}, {"codec": "k-same-pixel", "qualities": [2]},
               {"codec": "jpeg", "qualities": [10]}]
    assert attacked_points(validate_config({"dataset": {"kind": "demo"}, "codecs": copy.deepcopy(entries)})) == []
    config = validate_config({"dataset": {"kind": "demo"}, "codecs": copy.deepcopy(entries),
                              "privacy": {"attackers": ["adapted"]}})
    assert [point.key.path for point in attacked_points(config)] == ["vvc/32", "vvc/37", "jpeg/10"]
    assert config["privacy"]["attack_training"]["first_n"] == 164
    config["privacy"]["attack_training"]["codecs"] = ["jpeg"]
    assert [point.key.path for point in attacked_points(config)] == ["jpeg/10"]
    for path in sorted((REPO / "workflow" / "configs").glob("coco-*.yaml")):  # the COCO configs switch them on
        expected = [] if "equivalence" in path.name else ["restored", "adapted"]
        assert load_config(path)["privacy"]["attackers"] == expected, path.name


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(minimal())))
    assert load_config(path)["results"] == "results/demo"
