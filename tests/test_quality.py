"""Image quality: PSNR (RGB, Y', regions such as face boxes and object edges), MS-SSIM, and their per-codec-point
mean and pooled forms, against the formulas and against pytorch-msssim on real decoded images."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from icm_privacy import contours
from icm_privacy.quality import box_region, image_quality, ms_ssim, mse_to_psnr, psnr, quality_summary


def test_psnr_of_a_known_error_and_of_a_region():
    original = np.full((4, 6, 3), 100, dtype=np.uint8)
    decoded = original.copy()
    decoded[:2] += 10  # squared error 100 on the top half only
    assert psnr(original, decoded) == pytest.approx(10 * math.log10(255**2 / 50))
    top = np.zeros((4, 6), dtype=bool)
    top[:2] = True
    assert psnr(original, decoded, top) == pytest.approx(10 * math.log10(255**2 / 100))
    assert psnr(original, decoded, ~top) == math.inf
    with pytest.raises(ValueError, match="empty region"):
        psnr(original, decoded, np.zeros((4, 6), dtype=bool))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(original, decoded[:3])


def test_box_region_unites_boxes_and_clips_them_to_the_image():
    region = box_region((5, 5), [(1, 1, 2, 2), (3, -1, 4, 3)])
    assert region.sum() == 4 + 2 * 2 and region[0, 3] and region[1, 4] and not region[2, 3]


def test_luma_psnr_and_pooled_psnr_follow_their_formulas():
    original = np.zeros((2, 2, 3), dtype=np.uint8)
    decoded = original.copy()
    decoded[0, 0] = (10, 20, 30)  # one pixel off
    measured = image_quality(original, decoded, face_boxes=[(0, 0, 1, 1)])
    luma_error = 0.2126 * 10 + 0.7152 * 20 + 0.0722 * 30
    assert measured["mse_y"] == pytest.approx(luma_error**2 / 4)
    assert measured["psnr_y"] == pytest.approx(10 * math.log10(255**2 * 4 / luma_error**2))
    assert measured["face_mse"] == pytest.approx((100 + 400 + 900) / 3) and measured["face_pixels"] == 1
    assert np.isnan(measured["ms_ssim"])  # 2x2 is far below five scales
    # Pooled PSNR weights each image's MSE by its pixels; the mean PSNR weights images equally.
    per_image = pd.DataFrame({"codec": "x", "quality": "1", "pixels": [100, 300], "mse_rgb": [1.0, 9.0],
                              "psnr_rgb": [mse_to_psnr(1.0), mse_to_psnr(9.0)], "mse_y": [1.0, 9.0],
                              "psnr_y": [mse_to_psnr(1.0), mse_to_psnr(9.0)], "ms_ssim": [0.9, 0.8],
                              "face_pixels": [0, 10], "face_mse": [np.nan, 4.0], "face_psnr": [np.nan, mse_to_psnr(4.0)],
                              **{f"{region}_{column}": [0, 0] if column == "pixels" else [np.nan, np.nan]
                                 for region in ("edge", "off_edge") for column in ("pixels", "mse", "psnr")}})
    summary = quality_summary(per_image).iloc[0]
    assert summary["psnr_rgb_pooled"] == pytest.approx(mse_to_psnr((100 * 1 + 300 * 9) / 400))
    assert summary["psnr_rgb_mean"] == pytest.approx((mse_to_psnr(1) + mse_to_psnr(9)) / 2)
    assert summary["face_psnr_pooled"] == pytest.approx(mse_to_psnr(4.0))  # images without faces left out
    assert summary["ms_ssim_mean"] == pytest.approx(0.85)
    assert np.isnan(summary["edge_psnr_mean"]) and np.isnan(summary["off_edge_psnr_pooled"])  # no masks: NaN


@pytest.mark.heavy
def test_ms_ssim_of_real_decoded_images_is_the_librarys_and_falls_with_the_qp(coco_photo, tmp_path):
    import torch
    from pytorch_msssim import ms_ssim as library_ms_ssim

    from icm_privacy.codecs import make_codec
    from icm_privacy.images import read_rgb8

    original = read_rgb8(coco_photo)
    codec = make_codec("vvc", preset="faster")
    scores = []
    for qp in (27, 42):
        decoded = codec.decode(_encoded(codec, original, qp, tmp_path), original.shape[1], original.shape[0])
        # the library on its own, fed float tensors in [0, 1] (data range 1): the same number
        as_tensor = [torch.from_numpy(np.array(image, np.float32) / 255).permute(2, 0, 1)[None] for image in (original, decoded)]
        reference = float(library_ms_ssim(*as_tensor, data_range=1.0))
        assert ms_ssim(original, decoded) == pytest.approx(reference, abs=1e-5)
        as_float64 = [torch.from_numpy(np.array(image, np.float64)).permute(2, 0, 1)[None] for image in (original, decoded)]
        assert ms_ssim(original, decoded) == pytest.approx(float(library_ms_ssim(*as_float64, data_range=255)), abs=1e-4)
        scores.append(ms_ssim(original, decoded))
    assert ms_ssim(original, original) == pytest.approx(1.0)
    assert 1.0 > scores[0] > scores[1] > 0.5


def _encoded(codec, rgb, qp, folder):
    path = folder / f"qp{qp}.{codec.extension}"
    codec.encode(rgb, qp, path)
    return path


def test_contour_band_and_off_contour_region_of_a_known_boundary():
    square = np.zeros((1, 40, 40), dtype=bool)
    square[0, 10:30, 10:30] = True  # boundary: the square's 76 outermost pixels
    band, off = contours.scored_regions(square)
    assert contours.boundary(square).sum() == 76
    assert band.sum() == (22**2 - 20**2) + 76 + (18**2 - 16**2)  # one ring outside, the boundary, one inside
    assert band[9, 15] and band[10, 15] and band[11, 15] and not band[8, 15] and not band[12, 15]
    assert off[20, 20] and off[20, 5] and not off[20, 14] and not off[20, 6]  # 5 px from (20, 10) is (20, 15) / (20, 5)
    assert not (band & off).any()


def test_edge_and_off_edge_psnr_score_only_their_regions():
    square = np.zeros((1, 40, 40), dtype=bool)
    square[0, 10:30, 10:30] = True
    band, off = contours.scored_regions(square)
    original = np.random.default_rng(0).integers(30, 200, (40, 40, 3)).astype(np.uint8)
    decoded = original.copy()
    decoded[band] += 10  # squared error 100 on the band
    decoded[~band & ~off] += 20  # between them: counted by neither
    decoded[off] += 2  # squared error 4 far from the boundary
    measured = image_quality(original, decoded, [], (band, off))
    assert measured["edge_psnr"] == pytest.approx(10 * math.log10(255**2 / 100))
    assert measured["off_edge_psnr"] == pytest.approx(10 * math.log10(255**2 / 4))
    assert (measured["edge_pixels"], measured["off_edge_pixels"]) == (band.sum(), off.sum())
    without = image_quality(original, decoded, [])  # a dataset without masks
    assert math.isnan(without["edge_psnr"]) and math.isnan(without["off_edge_psnr"]) and without["edge_pixels"] == 0


@pytest.mark.heavy
def test_contour_psnrs_of_real_coco_images_come_from_their_instance_masks(coco_persons, tmp_path):
    """Through the rules' stage functions: contour regions from the annotations, then a JPEG-decoded shard
    measured on them; a photo the annotations do not list gets NaN, not an error."""
    from PIL import Image

    from icm_privacy.stages.data import prepare_images
    from icm_privacy.stages.quality import contour_regions, measure_quality

    ids = ["000000000790", "000000084533"]
    prepare_images({i: str(coco_persons / "images" / f"{i}.jpg") for i in ids}, str(tmp_path / "images"))
    Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(tmp_path / "images" / "unlisted.png")
    contour_regions(str(tmp_path / "images"), str(coco_persons / "instances.json"), str(tmp_path / "contours.npz"))
    regions = np.load(tmp_path / "contours.npz")
    assert sorted(regions.files) == sorted(f"{i}/{part}" for i in ids for part in ("edge", "off_edge"))
    for image in ids:
        band, off = regions[f"{image}/edge"], regions[f"{image}/off_edge"]
        assert 0.01 < band.mean() < 0.2 and 0.3 < off.mean() < 0.99 and not (band & off).any()
    (tmp_path / "decoded").mkdir()
    for path in (tmp_path / "images").glob("*.png"):
        Image.open(path).save(tmp_path / "decoded" / f"{path.stem}.jpg", quality=20)
        Image.open(tmp_path / "decoded" / f"{path.stem}.jpg").save(tmp_path / "decoded" / path.name)
        (tmp_path / "decoded" / f"{path.stem}.jpg").unlink()
    pd.DataFrame(columns=["face_id", "image", "confidence", "x", "y", "w", "h"]).to_csv(tmp_path / "faces.csv", index=False)
    measure_quality(str(tmp_path / "images"), str(tmp_path / "decoded"), str(tmp_path / "faces.csv"), 0.95,
                    str(tmp_path / "quality.csv"), str(tmp_path / "contours.npz"))
    table = pd.read_csv(tmp_path / "quality.csv", dtype={"image": str}).set_index("image")
    for image in ids:  # JPEG at quality 20 blurs contours more than flat regions
        row = table.loc[image]
        assert 20 < row.edge_psnr < row.psnr_rgb < row.off_edge_psnr < 50
    assert np.isnan(table.loc["unlisted", "edge_psnr"]) and table.loc["unlisted", "edge_pixels"] == 0
