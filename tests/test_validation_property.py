"""Property: whatever values a user types, every entry point either refuses them in one line
(``nstjax: error: ...``, exit status 2) or plans the work; it never shows a traceback.

Hypothesis draws option values (NaN, infinities, huge, tiny, negative, empty, misspelt, and
ordinary ones) for ``stylize``, ``sweep`` overrides, ``train``, ``apply``, ``bench`` and
``weights``. A command that gets as far as its executor (loading the VGG weights, training,
loading a checkpoint, downloading) is stopped there by :class:`Planned`: its plan was valid.
Compiling anything fails the test. The number of cases tried is printed at the end of the module
(shown even with ``-q``) and written to ``validation_property_cases.txt`` in pytest's temporary
folder.
"""

import contextlib
import io
import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from nstjax.cli import main

CASES: Counter = Counter()
SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

WEIRD = ["nan", "NaN", "inf", "-inf", "1e308", "-1e308", "1e-308", "0", "-0.0", "-1", "", " ",
         "abc", "1,5", "0x10", "1e6", "1e-6", "True"]  # fmt: skip
FLOATS = st.one_of(
    st.sampled_from(WEIRD),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(1e-3, 1e3).map(lambda x: f"{x:.4g}"),
)
INTS = st.one_of(
    st.sampled_from(["0", "-1", "", "1.5", "nan", "abc", "100000000", "10" * 12, "1"]),
    st.integers(-3, 40).map(str),
)
SIZES = st.one_of(
    st.sampled_from(["0", "-5", "", "1.5", "inf", "100000000", "10" * 12]),
    st.integers(1, 40).map(str),
)
LAYERS = st.sampled_from(
    ["conv4_2", "conv4_9", "", " , ", "relu1_1", "conv1_1,conv5_1", "conv1_1,,conv2_1", "CONV1_1"]
)


class Planned(Exception):
    """The command reached its executor: everything was checked and found good."""


def _stop(*args, **kwargs):
    raise Planned


@pytest.fixture(scope="module", autouse=True)
def report_cases(request, tmp_path_factory):
    """Prints the number of cases tried per entry point, and keeps it in a file."""
    yield
    text = ", ".join(f"{k} {v}" for k, v in sorted(CASES.items()))
    line = f"validation property: {sum(CASES.values())} cases tried ({text})"
    (tmp_path_factory.getbasetemp() / "validation_property_cases.txt").write_text(line + "\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("property")
    contents = root / "contents"
    contents.mkdir()
    rng = np.random.default_rng(0)
    for name in ("c0", "c1", "c2"):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), np.uint8)).save(contents / f"{name}.png")
    for name in ("style", "style2"):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), np.uint8)).save(root / f"{name}.png")
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(root / "black.png")
    return root


@pytest.fixture
def blocked(monkeypatch):
    """Every executor stops with :class:`Planned`; compiling anything fails the test."""
    from jax._src.interpreters import pxla

    import nstjax.feedforward
    import nstjax.feedforward.training
    import nstjax.sweep
    import nstjax.vgg
    import nstjax.weights

    monkeypatch.setattr(pxla.MeshComputation, "compile", lambda *a, **k: pytest.fail("compiled"))
    monkeypatch.setattr(nstjax.vgg, "load_params", _stop)
    monkeypatch.setattr(nstjax.feedforward.training, "write_config", _stop)
    monkeypatch.setattr(nstjax.feedforward, "load_model", _stop)
    monkeypatch.setattr(nstjax.sweep, "run_sweep", _stop)
    monkeypatch.setattr(nstjax.weights, "fetch", _stop)
    monkeypatch.setattr(nstjax.weights, "convert", _stop)


def check(entry: str, argv: list[str]) -> None:
    """``nstjax ARGV`` refuses in one line with status 2, or reaches its executor."""
    CASES[entry] += 1
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as e:  # argparse's errors
            status = e.code
        except Planned:
            CASES[f"{entry} planned"] += 1
            return
    text = err.getvalue().strip()
    lines = [line for line in text.splitlines() if not line.startswith("nstjax: note:")]
    assert status == 2, (argv, status, text)
    assert len(lines) == 1 and lines[0].startswith("nstjax: error: "), (argv, text)


def _flags(options: dict) -> st.SearchStrategy:
    """Some of ``options`` (flag -> strategy of its value), as argv items ``--flag=value``."""
    pairs = st.tuples(*(st.tuples(st.just(k), v) for k, v in options.items()))
    kept = st.sampled_from([True, False, False, False])  # a few flags at a time
    keep = st.lists(kept, min_size=len(options), max_size=len(options))
    return st.builds(
        lambda p, k: [f"{flag}={value}" for (flag, value), kept in zip(p, k) if kept], pairs, keep
    )


STYLIZE = {
    "--size": SIZES,
    "--steps": INTS,
    "--content-weight": FLOATS,
    "--style-weight": FLOATS,
    "--tv-weight": FLOATS,
    "--lr": FLOATS,
    "--noise-scale": FLOATS,
    "--style-scale": st.one_of(st.sampled_from(WEIRD), st.floats(0.05, 4).map(str)),
    "--loss-tolerance": FLOATS,
    "--save-every": INTS,
    "--batch-size": INTS,
    "--content-layers": LAYERS,
    "--style-layers": LAYERS,
    "--init": st.sampled_from(["content", "noise", "nosie", "", "style", "uniform", "x.png"]),
    "--style-loss": st.sampled_from(["gram", "gram:1,mean_std:0.5", "gramm", "gram:nan", ""]),
    "--optimizer": st.sampled_from(["adam", "lbfgs", "sgd", ""]),
    "--preset": st.sampled_from(["nstjax", "paper", "gatys", "neural-style", "nstjx"]),
}


