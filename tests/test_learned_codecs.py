"""Learned codecs: real container files, decoding from the file alone, SA-ICM checkpoint compatibility.

No trained weights can be had here, so the coding path runs on deterministic random weights
(random_init, test only): that exercises the networks, the entropy coder and the container exactly as
trained weights would, while the decoded pixels mean nothing.
"""
from __future__ import annotations

import collections
import re
import subprocess
import sys
import urllib.error

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO
from icm_privacy.codecs import CODECS, CodecError, CodecUnavailable, bits_per_pixel, make_codec
from icm_privacy.codecs.learned import Bitstream, read_bitstream, write_bitstream
from icm_privacy.images import read_png, read_rgb8, write_png
from icm_privacy.stages.codecs import code

pytestmark = pytest.mark.heavy  # real models or binaries: not in the quick lane

# each learned codec at one quality; sa-icm's quality is only a checkpoint label
CODEC_POINTS = [
    ("sa-icm", 78),
    ("bmshj2018-factorized", 1),
    ("bmshj2018-hyperprior", 2),
    ("mbt2018-mean", 3),
    ("mbt2018", 4),
    ("cheng2020-anchor", 1),
    ("cheng2020-attn", 2),
]

# Numbers derived from the official TCM code (jmliu206/LIC_TCM models/tcm.py, N=128, M=320, 5 slices),
# by building it and counting: see docs/learned_codecs.md.
TCM_PARAMETERS = 76_568_148
TCM_STATE_ENTRIES = 1293
TCM_FIRST_LAYER = ("g_a.0.conv1.weight", (256, 3, 3, 3))  # ResidualBlockWithStride(3, 2N)
TCM_LAST_SYNTHESIS_LAYER = ("g_s.9.0.weight", (12, 256, 3, 3))  # subpel_conv3x3(2N, 3, 2): 3 x 2^2 outputs
TCM_LAST_LAYER = ("lrp_transforms.4.4.weight", (64, 128, 3, 3))  # last registered conv: slice 5's LRP


@pytest.fixture(scope="module")
def photo(coco_photo) -> np.ndarray:
    return read_rgb8(coco_photo)[100:172, 200:295]  # 95x72, odd width: padded and cropped back


def header_bytes(bitstream: Bitstream) -> int:
    """The container's fixed fields (docs/learned_codecs.md), counted by hand."""
    return 4 + 1 + 1 + (1 + len(bitstream.model)) + (1 + len(bitstream.quality)) + 8 + 1 + 4 * len(bitstream.strings)


def test_learned_codecs_are_registered_under_their_zoo_names():
    assert {name for name, _ in CODEC_POINTS} <= set(CODECS)
    assert CODECS["cheng2020-anchor"].quality_range == (1, 6)
    assert CODECS["mbt2018"].quality_range == (1, 8)


def test_container_round_trips_every_field_and_refuses_damaged_files(tmp_path):
    bitstream = Bitstream("mbt2018", "3", "cuda", 641, 479, (10, 12), (b"\x01\x02\x03", b"", b"z" * 70000))
    path = tmp_path / "image.lic"
    write_bitstream(bitstream, path)
    assert read_bitstream(path) == bitstream
    assert path.stat().st_size == header_bytes(bitstream) + 3 + 0 + 70000

    data = path.read_bytes()
    (tmp_path / "short.lic").write_bytes(data[:-1])
    with pytest.raises(CodecError, match="truncated"):
        read_bitstream(tmp_path / "short.lic")
    (tmp_path / "magic.lic").write_bytes(b"JUNK" + data[4:])
    with pytest.raises(CodecError, match="magic"):
        read_bitstream(tmp_path / "magic.lic")
    (tmp_path / "long.lic").write_bytes(data + b"\x00")
    with pytest.raises(CodecError, match="unexpected bytes"):
        read_bitstream(tmp_path / "long.lic")


