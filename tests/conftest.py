"""Shared fixtures: a tiny random VGG for mechanics, the real weights for end-to-end checks.

The real weights are found as :func:`nstjax.weights.locate` finds them for the user running the
tests: ``$NSTJAX_WEIGHTS``, else the user's own cache (``nstjax weights fetch``). Tests that need
them take ``real_weights``, ``real_h5`` or ``real_params`` and skip, with the reason, when there are
none.
"""

import contextlib
import importlib
import os
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "images"
_USER_CACHE_HOME = os.environ.get("XDG_CACHE_HOME")  # before _cache_in_tmp redirects it


@pytest.fixture(scope="session", autouse=True)
def _cache_in_tmp(tmp_path_factory):
    """Keep the weights cache (and anything else under XDG_CACHE_HOME) out of the home folder."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(autouse=True)
def _optimisation_by_tier(request):
    """The fast tier's programs compile with JAX's ``jax_disable_most_optimizations`` (XLA's
    backend optimisation level 0, LLVM's expensive passes off: what JAX offers for programs that
    cost more to optimise than to run, as the tiny VGG's do); the slow tier's, the end-to-end
    checks, and the bit-identity claims marked ``optimized`` compile as a user's do. The
    operations are the same; their rounding may differ in the last bits (the K networks of the
    loop form equal each alone bit for bit only when optimised), which the tolerances' error
    bounds allow for."""
    marks = {m.name for m in request.node.iter_markers()}
    fast = not marks & {"slow", "optimized"}
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", fast)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


@contextlib.contextmanager
def _environ(**values: str | None):
    """Sets (or, for None, removes) environment variables for the duration of a block."""
    old = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _locate_user_weights(drop_env: bool = False) -> tuple[str, Path]:
    """:func:`nstjax.weights.locate` with the user's own cache (not the tests' temporary one)."""
    from nstjax import weights

    env = {"XDG_CACHE_HOME": _USER_CACHE_HOME}
    if drop_env:
        env[weights.ENV_WEIGHTS] = None
    with _environ(**env):
        return weights.locate()


def _user_cache_h5() -> Path:
    """Where ``nstjax weights fetch`` keeps the downloaded ``.h5`` for the user."""
    from nstjax import weights

    with _environ(XDG_CACHE_HOME=_USER_CACHE_HOME):
        return weights.cache_dir() / weights.WEIGHTS_FILENAME


@pytest.fixture(scope="session")
def real_weights() -> Path:
    """The real VGG-19 weights file (``.h5`` or converted ``.npz``).

    Found as the package finds it: ``$NSTJAX_WEIGHTS``, else the user's cache; a
    ``$NSTJAX_WEIGHTS`` naming a missing file falls back to the cache. Skips, saying why, when
    neither has them. For the session, ``$NSTJAX_WEIGHTS`` is set to the file found, so that
    ``vgg.load_params()`` and subprocesses running the CLI use it too.
    """
    from nstjax import weights
    from nstjax.errors import NstjaxError

    try:
        _, found = _locate_user_weights()
    except NstjaxError as given:
        try:
            _, found = _locate_user_weights(drop_env=True)
        except NstjaxError as cache:
            reason = f"{given}; {cache}" if os.environ.get(weights.ENV_WEIGHTS) else str(given)
            pytest.skip(f"real VGG-19 weights not found: {reason}")
    with _environ(**{weights.ENV_WEIGHTS: str(found)}):
        yield found


@pytest.fixture(scope="session")
def real_h5(real_weights) -> Path:
    """The real weights as the Keras ``.h5`` (for tests that read it with h5py); skips when only
    a converted ``.npz`` is present."""
    with open(real_weights, "rb") as f:
        if f.read(4) == b"\x89HDF":
            return real_weights
    downloaded = _user_cache_h5()
    if downloaded.is_file():
        return downloaded
    pytest.skip(f"only the converted {real_weights} found; these tests read the original .h5")


@pytest.fixture(scope="session")
def real_params(real_weights):
    """The real VGG-19 parameters (see ``real_weights``; skips when there are none)."""
    from nstjax import vgg

    return vgg.load_params(real_weights)


@pytest.fixture(scope="session")
def tiny_params():
    """A randomly initialised VGG-19 with 4..16 channels per block (Caffe input convention)."""
    from nstjax import vgg

    return vgg.init_params(jax.random.key(0))


@pytest.fixture(scope="session")
def images_dir():
    """The folder of test photos and paintings that sits beside a development checkout
    (``../shared/images``: more images than the package ships, some with unverified licences).

    Skips, saying why, in a clone without it; the configs, scripts and documented commands use
    only the images shipped in :mod:`nstjax.examples`.
    """
    if not IMAGES.is_dir():
        pytest.skip(
            f"test images not found at {IMAGES} (the development checkout's ../shared/images; "
            "not shipped: some have unverified licences)"
        )
    return IMAGES


@pytest.fixture(scope="session")
def content_dir(tmp_path_factory, images_dir):
    """A folder of five content photos (different aspect ratios, longer side 48) for training."""
    from nstjax import image

    folder = tmp_path_factory.mktemp("content")
    for name in ("chicago", "golden_gate", "hoovertowernight", "stata", "tubingen"):
        image.save_image(folder / f"{name}.png", image.load_image(images_dir / f"{name}.jpg", 48))
    return folder


FLOAT32_UNIT_ROUNDOFF = 2.0**-24
"""``u``: the largest relative error of one rounding to float32 (round to nearest)."""


@pytest.fixture(scope="session")
def float32_sum_rtol():
    """``rtol(n)``: the bound on the relative error of a float32 sum of ``n`` terms of one sign,
    ``gamma_n = n u / (1 - n u)`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2002,
    section 4.2: recursive summation; pairwise or blocked orders, as XLA's, do better). For a sum
    of terms of mixed signs the bound is relative to the sum of their absolute values.

    A test comparing a float32 computation with a float64 one sets its tolerance from the longest
    reduction of the computation, so that it holds on any x86-64 CPU (reduction orders and fused
    multiply-adds differ between Intel and AMD, between XLA's and oneDNN's kernels).
    """

    def rtol(n: int) -> float:
        return n * FLOAT32_UNIT_ROUNDOFF / (1.0 - n * FLOAT32_UNIT_ROUNDOFF)

    return rtol


@pytest.fixture(scope="session")
def import_script():
    """Imports a module of ``scripts/`` by name, as ``python scripts/NAME.py`` finds its helpers
    (``scripts/`` on ``sys.path``; the scripts are not part of the installed package)."""

    def load(name: str):
        if str(SCRIPTS) not in sys.path:
            sys.path.insert(0, str(SCRIPTS))
        return importlib.import_module(name)

    return load


# ----------------------------------------------------------------------------- shared helpers
# Plain functions used by several test modules (``from conftest import ...``): test modules never
# import each other.


def cli_fails(capsys, argv: list[str], *fragments: str) -> None:
    """The command exits 2 with one line on stderr that contains every fragment."""
    from nstjax.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("nstjax: error: ")
    for fragment in fragments:
        assert fragment in err, err


def write_random_image(path, size: tuple[int, int] = (20, 14), seed: int = 0) -> str:
    """A PNG of random pixels, ``size = (width, height)``; returns its path as a string."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def np_flat(f):
    """Features ``[..., C]`` as float64 ``[positions, C]``."""

    f = np.asarray(f, np.float64)
    return f.reshape(-1, f.shape[-1])


def np_gram_loss(f, s) -> float:
    """nstjax's Gram loss in numpy: the mean squared difference of ``F^T F / (positions C)``."""

    def g(x):
        x = np_flat(x)
        return x.T @ x / (x.shape[0] * x.shape[1])

    return np.mean((g(f) - g(s)) ** 2)


def np_mean_std(f, mask=None, eps: float = 1e-5):
    """Per-channel mean and standard deviation (weighted by ``mask`` squared), float64."""

    x = np_flat(f)
    p = np.ones(len(x)) if mask is None else np.asarray(mask, np.float64).ravel() ** 2
    p = p / p.sum()
    mu = (p[:, None] * x).sum(0)
    var = (p[:, None] * (x - mu) ** 2).sum(0)
    return mu, np.sqrt(var + eps)


def np_mean_std_loss(f, s, mask=None) -> float:
    """The mean/std style loss in numpy (Li et al. 2017)."""

    (m1, s1), (m2, s2) = np_mean_std(f, mask), np_mean_std(s)
    return np.mean((m1 - m2) ** 2) + np.mean((s1 - s2) ** 2)


TRAIN_STYLES = ("starry_night.jpg", "the_scream.jpg")
"""The feed-forward tests' two styles (file names under ``images_dir``)."""


def train_config(content_dir, images_dir, styles=TRAIN_STYLES, **overrides):
    """A feed-forward :class:`nstjax.feedforward.TrainConfig` for mechanics: 32 px, 12 steps,
    batch 2, two VGG layers and the smallest network that still has every part (compiling the
    step is most of a test's time); ``overrides`` replace fields."""
    from nstjax.feedforward import NetworkConfig, TrainConfig

    fields = dict(
        styles=tuple(str(images_dir / s) for s in styles),
        content_dir=str(content_dir),
        size=32,
        steps=12,
        batch_size=2,
        learning_rate=(5e-3,),
        style_weight=(0.01,),  # the tiny random VGG's terms on comparable scales
        tv_weight=(0.1,),
        holdout=1,
        save_every=4,
        sample_every=0,
        network=NetworkConfig(width=2, residual_blocks=0),
        content_layers=("conv2_1",),
        style_layers=("conv1_1", "conv2_1"),
    )
    fields.update(overrides)
    return TrainConfig(**fields)


# ----------------------------------------------------------------------------- torch's L-BFGS
# torch's LBFGS.step and _strong_wolfe (torch/optim/lbfgs.py) transcribed into float64 numpy:
# the reference of tests/test_linesearch.py (which checks it against torch) and tests/test_engine.py.


def np_cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def np_strong_wolfe(obj, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """torch's ``_strong_wolfe``: (f, g, t, evaluations) at the accepted step."""
    d_norm = np.abs(d).max()
    f_new, g_new = obj(x + t * d)
    evals = 1
    gtd_new = g_new @ d
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bf, bg, bgtd = (
                [t_prev, t],
                [f_prev, f_new],
                [g_prev, g_new],
                [gtd_prev, gtd_new],
            )
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bf, bg = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bf, bg, bgtd = (
                [t_prev, t],
                [f_prev, f_new],
                [g_prev, g_new],
                [gtd_prev, gtd_new],
            )
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = np_cubic_interpolate(
            t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step)
        )
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = obj(x + t * d)
        evals += 1
        gtd_new = g_new @ d
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bf, bg = [0, t], [f, f_new], [g, g_new]
    insuf_progress = False
    low, high = (0, 1) if bf[0] <= bf[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = np_cubic_interpolate(bracket[0], bf[0], bgtd[0], bracket[1], bf[1], bgtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj(x + t * d)
        evals += 1
        gtd_new = g_new @ d
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bf[low]:
            bracket[high], bf[high], bg[high], bgtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if bf[0] <= bf[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bf[high], bg[high], bgtd[high] = (
                    bracket[low],
                    bf[low],
                    bg[low],
                    bgtd[low],
                )
            bracket[low], bf[low], bg[low], bgtd[low] = t, f_new, g_new, gtd_new
    return bf[low], bg[low], bracket[low], evals


def np_first_trial(first_step, f, g, lr):
    """The first step's trial step: torch's ``min(1, 1 / |g|_1)``, or ``f / |g|^2`` when the
    loss is positive (the direction is ``-g``), each times ``lr``."""
    if first_step == "polyak" and f > 0:
        return f / (g @ g) * lr
    return min(1.0, 1.0 / np.abs(g).sum()) * lr


def np_lbfgs_wolfe(obj, x0, steps, history, lr, first_step="torch", c2=0.9):
    """Iterates and line-search evaluations per step of torch's strong-Wolfe L-BFGS (with
    ``first_step="polyak"``, its first trial step replaced as in nstjax's default; ``c2`` the
    curvature constant, torch's 0.9)."""
    x = np.asarray(x0, np.float64)
    f, g = obj(x)
    old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
    d = t = prev_g = None
    iterates, evaluations = [], []
    for k in range(steps):
        if k == 0:
            d = -g
        else:
            y, s = g - prev_g, d * t
            ys = y @ s
            if ys > 1e-10:
                if len(old_dirs) == history:
                    old_dirs.pop(0), old_stps.pop(0), ro.pop(0)
                old_dirs.append(y), old_stps.append(s), ro.append(1.0 / ys)
                h_diag = ys / (y @ y)
            q = -g
            al = [0.0] * len(old_dirs)
            for i in range(len(old_dirs) - 1, -1, -1):
                al[i] = (old_stps[i] @ q) * ro[i]
                q = q - al[i] * old_dirs[i]
            r = q * h_diag
            for i in range(len(old_dirs)):
                be_i = (old_dirs[i] @ r) * ro[i]
                r = r + (al[i] - be_i) * old_stps[i]
            d = r
        prev_g = g
        t = np_first_trial(first_step, f, g, lr) if k == 0 else lr
        gtd = g @ d
        if gtd > -1e-9:  # torch stops: no descent
            t, evals = 0.0, 0
        else:
            f, g, t, evals = np_strong_wolfe(obj, x, t, d, f, g, gtd, c2=c2)
        x = x + t * d
        iterates.append(x)
        evaluations.append(evals)
    return np.array(iterates), evaluations


# ----------------------------------------------------------------------------- nstjax.optim
def optimizer_step(opt, value_fn, state, x, learning_rate, first, moving=True):
    """One step of an :class:`nstjax.optim.Optimizer` taken as the engine takes it (the same calls
    for every optimiser): ``(new x, new state, evaluations the step made)``."""
    here, state = opt.evaluate(value_fn, state, x, first)
    updates, state = opt.update(
        here.grad,
        state,
        x,
        evaluation=here,
        value_fn=value_fn,
        learning_rate=learning_rate,
        moving=moving,
    )
    return x + updates, state, opt.evaluations(state)
