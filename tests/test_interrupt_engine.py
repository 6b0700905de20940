"""``engine.optimize`` resumed from a saved progress ends exactly as an uninterrupted call, for
every optimiser and both loop forms (tiny random VGG, 16x16)."""

import jax
import numpy as np
import pytest
from engine_batches import RUNS
from engine_batches import batch as _batch
from engine_batches import images as _images

from nstjax import engine

CONTENT_LAYERS, STYLE_LAYERS = ("conv2_1",), ("conv1_1", "conv2_1")


@pytest.mark.parametrize("loop", ["python", "scan"])
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs", "lbfgs_wolfe"])
def test_resumed_equals_uninterrupted(tiny_params, optimizer, loop):
    program = engine.Program(CONTENT_LAYERS, STYLE_LAYERS, optimizer=optimizer, lbfgs_history=3)
    args = _batch(tiny_params, RUNS, program, _images(2, 1), _images(2, 2))
    saved = {}

    def keep(progress):  # a host copy: the next chunk donates the state
        step = int(progress.state.step)
        saved[step] = engine.Start(jax.tree.map(np.array, progress.state), progress.rows.copy())

    whole = engine.optimize(
        tiny_params, program, args, 7, loop=loop, chunk=3, hooks=engine.Hooks(on_state=keep)
    )
    assert sorted(saved) == [3, 6, 7]
    assert saved[3].rows.shape == (3, len(RUNS), len(engine.STEP_COLUMNS))
    resumed = engine.optimize(tiny_params, program, args, 7, loop=loop, chunk=3, start=saved[3])
    for name in engine.Outcome._fields:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name), err_msg=name)
    # resuming at the end computes no step and gives the same outcome
    ended = engine.optimize(tiny_params, program, args, 7, loop=loop, chunk=3, start=saved[7])
    np.testing.assert_array_equal(ended.pixels, whole.pixels)
    np.testing.assert_array_equal(ended.history, whole.history)
