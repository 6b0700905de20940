"""The layer convolution (nstjax.conv) and its oneDNN backend (nstjax.onednn) against numpy.

The reference is a float64 numpy 3x3 SAME cross-correlation written here, and its gradients
derived by hand: for ``y = relu(conv(x, W) + b)`` and an upstream gradient ``g``, with
``m = g * (y > 0)``: ``dx_pad[n, i+dy, j+dx, c] += m[n, i, j, o] W[dy, dx, c, o]``,
``dW[dy, dx, c, o] = sum x_pad[n, i+dy, j+dx, c] m[n, i, j, o]`` and ``db = sum m``.
"""

import platform

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax import engine, kernels, vgg
from nstjax.bench.problem import make_problem
from nstjax.kernels import conv, onednn

IMPLS = conv.IMPLS
ON_LINUX_X86 = platform.system() == "Linux" and platform.machine() == "x86_64"


def _needs(impl):
    if impl == "onednn" and not onednn.available():
        pytest.skip(f"oneDNN unavailable: {onednn.unavailable_reason()}")


def np_conv(x, w, b):
    """3x3 SAME cross-correlation + bias, NHWC x HWIO, float64."""
    n, h, wd, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, wd, w.shape[3]))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nijc,co->nijo", xp[:, dy : dy + h, dx : dx + wd], w[dy, dx])
    return out + b


def np_grads(x, w, b, g):
    """Hand-derived gradients of sum(g * relu(conv(x, W) + b)) for x, W and b."""
    n, h, wd, _ = x.shape
    m = g * (np_conv(x, w, b) > 0)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for dy in range(3):
        for dx in range(3):
            dxp[:, dy : dy + h, dx : dx + wd] += np.einsum("nijo,co->nijc", m, w[dy, dx])
            dw[dy, dx] = np.einsum("nijc,nijo->co", xp[:, dy : dy + h, dx : dx + wd], m)
    return dxp[:, 1:-1, 1:-1], dw, m.sum((0, 1, 2))


def _problem(cin=5, cout=7, shape=(2, 6, 5), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*shape, cin))
    w = rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)
    b = rng.standard_normal(cout) * 0.1
    g = rng.standard_normal((*shape, cout))
    return x, w, b, g


def _f32(*arrays):
    return [jnp.asarray(a, jnp.float32) for a in arrays]


def _rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return np.abs(got - want).max() / np.abs(want).max()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("cin", "cout"), [(3, 8), (5, 7), (16, 3), (64, 32)])
def test_forward_matches_numpy(impl, cin, cout):
    _needs(impl)
    x, w, b, _ = _problem(cin, cout)
    xj, wj, bj = _f32(x, w, b)
    y = conv.conv3x3_relu(xj, wj, bj, conv.prepare(wj, impl))
    want = np.maximum(np_conv(x, w, b), 0)
    assert (want == 0).mean() > 0.2  # the ReLU does something
    assert _rel(y, want) < 1e-5


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("cin", "cout"), [(3, 8), (5, 7), (64, 32)])
def test_gradients_match_hand_derived(impl, cin, cout):
    _needs(impl)
    x, w, b, g = _problem(cin, cout, seed=1)
    xj, wj, bj, gj = _f32(x, w, b, g)
    prepared = conv.prepare(wj, impl)

    def loss(x, w, b):
        return jnp.sum(gj * conv.conv3x3_relu(x, w, b, prepared))

    dx, dw, db = jax.grad(loss, argnums=(0, 1, 2))(xj, wj, bj)
    want_dx, want_dw, want_db = np_grads(x, w, b, g)
    assert _rel(dx, want_dx) < 1e-5
    assert _rel(dw, want_dw) < 1e-5
    assert _rel(db, want_db) < 1e-5


@pytest.mark.parametrize("impl", IMPLS)
def test_vmap_over_runs_matches_per_example(impl):
    """The engine vmaps one-image losses over runs: the batched call (oneDNN sees the run axis as
    its batch) must give every example what the numpy reference gives it alone."""
    _needs(impl)
    x, w, b, g = _problem(4, 6, shape=(3, 1, 5, 5), seed=2)
    xj, wj, bj, gj = _f32(x, w, b, g)
    prepared = conv.prepare(wj, impl)

    def one(x, g):
        return jax.grad(lambda x: jnp.sum(g * conv.conv3x3_relu(x, wj, bj, prepared)))(x)

    dx = jax.jit(jax.vmap(one))(xj, gj)
    for r in range(3):
        want_dx, _, _ = np_grads(x[r], w, b, g[r])
        assert _rel(dx[r], want_dx) < 1e-5


