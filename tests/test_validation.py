"""Every entry point refuses a bad value in one line naming the option, exit status 2, before
anything is read at size, loaded or compiled (issue: the cases found by trying each command)."""

import numpy as np
import pytest
from PIL import Image

from nstjax.cli import main


def _write(path, size=(24, 20), value=None, seed=0):
    if value is None:
        pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    else:
        pixels = np.full((size[1], size[0], 3), value, np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def block_work(monkeypatch):
    """Makes compiling anything (a jitted or an eager JAX computation), loading the VGG weights
    and every command's executor fail the test if reached."""
    from jax._src.interpreters import pxla

    import nstjax.api
    import nstjax.bench.suite
    import nstjax.feedforward
    import nstjax.sweep
    import nstjax.vgg

    def reached(what):
        return lambda *a, **k: pytest.fail(f"{what} reached")

    monkeypatch.setattr(pxla.MeshComputation, "compile", reached("a compilation"))
    monkeypatch.setattr(nstjax.vgg, "load_params", reached("loading the weights"))
    monkeypatch.setattr(nstjax.api, "run_plan", reached("the stylize executor"))
    monkeypatch.setattr(nstjax.feedforward, "apply", reached("apply's executor"))
    monkeypatch.setattr(nstjax.feedforward, "train", reached("training"))
    monkeypatch.setattr(nstjax.sweep, "run_sweep", reached("the sweep executor"))
    monkeypatch.setattr(nstjax.bench.suite, "run_suite", reached("the bench suite"))


def run(argv) -> int:
    """``nstjax ARGV``'s exit status (argparse's errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def fails(capsys, argv, *fragments) -> str:
    """The command exits 2 with one line on stderr, ``nstjax: error: ...``, holding every
    fragment."""
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("nstjax: error: "), err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def files(tmp_path):
    """Two 24x20 style images, a content image, a black mask, a 1x1 image, a content folder."""
    content_dir = tmp_path / "contents"
    content_dir.mkdir()
    for i in range(4):
        _write(content_dir / f"c{i}.png", seed=i)
    return {
        "content": _write(tmp_path / "content.png", seed=1),
        "style": _write(tmp_path / "style.png", seed=2),
        "style2": _write(tmp_path / "style2.png", seed=3),
        "black": _write(tmp_path / "black.png", value=0),
        "tiny": _write(tmp_path / "tiny.png", size=(1, 1), value=128),
        "content_dir": str(content_dir),
        "out": str(tmp_path / "out.png"),
    }


def _stylize(f, *extra, styles=("style",)):
    styles = [f[s] for s in styles]
    return ["stylize", "--content", f["content"], "--style", *styles, "--size", "24"] + [
        "--output",
        f["out"],
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--style-scale", "inf"], ["--style-scale inf", "finite"]),
        (["--style-scale", "nan"], ["--style-scale nan", "finite"]),
        (["--style-scale", "1e-6"], ["--style-scale", "too small", "conv5_1"]),
        (["--style-scale", "1e6"], ["--style-scale", "GB"]),
        (["--init", "nosie"], ["--init 'nosie'", "content, noise, uniform, style"]),
        (["--content-layers", ""], ["--content-layers ''", "empty"]),
        (["--style-layers", " , "], ["--style-layers", "empty"]),
        (["--content-weight", "nan"], ["--content-weight nan"]),
        (["--tv-weight=-inf"], ["--tv-weight -inf"]),
        (["--lr", "0"], ["--lr 0", "> 0"]),
        (["--noise-scale", "inf"], ["--noise-scale inf"]),
        (["--loss-tolerance", "nan"], ["--loss-tolerance nan"]),
        (["--save-every", "-1"], ["--save-every -1"]),
        (["--size", "0"], ["--size 0"]),
        (["--size", "100000000"], ["--size 100000000", "GB"]),
        (["--dtype", "float16"], ["--dtype", "float32"]),
        (["--steps", "abc"], ["--steps", "abc"]),
    ],
)
def test_stylize_refuses(files, capsys, monkeypatch, extra, fragments):
    block_work(monkeypatch)
    fails(capsys, _stylize(files, *extra), *fragments)


@pytest.mark.parametrize(
    ("weights", "fragments"),
    [(["nan", "1"], ["--style-blend nan"]), (["inf", "1"], ["--style-blend inf"]),
     (["0", "0"], ["--style-blend", "all 0"]), (["-1", "2"], ["--style-blend -1"])],
)  # fmt: skip
def test_stylize_refuses_bad_blend_weights(files, capsys, monkeypatch, weights, fragments):
    block_work(monkeypatch)
    argv = _stylize(files, "--style-blend", *weights, styles=("style", "style2"))
    fails(capsys, argv, *fragments)


def test_stylize_refuses_an_all_black_mask(files, capsys, monkeypatch):
    block_work(monkeypatch)
    fails(capsys, _stylize(files, "--masks", files["black"]), "--masks", "black.png", "all black")


def test_stylize_notes_a_tiny_image_upscaled(files, capsys, monkeypatch):
    """A 1x1 content image at --size 24 is upscaled 24 times: a note says so (the run itself is
    stopped where the weights would load)."""
    block_work(monkeypatch)
    argv = ["stylize", "--content", files["tiny"], "--style", files["style"], "--size", "24"]
    with pytest.raises(pytest.fail.Exception, match="loading the weights"):
        run([*argv, "--output", files["out"]])
    err = capsys.readouterr().err
    assert "nstjax: note:" in err and "1x1 content image is upscaled to 24x24" in err, err


def _train(f, tmp_path, *extra, styles=("style",)):
    return [
        "train",
        "--style",
        *(f[s] for s in styles),
        "--content-dir",
        f["content_dir"],
        "--output",
        str(tmp_path / "model"),
        "--size",
        "16",
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--style-weight", "nan"], ["--style-weight nan", "finite"]),
        (["--content-weight", "inf"], ["--content-weight inf", "finite"]),
        (["--lr", "nan"], ["--lr nan"]),
        (["--content-layers", ""], ["--content-layers ''", "empty"]),
        (["--size", "8"], ["--size 8", ">= 16"]),
        (["--seed", "-1"], ["--seed -1"]),
        (["--width", "0"], ["--width 0"]),
        (["--norm", "layer"], ["--norm", "instance"]),
    ],
)
def test_train_refuses(files, tmp_path, capsys, monkeypatch, extra, fragments):
    block_work(monkeypatch)
    fails(capsys, _train(files, tmp_path, *extra), *fragments)


def test_train_blames_the_option_whose_count_disagrees(files, tmp_path, capsys, monkeypatch):
    block_work(monkeypatch)
    argv = _train(files, tmp_path, "--style-weight", "1", "2", "3", styles=("style", "style2"))
    err = fails(capsys, argv, "--style-weight: 3 values", "--style gives 2 networks")
    assert not err.startswith("nstjax: error: --style:")


def test_train_refuses_an_unwritable_output(files, tmp_path, capsys, monkeypatch):
    """An --output under a file cannot be created: refused before anything is written."""
    block_work(monkeypatch)
    argv = _train(files, tmp_path)
    argv[argv.index("--output") + 1] = str(tmp_path / "style.png" / "model")
    fails(capsys, argv, "--output", "style.png exists and is not a folder")


def test_train_resumes_a_style_given_by_another_path(files, tmp_path):
    """The same style image through another spelling of its path, or a copy of it, resumes;
    a different image does not."""
    import shutil

    from nstjax.errors import NstjaxError
    from nstjax.feedforward import TrainConfig
    from nstjax.feedforward.checkpoint import CHECKPOINTS, write_config

    model = tmp_path / "model"
    typed = TrainConfig(styles=(files["style"],), content_dir=files["content_dir"])
    write_config(model, typed)
    (model / CHECKPOINTS).mkdir()
    other_spelling = str(tmp_path / "contents" / ".." / "style.png")
    copy = shutil.copy(files["style"], tmp_path / "copy.png")
    for same in (other_spelling, str(copy)):
        write_config(model, TrainConfig(styles=(same,), content_dir=files["content_dir"]))
    with pytest.raises(NstjaxError, match="different styles"):
        write_config(
            model, TrainConfig(styles=(files["style2"],), content_dir=files["content_dir"])
        )


@pytest.fixture
def model(tmp_path):
    """A model folder holding one network's fresh checkpoint."""
    from test_feedforward_cli import _saved_model

    from nstjax.feedforward import NetworkConfig, TrainConfig

    style = _write(tmp_path / "s.png", seed=5)
    config = TrainConfig(
        styles=(style,), content_dir=str(tmp_path), size=16, network=NetworkConfig(width=4)
    )
    _saved_model(tmp_path / "model", config)
    return tmp_path / "model"


def test_apply_guards(files, model, tmp_path, capsys, monkeypatch):
    block_work(monkeypatch)
    base = ["apply", "--model", str(model)]
    folder = ["--content", files["content_dir"]]
    one = ["--content", files["content"]]
    fails(capsys, base + folder + ["--output", str(tmp_path / "a4.png")], "a4.png", "4 results")
    assert not (tmp_path / "a4.png").exists()
    existing = _write(tmp_path / "existing.png")
    fails(capsys, base + one + ["--output", existing], "existing.png", "--overwrite")
    big = base + one + ["--output", str(tmp_path / "x.png"), "--size", "100000"]
    fails(capsys, big, "--size 100000", "GB")
    fails(capsys, base + one + ["--output", files["out"], "--batch-size", "0"], "--batch-size 0")
    fails(capsys, base + one + ["--output", files["out"], "--step", "-1"], "--step -1")


def test_apply_reports_a_damaged_checkpoint_in_one_line(files, model, capsys):
    for data in (model / "checkpoints" / "1" / "state").rglob("d/*"):
        data.write_bytes(data.read_bytes()[:20])
    argv = ["apply", "--model", str(model), "--content", files["content"], "--output", files["out"]]
    fails(capsys, argv, "--model", "checkpoint 1 cannot be read", "--step")


def test_apply_prints_no_orbax_warnings(model, caplog):
    """A read-only checkpoint manager is the point of apply: orbax's warnings about it are
    not shown."""
    import logging

    from nstjax.feedforward.checkpoint import Checkpoints

    with caplog.at_level(logging.WARNING, logger="absl"):
        Checkpoints(model, read_only=True).close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize(
    ("config", "extra", "fragments"),
    [
        ("configs/pairs.py:quick", [], ["not a bench config", "nstjax sweep"]),
        ("configs/bench.py:quick", ["--config.sizes=(8,)"], ["--config.sizes 8", ">= 16"]),
        ("configs/bench.py:quick", ["--config.optimizers=('sgd',)"], ["sgd", "adam"]),
        ("configs/bench.py:quick", ["--config.repeats=1"], ["--config.repeats 1"]),
    ],
)
def test_bench_refuses(tmp_path, capsys, monkeypatch, config, extra, fragments):
    block_work(monkeypatch)
    fails(capsys, ["bench", "--config", config, "--output", str(tmp_path), *extra], *fragments)


def test_bench_refuses_an_unwritable_output(files, capsys, monkeypatch):
    block_work(monkeypatch)
    argv = ["bench", "--config", "configs/bench.py:quick", "--output", files["content"] + "/bench"]
    fails(capsys, argv, "--output", "not a folder")


def test_bench_help_mentions_overrides(capsys):
    assert run(["bench", "--help"]) == 0
    assert "--config.FIELD=VALUE" in capsys.readouterr().out


def test_train_help_gives_every_default(capsys):
    import re

    assert run(["train", "--help"]) == 0
    options = capsys.readouterr().out.split("options:")[1]
    parts = [b for b in re.split(r"\n  (?=-)", options) if b.strip()]
    blocks = {b.split()[0]: " ".join(b.split()) for b in parts}
    for flag, default in [("--batch-size", "4"), ("--crop", "random"), ("--keep", "3"),
                          ("--seed", "0"), ("--norm", "instance"), ("--upsample", "resize")]:  # fmt: skip
        assert f"(default: {default})" in blocks[flag], blocks[flag]
        assert len(blocks[flag].split()) > 4, blocks[flag]  # a help text besides the default


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--config.data.size=abc"], ["--config.data.size 'abc'", "int"]),
        (["--config.loss.style_weight=nan"], ["style-weight", "nan"]),
        (["--config.data.style_scale=1e300"], ["data.style_scale", "GB"]),
    ],
)
def test_sweep_refuses(tmp_path, capsys, monkeypatch, extra, fragments):
    block_work(monkeypatch)
    argv = ["sweep", "--config", "configs/pairs.py:quick", "--workdir", str(tmp_path), *extra]
    fails(capsys, argv, *fragments)