@pytest.mark.parametrize("name, quality", CODEC_POINTS, ids=[point[0] for point in CODEC_POINTS])
def test_codec_round_trips_through_its_file_like_the_in_memory_decode(tmp_path, photo, name, quality):
    codec = make_codec(name, random_init=True, device="cpu")
    height, width = photo.shape[:2]
    bitstream_path, decoded_path = tmp_path / f"photo.{codec.extension}", tmp_path / "photo.png"
    result = codec.code(photo, quality, bitstream_path, decoded_path, "photo")

    size = bitstream_path.stat().st_size
    assert result.bitstream_bytes == size
    assert result.bpp == bits_per_pixel(size, width, height) == 8 * size / (width * height)
    stored = read_bitstream(bitstream_path)
    assert (stored.model, stored.quality, stored.device_kind, stored.width, stored.height) == (
        name, str(quality), "cpu", width, height)
    assert size == header_bytes(stored) + sum(len(string) for string in stored.strings)

    model = codec.model(quality)
    with torch.no_grad():
        in_memory = model.compress(codec.model_input(photo))
        assert stored.strings == tuple(group[0] for group in in_memory["strings"])
        assert stored.latent_shape == tuple(in_memory["shape"])
        expected = codec.output_rgb(model.decompress(in_memory["strings"], in_memory["shape"])["x_hat"], width, height)
    decoded = read_png(decoded_path)
    assert decoded.shape == photo.shape and decoded.dtype == np.uint8
    assert np.array_equal(decoded, expected)


def test_random_weights_are_the_same_for_every_codec_object(tmp_path, photo):
    first = make_codec("bmshj2018-hyperprior", random_init=True, device="cpu")
    first.encode(photo, 2, tmp_path / "a.lic")
    second = make_codec("bmshj2018-hyperprior", random_init=True, device="cpu")  # a separate decoder
    assert np.array_equal(second.decode(tmp_path / "a.lic", photo.shape[1], photo.shape[0]),
                          first.decode(tmp_path / "a.lic", photo.shape[1], photo.shape[0]))


def test_decoding_a_stream_made_on_another_device_kind_is_refused(tmp_path, photo):
    codec = make_codec("bmshj2018-factorized", random_init=True, device="cpu")
    codec.encode(photo, 1, tmp_path / "cpu.lic")
    made_on_gpu = read_bitstream(tmp_path / "cpu.lic")
    write_bitstream(Bitstream(**{**made_on_gpu.__dict__, "device_kind": "cuda"}), tmp_path / "cuda.lic")
    with pytest.raises(CodecError, match="encoded on cuda, this decoder runs on cpu"):
        codec.decode(tmp_path / "cuda.lic", photo.shape[1], photo.shape[0])
    other_model = make_codec("mbt2018", random_init=True, device="cpu")
    with pytest.raises(CodecError, match="made by model 'bmshj2018-factorized'"):
        other_model.decode(tmp_path / "cpu.lic", photo.shape[1], photo.shape[0])
    with pytest.raises(CodecError, match="expected 10x10"):
        codec.decode(tmp_path / "cpu.lic", 10, 10)


def test_shard_job_records_file_rate_and_likelihood_estimate_per_image(tmp_path, photo):
    """The workflow's code step on a shard of two images of different sizes, one model load."""
    shard = tmp_path / "shard"
    shard.mkdir()
    images = {"first": photo, "second": photo[:40, :64]}
    for name, image in images.items():
        write_png(image, shard / f"{name}.png")
    coding = code(str(shard), str(tmp_path / "bitstreams"), str(tmp_path / "decoded"), "mbt2018-mean", 3,
                        {"random_init": True, "device": "cpu"}, threads=1)
    assert coding.image.tolist() == ["first", "second"]
    assert pd.read_csv(tmp_path / "bitstreams" / "coding.csv").bitstream.tolist() == ["first.lic", "second.lic"]
    for record in coding.itertuples():
        image, bitstream_path = images[record.image], tmp_path / "bitstreams" / record.bitstream
        pixels = image.shape[0] * image.shape[1]
        assert record.bytes == bitstream_path.stat().st_size
        assert record.bpp == 8 * record.bytes / pixels
        assert read_png(tmp_path / "decoded" / f"{record.image}.png").shape == image.shape
        assert record.encode_seconds > 0 and record.decode_seconds > 0
        assert record.encode_cpu_seconds > 0  # the model runs in this process: its CPU time counts
        # the estimate prices the same symbols with exact Gaussians; the coder uses quantized CDFs,
        # a scale table and a few flush bytes per stream, so the two agree only roughly
        stored = read_bitstream(bitstream_path)
        payload_bits = 8 * sum(len(string) for string in stored.strings)
        estimated_bits = record.estimated_bpp * pixels
        assert abs(payload_bits - estimated_bits) <= 0.1 * estimated_bits + 32 * len(stored.strings)
        assert record.bpp > payload_bits / pixels


