"""Every input mode becomes 8-bit RGB; broken files are refused with their name and the reason."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from icm_privacy.images import ImageError, read_rgb8


def save(tmp_path, name, image, **options):
    path = tmp_path / name
    image.save(path, **options)
    return path


def test_grayscale_palette_alpha_and_cmyk_become_rgb8(tmp_path):
    gray = save(tmp_path, "g.png", Image.new("L", (4, 3), 77))
    palette = save(tmp_path, "p.png", Image.new("RGB", (4, 3), (10, 200, 30)).convert("P", palette=Image.ADAPTIVE))
    cmyk = save(tmp_path, "c.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)), quality=100)
    rgba = Image.new("RGBA", (4, 3), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    alpha = save(tmp_path, "a.png", rgba)
    for path in (gray, palette, cmyk, alpha):
        rgb = read_rgb8(path)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, path
    assert read_rgb8(gray)[0, 0].tolist() == [77, 77, 77]
    assert read_rgb8(palette)[1, 1].tolist() == [10, 200, 30]
    assert read_rgb8(cmyk)[4, 4, 0] > 200 and read_rgb8(cmyk)[4, 4, 1] < 40  # CMYK red stays red
    assert read_rgb8(alpha)[1, 1].tolist() == [255, 255, 255]  # transparent -> white background
    assert read_rgb8(alpha)[0, 0].tolist() == [0, 0, 255]


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    wide = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "w.png"
    Image.fromarray(wide).save(path)
    assert read_rgb8(path)[0, :, 0].tolist() == [0, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (6, 2), (0, 0, 0))
    image.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(tmp_path, "r.jpg", image, exif=exif, quality=100)
    assert read_rgb8(path).shape == (6, 2, 3)


def test_broken_files_are_refused_naming_the_file(tmp_path, coco_photo):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(coco_photo.read_bytes()[:5000])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    for path, reason in ((truncated, "cannot decode"), (empty, "empty file"), (text, "cannot decode"),
                         (tmp_path / "missing.png", "no such file")):
        with pytest.raises(ImageError) as refused:
            read_rgb8(path)
        assert str(path) in str(refused.value) and reason in str(refused.value)
