"""The ownership of a search's trials: a trial names its owner before its parameters are sampled,
so a process killed while sampling leaves a trial that a later process recovers."""

import os
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from nstjax.sweep import search_study

DISTRIBUTIONS = {"style_weight": optuna.distributions.FloatDistribution(1.0, 10.0)}


class _Killed(Exception):
    pass


class _DiesWhileSampling(optuna.samplers.RandomSampler):
    """Stands for a process killed by ``kill -9`` inside TPE's sampling."""

    def sample_independent(self, *args, **kwargs):
        raise _Killed


def _study(tmp_path, sampler=None) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=storage, study_name="s", sampler=sampler)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout)


def test_a_trial_names_its_owner_before_it_is_sampled(tmp_path):
    study = _study(tmp_path, _DiesWhileSampling())
    with pytest.raises(_Killed):
        search_study._ask_owned(study, DISTRIBUTIONS)
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.state == TrialState.RUNNING and trial.params == {}
    assert trial.user_attrs[search_study.OWNER]["pid"] == os.getpid()


def test_the_trial_of_a_process_killed_while_sampling_is_failed_and_retried(tmp_path):
    study = _study(tmp_path, _DiesWhileSampling())
    with pytest.raises(_Killed):
        search_study._ask_owned(study, DISTRIBUTIONS)
    (trial,) = study.get_trials(deepcopy=False)
    owner = {**trial.user_attrs[search_study.OWNER], "pid": _dead_pid()}
    study._storage.set_trial_user_attr(trial._trial_id, search_study.OWNER, owner)

    study.sampler = optuna.samplers.RandomSampler(seed=0)
    assert search_study.recover_orphans(study) == [trial.number]
    retry = search_study._ask_owned(study, DISTRIBUTIONS)
    first, second = study.get_trials(deepcopy=False)
    assert first.state == TrialState.FAIL and second.number == retry.number
    assert second.user_attrs[search_study.RETRY_OF] == trial.number
    assert second.user_attrs[search_study.OWNER]["pid"] == os.getpid()
    assert 1.0 <= retry.params["style_weight"] <= 10.0


def test_asked_trials_carry_the_sampled_parameters(tmp_path):
    study = _study(tmp_path, optuna.samplers.RandomSampler(seed=3))
    trial = search_study._ask_owned(study, DISTRIBUTIONS)
    stored = study.get_trials(deepcopy=False)[0]
    assert stored.params == trial.params and set(trial.params) == {"style_weight"}
    assert stored.distributions == DISTRIBUTIONS and stored.state == TrialState.RUNNING


def test_a_retry_popped_by_a_process_killed_before_it_wrote_its_owner_is_retried(
    tmp_path, monkeypatch
):
    """Popping a waiting retry and writing its owner are two storage writes; killed between
    them, a process leaves a RUNNING trial with no owner and no heartbeat, which would never
    be recovered and would hold a place in the budget forever. After the grace period it is an
    orphan, and its retry carries the parameters it was enqueued with (it never sampled any)."""
    import time

    study = _study(tmp_path, optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"style_weight": 7.0})
    popped = study._pop_waiting_trial_id()  # ... and then the process died
    (trial,) = study.get_trials(deepcopy=False)
    assert trial._trial_id == popped and trial.state == TrialState.RUNNING
    assert search_study.recover_orphans(study) == []  # within the grace period: left alone
    monkeypatch.setattr(search_study, "GRACE_S", 0.05)
    time.sleep(0.1)
    assert search_study.recover_orphans(study) == [trial.number]
    retry = search_study._ask_owned(study, DISTRIBUTIONS)
    assert retry.params == {"style_weight": 7.0}
    first, second = study.get_trials(deepcopy=False)
    assert first.state == TrialState.FAIL
    assert second.user_attrs[search_study.RETRY_OF] == trial.number
