"""Batch planning (groups, memory estimate, batch sizes) and the division among processes."""

import pytest

from nstjax.batch import memory, plan
from nstjax.errors import NstjaxError
from nstjax.sweep import default_config, distributed, prepare
from nstjax.sweep.expand import options_of


def test_groups_split_by_shape_and_static_fields(images_dir):
    config = default_config()
    # tubingen is 4:3 and chelsea 3:2: two shapes at one size
    config.data.content = [
        str(images_dir / "tubingen.jpg"),
        str(images_dir / "skimage_chelsea.png"),
    ]
    config.data.style = [str(images_dir / "starry_night.jpg")]
    config.data.size = 32
    config.sweep.axes.size = [32, 48]
    config.sweep.axes.optimizer = ["adam", "lbfgs"]
    config.sweep.axes.style_weight = [1.0, 10.0, 100.0]  # traced: no new group
    sweep = prepare(config)
    groups = plan.group(sweep.items(), lambda i: options_of(i.key.values), "xla")
    assert len(sweep.runs) == 2 * 2 * 2 * 3
    assert len(groups) == 2 * 2 * 2  # shapes x sizes x optimizers
    assert all(len(g.items) == 3 for g in groups)
    shapes = {g.shape for g in groups}
    assert shapes == {(24, 32), (36, 48), (21, 32), (32, 48)}
    for g in groups:
        assert {i.key.values["optimizer"] for i in g.items} == {g.options.optimizer}
        assert g.program.optimizer == g.options.optimizer


def test_memory_estimate_matches_the_measured_footprint():
    """docs/performance.md: about 0.85 GB per 512x512 fp32 image (VGG to conv5_1, Adam)."""
    fp32 = memory.run_bytes((512, 512), "conv5_1")
    assert 0.75e9 < fp32 < 1.0e9
    assert memory.run_bytes((512, 512), "conv5_1", dtype="bfloat16") < 0.6 * fp32
    assert memory.run_bytes((512, 512), "conv5_1", remat=True) < 0.5 * fp32
    assert memory.run_bytes((512, 512), "conv5_1", optimizer="lbfgs", lbfgs_history=20) > fp32
    # to conv2_1: conv1_1, conv1_2 at 512^2 x 64 and conv2_1 at 256^2 x 128, three copies of
    # fp32 each; plus pixels, gradient and Adam's two moments at 512^2 x 3 fp32
    by_hand = 3 * 4 * (2 * 512 * 512 * 64 + 256 * 256 * 128) + 4 * 512 * 512 * 3 * 4
    assert memory.run_bytes((512, 512), "conv2_1") == by_hand
    assert memory.run_bytes((1024, 1024), "conv5_1") == pytest.approx(4 * fp32, rel=0.01)


@pytest.mark.parametrize(
    ("n_runs", "per_run", "budget", "devices", "requested", "expected"),
    [
        (25, 100, 1000, 1, None, 10),  # memory-bound
        (5, 100, 1000, 1, None, 5),  # no bigger than the runs
        (25, 100, 1000, 4, None, 28),  # 7 runs per device... capped at 25 -> 28 (7 x 4)
        (100, 100, 1000, 4, None, 40),  # 10 per device
        (25, 5000, 1000, 1, None, 1),  # at least one per device
        (25, 5000, 1000, 4, None, 4),
        (25, 100, 1000, 1, 3, 3),  # asked for
        (25, 100, 1000, 4, 3, 4),  # rounded up to the devices
        (2, 100, 1000, 4, 16, 4),  # no bigger than needed
    ],
)
def test_batch_size(n_runs, per_run, budget, devices, requested, expected):
    assert plan.batch_size(n_runs, per_run, budget, devices, requested) == expected


def test_batches_cut_in_order_and_pad_with_the_last_run():
    from nstjax.run import Options, Run

    items = [plan.Item(Run(seed=i), (16, 16), i) for i in range(7)]
    (group,) = plan.group(items, lambda _: Options(), "xla")
    batches = plan.cut(group, group.items, 3)
    assert [[i.key for i in b.items] for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [r.seed for r in batches[-1].runs] == [6, 6, 6]


def test_a_size_that_cannot_fit_is_refused_with_the_estimate():
    """docs/performance.md's 0.85 GB per 512 px image scales with the pixels: 100000 px needs
    about 0.85 GB x (100000 / 512)^2 x 0.75 (4:3) ~ 24 TB."""
    from nstjax.run import Options, Run

    items = [plan.Item(Run(), (75000, 100000), 0)]
    with pytest.raises(NstjaxError, match=r"needs about \d+\.\d GB per run.*--remat.*--multiscale"):
        plan.plan(items, Options(), "xla", budget_bytes=16e9)
    assert plan.plan([plan.Item(Run(), (64, 64), 0)], Options(), "xla", budget_bytes=16e9)


@pytest.mark.parametrize("processes", [1, 2, 3, 4])
def test_shares_partition_the_runs(processes):
    for n in range(0, 12):
        items = list(range(n))
        shares = [distributed.share(items, p, processes) for p in range(processes)]
        assert sum(shares, []) == items
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_cluster_from_flags_and_environment():
    assert distributed.resolve(None, None, None, {}) is None
    assert distributed.resolve("h:1", 2, 1, {}) == ("h:1", 2, 1)
    env = {
        "NSTJAX_COORDINATOR": "10.0.0.1:99",
        "NSTJAX_NUM_PROCESSES": "4",
        "NSTJAX_PROCESS_ID": "3",
    }
    assert distributed.resolve(None, None, None, env) == ("10.0.0.1:99", 4, 3)
    assert distributed.resolve(None, None, 0, env) == ("10.0.0.1:99", 4, 0)  # flags win
    with pytest.raises(NstjaxError) as info:
        distributed.resolve("nohost", None, None, {})
    assert "HOST:PORT" in str(info.value) and "--num-processes" in str(info.value)
    assert "--process-id" in str(info.value)
    with pytest.raises(NstjaxError, match=r"0\.\.1, got 2"):
        distributed.resolve("h:1", 2, 2, {})


def test_accelerator_estimate_is_within_20_percent_of_the_compilers():
    """XLA's memory analysis of the real step compiled for an H100 (scripts/
    compile_for_accelerators.py, docs/benchmarks/compiled/h100.json): per-run bytes fitted from
    batches 1 and 2 of each case; the planner's estimate must be within 20% of each."""
    import json
    from pathlib import Path

    record = Path(__file__).resolve().parents[1] / "docs/benchmarks/compiled/h100.json"
    fits = [f for f in json.loads(record.read_text())["fits"] if f.get("per_run_bytes")]
    assert len(fits) >= 5
    for f in fits:
        shape = (f["size"], f["size"])
        estimate = memory.run_bytes(
            shape, "conv5_1", dtype=f["dtype"], optimizer=f["optimizer"], remat=f["remat"],
            platform="gpu",
        )  # fmt: skip
        assert abs(estimate / f["per_run_bytes"] - 1) < 0.2, (f, estimate)
