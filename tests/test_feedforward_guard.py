"""The non-finite guard of feed-forward training (tiny VGG, tiny network, 32 px): a network whose
steps are not finite keeps its last finite state, is stopped after ``max_nonfinite_steps`` such
steps in a row, and the CLI exits 1 naming it after saving everything; the other network is
bit-identical to it trained alone."""

import jax
import numpy as np
import pytest
from conftest import train_config as _config

from nstjax import vgg
from nstjax.cli import main
from nstjax.feedforward import train
from nstjax.feedforward.training import _init_state, objective_of

STYLE = "starry_night.jpg"
BAD_TV = 1e38  # a finite weight whose loss and gradient overflow float32


def _cli_args(config, out) -> list[str]:
    """``nstjax train`` arguments for ``config`` (the fields :func:`_config` sets)."""

    def floats(values):
        return [repr(v) for v in values]

    return [
        "train",
        "--style", *config.styles,
        "--content-dir", config.content_dir,
        "--output", str(out),
        "--size", str(config.size),
        "--steps", str(config.steps),
        "--batch-size", str(config.batch_size),
        "--lr", *floats(config.learning_rate),
        "--style-weight", *floats(config.style_weight),
        "--tv-weight", *floats(config.tv_weight),
        "--holdout", str(config.holdout),
        "--save-every", str(config.save_every),
        "--sample-every", str(config.sample_every),
        "--max-nonfinite-steps", str(config.max_nonfinite_steps),
        "--content-layers", ",".join(config.content_layers),
        "--style-layers", ",".join(config.style_layers),
        "--width", str(config.network.width),
        "--residual-blocks", str(config.network.residual_blocks),
        "--network-axis", config.network_axis,
    ]  # fmt: skip


@pytest.mark.slow
def test_non_finite_network_is_rejected_stopped_and_the_other_unaffected(
    content_dir, images_dir, tiny_params, tmp_path, capsys, monkeypatch
):
    def config(tv):
        styles = (STYLE, STYLE)
        return _config(
            content_dir, images_dir, styles, steps=5, tv_weight=tv, max_nonfinite_steps=3
        )

    bad = config((0.1, BAD_TV))
    monkeypatch.setattr(vgg, "load_params", lambda *a, **k: tiny_params)
    assert main(_cli_args(bad, tmp_path / "bad")) == 1
    err = capsys.readouterr().err
    assert "non-finite steps rejected: starry_night-1 3" in err, err
    assert "error: network(s) starry_night-1 stopped after 3 non-finite steps in a row" in err
    folder = tmp_path / "bad"
    assert (folder / "loss.png").is_file() and (folder / "samples" / "000005").is_dir()
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["4", "5"]

    stopped = train(bad, folder, vgg_params=tiny_params, progress=False)  # resumes: nothing to do
    assert stopped.stopped == ["starry_night-1"]
    np.testing.assert_array_equal(stopped.rejected[:, 0], [False] * 5)
    np.testing.assert_array_equal(stopped.rejected[:, 1], [True, True, True, False, False])
    assert not np.isfinite(stopped.history[:, 1, 0]).any()
    assert np.isfinite(stopped.history[:, 0]).all()
    np.testing.assert_array_equal(stopped.state.rejected_steps, [0, 3])
    np.testing.assert_array_equal(stopped.state.rejected_in_a_row, [0, 3])

    # the bad network never moved: its parameters and Adam state are the fresh ones
    lr = np.asarray(bad.learning_rate * 2, np.float32)
    fresh = _init_state(objective_of(bad), jax.random.key(bad.seed, impl="rbg"), lr)
    for a, b in zip(jax.tree.leaves(stopped.state.params), jax.tree.leaves(fresh.params)):
        np.testing.assert_array_equal(a[1], b[1])
    for a, b in zip(jax.tree.leaves(stopped.state.opt_state), jax.tree.leaves(fresh.opt_state)):
        np.testing.assert_array_equal(a[1], b[1])
    # the good network is bit-identical to it trained alone
    one = _config(content_dir, images_dir, (STYLE,), steps=5, tv_weight=(0.1,))
    alone = train(one, tmp_path / "alone", vgg_params=tiny_params, progress=False)
    assert alone.stopped == [] and not alone.rejected.any()
    for a, b in zip(jax.tree.leaves(stopped.state.params), jax.tree.leaves(alone.state.params)):
        np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(
        jax.tree.leaves(alone.state.params)[0][0], jax.tree.leaves(fresh.params)[0][0]
    )
    np.testing.assert_array_equal(stopped.history[:, 0], alone.history[:, 0])
