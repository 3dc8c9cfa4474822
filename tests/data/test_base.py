"""File images converted to 8-bit RGB by their real mode (``benchmark.data.base.to_rgb``)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from benchmark.data.base import FileImageSet
from benchmark.errors import DatasetError


def loaded(path) -> np.ndarray:
    """The image at ``path`` as the benchmark reads it (H x W x 3 uint8)."""
    img = FileImageSet([path], [0]).load(0)
    assert img.mode == "RGB"
    return np.asarray(img)


def test_16_bit_grey_is_scaled_not_clipped_to_white(tmp_path):
    levels = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 0, 1, 128, 255 in 8 bits
    Image.fromarray(levels).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode in ("I;16", "I")
    out = loaded(tmp_path / "g16.png")
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


@pytest.mark.parametrize("mode, colour", [("RGBA", (200, 10, 10, 0)), ("LA", (30, 0))])
def test_transparent_pixels_are_white_and_opaque_ones_keep_their_colour(tmp_path, mode, colour):
    img = Image.new(mode, (2, 1), colour)
    opaque = (*colour[:-1], 255)
    img.putpixel((1, 0), opaque)
    img.save(tmp_path / "a.png")
    out = loaded(tmp_path / "a.png")
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == ([200, 10, 10] if mode == "RGBA" else [30, 30, 30])


def test_palette_with_a_transparent_colour_is_composited_on_white(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png", transparency=0)
    assert loaded(tmp_path / "p.png")[0].tolist() == [[255, 255, 255], [0, 128, 0]]


def test_cmyk_is_converted(tmp_path):
    Image.new("CMYK", (2, 2), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    red = loaded(tmp_path / "c.jpg")[0, 0]
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_float_pixels_are_refused_naming_the_file(tmp_path):
    Image.fromarray(np.ones((3, 3), dtype=np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(DatasetError, match=r"f\.tif: corrupt or unreadable image \(ValueError: pixel mode F"):
        loaded(tmp_path / "f.tif")


def test_truncated_file_is_one_line_naming_the_file(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"t\.jpg: corrupt or unreadable image \(OSError: image file is truncated"):
        loaded(tmp_path / "t.jpg")


def test_fingerprint_of_a_file_name_that_is_not_utf8(tmp_path):
    """A lab's old files named in Latin-1: the frozen regime's cache key must still be computed."""
    from tests.data.fixtures import write_image

    write_image(tmp_path / "a.jpg", 1)
    latin1 = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.jpg")
    (tmp_path / "a.jpg").rename(latin1)
    one = FileImageSet([latin1], [0]).fingerprint()
    assert one != FileImageSet([tmp_path / "cafe.jpg"], [0]).fingerprint()
    assert one == FileImageSet([latin1], [0]).fingerprint()
    assert np.asarray(FileImageSet([latin1], [0]).load(0)).shape[2] == 3