def test_sweep_says_a_bench_config_is_one(tmp_path, capsys, monkeypatch):
    block_work(monkeypatch)
    argv = ["sweep", "--config", "configs/bench.py", "--workdir", str(tmp_path)]
    err = fails(capsys, argv, "bench config", "nstjax bench")
    assert "unknown config field" not in err


def test_sweep_memory_advice_names_sweep_fields():
    from nstjax.batch import plan
    from nstjax.errors import NstjaxError
    from nstjax.execute import plan_runs
    from nstjax.run import Options, Run

    batches = plan_runs([Run()], [(64, 64)], Options(convolution="xla"))
    with pytest.raises(NstjaxError) as e:
        plan.check_fits(batches[0].group, 1.0, sweep=True)
    assert "--config.model.remat=True" in str(e.value) and "--multiscale" not in str(e.value)


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["weights", "fetch", "--url", "notaurl"], ["--url 'notaurl'"]),
        (["weights", "convert", "x.h5", "--output", "x.txt"], ["--output x.txt", ".npz"]),
        (["weights", "info", "--path", "/nonexistent/w.h5"], ["w.h5", "does not exist"]),
        (["weights", "frob"], ["invalid choice", "fetch"]),
    ],
)
def test_weights_refuses(capsys, monkeypatch, argv, fragments):
    block_work(monkeypatch)
    fails(capsys, argv, *fragments)


