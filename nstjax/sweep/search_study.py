"""A search's Optuna study: its storage, sampler, trial budget, and the trials of dead processes.

The study lives in an Optuna storage (an SQLite file in the workdir by default, or any RDB URL
shared by several processes and hosts). A trial is asked, run, and told; what happens when a
process dies between the ask and the tell:

- every trial a process asks carries its owner (host and PID) as a user attribute, and the
  process records an Optuna heartbeat for it every :data:`HEARTBEAT_S` seconds;
- a process starting or beginning a generation looks for *orphans*: running trials whose owner
  is a dead process on this host, or whose heartbeat is older than :data:`GRACE_S` (another
  host), or that name no owner after :data:`GRACE_S` (a retry popped by a process killed
  before it wrote its owner). It marks each FAIL (one process wins that transition) and
  enqueues a retry with the same parameters, which the next ask takes first. The FAIL trial
  stays in the storage as a record and does not count towards ``search.trials``; its retry
  does.

The budget: a trial *counts* unless it is a FAIL without a ``failure`` attribute (an orphan,
or a surplus trial, below). A process asks while fewer than ``search.trials`` trials count or
retries wait. Two processes asking at once may overshoot; a trial whose rank among the counting
trials (by number) is past the budget is told FAIL, marked ``surplus``, without running.
"""

import contextlib
import datetime
import os
import socket
import threading
import warnings
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from nstjax.errors import NstjaxError
from nstjax.sweep.search_space import SearchSpec

HEARTBEAT_S = 10
"""Seconds between the heartbeats of a process's running trials."""
GRACE_S = 120
"""A running trial whose heartbeat is older than this is an orphan (its process is gone)."""
OWNER = "owner"
FAILURE = "failure"
"""User attribute of a trial told FAIL because its run failed (non-finite): it counts."""
SURPLUS = "surplus"
RETRY_OF = "retry_of"


def storage_url(spec: SearchSpec, folder: Path) -> str:
    """The study's storage URL: ``search.storage`` or the workdir's SQLite file."""
    return spec.storage or f"sqlite:///{folder / 'search.db'}"


