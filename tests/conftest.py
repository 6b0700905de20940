"""Shared fixtures: a tiny random VGG for mechanics, the real weights for end-to-end checks."""

import os
from pathlib import Path

import jax
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
IMAGES = SHARED / "images"


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


@pytest.fixture(scope="session")
def tiny_params():
    """A randomly initialised VGG-19 with 4..16 channels per block (Caffe input convention)."""
    from nstjax import vgg

    return vgg.init_params(jax.random.key(0))


@pytest.fixture(scope="session")
def real_params():
    """The real VGG-19 weights from $NSTJAX_WEIGHTS (skips when unset)."""
    if not os.environ.get("NSTJAX_WEIGHTS"):
        pytest.skip("NSTJAX_WEIGHTS is not set (CI points it at ../shared/weights)")
    from nstjax import vgg

    return vgg.load_params()


@pytest.fixture(scope="session")
def images_dir():
    if not IMAGES.is_dir():
        pytest.skip(f"{IMAGES} not found (the shared images sit beside the checkout)")
    return IMAGES