def test_progress_shows_no_rate_before_any_step_and_says_when_nothing_is_left():
    import io

    from nstjax.feedforward.progress import TrainProgress
    from nstjax.progress import ProgressDisplay

    stream = io.StringIO()
    display = ProgressDisplay(0, "sweep", stream=stream)
    display.close()
    assert stream.getvalue() == "sweep: 0/0 image-steps, nothing left to run\n"
    text = TrainProgress(0, 10, 4, stream=io.StringIO()).text(1, np.ones((1, 4)))
    assert "nan" not in text and "? img/s" in text


def test_an_unwritable_location_is_refused_for_each_command(files, tmp_path, capsys, monkeypatch):
    """A folder the user may not write in (os.access says no: read-only mounts, permissions;
    the tests may run as root, for whom a mode-0555 folder is writable) is refused by name."""
    import os

    block_work(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: str(p) != str(locked) and real_access(p, m))
    argv = _train(files, tmp_path)
    argv[argv.index("--output") + 1] = str(locked / "model")
    fails(capsys, argv, "--output", "locked is not writable")
    bench = ["bench", "--config", "configs/bench.py:quick", "--output", str(locked / "b")]
    fails(capsys, bench, "--output", "locked is not writable")
    fails(capsys, _stylize(files)[:-1] + [str(locked / "o.png")], "--output", "not writable")


def test_a_failed_config_write_is_one_line(tmp_path, monkeypatch):
    """Permissions changed between the check and the write: still an NstjaxError naming
    --output, not an OSError."""
    import nstjax.atomic
    from nstjax.errors import NstjaxError
    from nstjax.feedforward import TrainConfig
    from nstjax.feedforward.checkpoint import write_config

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(nstjax.atomic, "write_text", denied)
    with pytest.raises(NstjaxError, match="--output .*cannot write config.json"):
        write_config(tmp_path / "model", TrainConfig(styles=("a.png",), content_dir="c"))


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -1.0])
def test_the_api_refuses_a_non_finite_blend_weight(weight):
    from nstjax.errors import NstjaxError
    from nstjax.run import Run, validate_run

    with pytest.raises(NstjaxError, match="finite"):
        validate_run(Run(style={0: weight, 1: 1.0}), 1, 2)
