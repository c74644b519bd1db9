"""Standard codecs: real bitstream files, decoding from the file alone, bpp from bytes, rate order."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from icm_privacy.codecs import CODECS, CodecError, CodecUnavailable, bits_per_pixel, make_codec
from icm_privacy.codecs.base import cpu_seconds
from icm_privacy.codecs.vtm import VvcVtm
from icm_privacy.images import crop_to, pad_to_multiple, read_png, read_rgb8

# (codec, options, qualities ordered from high rate to low rate)
RATE_LADDERS = [
    ("vvc", {"preset": "faster"}, [22, 32, 37, 47]),
    ("hevc", {"preset": "ultrafast"}, [22, 32, 42]),
    ("av1", {"cpu_used": 8}, [20, 40, 60]),
    ("jpegxl", {"effort": 3}, [0.5, 2.0, 6.0]),
    ("jpeg", {}, [90, 50, 10]),
    ("webp", {}, [90, 50, 10]),
]


@pytest.fixture(scope="module")
def photo(coco_photo) -> np.ndarray:
    return read_rgb8(coco_photo)[:201, :303]  # odd size on purpose: codecs must pad and crop back


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    mse = np.mean((first.astype(np.float64) - second) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_bpp_is_eight_bits_per_byte_over_original_pixels():
    assert bits_per_pixel(1000, 100, 80) == pytest.approx(1.0)
    assert bits_per_pixel(1, 1, 1) == 8.0
    with pytest.raises(ValueError):
        bits_per_pixel(10, 0, 5)


def test_cpu_seconds_count_an_encoder_run_as_a_child_process():
    """VTM and ffmpeg encode in child processes; their CPU time must reach coding.csv's encode_cpu_seconds."""
    before = cpu_seconds()
    subprocess.run([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\n"
                    "while time.process_time() < end: pass"], check=True)
    assert cpu_seconds() - before >= 0.5


def test_padding_replicates_edges_and_cropping_restores_the_image():
    image = np.arange(5 * 3 * 3, dtype=np.uint8).reshape(5, 3, 3)
    padded = pad_to_multiple(image, 4)
    assert padded.shape == (8, 4, 3)
    assert np.array_equal(padded[7, 3], image[4, 2])  # bottom-right copies the last pixel
    assert np.array_equal(crop_to(padded, 3, 5), image)
    already_aligned = image[:4, :2]
    assert pad_to_multiple(already_aligned, 2) is already_aligned


@pytest.mark.parametrize("name, options, qualities", RATE_LADDERS, ids=[r[0] for r in RATE_LADDERS])
def test_codec_round_trips_through_its_bitstream_and_rate_falls_with_quality(tmp_path, photo, name, options, qualities):
    codec = make_codec(name, **options)
    rates, fidelities = [], []
    for quality in qualities:
        bitstream = tmp_path / f"{quality}.{codec.extension}"
        decoded_png = tmp_path / f"{quality}.png"
        result = codec.code(photo, quality, bitstream, decoded_png, "photo")
        assert bitstream.stat().st_size == result.bitstream_bytes > 0
        assert result.bpp == pytest.approx(bits_per_pixel(result.bitstream_bytes, photo.shape[1], photo.shape[0]))
        decoded = read_png(decoded_png)
        assert decoded.shape == photo.shape
        # decoding again from the file alone gives the same pixels
        assert np.array_equal(codec.decode(bitstream, photo.shape[1], photo.shape[0]), decoded)
        rates.append(result.bpp)
        fidelities.append(psnr(photo, decoded))
    assert rates == sorted(rates, reverse=True), f"{name}: bpp must fall as quality falls: {rates}"
    assert fidelities == sorted(fidelities, reverse=True), f"{name}: PSNR must fall: {fidelities}"
    assert fidelities[0] > 30.0


def test_vvc_qp_adaptation_is_off_by_default_and_costs_bytes_when_on(tmp_path, photo):
    plain = make_codec("vvc", preset="faster").code(photo, 37, tmp_path / "a.266", tmp_path / "a.png", "photo")
    adapted = make_codec("vvc", preset="faster", qpa=True).code(photo, 37, tmp_path / "b.266", tmp_path / "b.png", "photo")
    assert adapted.bitstream_bytes != plain.bitstream_bytes


def test_vvc_defaults_to_the_vtm_calibration_and_keeps_vvencs_own_mapping_selectable():
    """tests/test_vtm.py measures what the calibration does against the real VTM."""
    default = make_codec("vvc").encoder_arguments(37)
    assert default[default.index("-vvenc-params") + 1] == "GOPSize=1:IntraPeriod=1:IntraQPOffset=-1:AccessUnitDelimiter=0"
    assert "-vvenc-params" not in make_codec("vvc", calibration="none").encoder_arguments(37)
    overridden = make_codec("vvc", vvenc_params="IntraQPOffset=0").encoder_arguments(37)
    assert overridden[-1].endswith(":IntraQPOffset=0")  # later keys win in ffmpeg's option dictionary
    with pytest.raises(CodecError, match="calibration 'VTM' is not one of vtm, none"):
        make_codec("vvc", calibration="VTM")


def test_codec_failure_names_codec_quality_and_image(tmp_path, photo):
    codec = make_codec("hevc", preset="ultrafast")
    with pytest.raises(CodecError) as failure:
        codec.code(photo, 99, tmp_path / "x.265", tmp_path / "x.png", "img42")  # x265 QP is 0..51
    message = str(failure.value)
    assert "codec hevc" in message and "quality 99" in message and "img42" in message
    assert not (tmp_path / "x.265").exists(), "a failed encode must not leave a bitstream behind"


def test_vtm_without_binaries_is_refused_with_what_to_set(tmp_path):
    with pytest.raises(CodecUnavailable, match="EncoderApp.*options.encoder/decoder/config"):
        make_codec("vtm")


def test_vtm_command_lines_follow_the_all_intra_reference_setting(tmp_path):
    for name in ("enc", "dec", "intra.cfg"):
        (tmp_path / name).write_text("")
    codec = VvcVtm(encoder=str(tmp_path / "enc"), decoder=str(tmp_path / "dec"), config=str(tmp_path / "intra.cfg"))
    command = codec.encoder_command(tmp_path / "in.yuv", tmp_path / "out.vvc", 640, 424, 37)
    assert command[:3] == [str(tmp_path / "enc"), "-c", str(tmp_path / "intra.cfg")]
    assert ["-q", "37"] == command[command.index("-q"):command.index("-q") + 2]
    assert "--InputBitDepth=10" in command and ["-wdt", "640"] == command[command.index("-wdt"):][:2]
    assert {"--ConformanceWindowMode=1", "--ChromaFormatIDC=420", "--InternalBitDepth=10"} <= set(command)
    assert codec.decoder_command(tmp_path / "out.vvc", tmp_path / "d.yuv")[-2:] == ["-d", "10"]


def test_unknown_codec_lists_the_known_ones():
    with pytest.raises(CodecError, match="unknown codec 'vvv'.*vvc"):
        make_codec("vvv")
    assert {"vvc", "vtm", "hevc", "av1", "jpegxl", "jpeg", "webp"} <= set(CODECS)