def test_sa_icm_checkpoint_in_the_authors_format_loads_strictly(tmp_path):
    model = make_codec("sa-icm", random_init=True, device="cpu").model(78)
    state_dict = model.state_dict()
    assert sum(parameter.numel() for parameter in model.parameters()) == TCM_PARAMETERS
    assert len(state_dict) == TCM_STATE_ENTRIES
    names = list(state_dict)
    assert names[0] == "entropy_bottleneck.quantiles" and names[-1] == "gaussian_conditional.lower_bound_scale.bound"
    for name, shape in (TCM_FIRST_LAYER, TCM_LAST_SYNTHESIS_LAYER, TCM_LAST_LAYER):
        assert tuple(state_dict[name].shape) == shape
    weight_names = [name for name, _ in model.named_parameters()]
    assert next(name for name in weight_names if not name.startswith("entropy_bottleneck.")) == TCM_FIRST_LAYER[0]
    assert weight_names[-2:] == [TCM_LAST_LAYER[0], "lrp_transforms.4.4.bias"]

    # as the authors save it: training state beside the weights, nn.DataParallel's prefix on keys
    checkpoint = tmp_path / "icm_78.pth.tar"
    torch.save({"epoch": 3, "state_dict": {f"module.{key}": value for key, value in state_dict.items()},
                "loss": 0.5, "lr_scheduler": {"milestones": collections.Counter({450: 1})}}, checkpoint)
    loaded = make_codec("sa-icm", checkpoint=str(tmp_path / "icm_{quality}.pth.tar"), device="cpu").model(78)
    loaded_state = loaded.state_dict()
    assert list(loaded_state) == names
    assert all(torch.equal(loaded_state[key], value) for key, value in state_dict.items())

    incomplete = {key: value for key, value in state_dict.items() if key != TCM_LAST_LAYER[0]}
    torch.save({"state_dict": incomplete}, tmp_path / "icm_93.pth.tar")
    with pytest.raises(CodecError, match=r"(?s)icm_93\.pth\.tar do not fit the model.*lrp_transforms\.4\.4\.weight"):
        make_codec("sa-icm", checkpoint={93: str(tmp_path / "icm_93.pth.tar")}, device="cpu").model(93)


def test_learned_codecs_without_weights_are_unavailable_with_the_reason(tmp_path, monkeypatch):
    with pytest.raises(CodecUnavailable, match="final-0/SA-ICM.*option 'checkpoint'"):
        make_codec("sa-icm")
    with pytest.raises(CodecUnavailable, match=r"missing/icm_\*\.pth\.tar not found"):
        make_codec("sa-icm", checkpoint=str(tmp_path / "missing" / "icm_{quality}.pth.tar"))

    # an empty torch.hub cache is no reason to refuse at start-up (building the DAG stays off the
    # network); the download that fails is refused when the job loads the model, naming the URL
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    codec = make_codec("mbt2018", device="cpu")

    def failing_download(url, **options):
        assert options["check_hash"] is True
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", failing_download)
    with pytest.raises(CodecUnavailable, match=r"https://compressai\.s3\.amazonaws\.com/models/v1/mbt2018-2-43b70cdd"):
        codec.model(2)


def test_zoo_quality_outside_the_zoo_is_refused():
    codec = make_codec("cheng2020-anchor", random_init=True, device="cpu")
    with pytest.raises(CodecError, match=r"quality 7 is not one of the zoo's \[1, 2, 3, 4, 5, 6\]"):
        codec.model(7)


