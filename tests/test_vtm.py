"""The real VTM 19.0 reference software (../shared/tools/vtm-19.0) in the vtm codec, and vvenc calibrated to it.

Crops of real coco-persons photos keep this cheap: VTM codes a 640x422 photo in ~28 s, a 128x96 crop in ~1 s.
"""
from __future__ import annotations


import numpy as np
import pytest

from icm_privacy.codec_calibration import code_images, deviations
from icm_privacy.codecs import CodecError, make_codec
from icm_privacy.codecs.ffmpeg import run_ffmpeg
from icm_privacy.codecs.vtm import vtm_from_folder
from icm_privacy.images import read_png, read_rgb8
from icm_privacy.bd_metrics import bd_rate
from icm_privacy.quality import psnr

pytestmark = pytest.mark.heavy  # real models or binaries: not in the quick lane


@pytest.fixture(scope="module")
def crop(coco_photo) -> np.ndarray:
    """128 x 96 px of a real COCO photo, with a person in it."""
    return read_rgb8(coco_photo)[150:246, 250:378]


@pytest.fixture(scope="module")
def coded(vtm_folder, crop, tmp_path_factory):
    """The crop coded at QP 37 in 4:2:0 and 4:4:4: bitstream file and VTM's encoder reconstruction."""
    folder = tmp_path_factory.mktemp("vtm")
    streams = {}
    for chroma in ("420", "444"):
        codec = vtm_from_folder(vtm_folder, chroma_format=chroma)
        bitstream, reconstruction = folder / f"{chroma}.266", folder / f"{chroma}-rec.yuv"
        codec.encode(crop, 37, bitstream, reconstruction_path=reconstruction)
        streams[chroma] = (codec, bitstream, reconstruction)
    return streams


@pytest.mark.parametrize("chroma", ["420", "444"])
def test_vtm_decoder_output_equals_the_encoders_reconstruction(coded, crop, chroma):
    codec, bitstream, reconstruction = coded[chroma]
    height, width = crop.shape[:2]
    assert codec.decode_yuv(bitstream, width, height) == reconstruction.read_bytes()
    decoded = codec.decode(bitstream, width, height)
    assert decoded.shape == crop.shape and 24 < psnr(crop, decoded) < 45


@pytest.mark.parametrize("chroma, pixel_format", [("420", "yuv420p10le"), ("444", "yuv444p10le")])
def test_ffmpegs_native_vvc_decoder_decodes_vtm_streams_to_the_same_pixels(coded, crop, chroma, pixel_format):
    codec, bitstream, _ = coded[chroma]
    ffmpeg_yuv = run_ffmpeg(["-i", str(bitstream), "-f", "rawvideo", "-pix_fmt", pixel_format, "pipe:1"])
    assert ffmpeg_yuv == codec.decode_yuv(bitstream, crop.shape[1], crop.shape[0])


def test_vtm_round_trip_goes_through_the_bitstream_file_and_bpp_comes_from_its_bytes(vtm_folder, crop, tmp_path):
    codec = vtm_from_folder(vtm_folder)
    result = codec.code(crop, 37, tmp_path / "c.266", tmp_path / "c.png", "crop")
    assert result.bitstream_bytes == (tmp_path / "c.266").stat().st_size > 0
    assert result.bpp == pytest.approx(8 * result.bitstream_bytes / (128 * 96))
    # a second codec object, given only the file and the size, decodes the same pixels
    again = vtm_from_folder(vtm_folder).decode(tmp_path / "c.266", 128, 96)
    assert np.array_equal(again, read_png(tmp_path / "c.png"))
    (tmp_path / "c.266").write_bytes((tmp_path / "c.266").read_bytes()[:20])
    with pytest.raises(CodecError, match="DecoderAppStatic"):
        codec.decode(tmp_path / "c.266", 128, 96)


def test_vtm_bitstreams_are_byte_identical_across_runs(coded, crop, tmp_path):
    codec, bitstream, _ = coded["420"]
    codec.encode(crop, 37, tmp_path / "again.266")
    assert (tmp_path / "again.266").read_bytes() == bitstream.read_bytes()


