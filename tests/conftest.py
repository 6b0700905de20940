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
