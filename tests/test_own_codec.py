"""Your own codec from the config alone: plug-ins, command templates and imports give the built-in rows.

Each kind is checked against the built-in codec it re-creates, through the real workflow on real COCO
photos (real bitstream files; bpp from their bytes): ffmpeg/vvenc templates vs `vvc`, a plug-in model
factory with a checkpoint of random weights vs `bmshj2018-factorized` with the same weights, and an
import of the run's own `vvc` files vs that run. VTM through templates is compared with the built-in
`vtm` codec directly, on a small crop (VTM takes seconds per picture even there).
"""
from __future__ import annotations

import os
import shlex
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, SHARED, SNAKEMAKE, VTM, scheduled_jobs, snakemake
from icm_privacy.codecs import CodecError, make_codec
from icm_privacy.codecs.ffmpeg import ffmpeg_executable
from icm_privacy.codecs.vtm import vtm_from_folder
from icm_privacy.config import ConfigError, load_config, validate_config
from icm_privacy.images import read_png, read_rgb8, write_png

COCO_IMAGES = ["000000000790", "000000109313"]
# odd-sized crops around the photos' faces (MTCNN finds 3 faces in them: 34-48 px, confidence >= 0.98)
FACE_CROPS = {"000000000790": (slice(96, 223), slice(352, 575)), "000000109313": (slice(32, 159), slice(96, 255))}
EXAMPLE = REPO / "docs" / "examples" / "own-codec"
FFMPEG = ffmpeg_executable()
QP = 37


def vvc_templates() -> dict:
    """What the built-in `vvc` codec does (ffmpeg.py), as two templates around raw 4:2:0 10-bit files: its
    own encoder arguments (whatever its defaults are), with the QP as a placeholder."""
    encoder = shlex.join(make_codec("vvc", preset="faster").encoder_arguments(QP)).replace(f"-qp {QP}", "-qp {quality}")
    return {
        "encode": f"{FFMPEG} -hide_banner -loglevel error -f rawvideo -pix_fmt yuv420p10le -s {{width}}x{{height}} "
                  f"-color_range tv -colorspace bt709 -i {{input}} -frames:v 1 -threads {{threads}} {encoder} "
                  "-f vvc {output}",
        "decode": f"{FFMPEG} -hide_banner -loglevel error -i {{input}} -f rawvideo -pix_fmt yuv420p10le {{output}}",
        "pixel_format": "yuv420p10", "extension": "266",
    }


# What the built-in `vtm` codec does (vtm.py).
VTM_TEMPLATES = {
    "encode": f"{VTM}/EncoderAppStatic -c {VTM}/cfg/encoder_intra_vtm.cfg -i {{input}} -b {{output}} -o '' "
              "-wdt {width} -hgt {height} -fr 1 -f 1 -q {quality} --InputBitDepth=10 --OutputBitDepth=10 "
              "--InternalBitDepth=10 --InputChromaFormat=420 --ChromaFormatIDC=420 --ConformanceWindowMode=1",
    "decode": f"{VTM}/DecoderAppStatic -b {{input}} -o {{output}} -d 10",
    "pixel_format": "yuv420p10", "extension": "266",
}
PLUGIN_MODULE = '''
"""A plug-in living outside the repository: a model factory and a Codec subclass."""
from compressai.zoo import bmshj2018_factorized

from icm_privacy.codecs.pillow import Jpeg


def build(quality):
    return bmshj2018_factorized(quality)


class OwnJpeg(Jpeg):
    name = "own-jpeg"
'''


@pytest.fixture(scope="module")
def plugin_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "outside_codec.py").write_text(PLUGIN_MODULE)
    with pytest.MonkeyPatch.context() as patch:  # the workflow's jobs inherit PYTHONPATH too
        patch.syspath_prepend(str(folder))
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))
        yield folder


@pytest.fixture(scope="module")
def crop(coco_photo):
    return read_rgb8(coco_photo)[100:171, 200:297]  # 97x71: odd sizes, padded and cropped back


