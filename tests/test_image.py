"""Tests for nstjax.image, checked against hand-built arrays and Pillow used directly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstjax import examples
from nstjax import image as nst_image
from nstjax.errors import NstjaxError
from nstjax.image import IMAGE_SUFFIXES, list_images, load_image, save_image, to_uint8
from nstjax.resample import long_side_shape, resize, resize_long_side


def _rgb_pattern(height: int = 6, width: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _as_float(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float64) / 255.0).astype(np.float32)


# --------------------------------------------------------------------------- loading


def test_png_round_trip_is_exact(tmp_path: Path) -> None:
    pixels = _rgb_pattern()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert loaded.dtype == np.float32
    assert loaded.shape == (6, 5, 3)
    np.testing.assert_array_equal(loaded, _as_float(pixels))


def test_save_then_load_png_round_trip(tmp_path: Path) -> None:
    pixels = _rgb_pattern()
    save_image(tmp_path / "out.png", _as_float(pixels))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), pixels)
    np.testing.assert_array_equal(load_image(tmp_path / "out.png"), _as_float(pixels))


def test_grayscale_gives_three_equal_channels(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    loaded = load_image(tmp_path / "g.png")
    assert loaded.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(loaded[:, :, c], _as_float(gray))


def test_bilevel_image(tmp_path: Path) -> None:
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "b.png")
    loaded = load_image(tmp_path / "b.png")
    np.testing.assert_array_equal(loaded[0, 0], [1, 1, 1])
    np.testing.assert_array_equal(loaded[0, 1], [0, 0, 0])


def test_palette_image_gives_its_colours(tmp_path: Path) -> None:
    palette = [255, 0, 0, 0, 128, 0, 10, 20, 30]
    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    img = Image.new("P", (3, 2))
    img.putpalette(palette)
    img.putdata(indices.ravel().tolist())
    img.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    loaded = load_image(tmp_path / "p.png")
    colours = np.array(palette, dtype=np.uint8).reshape(3, 3)
    np.testing.assert_array_equal(loaded, _as_float(colours[indices]))


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    pixels = np.zeros((2, 2, 4), dtype=np.uint8)
    pixels[0, 0] = [200, 100, 0, 255]  # opaque: unchanged
    pixels[0, 1] = [200, 100, 0, 0]  # transparent: white
    pixels[1, 0] = [200, 100, 0, 51]  # alpha 0.2
    pixels[1, 1] = [0, 0, 0, 128]
    Image.fromarray(pixels).save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.shape == (2, 2, 3)
    np.testing.assert_allclose(loaded[0, 0], [200 / 255, 100 / 255, 0], atol=1e-6)
    np.testing.assert_allclose(loaded[0, 1], [1, 1, 1], atol=1e-6)
    # 0.2 * colour + 0.8 * white
    expected = [0.2 * 200 / 255 + 0.8, 0.2 * 100 / 255 + 0.8, 0.8]
    np.testing.assert_allclose(loaded[1, 0], expected, atol=1e-6)
    np.testing.assert_allclose(loaded[1, 1], [1 - 128 / 255] * 3, atol=1e-6)


def test_gray_alpha_is_composited_over_white(tmp_path: Path) -> None:
    pixels = np.array([[[0, 0], [100, 255]]], dtype=np.uint8)
    Image.fromarray(pixels, mode="LA").save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")
    np.testing.assert_allclose(loaded[0, 0], [1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(loaded[0, 1], [100 / 255] * 3, atol=1e-6)


def test_palette_transparency_is_composited_over_white(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 255, 255, 0, 0])
    img.putdata([0, 1])
    img.save(tmp_path / "pt.png", transparency=0)
    loaded = load_image(tmp_path / "pt.png")
    np.testing.assert_allclose(loaded[0, 0], [1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(loaded[0, 1], [1, 0, 0], atol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_keeps_full_precision(tmp_path: Path, suffix: str) -> None:
    values = (257 * 10 * np.arange(24, dtype=np.uint16) + 1).reshape(4, 6)  # 257*k + 1
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    img.save(tmp_path / f"deep{suffix}")
    loaded = load_image(tmp_path / f"deep{suffix}")
    assert loaded.shape == (4, 6, 3)
    expected = values.astype(np.float64) / 65535.0
    for c in range(3):
        np.testing.assert_allclose(loaded[:, :, c], expected, rtol=0, atol=1e-6)
    # More than 8 bits: the +1 offsets are seen (an 8-bit read would lose them).
    assert np.abs(loaded[:, :, 0] - np.round(expected * 255) / 255).max() > 1e-6


def test_mode_i_is_read_as_16_bit(tmp_path: Path) -> None:
    values = np.array([[0, 1, 32768, 65535]], dtype=np.int32)
    img = Image.fromarray(values)
    assert img.mode == "I"
    img.save(tmp_path / "i.tif")
    loaded = load_image(tmp_path / "i.tif")
    np.testing.assert_allclose(loaded[0, :, 1], values[0] / 65535.0, rtol=0, atol=1e-7)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 40 wide x 20 tall, blue, with a red 8x8 block in the stored top-left corner.
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :] = [0, 0, 255]
    stored[:8, :8] = [255, 0, 0]
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer rotates the stored image 90 degrees clockwise.
    Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "rot.jpg")
    assert loaded.shape == (40, 20, 3)
    # A clockwise turn takes the stored top-left corner to the displayed top-right corner.
    np.testing.assert_allclose(loaded[3, 20 - 4], [1, 0, 0], atol=0.1)
    np.testing.assert_allclose(loaded[3, 3], [0, 0, 1], atol=0.1)
    np.testing.assert_allclose(loaded[40 - 4, 20 - 4], [0, 0, 1], atol=0.1)


@pytest.mark.parametrize(
    ("suffix", "options"),
    [
        (".webp", {"lossless": True}),
        (".tif", {}),
        (".tiff", {"compression": "tiff_lzw"}),
        (".bmp", {}),
    ],
)
def test_other_formats_load(tmp_path: Path, suffix: str, options: dict) -> None:
    pixels = _rgb_pattern(7, 9)
    Image.fromarray(pixels).save(tmp_path / f"x{suffix}", **options)
    loaded = load_image(tmp_path / f"x{suffix}")
    np.testing.assert_array_equal(loaded, _as_float(pixels))


def test_jpeg_loads_close(tmp_path: Path) -> None:
    pixels = np.full((16, 16, 3), [30, 140, 220], dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "c.jpeg", quality=95)
    loaded = load_image(tmp_path / "c.jpeg")
    np.testing.assert_allclose(loaded, _as_float(pixels), atol=3 / 255)


def test_load_with_size(tmp_path: Path) -> None:
    Image.fromarray(np.full((30, 60, 3), 77, dtype=np.uint8)).save(tmp_path / "w.png")
    loaded = load_image(tmp_path / "w.png", size=20)
    assert loaded.shape == (10, 20, 3)
    np.testing.assert_allclose(loaded, 77 / 255, atol=1e-6)
    assert load_image(tmp_path / "w.png", size=120).shape == (60, 120, 3)


# --------------------------------------------------------------------------- resizing


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((100, 200), 50, (25, 50)),
        ((200, 100, 3), 50, (50, 25)),
        ((300, 300), 7, (7, 7)),
        ((3, 1000), 10, (1, 10)),  # shorter side would round to 0: at least 1
        ((10, 15), 30, (20, 30)),
        ((2, 3), 5, (3, 5)),  # 3.33 -> 3
        ((4, 5), 6, (5, 6)),  # 4.8 -> 5
    ],
)
def test_long_side_shape(shape: tuple, size: int, expected: tuple) -> None:
    assert long_side_shape(shape, size) == expected


def test_long_side_shape_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        long_side_shape((10, 10), 0)


def test_resize_long_side_keeps_aspect_and_constant() -> None:
    img = np.full((48, 64, 3), [0.25, 0.5, 0.75], dtype=np.float32)
    small = resize_long_side(img, 16)
    assert small.shape == (12, 16, 3)
    assert small.dtype == np.float32
    np.testing.assert_array_equal(small, np.broadcast_to([0.25, 0.5, 0.75], small.shape))
    big = resize_long_side(img, 100)
    assert big.shape == (75, 100, 3)
    np.testing.assert_array_equal(big, np.broadcast_to([0.25, 0.5, 0.75], big.shape))


@pytest.mark.parametrize(("src", "dst"), [((90, 120), (30, 40)), ((30, 40), (75, 100))])
def test_resize_ramp_matches_sampled_ramp(src: tuple, dst: tuple) -> None:
    def ramp(h: int, w: int) -> np.ndarray:
        # A smooth function of position, evaluated at pixel centres in [0, 1] x [0, 1].
        y = (np.arange(h) + 0.5) / h
        x = (np.arange(w) + 0.5) / w
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return np.stack([0.2 + 0.6 * xx, 0.1 + 0.8 * yy, 0.5 + 0.3 * xx * yy], axis=2)

    out = resize(ramp(*src).astype(np.float32), dst)
    assert out.shape == (*dst, 3)
    expected = ramp(*dst)
    # Away from the borders (where the filter's edge handling matters) the match is close.
    inner = (slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(out[inner], expected[inner], atol=2e-3)
    np.testing.assert_allclose(out, expected, atol=0.05)


def test_resize_is_float_not_quantised() -> None:
    img = np.linspace(0, 1e-3, 40 * 40, dtype=np.float32).reshape(40, 40)
    out = resize(img, (10, 10))
    assert out.shape == (10, 10)
    assert len(np.unique(out)) > 10  # 8-bit quantisation would collapse these to one or two


def test_resize_same_shape_is_a_copy() -> None:
    img = np.random.default_rng(1).random((5, 6, 3)).astype(np.float32)
    out = resize(img, (5, 6))
    np.testing.assert_array_equal(out, img)
    assert out is not img


def test_resize_rejects_bad_shape() -> None:
    with pytest.raises(ValueError):
        resize(np.zeros((4, 4, 3), np.float32), (0, 3))


# --------------------------------------------------------------------------- saving


def test_to_uint8_rounds_and_clips() -> None:
    img = np.array([-0.5, 0.0, 0.5 / 255, 1.49 / 255, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(to_uint8(img), [0, 0, 0, 1, 128, 255, 255])
    assert to_uint8(img).dtype == np.uint8
    with pytest.raises(ValueError):
        to_uint8(np.array([np.nan]))


def test_save_jpeg_and_grayscale(tmp_path: Path) -> None:
    img = np.full((8, 8, 3), [0.2, 0.4, 0.6], dtype=np.float32)
    save_image(tmp_path / "o.JPG", img)
    with Image.open(tmp_path / "o.JPG") as written:
        assert written.format == "JPEG"
        np.testing.assert_allclose(np.asarray(written) / 255, img, atol=2 / 255)
    save_image(tmp_path / "sub" / "g.png", np.full((3, 4), 0.5))
    with Image.open(tmp_path / "sub" / "g.png") as written:
        assert written.mode == "L"
        np.testing.assert_array_equal(np.asarray(written), np.full((3, 4), 128))


def test_save_clips_out_of_range(tmp_path: Path) -> None:
    save_image(tmp_path / "c.png", np.array([[[-1.0, 0.5, 3.0]]]))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")), [[[0, 128, 255]]])


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    save_image(target, np.zeros((4, 4, 3)))
    before = target.read_bytes()

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG partial")  # type: ignore[arg-type]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_image(target, np.ones((4, 4, 3)))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_a_write_flushes_its_data_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the first fsync a machine that loses power can keep the rename and not the data
    (an empty file under the final name); without the second, lose the rename."""
    from nstjax import atomic

    events, opened = [], {}
    real_open, real_fsync, real_replace = os.open, os.fsync, os.replace

    def recording_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        opened[fd] = Path(path)
        return fd

    def recording_fsync(fd):
        path = opened[fd]
        events.append(("fsync", "the folder" if path.is_dir() else path.read_text()))
        real_fsync(fd)

    def recording_replace(source, target):
        events.append(("rename", Path(target).name))
        real_replace(source, target)

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    atomic.write_text(tmp_path / "run.json", '{"status": "done"}')
    assert events == [
        ("fsync", '{"status": "done"}'),
        ("rename", "run.json"),
        ("fsync", "the folder"),
    ]


