"""Feed-forward training over two processes (``jax.distributed`` on 127.0.0.1, gloo collectives
on CPU, one device each): the global batch split between them ends where one process with the
whole batch ends, and a second run resumes from the checkpoints the two wrote together."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import train_config as _config

from nstjax.feedforward import load_model, train

ROOT = Path(__file__).resolve().parents[1]
STYLES = ("starry_night.jpg",)
STEPS = (2, 4)  # the first run, then the resumed one
# The two processes each reduce half of the batch and add the halves (all-reduce): the mean
# rounds differently from one device's. Adam amplifies that in the conv biases just before a
# normalisation (their gradient is zero in exact arithmetic), which change nothing downstream,
# so the networks are compared by their outputs and losses (measured: losses within 3.6e-7
# relative, outputs within 7.7e-7).
RTOL = 1e-5


def _config_for(content_dir, images_dir, steps):
    """The configuration each child process builds too (_CHILD)."""
    return _config(content_dir, images_dir, STYLES, steps=steps, batch_size=4, save_every=2)


_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import jax
    from nstjax.sweep import distributed

    cluster = distributed.initialize(distributed.resolve(None, None, None))  # from NSTJAX_*
    sys.path.insert(0, {tests!r})
    import conftest
    from nstjax import vgg
    from nstjax.feedforward import train

    params = vgg.init_params(jax.random.key(0))
    for steps in {steps!r}:
        config = conftest.train_config(Path({content!r}), Path({images!r}), {styles!r},
                                       steps=steps, batch_size=4, save_every=2)
        result = train(config, {out!r}, vgg_params=params, progress=False)
    print("RESULT", json.dumps({{"process": cluster.process_id, "devices": jax.device_count(),
                                 "history": result.history.tolist()}}), flush=True)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_as_one_and_resume(content_dir, images_dir, tiny_params, tmp_path):
    out = tmp_path / "model"
    code = _CHILD.format(
        tests=str(ROOT / "tests"), content=str(content_dir), images=str(images_dir), out=str(out),
        steps=STEPS, styles=STYLES,
    )  # fmt: skip
    address = f"127.0.0.1:{_free_port()}"
    children = []
    for index in range(2):
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "NSTJAX_COORDINATOR": address,
            "NSTJAX_NUM_PROCESSES": "2",
            "NSTJAX_PROCESS_ID": str(index),
        }
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=ROOT,
            )
        )
    outputs = [child.communicate(timeout=300)[0] for child in children]
    for child, output in zip(children, outputs):
        assert child.returncode == 0, output
    results = [json.loads(o.split("RESULT ", 1)[1]) for o in outputs]
    assert [r["process"] for r in results] == [0, 1] and [r["devices"] for r in results] == [2, 2]
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [2, 4]
    assert (out / "loss.png").is_file() and (out / "config.json").is_file()

    one = train(
        _config_for(content_dir, images_dir, STEPS[-1]),
        tmp_path / "one",
        vgg_params=tiny_params,
        progress=False,
    )
    for r in results:  # every process saw the global losses
        np.testing.assert_allclose(r["history"], one.history, rtol=RTOL)
    model = load_model(out)
    assert model.step == STEPS[-1]
    net = model.config.network.module()
    probe = np.random.default_rng(0).random((1, 20, 24, 3), np.float32)
    both = np.asarray(jax.vmap(lambda v: net.apply(v, probe))(model.variables))
    alone = np.asarray(jax.vmap(lambda v: net.apply(v, probe))({"params": one.state.params}))
    np.testing.assert_allclose(both, alone, rtol=RTOL, atol=1e-5)
    fresh = np.asarray(net.apply(jax.jit(net.init)(jax.random.key(0, impl="rbg"), probe), probe))
    assert np.max(np.abs(both[0] - fresh)) > 1e-3  # trained: far from the fresh network