def code_both(builtin, own, rgb, quality, folder):
    """Code `rgb` with both codecs; their bitstream bytes and decoded images."""
    results = []
    for name, codec in (("builtin", builtin), ("own", own)):
        bitstream, decoded = folder / f"{name}.{codec.extension}", folder / f"{name}.png"
        codec.code(rgb, quality, bitstream, decoded, name)
        results.append((bitstream.read_bytes(), read_png(decoded)))
    return results


@pytest.mark.heavy
def test_vtm_templates_write_the_builtin_vtm_bitstream_and_decode_to_its_pixels(tmp_path, crop, vtm_folder):
    vtm = vtm_from_folder(vtm_folder)
    (builtin_bytes, builtin_pixels), (own_bytes, own_pixels) = code_both(
        vtm, make_codec("command", **VTM_TEMPLATES), crop, QP, tmp_path)
    assert len(own_bytes) > 100 and own_bytes == builtin_bytes
    assert own_pixels.shape == crop.shape and np.array_equal(own_pixels, builtin_pixels)


def test_codec_subclass_plugin_from_outside_the_repo_is_that_codec(tmp_path, crop, plugin_folder):
    own = make_codec("plugin", factory="outside_codec:OwnJpeg")
    assert (own.name, own.extension, own.quality_range, own.conda_env) == ("own-jpeg", "jpg", (1, 95), "codecs")
    (builtin_bytes, builtin_pixels), (own_bytes, own_pixels) = code_both(make_codec("jpeg"), own, crop, 50, tmp_path)
    assert own_bytes == builtin_bytes and np.array_equal(own_pixels, builtin_pixels)


def test_failing_command_is_reported_with_its_stderr(tmp_path, crop):
    failing = make_codec("command", encode="sh -c 'echo cannot open $0 >&2; exit 3' {input} {output}",
                         decode="cat {input} {output}")
    with pytest.raises(CodecError, match=r"(?s)encode command exited with 3: sh -c .*cannot open .*input\.png"):
        failing.code(crop, 1, tmp_path / "a.bin", tmp_path / "a.png", "crop")
    silent = make_codec("command", encode="cp {input} {output}", decode="true {input} {output}")
    with pytest.raises(CodecError, match=r"decode command wrote no \{output\} file"):
        silent.code(crop, 1, tmp_path / "b.bin", tmp_path / "b.png", "crop")


@pytest.fixture
def dataset(tmp_path, coco_persons):
    images = tmp_path / "images"
    images.mkdir()
    for image_id in COCO_IMAGES:
        (images / f"{image_id}.jpg").symlink_to(coco_persons / "images" / f"{image_id}.jpg")
    return {"kind": "folder", "images": str(images)}


def refusal(dataset: dict, entry: dict) -> str:
    with pytest.raises(ConfigError) as refused:
        validate_config({"dataset": dataset, "codecs": [{"codec": "jpeg", "qualities": [50]}, entry]})
    return str(refused.value)


