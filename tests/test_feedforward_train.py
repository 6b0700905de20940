"""Training K feed-forward networks (tiny VGG, tiny network, 32 px): K together bit-identical to
each alone,
the held-out perceptual loss goes down, a run killed with SIGKILL and resumed ends bit-identical
to an uninterrupted run, and the trained model stylises any size deterministically."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TRAIN_STYLES
from conftest import train_config as _config

from nstjax import image, vgg
from nstjax.cli import main
from nstjax.feedforward import NetworkConfig, apply, load_model, train

ROOT = Path(__file__).resolve().parents[1]
STYLES = TRAIN_STYLES


@pytest.fixture(scope="module")
def together(tmp_path_factory, content_dir, images_dir, tiny_params):
    out = tmp_path_factory.mktemp("together")
    config = _config(content_dir, images_dir)
    return config, train(config, out, vgg_params=tiny_params, progress=False)


@pytest.fixture(scope="module")
def held_out(content_dir):
    return image.load_image(content_dir / "tubingen.png")  # the last by name: not trained on


def _outputs(variables, config, images):
    net = config.network.module()
    return np.asarray(jax.vmap(lambda v: net.apply(v, images))(variables))


@pytest.mark.slow
def test_k_networks_together_equal_each_alone(
    together, content_dir, images_dir, tiny_params, tmp_path, held_out
):
    config, result = together
    assert config.network_axis == "loop"  # the default: one compiled network step, K calls
    assert result.names == ["starry_night", "the_scream"]
    both = _outputs({"params": result.state.params}, config, held_out[None])
    for k, style in enumerate(STYLES):
        alone = train(
            _config(content_dir, images_dir, styles=(style,)),
            tmp_path / style,
            vgg_params=tiny_params,
            progress=False,
        )
        np.testing.assert_array_equal(result.history[:, k], alone.history[:, 0])
        for a, b in zip(jax.tree.leaves(result.state), jax.tree.leaves(alone.state)):
            np.testing.assert_array_equal(a[k], b[0])
    # The two styles' networks are far apart.
    assert np.max(np.abs(both[0] - both[1])) > 1e-2


def _perceptual_loss(params, config, output, content, style):
    """Content + style + TV loss of one image, in numpy from the VGG features."""
    layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
    features = jax.jit(vgg.features, static_argnums=2)

    def f(x):
        return {k: np.asarray(v, np.float64) for k, v in features(params, x, layers).items()}

    f_out, f_con, f_sty = f(output), f(content), f(style)

    def gram(f):
        h, w, c = f.shape
        flat = f.reshape(h * w, c)
        return flat.T @ flat / (h * w * c)

    content_loss = np.mean([np.mean((f_out[n] - f_con[n]) ** 2) for n in config.content_layers])
    style_loss = np.mean(
        [np.mean((gram(f_out[n]) - gram(f_sty[n])) ** 2) for n in config.style_layers]
    )
    px = np.asarray(output, np.float64) * 255
    tv = (np.sum(np.diff(px, axis=0) ** 2) + np.sum(np.diff(px, axis=1) ** 2)) / (
        px.shape[0] * px.shape[1]
    )
    weights = config.content_weight[0], config.style_weight[0], config.tv_weight[0]
    return weights[0] * content_loss + weights[1] * style_loss + weights[2] * tv


@pytest.mark.slow
def test_training_lowers_the_held_out_loss(together, tiny_params, held_out, images_dir):
    config, result = together
    net = config.network.module()
    untrained = jax.jit(net.init)(jax.random.key(1, impl="rbg"), held_out[None])
    model = load_model(result.model_dir)
    (trained,) = apply(model, [held_out])
    for k, style_name in enumerate(STYLES):
        style = image.load_image(images_dir / style_name, config.size)
        before = np.asarray(jax.jit(net.apply)(untrained, held_out[None]))[0]
        loss_before = _perceptual_loss(tiny_params, config, before, held_out, style)
        loss_after = _perceptual_loss(tiny_params, config, trained[k], held_out, style)
        assert loss_after < 0.5 * loss_before, (k, loss_before, loss_after)


@pytest.mark.slow
def test_model_folder_holds_config_checkpoints_and_curve(together):
    config, result = together
    folder = result.model_dir
    assert (folder / "config.json").is_file() and (folder / "loss.png").is_file()
    assert sorted(int(p.name) for p in (folder / "checkpoints").iterdir()) == [4, 8, 12]
    samples = sorted(p.name for p in (folder / "samples" / "000012").iterdir())
    assert samples == ["tubingen__starry_night.png", "tubingen__the_scream.png"]
    assert np.all(np.isfinite(result.history))


_CHILD = textwrap.dedent(
    """
    import sys, time, jax
    sys.path.insert(0, {tests!r})
    import conftest
    from pathlib import Path
    from nstjax import vgg
    from nstjax.feedforward import train

    def on_step(done, metrics):
        print("step", done, flush=True)
        if done == 8:  # steps 5-8 done, not saved yet: wait here to be killed
            print("waiting", flush=True)
            time.sleep(600)

    config = conftest.train_config(Path({content!r}), Path({images!r}))
    train(config, {out!r}, vgg_params=vgg.init_params(jax.random.key(0)), progress=False,
            on_step=on_step)
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted(
    together, content_dir, images_dir, tiny_params, tmp_path
):
    config, uninterrupted = together
    out = tmp_path / "killed"
    code = _CHILD.format(
        tests=str(ROOT / "tests"), content=str(content_dir), images=str(images_dir), out=str(out)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        for line in child.stdout:
            if line.strip() == "waiting":
                break
        else:
            pytest.fail(f"the training subprocess ended early (status {child.wait()})")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["4"]
    resumed = train(config, out, vgg_params=tiny_params, progress=False)
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(uninterrupted.state)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.history, uninterrupted.history)


