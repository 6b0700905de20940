"""The time-to-quality benchmark's pieces (nstjax.bench.time_to_quality) against hand-derived
values; the script end to end is in tests/test_scripts.py."""

import dataclasses

import numpy as np
import pytest

from nstjax import presets
from nstjax.bench import time_to_quality as ttq
from nstjax.run import Options, Run


def test_crowsonkb_scales_are_its_gen_scales():
    # 512 / 2^(i/2): 512, 362.04, 256, 181.02, 128, 90.5 (below 128: stop)
    assert ttq.crowsonkb_scales(512) == [128, 181, 256, 362, 512]
    assert [s for s, _ in presets.CROWSONKB_SCALES] == ttq.crowsonkb_scales(512)
    assert ttq.crowsonkb_scales(256) == [128, 181, 256]
    assert ttq.crowsonkb_scales(100) == [100]  # min(min_scale, end), as its stylize (line 365)


def test_the_recipes_at_full_budget():
    recipes = ttq.make_recipes((384, 512))
    assert recipes["nstjax"].schedule == ((512, 500),)
    assert recipes["nstjax-c2f"].schedule == ((128, 200), (256, 200), (512, 100))
    assert recipes["crowsonkb"].schedule == presets.CROWSONKB_SCALES
    assert recipes["crowsonkb"].options.average_decay == 0.99
    assert recipes["crowsonkb"].run.style_loss == "gaussian_w2"
    ref = recipes[ttq.REFERENCE]
    assert ref.schedule == ((512, 1000),)
    assert (ref.run.content_weight, ref.run.style_weight) == (5.0, 100.0)
    assert ref.run.tv_weight == pytest.approx(1e-3 * 384 * 512 / 2)
    assert ref.run.init == "noise" and ref.run.noise_scale == 0.001
    ns = recipes["nstjax-c2f-ns"]  # neural-style's loss, nstjax's schedule, Adam and start
    assert ns.schedule == recipes["nstjax-c2f"].schedule and ns.options.optimizer == "adam"
    assert (ns.run.content_weight, ns.run.style_weight) == (5.0, 100.0)
    assert ns.run.tv_weight == pytest.approx(1e-3 * 384 * 512 / 2)
    assert ns.run.init == "content" and ns.run.step_size("adam") == 4.0
    for name, init in (("nstjax-c2f-lbfgs", "content"), ("nstjax-c2f-lbfgs-noise", "noise")):
        lbfgs = recipes[name]  # the same loss and schedule, L-BFGS with the line search
        assert lbfgs.schedule == ns.schedule and lbfgs.options.optimizer == "lbfgs_wolfe"
        assert (lbfgs.run.content_weight, lbfgs.run.style_weight) == (5.0, 100.0)
        assert lbfgs.run.tv_weight == pytest.approx(1e-3 * 384 * 512 / 2)
        assert lbfgs.run.init == init and lbfgs.run.step_size("lbfgs_wolfe") == 1.0
    assert recipes["nstjax-c2f-lbfgs-noise"].run.noise_scale == 0.001
    detail = recipes["nstjax-c2f-lbfgs-detail"]  # the L-BFGS recipe, the content's detail added
    assert detail.run.upscale_detail == 1.0 and recipes["nstjax-c2f-lbfgs"].run.upscale_detail == 0
    assert dataclasses.replace(detail.run, upscale_detail=0.0) == recipes["nstjax-c2f-lbfgs"].run
    assert (detail.schedule, detail.options) == (ns.schedule, recipes["nstjax-c2f-lbfgs"].options)
    steps = [r.options.chunk for r in recipes.values() if r.options]  # snapshots: 500 / 50 = 10
    assert steps == [50] * 6 + [300]  # crowsonkb: 1000 + 4 x 500 = 3000 steps, 10 snapshots
    half = ttq.make_recipes((384, 512), budget=0.5)
    assert half["crowsonkb"].schedule == (
        (128, 500),
        (181, 250),
        (256, 250),
        (362, 250),
        (512, 250),
    )


def test_checkpoints_spread_over_the_steps():
    assert ttq.checkpoints_of(10, 3) == [3, 7, 10]
    assert ttq.checkpoints_of(2, 5) == [1, 2]


def _point(seconds, cf, ge, lp, step=1):
    return {"step": step, "seconds": seconds, "content_fidelity": cf, "global_effects": ge,
            "local_patterns": lp}  # fmt: skip


def test_time_to_each_criterion():
    reference = _point(100.0, cf=0.50, ge=0.60, lp=0.40)
    points = [
        _point(1.0, cf=0.90, ge=0.30, lp=0.10),  # CF within 0.02 (above) only
        _point(2.0, cf=0.60, ge=0.61, lp=0.39),  # GE reached
        _point(3.0, cf=0.47, ge=0.62, lp=0.40),  # LP reached; CF 0.03 below: not within 0.02
        _point(4.0, cf=0.485, ge=0.60, lp=0.41),  # all three
    ]
    assert ttq.time_to(points, reference) == {"GE": 2.0, "LP": 3.0, "CF": 1.0, "all": 4.0}
    assert ttq.time_to(points[:3], reference)["all"] is None


