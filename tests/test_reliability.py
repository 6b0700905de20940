"""Nothing lost, nothing stuck: output collisions, existing outputs, impossible sizes, failed runs.

The mechanics run the real command line on a tiny random VGG (``vgg.load_params`` patched to
return it); the failed-run cases use the real weights at 32 px, as the issue reproduced them.
"""

import json

import numpy as np
import pytest

from nstjax import vgg
from nstjax.cli import main
from nstjax.image import load_image, save_image


def _smooth(seed, shape):
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    return np.stack(
        [0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(1, 3) * y + rng.uniform(1, 3) * x))] * 3, -1
    ).astype(np.float32)


@pytest.fixture
def tiny_cli(tmp_path, monkeypatch, tiny_params):
    """``nstjax stylize`` in tmp_path on the tiny VGG, 16 px, 2 steps."""
    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(vgg, "load_params", lambda *a, **k: tiny_params)
    for name, seed in (("a.jpg", 0), ("a.png", 1), ("s.png", 2)):
        save_image(tmp_path / name, _smooth(seed, (16, 16)))

    def run(*argv):
        return main(["stylize", "--size", "16", "--steps", "2", *argv])

    return run


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("nstjax: error: "), err
    for fragment in fragments:
        assert fragment in err, err


def test_two_contents_with_one_stem_get_two_outputs(tiny_cli, tmp_path):
    """Before: `a.jpg` and `a.png` both wrote out/a__s.png and one result was lost."""
    assert tiny_cli("--content", "a.jpg", "a.png", "--style", "s.png", "--output", "out") == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a_jpg__s.png", "a_png__s.png"]
    a, b = (load_image(tmp_path / "out" / n) for n in written)
    assert np.abs(a - b).max() > 0.05  # two different contents, two different results


def test_the_same_file_name_in_two_folders_is_refused(tiny_cli, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.jpg").write_bytes((tmp_path / "a.jpg").read_bytes())
    status = tiny_cli("--content", "a.jpg", "x/a.jpg", "--style", "s.png", "--output", "out")
    assert status == 2
    _one_line_error(capsys, "a.jpg", "same output name")
    assert not (tmp_path / "out").exists()


def test_an_existing_output_needs_overwrite(tiny_cli, tmp_path, capsys):
    (tmp_path / "o.png").write_bytes(b"precious")
    assert tiny_cli("--content", "a.jpg", "--style", "s.png", "--output", "o.png") == 2
    _one_line_error(capsys, "o.png", "exists", "--overwrite")
    assert (tmp_path / "o.png").read_bytes() == b"precious"
    args = ("--content", "a.jpg", "--style", "s.png", "--output", "o.png", "--overwrite")
    assert tiny_cli(*args) == 0
    assert load_image(tmp_path / "o.png").shape == (16, 16, 3)


def test_a_folder_where_the_output_file_goes_is_refused_before_any_work(
    tiny_cli, tmp_path, capsys, monkeypatch
):
    (tmp_path / "o.png").mkdir()
    monkeypatch.setattr(vgg, "load_params", lambda *a, **k: pytest.fail("loaded weights"))
    assert tiny_cli("--content", "a.jpg", "--style", "s.png", "--output", "o.png") == 2
    _one_line_error(capsys, "o.png", "is a folder")


def test_an_impossible_size_is_refused_with_the_estimate(tiny_cli, capsys, monkeypatch):
    """Before: --size 100000 allocated memory inside the resize until the machine gave out. Now
    the estimate (from the image headers) is refused before any pixel is read."""
    import nstjax.image

    monkeypatch.setattr(nstjax.image, "load_image", lambda *a, **k: pytest.fail("read pixels"))
    argv = ["stylize", "--content", "a.jpg", "--style", "s.png", "--output", "big.png"]
    assert main([*argv, "--size", "100000"]) == 2
    _one_line_error(capsys, "--size 100000", "GB", "smaller --size")


def test_an_impossible_size_suggests_remat_and_multiscale(capsys, tmp_path, monkeypatch):
    """The planner's per-run estimate: VGG's activations at 40000 px do not fit in RAM."""
    from nstjax.batch import memory

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(memory, "IMAGE_COPIES", 0)  # get past the resize check to the planner's
    save_image(tmp_path / "c.png", _smooth(0, (16, 16)))
    status = main(
        ["stylize", "--content", "c.png", "--style", "c.png", "--output", "o.png"]
        + ["--size", "40000"]
    )
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    # The 16 px content is upscaled 2500x: a note (a real run that size stops at the resize
    # check, before it), then the planner's one-line error.
    assert len(err) == 2 and err[0].startswith("nstjax: note: a 16x16 content image is upscaled")
    assert err[1].startswith("nstjax: error: ")
    assert all(f in err[1] for f in ("GB per run", "--remat", "--multiscale")), err[1]


@pytest.mark.slow
@pytest.mark.weights
def test_a_diverging_run_saves_its_last_finite_image_and_exits_1(
    real_params, images_dir, tmp_path, capsys, monkeypatch
):
    """The issue's command: L-BFGS with step 4 and beta 1e5 goes non-finite within 20 steps."""
    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "0")
    monkeypatch.setattr(vgg, "load_params", lambda *a, **k: real_params)
    out = tmp_path / "x.png"
    argv = ["stylize", "--content", str(images_dir / "golden_gate.jpg"), "--style"]
    argv += [str(images_dir / "great_wave.jpg"), "--output", str(out), "--size", "32"]
    argv += ["--steps", "20", "--optimizer", "lbfgs", "--lr", "4", "--style-weight", "1e5"]
    argv += ["--tv-weight", "1e-4"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "x.png stopped at step" in err and "style-weight 100000.0" in err and "lr 4.0" in err
    failed = tmp_path / "x.failed.png"
    assert failed.exists() and not out.exists()
    image = load_image(failed)
    assert np.isfinite(image).all() and image.std() > 0.01


@pytest.mark.slow
@pytest.mark.weights
def test_a_sweep_records_a_failed_run_and_a_rerun_computes_nothing(
    real_params, images_dir, tmp_path
):
    from nstjax import sweep
    from nstjax.sweep.workdir import Workdir

    config = sweep.default_config()
    config.data.content = [str(images_dir / "golden_gate.jpg")]
    config.data.style = [str(images_dir / "great_wave.jpg")]
    config.data.size = 32
    config.optim.optimizer = "lbfgs"
    config.optim.steps = 20
    config.loss.style_weight = 1e5
    config.loss.tv_weight = 1e-4
    config.sweep.axes.learning_rate = [4.0, 0.01]  # the first diverges, the second does not
    prepared = sweep.prepare(config)
    first = sweep.run_sweep(prepared, str(tmp_path / "w"), real_params, log=lambda _: None)
    assert (first.done, first.failed, first.pending) == (1, 1, 0)
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "w/runs").glob("*/run.json"))]
    assert [r["status"] for r in records] == ["failed", "done"]
    assert records[0]["failed_at"] is not None
    assert (tmp_path / "w" / "summary.csv").exists()
    Workdir(tmp_path / "w").unlock()
    again = sweep.run_sweep(prepared, str(tmp_path / "w"), real_params, log=lambda _: None)
    assert again.computed == [] and (again.done, again.failed) == (1, 1)
