"""The attackers who learn from a codec's output, on synthetic data whose answers are known: the embedding
adapter undoes a linear distortion, the restorer undoes a blur on images it never saw, restoring windows
around faces gives the pixels of the whole restored image, a restorer beats the naive attacker on a
degradation it can invert, and no evaluated image can enter an attacker's training set."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from icm_privacy.attackers import AdaptedAttacker, Attacker, RestorationAttacker, attackers
from icm_privacy.datasets import DatasetError, attack_training_images, list_images
from icm_privacy.embedding_adapter import EmbeddingAdapter, load_adapters, save_adapters
from icm_privacy.privacy import privacy_table
from icm_privacy.quality import psnr
from icm_privacy.restoration import FaceRestorer, TrainingImage
from icm_privacy.verification import unit_rows
from conftest import SHARED

COCO_TRAIN2017 = SHARED / "datasets" / "coco-train2017"
TINY = {"channels": 16, "layers": 4, "batch_size": 8, "patch": 32, "threads": 1}  # a restorer that trains in seconds


def mean_cosine(first, second) -> float:
    return float(np.einsum("ij,ij->i", unit_rows(first), unit_rows(second)).mean())


def distorted_embeddings(seed: int = 0, images: int = 60, faces_per_image: int = 3, dimensions: int = 32):
    """Original embeddings, their decode by a known invertible linear map plus a little noise, image ids."""
    rng = np.random.default_rng(seed)
    original = rng.normal(size=(images * faces_per_image, dimensions))
    distortion = np.eye(dimensions) + rng.normal(scale=0.6 / np.sqrt(dimensions), size=(dimensions, dimensions))
    decoded = original @ distortion + rng.normal(scale=0.01, size=original.shape)
    return original, decoded, np.repeat(np.arange(images), faces_per_image), distortion


def test_adapter_recovers_a_known_linear_distortion_of_synthetic_embeddings():
    original, decoded, image_of, distortion = distorted_embeddings()
    fitted, held_out = image_of < 40, image_of >= 40  # fitted on 40 images, applied to 20 others
    adapter = EmbeddingAdapter().fit(decoded[fitted], original[fitted], image_of[fitted])
    assert mean_cosine(decoded[held_out], original[held_out]) < 0.95  # the distortion costs identity
    assert mean_cosine(adapter.transform(decoded[held_out]), original[held_out]) > 0.999
    # the learnt change is the inverse map less the identity, and cross-validation chose little shrinkage
    assert np.allclose(adapter.coef_, np.linalg.inv(distortion) - np.eye(len(distortion)), atol=0.05)
    assert adapter.relative_penalty_ == min(adapter.relative_penalties)
    assert adapter.cv_cosine_adapted_ > 0.999 > 0.95 > adapter.cv_cosine_decoded_


def test_adapter_keeps_the_decoded_embeddings_where_there_is_nothing_to_learn():
    rng = np.random.default_rng(1)
    original = rng.normal(size=(150, 16))
    decoded = original + rng.normal(scale=0.7, size=original.shape)  # noise no linear map can undo
    adapter = EmbeddingAdapter().fit(decoded, original, np.repeat(np.arange(50), 3))
    assert adapter.relative_penalty_ == np.inf  # cross-validation keeps the decoded embeddings as they are
    assert np.array_equal(adapter.transform(decoded), decoded)
    assert adapter.cv_cosine_adapted_ == pytest.approx(adapter.cv_cosine_decoded_)


def test_fitted_adapters_are_saved_and_applied_by_the_adapted_attacker(tmp_path):
    original, decoded, image_of, _ = distorted_embeddings()
    adapter = EmbeddingAdapter().fit(decoded, original, image_of)
    save_adapters({"SFace": adapter}, tmp_path / "vvc" / "40.npz")
    loaded = load_adapters(tmp_path / "vvc" / "40.npz")["SFace"]
    assert np.array_equal(loaded.coef_, adapter.coef_) and loaded.relative_penalty_ == adapter.relative_penalty_
    adapted = attackers({"vvc/40": str(tmp_path / "vvc" / "40.npz")})["adapted"]
    assert isinstance(adapted, AdaptedAttacker)
    assert np.allclose(adapted.probes("vvc/40", "SFace", decoded), adapter.transform(decoded))
    assert adapted.gallery_version("vvc/40") == "original" and adapted.probe_version("vvc/40") == "vvc/40"


def test_each_attacker_names_its_gallery_and_its_probes():
    by_name = attackers()
    assert list(by_name) == ["standard", "cross-resolution", "restored", "adapted"]
    vectors = np.ones((2, 3))
    assert by_name["standard"].probes("vvc/40", "SFace", vectors) is vectors
    assert (by_name["cross-resolution"].gallery_version("downscale/4"),
            by_name["cross-resolution"].probe_version("downscale/4")) == ("downscale/4/reduced-original", "downscale/4/reduced")
    assert isinstance(by_name["restored"], RestorationAttacker) and isinstance(by_name["restored"], Attacker)
    assert by_name["restored"].probe_version("vvc/40") == "vvc/40/restored"


def synthetic_images(count: int, seed: int, size: int = 96) -> list[tuple[np.ndarray, list[tuple[int, int, int, int]]]]:
    """Images of coloured discs on a gradient, each disc's box a 'face'."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:size, :size]
    images = []
    for _ in range(count):
        image = np.stack([rows * rng.uniform(0, 2) + columns * rng.uniform(0, 1) for _ in range(3)], axis=-1)
        boxes = []
        for _ in range(3):
            x, y, radius = *rng.integers(14, size - 14, 2), int(rng.integers(6, 13))
            image[(rows - y) ** 2 + (columns - x) ** 2 < radius**2] = rng.uniform(0, 255, 3)
            boxes.append((x - radius, y - radius, x + radius, y + radius))
        images.append((np.clip(image, 0, 255).astype(np.uint8), boxes))
    return images


