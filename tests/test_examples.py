"""The shipped example images and the configs that name them: nothing outside the checkout."""

from pathlib import Path

import pytest
from PIL import Image

from nstjax import examples
from nstjax.config import load_config
from nstjax.errors import NstjaxError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.py"))


def test_every_shipped_image_is_small_and_has_its_source_and_licence():
    sources = (examples.FOLDER / "SOURCES.md").read_text()
    assert len(examples.names()) >= 6
    for name in examples.names():
        path = examples.path(name)
        with Image.open(path) as img:
            assert img.format == "JPEG" and max(img.size) <= 512, (name, img.size)
        assert path.stat().st_size < 200_000, name
        row = next(line for line in sources.splitlines() if line.startswith(f"| {name} |"))
        assert "public domain" in row or "CC0" in row, row


@pytest.mark.parametrize("name", ["missing.jpg", "../examples/chelsea.jpg", "SOURCES.md", ""])
def test_an_unknown_example_is_a_clear_error(name):
    with pytest.raises(NstjaxError, match="no example image .*chelsea.jpg"):
        examples.path(name)


def _variants(path: Path) -> list[str]:
    text = path.read_text()
    return [str(path)] + ([f"{path}:quick"] if '"quick"' in text else [])


@pytest.mark.parametrize(
    "spec", [v for p in CONFIGS for v in _variants(p)], ids=lambda s: Path(s).name
)
def test_configs_name_only_shipped_images(spec):
    config = load_config(spec)
    data = config.get("data")
    if data is None:
        pytest.skip(f"{spec} has no data section")
    named = [*data.get("content", []), *data.get("style", [])]
    assert named, spec
    for file in named:
        path = Path(file)
        assert path.is_file(), file
        assert path.parent == examples.FOLDER, f"{spec} reads {file} outside nstjax/examples"
