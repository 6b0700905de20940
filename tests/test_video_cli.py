"""`nstjax video` as a user runs it: bad input is one line, exit 2, nothing written; a clip in
gives a clip out, and a rerun resumes from the work folder."""

import sys

import numpy as np
import pytest
from conftest import cli_fails as _fails
from PIL import Image

from nstjax.cli import main


def _frame(path, size=(24, 16), seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(path)


def _clip(folder, n=3, size=(24, 16)):
    folder.mkdir()
    for i in range(n):
        _frame(folder / f"f{i:02d}.png", size, seed=i)
    return str(folder)


@pytest.fixture
def style(tmp_path):
    _frame(tmp_path / "style.png", (20, 20), seed=9)
    return str(tmp_path / "style.png")


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, style, capsys, monkeypatch):
    import nstjax.vgg

    monkeypatch.setattr(nstjax.vgg, "load_params", lambda *a, **k: pytest.fail("loaded weights"))
    good = _clip(tmp_path / "good")
    out = str(tmp_path / "out")
    base = ["video", "--style", style, "--output", out, "--size", "16"]
    _fails(capsys, [*base, "--content", str(tmp_path / "nope")], "nope", "no such")
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00 not a video at all")
    _fails(capsys, [*base, "--content", str(corrupt)], "broken.mp4", "cannot read")
    mixed = tmp_path / "mixed"
    _clip(mixed, 2)
    _frame(mixed / "f09.png", (30, 16))
    _fails(capsys, [*base, "--content", str(mixed)], "f09.png", "one size")
    single = _clip(tmp_path / "single", 1)
    _fails(capsys, [*base, "--content", single], "at least 2 frames")
    _fails(capsys, [*base, "--content", good, "--passes", "0"], "--passes")
    _fails(capsys, [*base, "--content", good, "--temporal-weight", "-1"], "--temporal-weight")
    _fails(capsys, [*base, "--content", good, "--long-term", "1,5"], "--long-term")
    _fails(capsys, [*base, "--content", good, "--multiscale", "16:2,24:2"], "--multiscale")
    _fails(capsys, [*base, "--content", good, "--steps", "0"], "--steps")
    _fails(capsys, ["video", "--content", good, "--output", str(tmp_path / "o.png")], "--output")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # the codec is not installed
    _fails(
        capsys, ["video", "--content", good, "--output", str(tmp_path / "o.mp4")], "nstjax[video]"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["good", "mixed", "single", "broken.mp4", "style.png"]
    )


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # the test's own read of the video
@pytest.mark.slow
def test_a_frames_folder_in_gives_a_video_out_and_a_rerun_resumes(
    tmp_path, style, tiny_params, capsys, monkeypatch
):
    import imageio.v3 as iio

    import nstjax.vgg
    from nstjax.video import modes

    monkeypatch.setattr(nstjax.vgg, "load_params", lambda *a, **k: tiny_params)
    clip = _clip(tmp_path / "clip", 3, (24, 16))
    out = tmp_path / "out.mp4"
    argv = ["video", "--content", clip, "--style", style, "--output", str(out), "--size", "24"]
    argv += ["--steps", "4", "--passes", "2", "--init", "content"]
    assert main(argv) == 0
    frames = iio.imread(out, plugin="FFMPEG")
    assert frames.shape == (3, 16, 24, 3)
    saved = list((tmp_path / "out.mp4.work").rglob("frame_*.npy"))
    assert len(saved) == 6  # 2 passes x 3 frames
    monkeypatch.setattr(modes, "_execute", lambda *a: pytest.fail("recomputed a saved frame"))
    assert main([*argv, "--overwrite"]) == 0
    saved[0].unlink()  # one saved frame lost: only that frame is computed again
    calls = []
    monkeypatch.setattr(
        modes, "_execute", lambda p, runs, *a: calls.append(len(runs)) or [np.load(saved[1])]
    )
    assert main([*argv, "--overwrite"]) == 0
    assert calls == [1]


def test_the_frames_use_lbfgs_unless_an_optimizer_is_given(tmp_path, style, monkeypatch):
    import nstjax.vgg
    from nstjax.video import modes

    monkeypatch.setattr(nstjax.vgg, "load_params", lambda *a, **k: None)
    seen = []

    def record(params, clip, styles, run, options, *a, **k):
        seen.append((options.optimizer, run.step_size(options.optimizer)))
        return np.zeros_like(clip)

    monkeypatch.setattr(modes, "stylize_clip", record)
    clip = _clip(tmp_path / "clip", 2)
    base = ["video", "--content", clip, "--style", style, "--size", "16", "--steps", "1"]
    for n, extra in enumerate(([], ["--optimizer", "adam"], ["--preset", "paper"])):
        assert main([*base, "--output", str(tmp_path / f"out{n}"), *extra]) == 0
    # L-BFGS at its own step (1, not the nstjax preset's Adam step 4); Adam when asked for;
    # a preset's L-BFGS variant kept
    assert seen == [("lbfgs", 1.0), ("adam", 4.0), ("lbfgs_wolfe", 1.0)]


def test_stylizes_flag_checks_and_the_places_it_writes_are_checked_first(
    tmp_path, style, capsys, monkeypatch
):
    """What ``nstjax stylize`` refuses, a clip refuses too, naming the flag; an output or work
    folder that cannot be made, an infinite blend and a size that cannot fit are refused before
    the weights load (before: after compiling and running a pass, or with a traceback)."""
    import nstjax.vgg

    monkeypatch.setattr(nstjax.vgg, "load_params", lambda *a, **k: pytest.fail("loaded weights"))
    good = _clip(tmp_path / "good", 2)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    base = ["video", "--content", good, "--style", style, "--size", "16"]
    out = ["--output", str(tmp_path / "out")]
    _fails(capsys, [*base, *out, "--content-layers", ""], "--content-layers", "empty")
    _fails(capsys, [*base, *out, "--lr", "0"], "--lr 0")
    _fails(capsys, [*base, *out, "--batch-size", "0"], "--batch-size 0")
    _fails(capsys, [*base, *out, "--init", "nosie"], "--init 'nosie'")
    _fails(capsys, [*base, *out, "--blend", "inf"], "--blend", "finite")
    _fails(capsys, [*base, "--output", str(blocker / "out")], "--output", "not a folder")
    _fails(capsys, [*base, "--output", str(blocker / "o.mp4")], "--output", "not a folder")
    _fails(capsys, [*base, *out, "--workdir", str(blocker / "w")], "--workdir", "not a folder")
    huge = ["video", "--content", good, "--style", style, *out, "--size", "100000000"]
    _fails(capsys, huge, "--size 100000000", "more than")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "good", "style.png"]