def test_save_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(NstjaxError, match=r"out\.gif"):
        save_image(tmp_path / "out.gif", np.zeros((2, 2, 3)))
    with pytest.raises(NstjaxError, match="noext"):
        save_image(tmp_path / "noext", np.zeros((2, 2, 3)))
    assert list(tmp_path.iterdir()) == []


def test_save_unwritable_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(NstjaxError, match=r"file\.txt"):
        save_image(blocker / "out.png", np.zeros((2, 2, 3)))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(NstjaxError, match=r"dir\.png"):
        save_image(tmp_path / "dir.png", np.zeros((2, 2, 3)))


def test_save_rejects_nan(tmp_path: Path) -> None:
    with pytest.raises(NstjaxError, match=r"nan\.png"):
        save_image(tmp_path / "nan.png", np.full((2, 2, 3), np.nan))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- errors


def _assert_one_line_error(path: Path, *fragments: str, what: str = "image") -> None:
    with pytest.raises(NstjaxError) as info:
        load_image(path, what=what)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    assert message.startswith(what)
    for fragment in fragments:
        assert fragment in message


def test_missing_file(tmp_path: Path) -> None:
    _assert_one_line_error(tmp_path / "nope.jpg", "no such file", what="content image")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    _assert_one_line_error(tmp_path / "d.png", "folder")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    _assert_one_line_error(tmp_path / "empty.png", "empty", what="style image")


