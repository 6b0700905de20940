"""``import nstjax`` adds its two CPU flags to ``XLA_FLAGS`` (nstjax/xla_flags.py), keeps the
user's own, and adds nothing when told not to; checked in fresh interpreters, as a user meets it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
YNN = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
SCHEDULER = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
PROBE = (
    "import os, json; import nstjax, jax; jax.numpy.zeros(1).block_until_ready(); "
    "print(json.dumps(os.environ.get('XLA_FLAGS')))"
)


def _flags_after_import(**env: str | None) -> str | None:
    environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "NSTJAX_XLA_DEFAULTS")}
    environ.update({k: v for k, v in env.items() if v is not None})
    environ["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_import_adds_both_cpu_flags():
    assert _flags_after_import().split() == [YNN, SCHEDULER]


@pytest.mark.slow
def test_a_users_own_setting_is_kept_and_the_rest_appended():
    mine = "--xla_force_host_platform_device_count=2 --xla_cpu_enable_concurrency_optimized_scheduler=true"
    flags = _flags_after_import(XLA_FLAGS=mine)
    assert flags.split() == [*mine.split(), YNN]


@pytest.mark.parametrize("given", [None, "--xla_force_host_platform_device_count=2"])
@pytest.mark.slow
def test_opting_out_leaves_xla_flags_alone(given):
    assert _flags_after_import(XLA_FLAGS=given, NSTJAX_XLA_DEFAULTS="0") == given


def test_apply_reports_what_it_added(monkeypatch):
    from nstjax import xla_flags

    monkeypatch.delenv(xla_flags.OPT_OUT, raising=False)
    monkeypatch.setenv("XLA_FLAGS", YNN)
    assert xla_flags.apply() == [SCHEDULER]
    assert os.environ["XLA_FLAGS"] == f"{YNN} {SCHEDULER}"
    assert xla_flags.apply() == []  # a second call adds nothing
