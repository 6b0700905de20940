"""Result.quality: measured once per finished batch when Options.quality asks for it."""

import numpy as np
import pytest

from nstjax import api, kernels, quality, vgg
from nstjax.resample import resize
from nstjax.run import Run


def _image(seed, shape):
    return np.random.default_rng(seed).random((*shape, 3)).astype(np.float32)


def test_results_carry_the_measures_of_their_images(tiny_params):
    contents = [_image(0, (32, 32))]
    # Two sizes of square style: both are resized to (32, 32), one output per style, as in
    # test_stylize_prints_the_table_unless_no_quality: the measures' programs compile once here.
    styles = [_image(1, (48, 48)), _image(2, (60, 60))]
    runs = [Run(content=0, style=0, seed=1), Run(content=0, style=1, seed=2)]
    results = api.stylize_batch(tiny_params, contents, styles, runs, steps=2, quality=True)
    # The protocol: the final image, its content, its style resized to the output's long side,
    # measured through the convolution the call chose (its equality with XLA's: test_conv.py).
    convolution = kernels.choose()
    references = [resize(styles[0], (32, 32)), resize(styles[1], (32, 32))]
    want = quality.measure(
        vgg.prepare(tiny_params, convolution),
        np.stack([r.image for r in results]),
        np.stack(contents * 2),
        references,
        convolution=convolution,
    )
    for i, result in enumerate(results):
        assert list(result.quality) == list(quality.MEASURE_NAMES)
        assert all(type(v) is float for v in result.quality.values())
        for name, values in want.items():
            assert result.quality[name] == pytest.approx(values[i], rel=1e-5, abs=1e-6), name


def test_no_measures_unless_asked_or_too_small(tiny_params):
    content, style = _image(0, (32, 32)), _image(1, (32, 32))
    run = Run(content=0, style=0)
    assert api.stylize_batch(tiny_params, [content], [style], [run], steps=1)[0].quality is None
    small = api.stylize_batch(
        tiny_params, [content[:16, :16]], [style], [run], steps=1, quality=True
    )
    assert small[0].quality is None


def test_stylize_prints_the_table_unless_no_quality(tmp_path, tiny_params, capsys, monkeypatch):
    from PIL import Image

    from nstjax.cli import main

    monkeypatch.setattr(vgg, "load_params", lambda path=None: tiny_params)
    paths = []
    for name, seed in (("content.png", 0), ("style.png", 1)):
        pixels = (_image(seed, (32, 32)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    argv = ["stylize", "--content", paths[0], "--style", paths[1], "--size", "32", "--steps", "1"]
    assert main([*argv, "--output", str(tmp_path / "a.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("measure "))) :]
    assert [line.split()[0] for line in table[1:]] == list(quality.MEASURE_NAMES)
    assert table[0].split() == ["measure", "better", "a.png"]
    assert main([*argv, "--output", str(tmp_path / "b.png"), "--no-quality"]) == 0
    assert "content_fidelity" not in capsys.readouterr().out
