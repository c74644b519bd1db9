"""SA-ICM training recipe: edge maps from masks, the edge-weighted rate-distortion loss, real training."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from conftest import YOLOV5N
from icm_privacy import contours
from icm_privacy.codecs import make_codec
from icm_privacy.images import read_png, read_rgb8
from icm_privacy.training import cli, data, loop, objectives


def test_edge_map_marks_each_mask_boundary_once():
    square = np.zeros((12, 12), dtype=bool)
    square[2:7, 2:7] = True  # 5x5: 16 boundary pixels, 9 inside
    at_border = np.zeros((12, 12), dtype=bool)
    at_border[8:, 9:] = True  # touches the image's bottom and right: edges there too, like Canny's
    edges = data.edge_map(np.stack([square, at_border]))
    assert edges.dtype == np.float32 and set(np.unique(edges)) == {0.0, 1.0}
    assert edges[2:7, 2:7].sum() == 16 and edges[3:6, 3:6].sum() == 0
    assert edges[8:, 9:].sum() == 4 * 3 - 2 * 1  # a 4x3 block has only its 2x1 core inside
    assert edges.sum() == 16 + 10
    with pytest.raises(ValueError, match="no masks"):
        data.edge_map(np.zeros((0, 12, 12), dtype=bool))


def test_loss_weights_only_the_distortion_on_edges():
    x = torch.rand(2, 3, 8, 8)
    edges = torch.zeros(2, 1, 8, 8)
    edges[:, :, 3, :] = 1.0  # one row of edge pixels: 1/8 of the image
    likelihoods = {"y": torch.full((2, 4, 2, 2), 0.5), "z": torch.full((2, 2, 1, 1), 0.25)}
    bits = 2 * 4 * 2 * 2 * 1 + 2 * 2 * 1 * 1 * 2  # -log2(0.5) and -log2(0.25) per symbol
    off_edges = x + 0.3 * (1 - edges)  # wrong everywhere except on the edges
    terms = objectives.rate_distortion_loss({"x_hat": off_edges, "likelihoods": likelihoods}, x, edges, lmbda=0.05)
    assert terms["bpp"].item() == pytest.approx(bits / (2 * 8 * 8))
    assert terms["edge_mse"].item() == 0
    on_edges = x + 0.1 * edges
    terms = objectives.rate_distortion_loss({"x_hat": on_edges, "likelihoods": likelihoods}, x, edges, lmbda=0.05)
    assert terms["edge_mse"].item() == pytest.approx(0.01 / 8)
    assert terms["loss"].item() == pytest.approx(bits / 128 + 0.05 * 255**2 * 0.01 / 8)


@pytest.fixture(scope="module")
def detector():
    return objectives.DetectorFeatures(YOLOV5N)


def test_feature_loss_is_zero_for_the_original_and_grows_with_the_damage(detector):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert [level.shape[1:] for level in detector(x)] == [(64, 8, 8), (128, 4, 4), (256, 2, 2)]  # strides 8-32
    assert objectives.feature_mse(detector, x, x).item() == 0
    slightly, badly = (objectives.feature_mse(detector, x + scale * noise, x).item() for scale in (0.01, 0.1))
    assert 0 < slightly < badly


def test_feature_loss_trains_the_codec_and_leaves_the_detector_as_it_was(detector):
    """Its gradient reaches the codec's first layer; the detector gets none and stays in eval mode."""
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    before = {name: value.clone() for name, value in detector.state_dict().items()}
    torch.manual_seed(0)
    _, model = loop.training_model("icm-mse", 1, None, "cpu")
    history = loop.train(model, itertools.repeat((x, torch.zeros(2, 1, 64, 64))), steps=2, lmbda=1.0,
                         objective="task", detector=detector, pixel_lmbda=2e-4)
    assert history[0]["feature_mse"] > 0 and history[0]["loss"] == pytest.approx(
        history[0]["bpp"] + history[0]["feature_mse"] + 2e-4 * 255**2 * history[0]["mse"], rel=1e-5)
    assert model.g_a[0].weight.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in detector.parameters()) and not detector.training
    after = detector.state_dict()  # batch-norm running statistics included
    assert all(torch.equal(before[name], after[name]) for name in before)
    with pytest.raises(ValueError, match="needs the detector"):
        objectives.rate_distortion_loss({"x_hat": x, "likelihoods": {}}, x, x[:, :1], 1.0, objective="task")


