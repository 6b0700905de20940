"""Bad input found by reading each entry point (config files, sweep, bench, score, weights, train,
stylize): one line naming the option or file, exit status 2, before anything compiles or the
weights load; nothing written."""

import textwrap

import pytest
from conftest import cli_fails as _fails
from conftest import write_random_image as _write
from test_validation import block_work

from nstjax.config import load_config
from nstjax.errors import NstjaxError


def _config_file(path, body: str) -> str:
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_config_files_as_users_write_them(tmp_path):
    """``def get_config():`` (ml_collections' usual form) loads; its mistakes are one line."""
    plain = _config_file(tmp_path / "plain.py", "def get_config():\n    return {'a': 1}\n")
    assert load_config(plain).a == 1
    with pytest.raises(NstjaxError, match=r"plain.py:quick: its get_config\(\) takes no argument"):
        load_config(plain + ":quick")
    broken = _config_file(
        tmp_path / "broken.py", "def get_config(arg=None):\n    return {'a': undefined}\n"
    )
    with pytest.raises(NstjaxError, match="broken.py: NameError: name 'undefined'"):
        load_config(broken)
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(NstjaxError, match=r"c.json: not a Python file"):
        load_config(str(tmp_path / "c.json"))


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--wait-timeout", "inf"], ["--wait-timeout inf", "finite"]),
        (["--wait-timeout", "nan"], ["--wait-timeout nan"]),
        (["--wait-timeout", "-1"], ["--wait-timeout -1.0", ">= 0"]),
        (["--memory-gb", "inf"], ["--memory-gb inf", "finite"]),
    ],
)
def test_sweep_refuses_numbers_it_cannot_use(tmp_path, capsys, monkeypatch, extra, fragments):
    block_work(monkeypatch)
    argv = ["sweep", "--config", "configs/sweep_style_weight.py:quick"]
    _fails(capsys, [*argv, "--workdir", str(tmp_path / "w"), *extra], *fragments)
    assert not (tmp_path / "w").exists()


def test_bench_checks_the_convolution_and_keeps_an_earlier_run(tmp_path, capsys, monkeypatch):
    block_work(monkeypatch)
    argv = ["bench", "--config", "configs/bench.py:quick", "--output", str(tmp_path)]
    _fails(capsys, [*argv, "--config.convolution=fliped"], "--config.convolution", "fliped")
    (tmp_path / "bench.json").write_text("{}")
    _fails(capsys, argv, "bench.json", "--overwrite")
    assert (tmp_path / "bench.json").read_text() == "{}"


def test_score_refuses_an_empty_measure_list_and_a_style_size_that_cannot_fit(
    tmp_path, capsys, monkeypatch
):
    block_work(monkeypatch)
    image = _write(tmp_path / "a.png", (30, 30))
    base = ["score", image, "--content", image, "--style", image]
    _fails(capsys, [*base, "--measures", ""], "--measures")
    _fails(capsys, [*base, "--style-size", "100000000"], "--style-size 100000000", "more than")


def test_weights_fetch_takes_only_web_addresses(tmp_path, capsys):
    argv = ["weights", "fetch", "--url", f"file://{tmp_path}/w.h5"]
    _fails(capsys, argv, "--url", "http:// or https://", "nstjax weights convert")


def test_train_reads_every_training_files_header_before_it_starts(tmp_path, capsys, monkeypatch):
    """An empty file among the photos stopped training when its batch came (steps lost); now it
    is refused at the start, before the weights load."""
    import nstjax.vgg

    monkeypatch.setattr(nstjax.vgg, "load_params", lambda *a, **k: pytest.fail("loaded weights"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(20):
        _write(photos / f"p{i:02d}.png", (24, 24), seed=i)
    (photos / "p00_broken.png").write_bytes(b"")
    style = _write(tmp_path / "style.png", (24, 24), seed=9)
    argv = ["train", "--style", style, "--content-dir", str(photos), "--size", "16"]
    argv += ["--batch-size", "1", "--holdout", "1"]  # the first batch: one photo, not the empty one
    _fails(capsys, [*argv, "--output", str(tmp_path / "model")], "p00_broken.png")
    assert not (tmp_path / "model").exists()


def test_stylize_says_a_missing_weights_file_before_building_anything(
    tmp_path, capsys, monkeypatch
):
    import nstjax.kernels

    block_work(monkeypatch)
    monkeypatch.setattr(nstjax.kernels, "choose", lambda *a: pytest.fail("a kernel was chosen"))
    image = _write(tmp_path / "a.png", (24, 24))
    argv = ["stylize", "--content", image, "--style", image, "--size", "24"]
    argv += ["--output", str(tmp_path / "o.png")]
    _fails(capsys, [*argv, "--weights", str(tmp_path / "w.npz")], "w.npz", "does not exist")


def test_several_results_named_as_any_image_file_need_a_folder(tmp_path, capsys, monkeypatch):
    block_work(monkeypatch)
    a, b = _write(tmp_path / "a.png", (24, 24)), _write(tmp_path / "b.png", (24, 24), seed=1)
    argv = ["stylize", "--content", a, b, "--style", a, "--size", "24"]
    argv += ["--output", str(tmp_path / "o.webp")]
    _fails(capsys, argv, "o.webp", "need a folder")
    assert not (tmp_path / "o.webp").exists()


def test_a_file_error_no_command_caught_is_one_line(capsys, monkeypatch):
    """An OSError that escapes a command (a disk that fills, a folder that vanishes) is one line
    naming the command, the file and what went wrong, exit 2, not a traceback."""
    import errno

    import nstjax.cli.weights as weights_cli

    def disk_full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/vgg19.npz")

    monkeypatch.setattr(weights_cli, "_info", disk_full)
    _fails(capsys, ["weights", "info"], "weights", "No space left on device", "/data/vgg19.npz")


def test_ctrl_c_while_the_command_starts_is_one_line(capsys, monkeypatch):
    """Ctrl-C during start-up (importing JAX, building the parser) says so in one line, exit 130
    (128 + SIGINT), no traceback."""
    import nstjax.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["weights", "info"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "nstjax: interrupted by SIGINT before the command started"


def test_an_interruption_ends_with_its_line_not_with_an_abandoned_coroutines_warning(
    capsys, monkeypatch
):
    """A signal that cuts an asynchronous save short (orbax's) leaves coroutines that are only
    collected at exit; Python would print "coroutine ... was never awaited" after the one line."""
    import gc
    import warnings

    import nstjax.cli.weights as weights_cli

    async def save():
        pass

    abandoned = []

    def interrupted_mid_save(args):
        abandoned.append(save())  # never awaited, collected later: what the save leaves behind
        raise KeyboardInterrupt

    monkeypatch.setattr(weights_cli, "_info", interrupted_mid_save)
    from nstjax.cli import main

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["weights", "info"]) == 130
        abandoned.clear()
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    assert capsys.readouterr().err.strip() == "nstjax: interrupted by SIGINT"