def test_bfloat16_without_a_native_kernel_falls_back_to_xla():
    """With no bf16 kernel packed (here: 4 input channels, which oneDNN's AMX kernels do not
    take), bf16 activations take XLA's convolution."""
    _needs("onednn")
    x, w, b, _ = _problem(4, 8)
    xj, wj, bj = _f32(x, w, b)
    prepared = conv.prepare(wj, "onednn")
    assert "onednn_forward_bf16" not in prepared
    y = conv.conv3x3_relu(xj.astype(jnp.bfloat16), wj, bj, prepared)
    assert y.dtype == jnp.bfloat16
    assert _rel(y.astype(jnp.float32), np.maximum(np_conv(x, w, b), 0)) < 2e-2


# ----------------------------------------------------------------------------- oneDNN specifics


def test_onednn_is_available_on_linux_x86():
    """On the platform the oneDNN wheels exist for, the handler must build: a broken build would
    otherwise only show as the other tests skipping."""
    if not ON_LINUX_X86:
        pytest.skip("oneDNN wheels are for Linux x86-64")
    assert onednn.available(), onednn.unavailable_reason()
    assert onednn.version().startswith("3.")


@pytest.mark.parametrize("block", [8, 16, 32, 64])
def test_pack_layout_and_any_block(monkeypatch, block):
    """``Acdb<B>a``: packed[o // B, y, x, i, o % B] = kernel[y, x, i, o], zero beyond O; and
    oneDNN computes the right convolution whichever block the weights are packed in."""
    _needs("onednn")
    x, w, b, _ = _problem(6, 20, seed=3)
    monkeypatch.setattr(onednn, "block_for", lambda i, o: block)
    packed = np.asarray(onednn.pack(jnp.asarray(w, jnp.float32)))
    blocks = -(-20 // block)
    assert packed.shape == (blocks, 3, 3, 6, block)
    for o in range(blocks * block):
        got = packed[o // block, :, :, :, o % block]
        np.testing.assert_array_equal(got, w[..., o].astype(np.float32) if o < 20 else 0)
    y = onednn.conv3x3(*_f32(x), jnp.asarray(packed), jnp.asarray(b, jnp.float32), relu=False)
    assert _rel(y, np_conv(x, w, b)) < 1e-5


def test_packed_kernel_of_the_wrong_shape_is_refused():
    _needs("onednn")
    x, w, b, _ = _problem(4, 8)
    packed = onednn.pack(jnp.asarray(w, jnp.float32))
    with pytest.raises(ValueError, match="does not fit"):
        onednn.conv3x3(jnp.zeros((1, 5, 5, 3)), packed, jnp.asarray(b), relu=True)


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv(onednn.ENV_SWITCH, "0")
    with pytest.raises(onednn.OneDNNUnavailable, match="NSTJAX_ONEDNN=0"):
        onednn._build_and_load()


def test_missing_compiler_is_reported(monkeypatch, tmp_path):
    if not ON_LINUX_X86:
        pytest.skip("oneDNN wheels are for Linux x86-64")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(onednn.OneDNNUnavailable, match="building onednn_conv-.*failed"):
        onednn._build_and_load()


def test_compiler_failure_is_reported(monkeypatch, tmp_path):
    if not ON_LINUX_X86:
        pytest.skip("oneDNN wheels are for Linux x86-64")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing built there yet
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails
    with pytest.raises(onednn.OneDNNUnavailable, match="compiling onednn_conv.cc failed"):
        onednn._build_and_load()
    assert not list((tmp_path / "nstjax" / "native").glob("*.so"))  # no half-written library


# ----------------------------------------------------------------------------- in the network


@pytest.mark.parametrize("impl", ["flipped", "onednn"])
def test_prepared_network_matches_plain(tiny_params, impl):
    """Features and the image gradient through the whole (tiny) VGG with prepared kernels equal
    plain autodiff through XLA's convolutions, an independent path."""
    _needs(impl)
    prepared = vgg.prepare(tiny_params, impl)
    img = jax.random.uniform(jax.random.key(3), (2, 24, 24, 3))
    layers = ("conv1_1", "conv2_1", "conv3_1", "conv4_2", "conv5_1")

    def loss(params, img, convolution):
        feats = vgg.features(params, img, layers, convolution=convolution)
        return sum(jnp.sum(jnp.sin(f)) for f in feats.values())

    # Compiled, as a step runs them (op by op, each primitive compiles alone: 5x the time).
    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=1), static_argnums=2)
    got = value_and_grad(prepared, img, impl)
    want = value_and_grad(tiny_params, img, "xla")
    assert abs(float(got[0]) - float(want[0])) < 1e-4 * abs(float(want[0]))
    assert _rel(got[1], want[1]) < 1e-4