def blurred(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(gaussian_filter(image.astype(float), sigma=(1.2, 1.2, 0))), 0, 255).astype(np.uint8)


def test_restorer_trained_on_a_synthetic_blur_raises_psnr_on_images_it_did_not_see():
    training = [TrainingImage(f"train{i}", image, {"1": blurred(image)}, boxes)
                for i, (image, boxes) in enumerate(synthetic_images(12, seed=0))]
    restorer = FaceRestorer(**TINY, steps=200).fit(training, ["1"])
    unseen = [image for image, _ in synthetic_images(4, seed=1)]
    before = np.mean([psnr(image, blurred(image)) for image in unseen])
    after = np.mean([psnr(image, restorer.restore(blurred(image), "1")) for image in unseen])
    assert after > before + 0.5, (before, after)
    assert restorer.history_[-1][1] < restorer.history_[0][1]  # the loss fell
    assert restorer.cpu_seconds_ > 0 and restorer.qualities_ == ["1"]


def test_restoring_windows_around_faces_gives_the_pixels_of_the_whole_restored_image(tmp_path):
    image, _ = synthetic_images(1, seed=2, size=101)[0]  # odd sides: the whole image is padded
    training = [TrainingImage("a", image, {"7": blurred(image), "9": blurred(blurred(image))}, [(10, 10, 30, 30)])]
    restorer = FaceRestorer(**{**TINY, "layers": 6}, steps=3, learning_rate=1e-2).fit(training, ["7", "9"])
    restorer.save(tmp_path / "restorer.pt")
    restorer = FaceRestorer.load(tmp_path / "restorer.pt", threads=1)
    boxes = [(0, 0, 9, 14), (31, 40, 52, 57), (90, 3, 101, 20), (45, 88, 60, 101), (3, 50, 4, 51)]
    for quality in ("7", "9"):
        whole = restorer.restore(blurred(image), quality)
        assert not np.array_equal(whole, blurred(image))  # the network changes the image
        for (x0, y0, x1, y1), crop in zip(boxes, restorer.restore_boxes(blurred(image), quality, boxes)):
            assert crop.shape == (y1 - y0, x1 - x0, 3)
            difference = np.abs(crop.astype(int) - whole[y0:y1, x0:x1].astype(int))
            assert difference.max() <= 1 and difference.mean() < 0.01  # float rounding, no receptive-field cut
    with pytest.raises(ValueError, match="trained for qualities"):
        restorer.restore(image, "8")


def test_the_restored_attacker_reidentifies_at_least_as_well_as_the_naive_one_on_an_invertible_degradation():
    """A 'codec' that inverts colours keeps all identity for one who can undo it. The face model here is a
    fake of pure logic (a face's pixels, shrunk to 6x6 and centred on mid-grey): the naive attacker
    matches inverted faces, the restored one matches them after a restorer trained on other images."""
    def inverted(image):
        return 255 - image

    def embedding(crop):
        rows = np.linspace(0, crop.shape[0] - 1, 6).astype(int)
        columns = np.linspace(0, crop.shape[1] - 1, 6).astype(int)
        return crop[np.ix_(rows, columns)].astype(float).ravel() - 127.5

    training = [TrainingImage(f"t{i}", image, {"1": inverted(image)}, boxes)
                for i, (image, boxes) in enumerate(synthetic_images(12, seed=3))]
    restorer = FaceRestorer(**{**TINY, "channels": 32}, steps=300).fit(training, ["1"])
    evaluated = synthetic_images(20, seed=4)
    faces = pd.DataFrame([{"face_id": f"e{i}_f{k}", "image": f"e{i}", "confidence": 0.99, "short_side": 20}
                          for i, (_, boxes) in enumerate(evaluated) for k in range(len(boxes))])
    originals = np.stack([embedding(image[y0:y1, x0:x1]) for image, boxes in evaluated for x0, y0, x1, y1 in boxes])
    naive = np.stack([embedding(inverted(image)[y0:y1, x0:x1]) for image, boxes in evaluated for x0, y0, x1, y1 in boxes])
    restored = np.stack([embedding(crop) for image, boxes in evaluated
                         for crop in restorer.restore_boxes(inverted(image), "1", boxes)])
    table = privacy_table(faces, {"fake": originals}, {("naive", "1"): {"fake": naive}, ("restored", "1"): {"fake": restored}},
                          {("naive", "1"): 1.0, ("restored", "1"): 1.0}, n_resamples=10, seed=0)
    overall = table[table.breakdown == "all"].set_index("codec")
    assert overall.loc["naive", "rank1"] < 0.2  # inverted faces look like nobody in particular
    assert overall.loc["restored", "rank1"] >= overall.loc["naive", "rank1"] + 0.25  # at least as well, and better
    assert overall.loc["restored", "mean_cosine"] > overall.loc["naive", "mean_cosine"]


def test_attack_training_images_refuse_any_evaluated_image(tmp_path):
    training = {"images": str(COCO_TRAIN2017 / "images"), "annotations": str(COCO_TRAIN2017 / "instances.json"),
                "first_n": 164}
    if not COCO_TRAIN2017.is_dir():
        pytest.skip(f"coco-train2017 not found at {COCO_TRAIN2017}")
    images = attack_training_images(training, list_images({"kind": "demo"}))
    assert len(images) == 164  # coco-train2017's images with a person
    with pytest.raises(DatasetError, match="2 training images are evaluated images too"):
        attack_training_images(training, {"x": images[sorted(images)[3]], sorted(images)[7]: tmp_path / "y.jpg"})