def test_coco_edges_lie_on_the_annotated_instance_boundaries(coco_persons):
    images = data.load_training_images(coco_persons / "images", coco_persons / "instances.json", first_n=3)
    coco = COCO(str(coco_persons / "instances.json"))
    assert [image.name for image in images] == [f"{image_id:012d}" for image_id in sorted(coco.imgs)[:3]]
    for image in images:
        info = coco.imgs[int(image.name)]
        assert image.rgb.shape == (info["height"], info["width"], 3)
        masks = contours.coco_masks(coco, int(image.name))
        inside_some_mask = masks.any(axis=0)
        assert 0 < image.edges.sum() < 0.2 * image.edges.size
        assert inside_some_mask[image.edges > 0].all()  # edges are inner boundaries of instance masks


@pytest.mark.heavy
def test_training_lowers_the_edge_loss_on_coco_crops(coco_persons):
    images = data.load_training_images(coco_persons / "images", coco_persons / "instances.json", first_n=4)
    batch = data.sample_crops(images, crop=64, batch_size=2, rng=np.random.default_rng(0))
    assert batch[0].shape == (2, 3, 64, 64) and batch[1].shape == (2, 1, 64, 64) and batch[1].sum() > 0
    torch.manual_seed(0)
    _, model = loop.training_model("bmshj2018-hyperprior", 1, None, "cpu")
    history = loop.train(model, itertools.repeat(batch), steps=8, learning_rate=1e-4)
    losses = [record["loss"] for record in history]
    assert losses[-1] < 0.85 * losses[0]
    assert history[-1]["edge_mse"] < history[0]["edge_mse"]


@pytest.mark.heavy
def test_sa_icm_network_learns_from_the_edge_objective(coco_persons):
    """One TCM step (10-20 s on 2 cores) must lower the loss of the same 128x128 crop."""
    images = data.load_training_images(coco_persons / "images", coco_persons / "instances.json", first_n=2)
    batch = data.sample_crops(images, crop=128, batch_size=1, rng=np.random.default_rng(1))
    _, model = loop.training_model("sa-icm", 0, None, "cpu")
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    history = loop.train(model, itertools.repeat(batch), steps=2)
    assert history[1]["loss"] < history[0]["loss"]
    moved = [name for name, parameter in model.named_parameters() if not torch.equal(parameter, before[name])]
    assert "g_a.0.conv1.weight" in moved and "lrp_transforms.4.4.weight" in moved  # gradients reach both ends


def test_cli_checkpoint_loads_into_the_codec_and_codes_an_image(coco_persons, tmp_path, coco_photo):
    out = tmp_path / "edges.pth.tar"
    data = ["--images", str(coco_persons / "images"), "--annotations", str(coco_persons / "instances.json")]
    history = cli.main([*data, "--model", "bmshj2018-factorized", "--quality", "1", "--steps", "2", "--crop", "64",
                             "--batch-size", "1", "--first-n", "2", "--out", str(out), "--device", "cpu"])
    assert [record["step"] for record in history] == [0, 1]
    saved = torch.load(out, weights_only=True)
    assert (saved["codec"], saved["masks"], saved["lmbda"], saved["step"]) == (
        "bmshj2018-factorized", "coco", loop.PAPER_LAMBDA, 2)

    codec = make_codec("bmshj2018-factorized", checkpoint=str(out), device="cpu")
    trained = codec.model(1).state_dict()
    assert all(torch.equal(trained[key], value) for key, value in saved["state_dict"].items())
    image = read_rgb8(coco_photo)[:64, :96]
    result = codec.code(image, 1, tmp_path / "image.lic", tmp_path / "image.png", "image")
    assert result.bitstream_bytes == (tmp_path / "image.lic").stat().st_size
    assert read_png(tmp_path / "image.png").shape == image.shape

    with pytest.raises(SystemExit, match="multiple of 128"):  # sa-icm, the default model, needs 128
        cli.main([*data, "--crop", "64", "--out", str(tmp_path / "never.pth.tar"), "--device", "cpu"])