def test_prepare_xla_removes_the_entry(tiny_params):
    prepared = vgg.prepare(tiny_params, "flipped")
    assert "prepared" not in vgg.prepare(prepared, "xla")
    with pytest.raises(ValueError, match="convolution must be one of"):
        vgg.prepare(tiny_params, "winograd")


def test_a_convolution_without_its_kernels_is_refused(tiny_params):
    """The convolution is named, never inferred: asking for one the params were not prepared
    for is an error, not a silent fallback."""
    img = jnp.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match="needs params from nstjax.vgg.prepare"):
        vgg.features(tiny_params, img, ["conv1_1"], convolution="flipped")


def test_choose_picks_by_backend_and_mesh():
    if jax.default_backend() != "cpu":
        assert kernels.choose() == "xla"
        return
    assert kernels.choose(4) == "flipped"  # oneDNN's custom call has no sharding rule
    assert kernels.choose() == ("onednn" if onednn.available() else "flipped")


def test_engine_step_runs_onednn_on_cpu(tiny_params):
    """On CPU with oneDNN available, the compiled step's convolutions are oneDNN calls, none of
    XLA's are left (the speed of docs/benchmarks.md depends on it)."""
    if jax.default_backend() != "cpu":
        pytest.skip("CPU only")
    _needs("onednn")
    params = vgg.prepare(tiny_params, "onednn")
    program = engine.Program(convolution="onednn")
    problem = make_problem(params, program, 2, 32)
    state = engine.init_state(program, problem.pixels)
    text = (
        engine.train_step.lower(params, state, problem.hyper, problem.targets, program=program)
        .compile()
        .as_text()
    )
    assert onednn.TARGET in text
    assert " convolution(" not in text  # the unused kernel gradients were removed as dead code


# ----------------------------------------------------------------------------- bfloat16 (AMX)


def _needs_bf16(cin, cout):
    _needs("onednn")
    if not (onednn.bf16_block_for(cin, cout) and onednn.bf16_block_for(cout, cin)):
        pytest.skip("no native bfloat16 oneDNN kernel on this CPU for these channels")


def test_bf16_pack_layout():
    """``AcdB16b<B>a2b``: packed[o // B, y, x, i // 32, i % 32 // 2, o % B, i % 2] = W[y, x, i, o]."""
    _needs_bf16(40, 48)
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 3, 40, 48)).astype(np.float32)
    packed = np.asarray(onednn.pack(jnp.asarray(w), jnp.bfloat16).astype(jnp.float32))
    block = packed.shape[-2]
    assert packed.shape == (-(-48 // block), 3, 3, 2, 16, block, 2)
    want = np.asarray(jnp.asarray(w, jnp.bfloat16).astype(jnp.float32))
    for i in range(64):
        for o in range(0, packed.shape[0] * block, 5):
            got = packed[o // block, :, :, i // 32, i % 32 // 2, o % block, i % 2]
            expected = want[:, :, i, o] if (i < 40 and o < 48) else 0
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("cin", "cout", "batch"), [(40, 48, 2), (256, 256, 8)])
def test_bf16_forward_and_input_gradient_match_numpy(cin, cout, batch):
    """bfloat16 through oneDNN's native kernels, against the float64 reference on the same
    bf16-rounded inputs; (256, 256) at batch 8 is a shape where oneDNN wants another weight
    layout than the packed one (the handler reorders): both paths are checked."""
    _needs_bf16(cin, cout)
    x, w, b, g = _problem(cin, cout, shape=(batch, 8, 8), seed=5)
    round_bf16 = lambda a: np.asarray(jnp.asarray(a, jnp.bfloat16).astype(jnp.float32), np.float64)
    x, w, g = round_bf16(x), round_bf16(w), round_bf16(g)
    xj, wj, bj = (
        jnp.asarray(x, jnp.bfloat16),
        jnp.asarray(w, jnp.float32),
        jnp.asarray(b, jnp.float32),
    )
    prepared = conv.prepare(wj, "onednn")
    assert "onednn_forward_bf16" in prepared
    y = conv.conv3x3_relu(xj, wj, bj, prepared)
    assert y.dtype == jnp.bfloat16
    assert _rel(y.astype(jnp.float32), np.maximum(np_conv(x, w, b), 0)) < 1e-2
    gj = jnp.asarray(g, jnp.bfloat16)
    dx = jax.grad(
        lambda x: jnp.sum((gj * conv.conv3x3_relu(x, wj, bj, prepared)).astype(jnp.float32))
    )(xj)
    want_dx, _, _ = np_grads(x, w, b, g)
    # bf16 rounding of y flips the ReLU mask where y is near 0: a few percent at the worst
    # element (XLA's own bf16 path does the same); a layout error would be O(1).
    assert _rel(dx.astype(jnp.float32), want_dx) < 4e-2
