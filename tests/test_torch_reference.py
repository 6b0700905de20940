"""The PyTorch reference (nstjax.bench.torch_reference) and nstjax compute the same objective.

PyTorch is an independent implementation (its own convolutions, pooling, Grams and autodiff), so
agreement of the losses and gradients checks nstjax's objective, and agreement after a few Adam
steps checks the comparison's nstjax side (nstjax.bench.compare.NstjaxBatch). Skipped without
torch (``pip install nstjax[torch]``).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nstjax import engine, weight_files, weights  # noqa: E402
from nstjax.batch.build import build  # noqa: E402
from nstjax.batch.plan import program_for  # noqa: E402
from nstjax.bench.compare import NstjaxBatch  # noqa: E402
from nstjax.bench.problem import pattern  # noqa: E402
from nstjax.bench.torch_reference import TorchRun, to_nchw, torch_reference  # noqa: E402
from nstjax.run import Options, Run  # noqa: E402

SIZE = 32


def _h5_arrays(params) -> dict[str, np.ndarray]:
    """nstjax's parameters in the h5's flat layout (``"conv1_1/kernel"``, HWIO)."""
    out = {}
    for name, p in params["params"].items():
        out[f"{name}/kernel"] = np.asarray(p["kernel"])
        out[f"{name}/bias"] = np.asarray(p["bias"])
    return out


def _images(n: int):
    """``n`` content images, a style image and an image to evaluate the losses at (one that is
    neither, so that the content term and its gradient are not zero)."""
    contents = [pattern(SIZE, SIZE, seed=1 + i) for i in range(n)]
    return contents, pattern(SIZE, SIZE, seed=100), pattern(SIZE, SIZE, seed=50)


def _nstjax_terms(params, run: Run, contents, style, probe):
    """nstjax's ``[R, 4]`` loss terms at ``probe`` and the gradient of run 0's loss there."""
    runs = [dataclasses.replace(run, content=i, style=0) for i in range(len(contents))]
    program = program_for(runs, Options(), "xla")
    built = build(params, program, runs, contents, [style])
    pixels = jnp.asarray(np.stack([probe] * len(runs)) * 255.0)
    metrics = engine.evaluate(params, pixels, built.hyper, built.targets, program=program)
    first = jax.tree.map(lambda a: a[0], (built.hyper, built.targets))
    grad = jax.grad(lambda x: engine.run_loss(params, program, x, *first)[0])(pixels[0])
    return np.asarray(metrics), np.asarray(grad)


def _torch_terms(features, run: Run, contents, style, probe):
    """The reference's ``[R, 4]`` loss terms at ``probe`` and run 0's gradient there (HWC)."""
    rows, grad = [], None
    for i, content in enumerate(contents):
        r = TorchRun(features, content, style, run, "adam", 20)
        pixels = to_nchw(probe).clone().requires_grad_(True)
        total = r.loss(pixels)
        rows.append([float(t.detach()) for t in (total, *r.terms(pixels))])
        if i == 0:
            total.backward()
            grad = pixels.grad[0].numpy().transpose(1, 2, 0)
    return np.asarray(rows), grad


@pytest.mark.parametrize("run", [Run(), Run(style_weight=1e3, tv_weight=0.1)], ids=["default", "w"])
def test_losses_and_gradient_agree_on_tiny_vgg(tiny_params, run):
    contents, style, probe = _images(2)
    features = torch_reference(_h5_arrays(tiny_params), "conv5_1", weights.CAFFE_PREPROCESS)
    ours, our_grad = _nstjax_terms(tiny_params, run, contents, style, probe)
    theirs, their_grad = _torch_terms(features, run, contents, style, probe)
    assert theirs[:, 1:].min() > 0  # every term is there to compare
    np.testing.assert_allclose(ours, theirs, rtol=2e-4)
    scale = np.abs(their_grad).max()
    np.testing.assert_allclose(our_grad, their_grad, rtol=0, atol=1e-3 * scale)


def test_nstjax_batch_follows_the_reference_for_a_few_adam_steps(tiny_params):
    contents, style, _ = _images(2)
    run = Run()
    features = torch_reference(_h5_arrays(tiny_params), "conv5_1", weights.CAFFE_PREPROCESS)
    reference = [TorchRun(features, c, style, run, "adam", 20) for c in contents]
    step0 = [r.evaluate() for r in reference]
    for r in reference:
        for _ in range(5):
            r.step()
    ours = NstjaxBatch(tiny_params, "xla", contents, style, run, Options())
    ours.steps(5)
    assert ours.step_count == 5
    np.testing.assert_allclose(ours.first_loss, step0, rtol=2e-4)
    final = [r.evaluate() for r in reference]
    assert final[0] < 0.9 * step0[0]  # the steps did something
    np.testing.assert_allclose(ours.evaluate(), final, rtol=1e-2)


def test_losses_agree_with_real_weights(real_h5):
    from nstjax import vgg

    contents, style, probe = _images(1)
    params = vgg.load_params(real_h5)
    features = torch_reference(weight_files.read_h5(real_h5), "conv5_1", weights.CAFFE_PREPROCESS)
    ours, _ = _nstjax_terms(params, Run(), contents, style, probe)
    theirs, _ = _torch_terms(features, Run(), contents, style, probe)
    assert theirs[:, 1:].min() > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-3)