@SETTINGS
@given(flags=_flags(STYLIZE), blend=st.none() | st.lists(FLOATS, min_size=1, max_size=3))
@example(flags=[], blend=None)
@example(flags=["--style-scale=0.5", "--init=noise"], blend=["1", "2.5"])
def test_stylize(files, blocked, flags, blend):
    argv = ["stylize", "--content", str(files / "contents" / "c0.png"), "--output"]
    argv += [str(files / "styled"), "--overwrite", "--size", "24", "--steps", "2"]
    argv += ["--style", str(files / "style.png"), str(files / "style2.png")]
    if blend is not None:  # a value such as -inf reads as an option: argparse refuses it
        argv += ["--style-blend", *blend]
    check("stylize", argv + flags)


SWEEP_FIELDS = st.sampled_from(
    ["data.size", "data.style_scale", "loss.style_weight", "loss.content_weight",
     "loss.tv_weight", "optim.learning_rate", "optim.steps", "model.pooling", "loss.styel_weight",
     "data.colors", "sweep.chunk", "data", "optim.optimizer"]
)  # fmt: skip
SWEEP_VALUES = st.one_of(
    st.sampled_from(WEIRD + ["'max'", "[1, 2]", "[]", "None", "{}", "10**9"]),
    st.integers().map(str),
)


@SETTINGS
@given(overrides=st.lists(st.tuples(SWEEP_FIELDS, SWEEP_VALUES), max_size=3))
def test_sweep_overrides(files, blocked, overrides):
    argv = ["sweep", "--config", "configs/pairs.py:quick", "--workdir", str(files / "sweep")]
    check("sweep", argv + [f"--config.{k}={v}" for k, v in overrides])


TRAIN = {
    "--size": SIZES,
    "--steps": INTS,
    "--batch-size": INTS,
    "--style-weight": FLOATS,
    "--content-weight": FLOATS,
    "--lr": FLOATS,
    "--style-size": SIZES,
    "--holdout": INTS,
    "--seed": INTS,
    "--keep": INTS,
    "--save-every": INTS,
    "--width": INTS,
    "--residual-blocks": INTS,
    "--content-layers": LAYERS,
    "--style-layers": LAYERS,
    "--crop": st.sampled_from(["random", "centre", ""]),
    "--style-loss": st.sampled_from(["gram", "gramm", "gram:-1", "mean_std"]),
}


@SETTINGS
@given(flags=_flags(TRAIN), two_styles=st.booleans())
@example(flags=[], two_styles=True)
def test_train(files, blocked, flags, two_styles):
    styles = [str(files / "style.png")] + ([str(files / "style2.png")] if two_styles else [])
    argv = ["train", "--style", *styles, "--content-dir", str(files / "contents"), "--output"]
    argv += [str(files / "model"), "--size", "16", "--style-size", "24", "--holdout", "1"]
    check("train", argv + flags)


@pytest.fixture(scope="module")
def model(files):
    """A model folder's config (apply stops before it would load the checkpoint)."""
    from nstjax.feedforward import TrainConfig

    folder = files / "trained"
    folder.mkdir()
    config = TrainConfig(styles=(str(files / "style.png"),), content_dir=str(files / "contents"))
    (folder / "config.json").write_text(json.dumps(json.loads(config.to_json())))
    return folder


APPLY = {
    "--size": SIZES,
    "--batch-size": INTS,
    "--step": INTS,
    "--output": st.sampled_from(["a.png", "a.txt", "", "sub", "contents", "contents/c0.png"]),
    "--content": st.sampled_from(["contents", "contents/c0.png", "nope.png", "black.png"]),
}


@SETTINGS
@given(flags=_flags(APPLY), overwrite=st.booleans())
@example(flags=["--output=sub"], overwrite=False)
def test_apply(files, model, blocked, flags, overwrite):
    flags = [f"{k}={files / v}" if k in ("--output", "--content") and v else f"{k}={v}"
             for k, _, v in (f.partition("=") for f in flags)]  # fmt: skip
    given_ = {f.partition("=")[0] for f in flags}
    argv = ["apply", "--model", str(model)] + flags
    if "--content" not in given_:
        argv += ["--content", str(files / "contents" / "c0.png")]
    if "--output" not in given_:
        argv += ["--output", str(files / "applied.png")]
    check("apply", argv + (["--overwrite"] if overwrite else []))


BENCH_FIELDS = st.sampled_from(
    ["sizes", "batch_sizes", "precisions", "optimizers", "repeats", "iterations", "loop",
     "chunk", "probe_size", "remat", "sizez"]
)  # fmt: skip


@SETTINGS
@given(overrides=st.lists(st.tuples(BENCH_FIELDS, SWEEP_VALUES), max_size=3))
def test_bench(files, blocked, overrides):
    argv = ["bench", "--config", "configs/bench.py:quick", "--output", str(files / "bench")]
    check("bench", argv + [f"--config.{k}={v}" for k, v in overrides])


@SETTINGS
@given(
    action=st.sampled_from(["fetch", "convert", "info", "frob"]),
    value=st.sampled_from(
        [
            "",
            "nope.h5",
            "x.npz",
            "x.txt",
            "style.png",
            "style.png/x.npz",
            "http://example.invalid/w.h5",
            "ftp://x",
            "notaurl",
        ]
    ),  # fmt: skip
)
def test_weights(files, blocked, action, value):
    path = str(files / value) if value and "://" not in value and value != "notaurl" else value
    argv = {
        "fetch": ["weights", "fetch", "--url", value],
        "convert": ["weights", "convert", str(files / "style.png"), "--output", path],
        "info": ["weights", "info", "--path", path],
        "frob": ["weights", "frob"],
    }[action]
    check("weights", argv)
