"""``nstjax score`` through the command line: JSON lines, the resized content, bad input."""

import json

import numpy as np
import pytest
import quality_oracle as oracle
from PIL import Image

from nstjax import quality, vgg
from nstjax.cli import main
from nstjax.resample import resize


def _png(path, shape, seed):
    """A PNG written by PIL from numpy, as another program would write its output."""
    pixels = np.random.default_rng(seed).integers(0, 256, (*shape, 3), np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path), pixels.astype(np.float32) / 255


@pytest.fixture
def files(tmp_path, tiny_params, monkeypatch):
    monkeypatch.setattr(vgg, "load_params", lambda path=None: tiny_params)
    return {
        "out": _png(tmp_path / "theirs.png", (32, 28), 0),
        "same": _png(tmp_path / "same_size.png", (40, 36), 1),
        "content": _png(tmp_path / "content.png", (40, 36), 2),
        "style": _png(tmp_path / "style.png", (30, 44), 3),
    }


def _lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_json_line_per_image_with_the_resized_content(files, tiny_params, capsys):
    (out, out_pixels), (same, same_pixels) = files["out"], files["same"]
    (content, content_pixels), (style, style_pixels) = files["content"], files["style"]
    assert main(["score", out, same, "--content", content, "--style", style, "--json"]) == 0
    first, second = _lines(capsys)
    assert first["image"] == out and second["image"] == same
    assert first["content_resized"] is True and second["content_resized"] is False
    for key in ("content_fidelity", "global_effects", "local_patterns", "ssim"):
        assert key in first
    assert {"style_distance", "content_distance"} <= set(first)
    fitted = resize(content_pixels, (32, 28))
    assert first["ssim"] == pytest.approx(oracle.ssim(out_pixels, fitted), abs=1e-5)
    assert second["ssim"] == pytest.approx(oracle.ssim(same_pixels, content_pixels), abs=1e-5)
    want = quality.measure_one(tiny_params, out_pixels, fitted, style_pixels)
    for name, value in want.items():
        assert first[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_measures_subset_and_table(files, capsys):
    out, content, style = files["out"][0], files["content"][0], files["style"][0]
    argv = ["score", out, "--content", content, "--style", style, "--measures", "psnr,ssim"]
    assert main([*argv, "--json"]) == 0
    (line,) = _lines(capsys)
    assert set(line) == {"image", "ssim", "psnr", "content_resized"}
    assert line["psnr"] == pytest.approx(
        10 * np.log10(1 / np.mean((files["out"][1] - resize(files["content"][1], (32, 28))) ** 2)),
        abs=1e-4,
    )
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "ssim" in text and "higher" in text and "content resized" in text


def test_identical_image_json_has_null_for_infinite_psnr(files, capsys):
    content = files["content"][0]
    argv = ["score", content, "--content", content, "--style", files["style"][0], "--json"]
    assert main([*argv, "--measures", "psnr"]) == 0
    assert _lines(capsys)[0]["psnr"] is None


def _fails(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_bad_input_is_one_line_before_anything_compiles(files, tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("measured despite bad input")

    monkeypatch.setattr(quality, "measure", never)
    out, content, style = files["out"][0], files["content"][0], files["style"][0]
    base = ["--content", content, "--style", style]
    _fails(capsys, ["score", str(tmp_path / "nope.png"), *base], "nope.png", "no such file")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    _fails(capsys, ["score", str(garbage), *base], "garbage.png")
    _fails(
        capsys,
        ["score", out, *base, "--measures", "ssim,beauty"],
        "--measures",
        "'beauty'",
        "content_fidelity",
    )
    _fails(capsys, ["score", out, "--content", str(garbage), "--style", style], "--content")
    tiny, _ = _png(tmp_path / "tiny.png", (16, 16), 4)
    _fails(capsys, ["score", tiny, *base], "tiny.png", "too small")
    _fails(capsys, ["score", out, *base, "--style-size", "8"], "--style-size")