@pytest.mark.integration
def test_learned_codec_runs_through_the_workflow_with_one_job_per_shard(tmp_path, coco_persons):
    """A learned codec entry in a real run (random weights: the coding path, not the image quality):
    one code job per (quality, shard), bitstream files that decode to the published PNGs, the file
    rate and the likelihood estimate in the tables; with gpu: true the job asks for a GPU."""
    images = tmp_path / "images"
    images.mkdir()
    for image_id in ("000000000790", "000000109313"):
        (images / f"{image_id}.jpg").symlink_to(coco_persons / "images" / f"{image_id}.jpg")
    results = tmp_path / "results"
    config = {
        "results": str(results), "dataset": {"kind": "folder", "images": str(images)},
        "codecs": [{"codec": "bmshj2018-factorized", "qualities": [1, 4],
                    "options": {"random_init": True, "device": "cpu"}}],
        "faces": {"models": ["SFace"], "thresholds": [0.95]},
        "weights": {"deepface_home": str(tmp_path / "deepface"), "cache": str(REPO / "resources" / "cache")},
        "privacy": {"n_resamples": 10},
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", "Snakefile", "--configfile", str(config_path),
               "--replace-workflow-config", "--cores", "2"]
    # up to Table 1 and the summary (the figures and privacy metrics after it do not involve the codec)
    run = subprocess.run([*command, str(results / "run_summary.md")], cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert len(re.findall(r"^(?:local)?rule code_bmshj2018_factorized:$", run.stdout + run.stderr, re.MULTILINE)) == 2

    codec = make_codec("bmshj2018-factorized", random_init=True, device="cpu")
    rates = pd.read_csv(results / "tables" / "rates.csv", dtype={"image": str, "quality": str})
    assert len(rates) == 4
    for row in rates.itertuples():
        bitstream = results / "bitstreams" / "bmshj2018-factorized" / row.quality / "shard-0" / f"{row.image}.lic"
        decoded = read_png(results / "decoded" / "bmshj2018-factorized" / row.quality / "shard-0" / f"{row.image}.png")
        assert np.array_equal(codec.decode(bitstream, row.width, row.height), decoded)
        assert row.bytes == bitstream.stat().st_size and row.bpp == 8 * row.bytes / (row.width * row.height)
        assert 0 < row.estimated_bpp < row.bpp  # the estimate leaves out the container and coder overhead
    table = pd.read_csv(results / "tables" / "table1_conf0.950.csv", dtype={"quality": str}).set_index("quality")
    # random weights are the same at every quality, so only the bookkeeping is checked here
    assert table.bpp_estimated.to_dict() == pytest.approx(rates.groupby("quality").estimated_bpp.mean().to_dict())
    assert (table.bpp_estimated < table.bpp_mean).all()

    config_path.write_text(yaml.safe_dump({**config, "gpu": True}))
    dry_run = subprocess.run([*command, "--dry-run", "--forceall"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert dry_run.returncode == 0, dry_run.stderr[-3000:]
    code_jobs = re.findall(r"^(?:local)?rule code_bmshj2018_factorized:$.*?^\s+resources: (.*)$", dry_run.stdout, re.M | re.S)
    assert code_jobs and all("gpu=1" in resources for resources in code_jobs), code_jobs


def test_the_dag_is_built_without_the_network_and_is_the_same_offline(tmp_path):
    """A CompressAI zoo codec's weights are checked when its jobs load the model, so a submit host
    without any network (a fresh network namespace) builds the same DAG, zoo jobs included."""
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n (a network namespace) needs root")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "results": str(tmp_path / "results"), "shards": 2, "dataset": {"kind": "demo"},
        "codecs": [{"codec": "vvc", "qualities": [37]}, {"codec": "bmshj2018-hyperprior", "qualities": [1, 3, 5]}],
    }))
    dag = [sys.executable, "-m", "snakemake", "-s", "Snakefile", "--configfile", str(config), "--replace-workflow-config",
           "--forceall", "--dag"]

    def build(*prefix):
        run = subprocess.run([*prefix, *dag], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout, [line for line in run.stderr.splitlines() if line.startswith("icm-privacy:")]

    offline = build("unshare", "-n")
    assert offline == build()
    assert offline[0].count(r'label = "code_bmshj2018_hyperprior\n') == 3 * 2  # 3 qualities x 2 shards