@pytest.mark.slow
def test_apply_is_deterministic_at_odd_sizes(together):
    _, result = together
    model = load_model(result.model_dir)
    rng = np.random.default_rng(0)
    odd = rng.random((13, 19, 3), np.float32)
    other = rng.random((13, 19, 3), np.float32)
    first = apply(model, [odd, other], batch_size=2)
    again = apply(model, [odd, other], batch_size=2)
    assert [o.shape for o in first] == [(2, 13, 19, 3), (2, 13, 19, 3)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(first[0] - first[1])) > 1e-3  # the outputs depend on the input
    alone = apply(model, [odd], batch_size=1)[0]
    np.testing.assert_allclose(alone, first[0], rtol=1e-5, atol=1e-6)  # without its neighbour
    assert all(np.all((o >= 0) & (o <= 1)) for o in first)


@pytest.mark.slow
def test_cli_apply_writes_one_file_per_content_and_network(together, content_dir, tmp_path):
    _, result = together
    out = tmp_path / "styled"
    status = main(
        [
            "apply",
            "--model",
            str(result.model_dir),
            "--content",
            str(content_dir / "stata.png"),
            str(content_dir / "tubingen.png"),
            "--output",
            str(out),
        ]
    )
    assert status == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        f"{c}__{s}.png" for c in ("stata", "tubingen") for s in ("starry_night", "the_scream")
    ]
    written = image.load_image(out / "tubingen__the_scream.png")
    assert written.shape == image.load_image(content_dir / "tubingen.png").shape


@pytest.mark.slow  # a training run to its end: trained, saved, loaded and applied
def test_batch_norm_and_transposed_convolutions_train(
    content_dir, images_dir, tiny_params, tmp_path
):
    net = NetworkConfig(norm="batch", upsample="transpose", width=2, residual_blocks=0)
    config = _config(
        content_dir, images_dir, styles=STYLES[:1], steps=2, size=16, style_size=32, network=net
    )
    result = train(config, tmp_path / "bn", vgg_params=tiny_params, progress=False)
    stats = result.state.batch_stats["Norm_0"]["BatchNorm_0"]
    assert not np.allclose(stats["mean"], 0) and not np.allclose(stats["var"], 1)
    model = load_model(tmp_path / "bn")
    np.testing.assert_array_equal(
        model.variables["batch_stats"]["Norm_0"]["BatchNorm_0"]["mean"], stats["mean"]
    )
    (out,) = apply(model, [np.full((9, 11, 3), 0.5, np.float32)])
    assert out.shape == (1, 9, 11, 3) and np.all(np.isfinite(out))


