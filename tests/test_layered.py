"""The layered (scalable) codec and its container, with real inner codecs on a real photo."""
from __future__ import annotations

import numpy as np
import pytest

from icm_privacy.codecs import CodecError, make_codec
from icm_privacy.codecs.downscale import HEADER, LENGTH, read_layers
from icm_privacy.images import read_png, read_rgb8

# (layer codec, its options, base quality, enhancement quality)
LAYER_CODECS = [("jpeg", {}, 75, 75), ("vvc", {"preset": "faster"}, 32, 37)]


@pytest.fixture(scope="module")
def photo(coco_photo) -> np.ndarray:
    return read_rgb8(coco_photo)[:201, :303]  # odd size on purpose: both layers must pad and crop back


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    mse = np.mean((first.astype(np.float64) - second) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize("codec, options, base_quality, enhancement_quality", LAYER_CODECS,
                         ids=[c[0] for c in LAYER_CODECS])
def test_both_layers_decode_from_one_file_and_the_enhancement_adds_fidelity(tmp_path, photo, codec, options,
                                                                             base_quality, enhancement_quality):
    layered = make_codec("layered", codec=codec, options=options, enhancement_quality=enhancement_quality)
    height, width = photo.shape[:2]
    path = tmp_path / "photo.icms"
    result = layered.code(photo, base_quality, path, tmp_path / "photo.png", "photo")
    base = layered.decode(path, width, height, layer=0)
    full = layered.decode(path, width, height, layer=1)
    assert np.array_equal(read_png(tmp_path / "photo.png"), full)  # the workflow's decode is the top layer
    assert psnr(photo, full) > psnr(photo, base) + 3, (psnr(photo, base), psnr(photo, full))

    layer_bytes = layered.layer_bytes(path)
    assert sum(layer_bytes) == path.stat().st_size == result.bitstream_bytes
    layers = read_layers(path).layers
    assert layer_bytes == (HEADER.size + LENGTH.size + len(layers[0]), LENGTH.size + len(layers[1]))


def test_base_only_file_is_the_prefix_of_the_full_file_and_a_downscale_file(tmp_path, photo):
    """Dropping the enhancement layer is cutting the file: its bytes are what layer 0 is charged."""
    height, width = photo.shape[:2]
    full, base_only, downscaled = tmp_path / "full.icms", tmp_path / "base.icms", tmp_path / "downscale.icms"
    make_codec("layered").encode(photo, 75, full)
    make_codec("layered", layers=1).encode(photo, 75, base_only)
    make_codec("downscale", inner={"codec": "jpeg", "quality": 75}).encode(photo, 4, downscaled)
    assert base_only.read_bytes() == downscaled.read_bytes()
    assert full.read_bytes()[:base_only.stat().st_size] == base_only.read_bytes()
    assert base_only.stat().st_size == make_codec("layered").layer_bytes(full)[0]
    assert np.array_equal(make_codec("layered").decode(base_only, width, height),
                          make_codec("layered").decode(full, width, height, layer=0))
    with pytest.raises(CodecError, match="holds layers 0..0, layer 1"):
        make_codec("layered").decode(base_only, width, height, layer=1)


def test_more_enhancement_bits_give_more_fidelity(tmp_path, photo):
    height, width = photo.shape[:2]
    sizes, fidelities = [], []
    for enhancement_quality in (30, 60, 90):
        path = tmp_path / f"{enhancement_quality}.icms"
        codec = make_codec("layered", enhancement_quality=enhancement_quality)
        codec.encode(photo, 75, path)
        sizes.append(codec.layer_bytes(path)[1])
        fidelities.append(psnr(photo, codec.decode(path, width, height)))
    assert sizes == sorted(sizes) and fidelities == sorted(fidelities), (sizes, fidelities)


def test_broken_containers_and_options_are_refused(tmp_path, photo):
    path = tmp_path / "full.icms"
    make_codec("layered").encode(photo, 75, path)
    data = path.read_bytes()
    (tmp_path / "cut.icms").write_bytes(data[:-1])
    with pytest.raises(CodecError, match="layer 1 needs"):
        read_layers(tmp_path / "cut.icms")
    (tmp_path / "other.icms").write_bytes(b"JUNK" + data[4:])
    with pytest.raises(CodecError, match="not a version-1 layered container"):
        read_layers(tmp_path / "other.icms")
    with pytest.raises(CodecError, match="coded with factor 4"):
        make_codec("layered", factor=2).decode(path, photo.shape[1], photo.shape[0])
    with pytest.raises(CodecError, match="layers must be 1"):
        make_codec("layered", layers=3)