def test_random_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    (tmp_path / "noise.jpg").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _assert_one_line_error(tmp_path / "noise.jpg", "cannot identify image file")


def test_text_file_named_png(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("hello\nworld\n")
    _assert_one_line_error(tmp_path / "notes.png", "not an image Pillow can read")


def test_truncated_image(tmp_path: Path) -> None:
    Image.fromarray(_rgb_pattern(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _assert_one_line_error(tmp_path / "cut.png", "cannot decode")


# --------------------------------------------------------------------------- listing


def test_list_images_folder(tmp_path: Path) -> None:
    folder = tmp_path / "styles"
    folder.mkdir()
    for name in ["b.png", "a.JPG", "c.webp", "notes.txt", ".hidden.png", "z.tiff"]:
        (folder / name).write_bytes(b"x")
    (folder / "sub.png").mkdir()
    single = tmp_path / "single.jpg"
    single.write_bytes(b"x")
    found = list_images([single, folder], what="style image")
    assert found == [single] + [folder / n for n in ["a.JPG", "b.png", "c.webp", "z.tiff"]]
    assert list_images(str(folder)) == found[1:]


def test_list_images_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(NstjaxError, match="empty") as info:
        list_images([tmp_path / "empty"], what="style image")
    assert str(info.value).startswith("style image folder")


def test_list_images_missing_path(tmp_path: Path) -> None:
    with pytest.raises(NstjaxError, match="missing_dir"):
        list_images([tmp_path / "missing_dir"])


def test_list_images_nothing_given() -> None:
    with pytest.raises(NstjaxError):
        list_images([])


def test_image_suffixes() -> None:
    assert set(IMAGE_SUFFIXES) == {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}
    assert nst_image.__all__


# --------------------------------------------------------------------------- real image


def test_real_image_loads() -> None:
    path = examples.CONTENT
    with Image.open(path) as img:
        expected = np.asarray(img.convert("RGB"))
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded, _as_float(expected))
    small = load_image(path, size=64, what="content image")
    assert max(small.shape[:2]) == 64
    assert small.shape[:2] == long_side_shape(expected.shape, 64)
    assert 0.0 <= small.min() and small.max() <= 1.0
    # Downscaling preserves the mean colour closely.
    np.testing.assert_allclose(small.mean(axis=(0, 1)), loaded.mean(axis=(0, 1)), atol=0.01)
