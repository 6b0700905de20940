"""``nstjax train`` and ``nstjax apply`` with bad input: one line on stderr, exit 2, nothing
loaded or compiled first."""

import dataclasses
import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import cli_fails as _fails
from conftest import write_random_image as _write


@pytest.fixture
def no_work(monkeypatch):
    """Loading the VGG weights or stylising anything would be wrong: make both fail."""
    import nstjax.feedforward
    import nstjax.vgg

    monkeypatch.setattr(nstjax.vgg, "load_params", lambda *a, **k: pytest.fail("loaded weights"))
    monkeypatch.setattr(nstjax.feedforward, "apply", lambda *a, **k: pytest.fail("applied"))


def test_train_bad_input_is_one_line(tmp_path, capsys, no_work):
    content = tmp_path / "content"
    content.mkdir()
    for i in range(4):
        _write(content / f"c{i}.png", seed=i)
    style = _write(tmp_path / "style.png", seed=9)
    out = str(tmp_path / "model")
    base = ["train", "--style", style, "--content-dir", str(content), "--output", out]
    _fails(capsys, base + ["--steps", "0"], "--steps", ">= 1")
    two_styles = ["train", "--style", style, style, "--content-dir", str(content), "--output", out]
    _fails(capsys, two_styles + ["--style-weight", "1", "2", "3"], "--style-weight: 3 values", "2")
    _fails(capsys, base + ["--lr", "-1"], "--lr")
    _fails(capsys, base + ["--holdout", "4"], "--content-dir", "--holdout 4")
    _fails(capsys, base + ["--content-layers", "conv9_9"], "conv9_9")
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(
        capsys,
        ["train", "--style", style, "--content-dir", str(empty), "--output", out],
        "empty",
        "no image files",
    )
    _fails(
        capsys,
        ["train", "--style", style, "--content-dir", str(tmp_path / "nope"), "--output", out],
        "nope",
        "no such folder",
    )
    _fails(
        capsys,
        [
            "train",
            "--style",
            str(tmp_path / "gone.jpg"),
            "--content-dir",
            str(content),
            "--output",
            out,
        ],
        "gone.jpg",
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    _write(bad / "b.png")
    _fails(
        capsys,
        [
            "train",
            "--style",
            style,
            "--content-dir",
            str(bad),
            "--output",
            out,
            "--holdout",
            "0",
            "--batch-size",
            "2",
        ],
        "a.jpg",
    )


def _saved_model(folder, config):
    """A model folder with a checkpoint of fresh networks (no training needed to test loading)."""
    from nstjax.feedforward import step
    from nstjax.feedforward.checkpoint import Checkpoints, write_config
    from nstjax.feedforward.training import objective_of

    objective = objective_of(config)
    init = jax.jit(step.init_state, static_argnums=0)
    state = init(objective, jax.random.key(0, impl="rbg"), np.ones((1,), np.float32))
    write_config(folder, config)
    Checkpoints(folder).save(1, state, np.zeros((1, 1, 4), np.float32), np.zeros((1, 1), bool))


def test_apply_bad_input_is_one_line(tmp_path, capsys, no_work):
    from nstjax.feedforward import NetworkConfig, TrainConfig

    content = _write(tmp_path / "content.png")
    out = str(tmp_path / "out")
    missing = str(tmp_path / "no_model")
    _fails(
        capsys,
        ["apply", "--model", missing, "--content", content, "--output", out],
        "--model",
        "no_model",
        "no such folder",
    )
    not_model = tmp_path / "not_model"
    not_model.mkdir()
    _fails(
        capsys,
        ["apply", "--model", str(not_model), "--content", content, "--output", out],
        "not_model",
        "config.json",
    )
    model = tmp_path / "model"
    config = TrainConfig(
        styles=("s.png",), content_dir="c", network=NetworkConfig(width=2, residual_blocks=0)
    )
    _saved_model(model, config)
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["apply", "--model", str(model), "--output", out, "--content"]
    _fails(capsys, base + [str(empty)], "empty", "no image files")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not a jpeg")
    _fails(capsys, base + [str(corrupt)], "corrupt.jpg")
    other = dataclasses.replace(config, network=NetworkConfig(width=3, residual_blocks=0))
    (model / "config.json").write_text(json.dumps(json.loads(other.to_json())))
    _fails(capsys, base + [content], "another network shape", "saved (1, 2), expected (1, 3)")


def test_checkpoint_from_before_the_guard_counters_loads(tmp_path):
    """A checkpoint written before TrainState had its rejected-step counters (and the history
    its flags) loads for apply and restores with zero counts."""
    from nstjax.feedforward import NetworkConfig, TrainConfig, load_model, step
    from nstjax.feedforward.checkpoint import Checkpoints
    from nstjax.feedforward.training import _init_state, objective_of

    config = TrainConfig(
        styles=("s.png",), content_dir="c", network=NetworkConfig(width=2, residual_blocks=0)
    )
    _saved_model(tmp_path, config)  # the current layout, then overwritten with the old one
    state = _init_state(objective_of(config), jax.random.key(3, impl="rbg"), np.ones(1, "f4"))
    old = {k: v for k, v in state._asdict().items() if not k.startswith("rejected")}
    checkpoints = Checkpoints(tmp_path)
    checkpoints.manager.save(
        2,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(old),
            history=ocp.args.StandardSave({"history": np.ones((2, 1, 4), np.float32)}),
        ),
    )
    checkpoints.manager.wait_until_finished()
    restored, history, rejected = checkpoints.restore(2, state)
    checkpoints.close()
    assert isinstance(restored, step.TrainState)
    np.testing.assert_array_equal(restored.rejected_in_a_row, [0])
    np.testing.assert_array_equal(restored.rejected_steps, [0])
    np.testing.assert_array_equal(history, np.ones((2, 1, 4)))
    np.testing.assert_array_equal(rejected, np.zeros((2, 1), bool))
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)
    model = load_model(tmp_path)
    assert model.step == 2
    for a, b in zip(jax.tree.leaves(model.variables["params"]), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)