def test_a_steps_samples_are_written_before_its_checkpoint(
    tmp_path, content_dir, images_dir, tiny_params, monkeypatch
):
    """A resume starts after the last checkpoint, so samples due at that step must already be on
    disk when the checkpoint is: interrupted while saving it, the samples are there."""
    from nstjax.feedforward.checkpoint import Checkpoints

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoints, "save", interrupted)
    config = _config(content_dir, images_dir, steps=4, save_every=4)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, vgg_params=tiny_params, progress=False)
    samples = sorted(p.name for p in (tmp_path / "samples" / "000004").iterdir())
    assert samples == ["tubingen__starry_night.png", "tubingen__the_scream.png"]


def test_a_resume_on_other_content_images_is_refused_and_on_the_same_moved_goes_on(
    tmp_path, content_dir, images_dir, tiny_params
):
    """The saved data position indexes the content images: resuming on other ones would change
    what the rest of the run trains on without a word. The same images moved elsewhere resume."""
    import shutil

    from conftest import write_random_image

    from nstjax.errors import NstjaxError

    out = tmp_path / "model"
    train(_config(content_dir, images_dir, steps=4, save_every=4), out,
          vgg_params=tiny_params, progress=False)  # fmt: skip
    other = Path(shutil.copytree(content_dir, tmp_path / "other"))
    write_random_image(other / "chicago.png", (48, 30))  # another photo under the same name
    recorded = {name: (out / name).read_text() for name in ("config.json", "content.json")}
    with pytest.raises(NstjaxError, match=r"--content-dir '.*other': not the images .*'chicago"):
        train(_config(other, images_dir, steps=8, save_every=4), out,
              vgg_params=tiny_params, progress=False)  # fmt: skip
    assert {name: (out / name).read_text() for name in recorded} == recorded  # nothing written
    moved = shutil.copytree(content_dir, tmp_path / "moved")
    train(_config(moved, images_dir, steps=8, save_every=4), out,
          vgg_params=tiny_params, progress=False)  # fmt: skip
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [4, 8]


def test_an_interrupted_training_says_which_checkpoint_a_rerun_resumes_from(
    tmp_path, content_dir, images_dir, tiny_params, monkeypatch, capsys
):
    """Interrupted while saving step 8, the last whole checkpoint is step 4 (orbax's save of 8
    never completed), and the note says so; before any checkpoint, that a rerun starts at 0."""
    from nstjax.feedforward import checkpoint

    assert checkpoint.resume_note(tmp_path / "none").endswith("no checkpoint in "
        f"{tmp_path / 'none'} yet; a rerun starts at step 0")  # fmt: skip
    real_save = checkpoint.Checkpoints.save

    def save_until_8(self, step, *args, **kwargs):
        if step == 8:
            raise KeyboardInterrupt
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(checkpoint.Checkpoints, "save", save_until_8)
    with pytest.raises(KeyboardInterrupt):
        train(_config(content_dir, images_dir, steps=12, save_every=4), tmp_path,
              vgg_params=tiny_params, progress=False)  # fmt: skip
    assert checkpoint.resume_note(tmp_path) == (
        f"train: the last checkpoint in {tmp_path} is step 4; rerun the same command to resume "
        "from it"
    )

    def interrupted_train(config, output):  # the command adds the note on its way out
        raise KeyboardInterrupt

    import nstjax.feedforward

    monkeypatch.setattr(nstjax.feedforward, "train", interrupted_train)
    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "0")
    style = str(images_dir / "starry_night.jpg")
    argv = ["train", "--style", style, "--content-dir", str(content_dir), "--output", str(tmp_path)]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"nstjax: interrupted by SIGINT; {checkpoint.resume_note(tmp_path)}"