@pytest.mark.parametrize("height, width", [(1, 1), (21, 37), (67, 64)])
@pytest.mark.parametrize("chroma", ["420", "444"])
def test_vtm_codes_odd_and_tiny_sizes_with_its_conformance_window(vtm_folder, coco_photo, tmp_path, chroma,
                                                                  height, width):
    """The bitstream itself carries the size: 4:4:4 the exact one, 4:2:0 the next even one (a conformance
    window counts chroma samples); VTM's own padding to its 8 px CUs never reaches the output."""
    rgb = read_rgb8(coco_photo)[200:200 + height, 300:300 + width]
    codec = vtm_from_folder(vtm_folder, chroma_format=chroma)
    codec.code(rgb, 32, tmp_path / "s.266", tmp_path / "s.png", "small")
    assert read_png(tmp_path / "s.png").shape == rgb.shape
    step = 2 if chroma == "420" else 1
    coded_height, coded_width = -(-height // step) * step, -(-width // step) * step
    info = run_ffmpeg(["-i", str(tmp_path / "s.266"), "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"])
    assert len(info) == coded_height * coded_width  # ffmpeg's decoder, from the bitstream alone
    assert psnr(rgb, read_png(tmp_path / "s.png")) > 25


def test_vtm_options_chroma_format_and_bit_depth_change_the_stream(vtm_folder, crop, coded, tmp_path):
    eight_bit = vtm_from_folder(vtm_folder, internal_bit_depth=8)
    eight_bit.code(crop, 37, tmp_path / "8.266", tmp_path / "8.png", "crop")
    assert (tmp_path / "8.266").read_bytes() != coded["420"][1].read_bytes()
    assert psnr(crop, read_png(tmp_path / "8.png")) > 24
    # 4:4:4 keeps full-resolution chroma: more bytes than 4:2:0 at the same QP
    assert coded["444"][1].stat().st_size > coded["420"][1].stat().st_size
    with pytest.raises(CodecError, match="chroma_format '422'"):
        vtm_from_folder(vtm_folder, chroma_format="422")
    with pytest.raises(CodecError, match="internal_bit_depth 12"):
        vtm_from_folder(vtm_folder, internal_bit_depth=12)


# --- vvenc calibrated to VTM ------------------------------------------------------------------------
# Measured on these crops (4 coco-persons photos, 192x192 centre crops, QP 37 and 47): calibrated medium
# +2.7..+4.9 % bpp and -0.02..+0.01 dB mean; vvenc's own mapping +40..+71 % bpp.
CALIBRATION_IMAGES = ["000000000139", "000000000790", "000000034417", "000000037666"]
CALIBRATION_QPS = [37, 47]
BPP_TOLERANCE = 0.10  # mean per-image bpp deviation from VTM, each QP
PSNR_TOLERANCE = 0.30  # dB, mean per-image PSNR difference from VTM, each QP


def centre_crop(rgb: np.ndarray, size: int = 192) -> np.ndarray:
    top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
    return rgb[top:top + size, left:left + size]


def test_calibrated_vvc_lands_on_vtms_bpp_and_psnr_and_vvencs_own_mapping_does_not(vtm_folder, coco_persons,
                                                                                   tmp_path):
    images = {i: centre_crop(read_rgb8(coco_persons / "images" / f"{i}.jpg")) for i in CALIBRATION_IMAGES}
    reference = code_images(vtm_from_folder(vtm_folder), images, CALIBRATION_QPS, tmp_path / "vtm")
    calibrated = deviations(reference, code_images(make_codec("vvc"), images, CALIBRATION_QPS, tmp_path / "cal"))
    assert (calibrated.bpp_deviation_mean.abs() <= BPP_TOLERANCE).all(), calibrated
    assert (calibrated.psnr_difference_mean.abs() <= PSNR_TOLERANCE).all(), calibrated
    own = deviations(reference, code_images(make_codec("vvc", calibration="none"), images, CALIBRATION_QPS,
                                            tmp_path / "own"))
    assert (own.bpp_deviation_mean > 3 * BPP_TOLERANCE).all(), own


def test_bd_rate_reads_a_constant_bitrate_ratio_at_equal_psnr():
    bpp, psnr_db = np.array([0.1, 0.2, 0.4, 0.8]), np.array([27.0, 29.5, 32.0, 34.0])
    assert bd_rate(1.1 * bpp, psnr_db, bpp, psnr_db) == pytest.approx(0.10)
    assert bd_rate(bpp, psnr_db + 1.0, bpp, psnr_db) < 0  # same bits, better PSNR: fewer bits at equal PSNR