def test_mse_objective_weighs_the_distortion_everywhere():
    x = torch.rand(1, 3, 8, 8)
    edges = torch.zeros(1, 1, 8, 8)
    likelihoods = {"y": torch.full((1, 4, 2, 2), 0.5)}
    terms = objectives.rate_distortion_loss({"x_hat": x + 0.1, "likelihoods": likelihoods}, x, edges, 0.01, objective="mse")
    assert terms["mse"].item() == pytest.approx(0.01) and terms["edge_mse"].item() == 0
    assert terms["loss"].item() == pytest.approx(16 / 64 + 0.01 * 255**2 * 0.01)
    with pytest.raises(ValueError, match="objective 'ssim'"):
        objectives.rate_distortion_loss({"x_hat": x, "likelihoods": likelihoods}, x, edges, 0.01, objective="ssim")


@pytest.mark.heavy
def test_a_killed_training_resumes_from_its_last_checkpoint_and_ends_as_if_uninterrupted(coco_persons, tmp_path):
    """SIGKILL a real CLI run after it wrote a resume state; the rerun continues from that step."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def arguments(out, steps):
        return ["--images", str(coco_persons / "images"), "--annotations", str(coco_persons / "instances.json"),
                "--model", "icm-mse", "--objective", "mse", "--lmbda", "0.003", "--crop", "64", "--batch-size", "1",
                "--first-n", "2", "--device", "cpu", "--threads", "1", "--checkpoint-every", "2",
                "--steps", str(steps), "--out", str(out)]

    out = tmp_path / "killed" / "run.pth.tar"
    state = loop.resume_path(out)
    process = subprocess.Popen([sys.executable, "-m", "icm_privacy.training", *arguments(out, 10_000)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not state.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    done = torch.load(state, weights_only=True)["step"]
    assert done >= 2 and done % 2 == 0 and not out.exists()

    saved_state = torch.load(state, weights_only=True)  # slim: float16 weights, bfloat16 Adam moments
    assert saved_state["state_dict"]["g_a.0.weight"].dtype == torch.float16
    assert {moment.dtype for moments in saved_state["optimizers"][0]["state"].values()
            for name, moment in moments.items() if name.startswith("exp_avg")} == {torch.bfloat16}
    resumed = cli.main(arguments(out, done + 3))
    assert [record["step"] for record in resumed] == [done, done + 1, done + 2]
    log = (out.parent / "run.csv").read_text().splitlines()
    assert log[0] == "step,loss,bpp,mse,edge_mse,aux_loss"
    assert [int(row.split(",")[0]) for row in log[1:]] == list(range(done + 3))
    assert not state.exists() and out.is_file()

    reference = cli.main(arguments(tmp_path / "once" / "run.pth.tar", done + 3))
    # the same batches and noise: equal up to the resume state's rounding of weights and moments
    assert [record["loss"] for record in resumed] == pytest.approx([r["loss"] for r in reference[done:]], rel=1e-3)
    saved, once = (torch.load(path, weights_only=True)["state_dict"]
                   for path in (out, tmp_path / "once" / "run.pth.tar"))
    weights = [key for key in once if once[key].is_floating_point()]  # not the CDF tables derived from them
    assert all(torch.allclose(saved[key], once[key], rtol=1e-3, atol=1e-5) for key in weights)


def test_bfloat16_forward_keeps_the_rate_in_float32_and_matches_float32_closely():
    _, model = loop.training_model("icm-mse", 1, None, "cpu")
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    model.eval()  # rounded latents: both forwards see the same quantisation
    with torch.no_grad():
        reference = model(x)
        mixed = loop.hyperprior_forward(loop.use_bfloat16(model), x.contiguous(memory_format=torch.channels_last),
                                        bfloat16=True)
    assert {tensor.dtype for tensor in mixed["likelihoods"].values()} == {torch.float32}
    assert mixed["x_hat"].dtype == torch.float32
    assert (mixed["x_hat"] - reference["x_hat"]).abs().mean() < 0.01  # bfloat16 keeps ~3 significant digits
    with pytest.raises(SystemExit, match="MeanScaleHyperprior"):
        loop.use_bfloat16(loop.training_model("bmshj2018-factorized", 1, None, "cpu")[1])


def test_with_rounded_latents_the_decoder_trains_on_what_the_codec_decodes():
    """In training mode the rate still comes from noisy latents, but g_s gets the rounded ones: exactly
    the eval-mode reconstruction, with gradients reaching the encoder through the rounding."""
    torch.manual_seed(0)
    _, model = loop.training_model("icm-mse", 1, None, "cpu")
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        decoded = model(x)["x_hat"]
    model.train()
    trained = loop.hyperprior_forward(model, x, rounded=True)
    assert torch.allclose(trained["x_hat"], decoded, atol=1e-6)
    assert not torch.allclose(loop.hyperprior_forward(model, x)["x_hat"], decoded, atol=1e-3)  # noise: not so
    trained["x_hat"].mean().backward()
    assert model.g_a[0].weight.grad.abs().sum() > 0


def test_learning_rate_drops_tenfold_from_the_decay_step_on():
    rates = [loop.learning_rate_at(step, 3e-4, 850, 0.1) for step in (0, 849, 850, 999)]
    assert rates == pytest.approx([3e-4, 3e-4, 3e-5, 3e-5])
    assert loop.learning_rate_at(10**6, 3e-4, None, 0.1) == 3e-4


@pytest.mark.heavy
def test_a_float16_checkpoint_is_half_the_size_and_codes_what_the_model_reconstructs(tmp_path, coco_photo):
    _, model = loop.training_model("icm-mse", 1, None, "cpu")
    loop.save_checkpoint(model, tmp_path / "full.pth.tar")
    loop.save_checkpoint(model, tmp_path / "half.pth.tar", float16=True)
    assert (tmp_path / "half.pth.tar").stat().st_size < 0.6 * (tmp_path / "full.pth.tar").stat().st_size
    codec = make_codec("icm-mse", checkpoint=str(tmp_path / "half.pth.tar"), device="cpu")
    image = read_rgb8(coco_photo)[:128, :192]
    result = codec.code(image, 1, tmp_path / "image.lic", tmp_path / "image.png", "image")
    with torch.no_grad():  # the entropy coder's CDFs belong to the rounded weights: decoding is exact
        expected = codec.output_rgb(codec.model(1)(codec.model_input(image))["x_hat"], 192, 128)
    assert np.array_equal(read_png(tmp_path / "image.png"), expected)
    assert result.bitstream_bytes > 0


@pytest.mark.heavy
def test_validation_holds_out_images_with_and_without_masks_and_measures_whole_images(coco_persons):
    images = data.load_training_images(coco_persons / "images", coco_persons / "instances.json", first_n=6)
    images[1].edges = None  # as an image the annotations do not list
    kept, held_out = data.split_validation(images, every=4)
    assert [image.name for image in held_out] == [images[0].name, images[5].name, images[1].name]
    assert not {image.name for image in kept} & {image.name for image in held_out}
    codec, model = loop.training_model("icm-mse", 1, None, "cpu")
    measured = loop.validate(codec, model, held_out[:2])
    assert 0 < measured["bpp"] and 3 < measured["psnr"] < 20 and 3 < measured["edge_psnr"] < 20  # untrained
    assert model.training  # back in training mode


def test_glibc_keeps_freed_memory_for_the_next_step():
    from icm_privacy.allocator import keep_freed_memory

    assert keep_freed_memory()  # mallopt took both settings (allocator.py measures what it saves)