def make_sampler(spec: SearchSpec, start: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler. Its seed mixes ``search.seed`` with this process's PID and the
    ``start`` trials the study held when it began, so that processes sharing a study, and a
    study resumed, do not propose the same parameters again (QMC uses the trial number and
    needs no mixing)."""
    mixed = np.random.SeedSequence([spec.seed, os.getpid(), start])
    seed = int(mixed.generate_state(1)[0])
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with quiet():
        if spec.sampler == "qmc":
            return optuna.samplers.QMCSampler(seed=spec.seed, warn_independent_sampling=False)
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            constant_liar=True,  # a generation's trials are asked together: spread them out
            n_startup_trials=spec.generation,  # the first generation is random
        )


@contextlib.contextmanager
def quiet():
    """Silences Optuna's notes on features used as designed here: heartbeats with ask/tell
    (experimental, and "supposed to be used with Study.optimize"), multivariate TPE."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        yield


def open_study(spec: SearchSpec, folder: Path) -> optuna.Study:
    """Creates or loads the study (direction: maximise the score).

    Raises:
        NstjaxError: the storage cannot be opened.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url(spec, folder)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with quiet():
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=kwargs,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=_retry,
            )
        study = optuna.create_study(
            storage=storage, study_name=spec.study, direction="maximize", load_if_exists=True
        )
        study.sampler = make_sampler(spec, len(study.get_trials(deepcopy=False)))
        return study
    except Exception as e:  # sqlalchemy's errors, a bad URL, a missing driver
        raise NstjaxError(f"search.storage {url!r}: cannot open ({e})") from e


def _retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Enqueues a FAILed orphan's parameters again: those it was sampled, or, for a retry
    killed before it sampled them, those it was enqueued with."""
    params = trial.params or trial.system_attrs.get("fixed_params", {})
    study.enqueue_trial(params, user_attrs={RETRY_OF: trial.number})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _orphaned(trial: optuna.trial.FrozenTrial, host: str) -> bool:
    """Whether a running trial's process is gone: its owner a dead process on this host, or no
    owner at all after :data:`GRACE_S` (a retry popped by a process killed before it wrote its
    owner and first heartbeat, a moment later; no heartbeat will ever make it stale)."""
    owner = trial.user_attrs.get(OWNER)
    if not owner:
        start = trial.datetime_start
        return start is not None and (datetime.datetime.now() - start).total_seconds() > GRACE_S
    return (
        owner.get("host") == host and owner.get("pid") != os.getpid() and not _alive(owner["pid"])
    )


def recover_orphans(study: optuna.Study) -> list[int]:
    """Fails and re-enqueues the running trials of dead processes (see the module docstring).

    Returns:
        The numbers of the trials this process failed.
    """
    storage, host, failed = study._storage, socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _orphaned(trial, host):
            continue
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                failed.append(trial.number)
                _retry(study, trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another process got there first
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    optuna.storages.fail_stale_trials(study)  # other hosts' trials, by heartbeat
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    return failed + sorted(after - before - set(failed))


def counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` counts towards ``search.trials``."""
    return trial.state != TrialState.FAIL or FAILURE in trial.user_attrs


def counted(study: optuna.Study) -> int:
    """Trials that count towards the budget (waiting retries included)."""
    return sum(counts(t) for t in study.get_trials(deepcopy=False))


def kept(study: optuna.Study, budget: int, in_flight: int, folder) -> str:
    """What an interrupted search leaves for a rerun, as one line: the trials told so far (the
    study and the runs stay in ``folder``) and those in flight, which a rerun retries (their
    process is gone: :func:`recover_orphans`)."""
    told = sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) or FAILURE in t.user_attrs
        for t in study.get_trials(deepcopy=False)
    )
    line = f"search: {told} of {budget} trial(s) told, kept in {folder}"
    if in_flight:
        line += f"; the {in_flight} in flight run again"
    return line + "; rerun the same command to go on"


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _ask_owned(study: optuna.Study, distributions: dict) -> optuna.Trial:
    """``study.ask(distributions)`` with the trial's owner written before its parameters are
    sampled: a new trial is created RUNNING with the owner in the same storage write, a waiting
    one (a retry) gets it right after it is popped. ``Study.ask`` creates the trial first and
    samples afterwards (TPE takes a while), so a process killed in between would leave a RUNNING
    trial that names no owner, which no later process could recover."""
    storage = study._storage
    study._thread_local.cached_all_trials = None  # as Study.ask: read the storage afresh
    trial_id = study._pop_waiting_trial_id()  # Study.ask's own first step
    if trial_id is None:
        owned = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={OWNER: _owner()})
        trial_id = storage.create_new_trial(study._study_id, template_trial=owned)
    else:
        storage.set_trial_user_attr(trial_id, OWNER, _owner())
    storage.record_heartbeat(trial_id)
    trial = optuna.Trial(study, trial_id)
    for name, distribution in distributions.items():  # as Study.ask(fixed_distributions)
        trial._suggest(name, distribution)
    return trial


def ask_generation(study: optuna.Study, spec: SearchSpec) -> list[optuna.Trial]:
    """Asks up to ``spec.generation`` trials within the budget (retries first).

    Returns:
        The trials to run (empty when the budget is spent).
    """
    distributions = {r.name: r.distribution() for r in spec.ranges}
    asked: list[optuna.Trial] = []
    while len(asked) < spec.generation:
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if not waiting and sum(map(counts, trials)) >= spec.trials:
            break
        trial = _ask_owned(study, distributions)
        trials = study.get_trials(deepcopy=False)
        rank = sum(counts(t) for t in trials if t.number < trial.number)
        if rank >= spec.trials:
            trial.set_user_attr(SURPLUS, True)
            study.tell(trial, state=TrialState.FAIL)
            break
        asked.append(trial)
    return asked


class Heartbeat:
    """Records Optuna heartbeats for this process's running trials from a daemon thread."""

    def __init__(self, study: optuna.Study):
        self.storage, self.trial_ids = study._storage, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)
        self.thread.start()

    def watch(self, trials) -> None:
        """Beats for ``trials`` from now on (in place of the earlier ones)."""
        self.trial_ids = [t._trial_id for t in trials]

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            for trial_id in list(self.trial_ids):
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:  # a locked database: the next beat tries again
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