def test_summary_rows_and_the_table():
    ref_points = [_point(50.0, 0.5, 0.5, 0.5, 10), _point(200.0, 0.5, 0.6, 0.4, 20)]
    fast = [_point(5.0, 0.49, 0.61, 0.45, 5), _point(20.0, 0.3, 0.7, 0.5, 10)]
    pair = {"label": "a+b", "recipes": {"nstjax": [{"points": fast}],
                                        ttq.REFERENCE: [{"points": ref_points}]}}  # fmt: skip
    rows = ttq.summary_rows([pair])
    ours = next(r for r in rows if r["recipe"] == "nstjax")
    assert ours["time_to_all"] == 5.0 and ours["speedup_to_all"] == 200.0 / 5.0
    assert (ours["steps"], ours["seconds"], ours["GE"]) == (10, 20.0, 0.7)
    theirs = next(r for r in rows if r["recipe"] == ttq.REFERENCE)
    assert theirs["time_to_all"] == 200.0 and theirs["speedup_to_all"] == 1.0
    table = ttq.markdown_table(rows).splitlines()
    assert len(table) == 4 and "| 40.00x |" in table[2]
    alone = {"label": "a+b", "recipes": {"nstjax": [{"points": fast}]}}  # no reference run
    (row,) = ttq.markdown_table(ttq.summary_rows([alone])).splitlines()[2:]
    assert row.endswith("| n/a | n/a | n/a | n/a | n/a |") and "never" not in row


def test_nstjax_snapshots_count_the_steps_of_every_scale(tiny_params):
    rng = np.random.default_rng(0)
    content, style = rng.random((24, 24, 3), np.float32), rng.random((24, 24, 3), np.float32)
    layers = {"content_layers": ("conv2_1",), "style_layers": ("conv1_1", "conv2_1")}
    options = Options(steps=4, chunk=2)
    recipe = ttq.Recipe("c2f", ((16, 2), (24, 4)), Run(**layers), options)
    kept = ttq.run_nstjax(tiny_params, content, style, recipe)
    assert [k["step"] for k in kept] == [2, 4, 6]
    assert [k["image"].shape for k in kept] == [(16, 16, 3), (24, 24, 3), (24, 24, 3)]
    assert np.all(np.diff([k["seconds"] for k in kept]) > 0)


def test_every_recipe_pays_its_own_compilation(tiny_params):
    """A recipe run after another with the same programs and shapes still compiles them: its
    time is what a user's first call costs, not a warm cache's (the docs' "whole call")."""
    import jax

    compiles = []

    def listen(event, seconds, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(seconds)

    rng = np.random.default_rng(0)
    content, style = rng.random((24, 24, 3), np.float32), rng.random((24, 24, 3), np.float32)
    layers = {"content_layers": ("conv2_1",), "style_layers": ("conv1_1", "conv2_1")}
    recipe = ttq.Recipe("one", ((24, 2),), Run(**layers), Options(steps=2, chunk=2))
    ttq.run_nstjax(tiny_params, content, style, recipe)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        ttq.run_nstjax(tiny_params, content, style, recipe)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles  # the second run compiled again


def test_the_last_snapshot_is_the_output_at_the_calls_end(tiny_params, monkeypatch):
    """The last snapshot is what the call returned, timed when it returned: work after the last
    step (the final evaluation; here a 1 s sleep) is in the recipe's time."""
    import time

    import nstjax.api

    called = nstjax.api.stylize_batch

    def slow_end(*args, **kwargs):
        results = called(*args, **kwargs)
        time.sleep(1.0)
        return results

    monkeypatch.setattr(nstjax.api, "stylize_batch", slow_end)
    rng = np.random.default_rng(0)
    content, style = rng.random((24, 24, 3), np.float32), rng.random((24, 24, 3), np.float32)
    run = Run(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1"))
    options = Options(steps=4, chunk=2, average_decay=0.5)
    kept = ttq.run_nstjax(tiny_params, content, style, ttq.Recipe("a", ((24, 4),), run, options))
    assert kept[-1]["seconds"] - kept[0]["seconds"] >= 1.0
    (alone,) = called(tiny_params, [content], [style], [run], options)
    np.testing.assert_array_equal(kept[-1]["image"], alone.image)


def test_known_recipes_are_kept_not_run_again():
    """Records of an earlier run (``--known``) stand for their recipes: nothing runs (no params,
    images or weights are touched) and the table names where they came from."""
    earlier = {"points": [_point(200.0, 0.5, 0.6, 0.4, 20)], "from": "earlier.json"}
    settings = ttq.Settings(size=40, recipes=(ttq.REFERENCE,))
    pair = ttq.run_pair(None, "", np.zeros((40, 40, 3)), None, "a+b", settings,
                        {ttq.REFERENCE: [earlier]})  # fmt: skip
    assert pair["recipes"] == {ttq.REFERENCE: [earlier]}
    (row,) = ttq.summary_rows([pair])
    assert f"{ttq.REFERENCE} (from earlier.json)" in ttq.markdown_table([row])