def test_bad_own_codec_configuration_is_refused_naming_the_key_and_problem(tmp_path, dataset):
    message = refusal(dataset, {"codec": "plugin", "qualities": [1], "options": {"factory": "nowhere.codec:build"}})
    assert message.startswith("config key codecs.1.options (entry 'plugin'): option 'factory': cannot import module "
                              "'nowhere.codec'")
    message = refusal(dataset, {"codec": "command", "qualities": [1],
                                "options": {"encode": "cp {input} /tmp/x", "decode": "cp {input} {output}"}})
    assert message == ("config key codecs.1.options (entry 'command'): option 'encode' has no {output} placeholder: "
                       "'cp {input} /tmp/x'")
    message = refusal(dataset, {"codec": "command", "qualities": [1],
                                "options": {"encode": "enc {input} {output} -q {qp}",
                                            "decode": "dec {input} {output}"}})
    assert ("option 'encode': unknown placeholder {qp}; allowed: height, input, output, quality, threads, width. "
            "Braces that are not placeholders (a shell's { ...; } group, ${VAR}) are written doubled") in message

    # an import with an empty bitstream, a decoded image of the wrong size, an unreadable one, a stray file
    # and a missing quality folder
    root = tmp_path / "imported"
    (root / "5").mkdir(parents=True)
    first, second = COCO_IMAGES
    (root / "5" / f"{first}.bin").write_bytes(b"")
    write_png(np.zeros((8, 8, 3), np.uint8), root / "5" / f"{first}.png")
    (root / "5" / f"{second}.bin").write_bytes(b"\x01" * 10)
    (root / "5" / f"{second}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (root / "5" / "notes.txt").write_text("not an image")
    imported = {"codec": "import", "options": {"root": str(root), "extension": "bin"}}
    message = refusal(dataset, {**imported, "qualities": [5, 7]})
    assert message.startswith("config key codecs.1.options.root (entry 'import'): 5 problem(s) with the imported files:")
    assert f"empty bitstream {root}/5/{first}.bin" in message
    assert f"wrong size {root}/5/{first}.png: 8x8, the original is 640x422" in message
    assert f"unreadable {root}/5/{second}.png" in message
    assert f"extra file {root}/5/notes.txt" in message
    assert f"missing folder {root}/7" in message
    (root / "5" / f"{first}.png").unlink()
    assert f"missing {root}/5/{first}.png" in refusal(dataset, {**imported, "qualities": [5]})


def test_example_config_loads_with_its_plugin_module_on_the_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    config = load_config(EXAMPLE / "config.yaml")
    assert [entry["label"] for entry in config["codecs"]] == ["vvc", "jpeg2000", "vtm-command"]
    assert make_codec("plugin", **config["codecs"][1]["options"]).extension == "j2k"


def table1_rows(path) -> pd.DataFrame:
    return pd.read_csv(path).set_index("codec")


def assert_same_row(table: pd.DataFrame, builtin: str, own: str) -> None:
    print(table.loc[[builtin, own]].to_string())
    pd.testing.assert_series_equal(table.loc[own], table.loc[builtin], check_names=False)


def assert_same_files(results, builtin: str, own: str, quality: str, extension: str) -> None:
    """Byte-identical bitstreams and pixel-identical decoded images, image by image."""
    for image_id in COCO_IMAGES:
        bitstreams = [(results / "bitstreams" / label / quality / "shard-0" / f"{image_id}.{extension}").read_bytes()
                      for label in (builtin, own)]
        decoded = [read_png(results / "decoded" / label / quality / "shard-0" / f"{image_id}.png")
                   for label in (builtin, own)]
        assert bitstreams[0] == bitstreams[1] and np.array_equal(*decoded), image_id


@pytest.fixture(scope="module")
def run(tmp_path_factory, coco_persons, plugin_folder):
    """One run with the built-ins and their re-creations by template and plug-in; then the same run with an
    import of its own vvc files added."""
    folder = tmp_path_factory.mktemp("own-codec")
    for image_id, (rows, columns) in FACE_CROPS.items():  # small pictures keep the learned codec's jobs short
        photo = read_rgb8(coco_persons / "images" / f"{image_id}.jpg")
        write_png(photo[rows, columns], folder / "images" / f"{image_id}.png")
    # the built-in codec's random weights, saved as the plug-in's checkpoint
    builtin_model = make_codec("bmshj2018-factorized", random_init=True, device="cpu").model(1)
    torch.save(builtin_model.state_dict(), folder / "factorized_1.pth.tar")
    config = {
        "results": str(folder / "results"),
        "dataset": {"kind": "folder", "images": str(folder / "images")},
        "codecs": [
            {"codec": "vvc", "qualities": [QP], "options": {"preset": "faster"}},
            {"codec": "command", "label": "vvc-command", "qualities": [QP], "options": vvc_templates()},
            {"codec": "bmshj2018-factorized", "qualities": [1], "options": {"random_init": True, "device": "cpu"}},
            {"codec": "plugin", "label": "factorized-plugin", "qualities": [1],
             "options": {"factory": "outside_codec:build", "checkpoint": str(folder / "factorized_{quality}.pth.tar"),
                         "model_name": "bmshj2018-factorized", "device": "cpu"}},
        ],
        "faces": {"models": ["SFace"], "thresholds": [0.95]},
        "privacy": {"n_resamples": 10},
    }
    config_path, table1 = folder / "config.yaml", folder / "results" / "tables" / "table1_conf0.950.csv"
    config_path.write_text(yaml.safe_dump(config))
    snakemake(config_path, "--", str(table1))  # Table 1 only: figures and privacy metrics are not compared
    first_table = table1_rows(table1)

    # the vvc files of that run, laid out as an import: <root>/<quality>/<image id>.266 and .png
    imported = folder / "imported" / str(QP)
    imported.mkdir(parents=True)
    for image_id in COCO_IMAGES:
        for kind, suffix in (("bitstreams", "266"), ("decoded", "png")):
            os.link(folder / "results" / kind / "vvc" / str(QP) / "shard-0" / f"{image_id}.{suffix}",
                    imported / f"{image_id}.{suffix}")
    config["codecs"].append({"codec": "import", "label": "vvc-import", "qualities": [QP],
                             "options": {"root": str(folder / "imported"), "extension": "266"}})
    config_path.write_text(yaml.safe_dump(config))
    snakemake(config_path, "--", str(table1))
    return folder, config_path, first_table


@pytest.mark.integration
def test_command_templates_calling_ffmpeg_give_the_builtin_vvc_row(run):
    folder, _, table = run
    assert_same_row(table, "vvc", "vvc-command")
    assert_same_files(folder / "results", "vvc", "vvc-command", str(QP), "266")
    assert table.loc["vvc", "images"] == 2 and table.loc["vvc", "faces"] == 3 and table.loc["vvc", "bpp_mean"] > 0


@pytest.mark.integration
def test_plugin_model_with_the_builtin_weights_gives_the_builtin_row(run):
    folder, _, table = run
    assert_same_row(table, "bmshj2018-factorized", "factorized-plugin")
    assert_same_files(folder / "results", "bmshj2018-factorized", "factorized-plugin", "1", "lic")
    assert 0 < table.loc["factorized-plugin", "bpp_estimated"] < table.loc["factorized-plugin", "bpp_mean"]


# What a finished run schedules when only one entry's code changed: that entry's per-point jobs and the
# aggregation behind Table 1, nothing of the other entries.
AGGREGATION_RULES = {"tabulate", "tabulate_quality", "summarise"}


def assert_only_entry_reruns(dry_run: str, rule: str, label: str) -> None:
    scheduled = scheduled_jobs(dry_run)
    point = f"{label}/{QP if label.startswith('vvc') else 1}"
    assert {job for job in scheduled if job[0] not in AGGREGATION_RULES} == {
        (rule, f"quality={point.split('/')[1]}, shard=0"), ("crop_faces", f"point={point}, shard=0"),
        ("embed_faces", f"version={point}, shard=0"), ("measure_quality", f"point={point}, shard=0")}, scheduled
    assert {job[0] for job in scheduled} >= AGGREGATION_RULES


@pytest.mark.integration
def test_editing_a_plugin_module_reruns_exactly_its_entrys_points(run, plugin_folder):
    folder, config_path, _ = run
    table1 = str(folder / "results" / "tables" / "table1_conf0.950.csv")
    assert "Nothing to be done" in snakemake(config_path, "--dry-run", "--", table1)
    module = plugin_folder / "outside_codec.py"
    original = module.read_text()
    try:
        module.write_text(original + "\n# an edit: the module's sha256 is part of its entry's identity\n")
        dry_run = snakemake(config_path, "--dry-run", "--", table1)
    finally:
        module.write_text(original)
    assert_only_entry_reruns(dry_run, "code_factorized_plugin", "factorized-plugin")


@pytest.mark.integration
def test_replacing_an_imported_png_reruns_that_points_jobs(run):
    folder, config_path, _ = run
    table1 = str(folder / "results" / "tables" / "table1_conf0.950.csv")
    png = folder / "imported" / str(QP) / f"{COCO_IMAGES[1]}.png"
    pixels = read_png(png).copy()
    pixels[0, 0] ^= 1  # another decoded image: Snakemake reruns on changed content, not on a touch
    png.unlink()  # a new file (the old one is a hard link into the first run's own vvc results)
    write_png(pixels, png)
    assert_only_entry_reruns(snakemake(config_path, "--dry-run", "--", table1), "code_vvc_import", "vvc-import")


@pytest.mark.integration
def test_import_of_a_runs_files_gives_that_runs_row_and_is_checked_before_any_job(run):
    folder, config_path, first_table = run
    table = table1_rows(folder / "results" / "tables" / "table1_conf0.950.csv")
    assert_same_row(table, "vvc", "vvc-import")
    pd.testing.assert_frame_equal(table.drop(index="vvc-import"), first_table)  # the first run's rows unchanged
    coding = pd.read_csv(folder / "results" / "bitstreams" / "vvc-import" / str(QP) / "shard-0" / "coding.csv")
    assert coding.encode_seconds.isna().all()  # nothing was coded: no time to report

    missing = folder / "imported" / str(QP) / f"{COCO_IMAGES[0]}.png"
    missing.unlink()
    refused = subprocess.run([*SNAKEMAKE, "--configfile", str(config_path), "--forceall"], cwd=REPO,
                             capture_output=True, text=True)
    assert refused.returncode != 0
    assert (f"config key codecs.4.options.root (entry 'vvc-import'): 1 problem(s) with the imported files:\n"
            f"  missing {missing}"
            in refused.stderr)
    assert "Job stats" not in refused.stdout + refused.stderr  # refused before scheduling anything


def test_a_command_entry_declares_its_quality_range_and_whole_numbers(dataset):
    command = {"codec": "command", "label": "cwebp-cli", "options": {
        "encode": "cp {input} {output}", "decode": "cp {input} {output}", "quality_range": [0, 100]}}
    message = refusal(dataset, {**command, "qualities": [50, 150]})
    assert message == ("config key codecs.1.qualities (entry 'cwebp-cli'): 150 is out of range for codec command "
                       "(allowed 0..100)")
    validate_config({"dataset": dataset, "codecs": [{**command, "qualities": [0, 37.5, 100]}]})  # inside: accepted
    command["options"]["integer_qualities"] = True
    message = refusal(dataset, {**command, "qualities": [37.5]})
    assert message == ("config key codecs.1.qualities (entry 'cwebp-cli'): 37.5 is not a whole number; codec command "
                       "takes whole numbers only")
    assert "37.5 is not a whole number; codec vvc takes" in refusal(dataset, {"codec": "vvc", "qualities": [37.5]})
    message = refusal(dataset, {**command, "qualities": [1], "options": {**command["options"], "quality_range": [9, 1]}})
    assert message.endswith("option 'quality_range': [9, 1] must be [lowest, highest]")


def test_braces_of_a_shell_group_are_written_doubled_and_reach_the_shell(tmp_path, crop):
    group = make_codec("command", encode="sh -c 'cat \"$0\" > \"$1\" && {{ test -s \"$1\" || exit 3; }}' {input} {output}",
                       decode="sh -c 'cp \"${{0}}\" \"$1\"' {input} {output}")
    result = group.code(crop, 1, tmp_path / "a.bin", tmp_path / "a.png", "crop")
    assert np.array_equal(read_png(tmp_path / "a.png"), crop) and result.bitstream_bytes > 0
