"""A hyperparameter search: Optuna proposes, each generation of trials runs as one compiled batch.

Every searched field is traced per run (:class:`nstjax.Run`), so every generation is the same
compiled program (the same batch size, the same layers: the program computes every layer a
searched weight may switch on) and never recompiles. Within a generation, the runs are
measured at ``search.prune.steps`` (successive halving): all but the best ``search.prune.keep``
of those not yet pruned stop alone, the others carry on. At the end the quality measures of the
final images give each trial's score, told to the study with the measures as user attributes.

Layout, under the sweep's workdir::

    DIR/config.json               the resolved config (a different sweep is refused)
    DIR/search/search.db          the study (SQLite; or ``search.storage``'s database)
    DIR/search/trials.json        every trial of the study: a list of {trial, state, objective,
                                  params, measures, step, intermediate, feasible, best_so_far,
                                  image, retry_of}
    DIR/search/importances.json   parameter -> importance for the objective (Optuna's PED-ANOVA)
    DIR/search/trials/NNNNN.png   each trial's final image, or a pruned trial's image where it
                                  stopped (the trials this process ran)

Resuming, several processes, and trials of processes that died: :mod:`nstjax.sweep.search_study`.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from nstjax import atomic, execute, kernels, vgg
from nstjax.architecture import LAYER_NAMES
from nstjax.batch import plan
from nstjax.image import save_image
from nstjax.progress import ProgressDisplay
from nstjax.sweep import distributed, search_study
from nstjax.sweep.expand import options_of as expand_options_of
from nstjax.sweep.search_report import write_search_report
from nstjax.sweep.search_space import SearchSpec
from nstjax.sweep.spec import Sweep
from nstjax.sweep.workdir import SEARCH, Workdir, to_json

Scorer = Callable[[np.ndarray, np.ndarray, Sequence[np.ndarray], Sequence[str]], dict]
"""``scorer(outputs, contents, styles, names) -> {name: [N]}``: quality measures of ``N``
outputs ``[N, H, W, 3]`` in [0, 1] against their content images and style images."""
TRIALS_JSON = "trials.json"
IMPORTANCES_JSON = "importances.json"


def quality_scorer(params, convolution: str = "xla") -> Scorer:
    """The package's quality measures (:func:`nstjax.quality.measure`) as a :data:`Scorer`
    (``params`` prepared for ``convolution``, :func:`nstjax.vgg.prepare`)."""
    from nstjax import quality

    def scorer(outputs, contents, styles, names):
        values = quality.measure(
            params, outputs, contents, styles, names=list(names), convolution=convolution
        )
        return {name: np.asarray(values[name], np.float64) for name in names}

    return scorer


@dataclasses.dataclass
class SearchOutcome:
    """What :func:`run_search` did.

    Attributes:
        computed: numbers of the trials this process ran.
        retried: numbers of the orphaned trials this process failed and enqueued again.
        counted: trials counting towards ``search.trials`` when this process finished.
        best: the best feasible finished trial's entry of ``trials.json`` (None: none yet).
        generations: generations this process ran.
    """

    computed: list[int]
    retried: list[int]
    counted: int
    best: dict[str, Any] | None
    generations: int


class _Generation(execute.Observer):
    """One generation's trials: measured and halved at the pruning steps."""

    def __init__(self, search: SearchSpec, trials, measure: Callable[[np.ndarray], list[dict]]):
        self.search, self.trials, self.measure = search, trials, measure
        self.pruned: dict[int, tuple[int, dict]] = {}  # index -> (step, measures there)

    def chunk_done(self, batch, steps, metrics, images):
        if steps not in self.search.prune_steps:
            return None
        rows = self.measure(images())
        alive = [i for i in range(len(self.trials)) if i not in self.pruned]
        ranks = {}
        for i in alive:
            self.trials[i].report(_finite_or(self.search.score(rows[i])), steps)
            ranks[i] = _finite_or(self.search.ranked(rows[i]))
        keep = max(1, math.ceil(self.search.keep * len(alive)))
        order = sorted(alive, key=lambda i: -ranks[i])
        for i in order[keep:]:
            self.pruned[i] = (steps, rows[i])
        stop = np.zeros(len(self.trials), bool)
        stop[list(self.pruned)] = True
        return stop


def _finite_or(value: float, default: float = -math.inf) -> float:
    return value if math.isfinite(value) else default


def run_values(base: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's run values: ``base`` (a sweep run's values) with the sampled ``params``.

    A layer or loss weight replaces that entry of the base mapping (a base list of layers is
    read as equal weights summing to 1), adding it when the base lacks it.
    """
    from nstjax.run import layer_weight_vector

    values = dict(base)
    for name, value in params.items():
        field, _, entry = name.partition(".")
        if not entry:
            values[field] = int(value) if field == "seed" else float(value)
            continue
        if field == "style_loss":
            from nstjax.style_mix import parse_style_loss

            mapping = dict(parse_style_loss(values[field]))
        elif isinstance(values[field], Mapping):
            mapping = dict(values[field])
        else:
            vector = layer_weight_vector(values[field], field)
            mapping = {n: float(w) for n, w in zip(LAYER_NAMES, vector) if w > 0}
        mapping[entry] = float(value)
        values[field] = mapping
    return values


def _trial_runs(sweep: Sweep, search: SearchSpec):
    """The base item of the search and a function from a trial's params to its run."""
    (base,) = sweep.items()
    fields = {r.name.partition(".")[0] for r in search.ranges}

    def run_of(params: Mapping[str, Any]):
        values = run_values({f: getattr(base.run, f) for f in fields}, params)
        return dataclasses.replace(base.run, **values)

    return base, run_of


def _group(sweep: Sweep, search: SearchSpec, base, run_of, convolution: str) -> plan.Group:
    """The one group every generation runs in: its program computes every layer and loss a
    searched weight may switch on (each range at its high end), so it never changes."""
    chunk = math.gcd(sweep.config.sweep.chunk, *search.prune_steps)
    options = expand_options_of(base.key.values, chunk)
    envelope = run_of({r.name: r.high for r in search.ranges})
    (group,) = plan.group([plan.Item(envelope, base.shape, None)], lambda _: options, convolution)
    return group


def run_search(
    sweep: Sweep,
    workdir: str,
    params,
    *,
    scorer: Scorer | None = None,
    overwrite: bool = False,
    mesh: Any = "auto",
    log: Callable[[str], None] = print,
    stream=None,
) -> SearchOutcome:
    """Runs generations of trials until the study holds ``sweep.search.trials`` counting trials.

    Args:
        sweep: from :func:`nstjax.sweep.prepare` (one image pair, no axes) with a ``search``
            section (``sweep.search``).
        workdir: this process's folder (two processes sharing a study use two folders).
        params: VGG parameters (:func:`nstjax.vgg.load_params`).
        scorer: the measures (default: :func:`quality_scorer`).
        overwrite: replace a different sweep found in ``workdir``.
        mesh: a mesh with axis ``"runs"``; ``"auto"``: every local device; ``None``: one device.
        log: where one-line messages go.
        stream: where the progress bar draws (stderr).

    Returns:
        A :class:`SearchOutcome`.

    Raises:
        NstjaxError: the workdir holds a different sweep, or the storage cannot be opened.
    """
    work = Workdir(workdir)
    work.prepare(sweep.record(), overwrite)
    folder = work.path / SEARCH
    folder.mkdir(exist_ok=True)
    study = search_study.open_study(sweep.search, folder)
    runner = _Runner(sweep, sweep.search, params, scorer, mesh, folder, stream)
    outcome = SearchOutcome([], [], 0, None, 0)
    _run_generations(study, runner, outcome, work, log)
    history = write_history(study, folder)
    write_search_report(work, history, write_importances(study, folder))
    outcome.counted = search_study.counted(study)
    outcome.best = best_trial(history)
    return outcome


def _run_generations(study, runner: "_Runner", outcome: SearchOutcome, work: Workdir, log) -> None:
    """Asks the study for generations of trials and runs them until it has enough, adding to
    ``outcome`` and rewriting the history and the report after each."""
    heartbeat, in_flight = search_study.Heartbeat(study), []
    try:
        while True:
            with search_study.quiet():
                outcome.retried += search_study.recover_orphans(study)
                trials = search_study.ask_generation(study, runner.search)
            if not trials:
                break
            heartbeat.watch(trials)
            in_flight = trials
            runner.run(trials)
            in_flight = []
            heartbeat.watch([])
            outcome.computed += [t.number for t in trials]
            outcome.generations += 1
            history = write_history(study, runner.folder)
            write_search_report(work, history, None)
            log(_generation_line(outcome.generations, trials, history))
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: say what a rerun goes on from
        e.add_note(search_study.kept(study, runner.search.trials, len(in_flight), work.path))
        raise
    finally:
        heartbeat.close()


class _Runner:
    """What every generation shares: the one group (program), batch size, prepared parameters,
    images and measure."""

    def __init__(self, sweep, search, params, scorer, mesh, folder, stream):
        if isinstance(mesh, str):
            mesh = distributed.local_mesh()
        devices = mesh.size if mesh is not None else 1
        convolution = kernels.choose(devices)
        self.base, self.run_of = _trial_runs(sweep, search)
        self.group = _group(sweep, search, self.base, self.run_of, convolution)
        self.size = -(-search.generation // devices) * devices
        self.params = vgg.prepare(params, convolution)
        scorer = scorer or quality_scorer(self.params, convolution)
        content = sweep.inputs.content_at(*self.base.run.content)
        self.contents = {self.base.run.content: content}
        self.measure = _measurer(scorer, search, content, sweep, self.base, self.size)
        self.sweep, self.search, self.mesh, self.folder, self.stream = (
            sweep, search, mesh, folder, stream
        )  # fmt: skip

    def run(self, trials) -> None:
        """Runs one generation's ``trials`` as one batch and tells the study their outcomes."""
        items = [plan.Item(self.run_of(t.params), self.base.shape, t) for t in trials]
        batch = plan.Batch(dataclasses.replace(self.group, items=items), items, self.size)
        _run_generation(
            self.params, batch, self.contents, self.sweep, self.mesh, self.measure, self.search,
            self.folder, self.stream,
        )  # fmt: skip


def _measurer(scorer: Scorer, search: SearchSpec, content, sweep: Sweep, base, size: int):
    """``measure(images [n, H, W, 3]) -> [{measure: value}] * n``, always called on ``size``
    rows (padded with the last image), so a compiled measure compiles once."""
    from nstjax.quality.of_results import reference_style

    # the sweeps' protocol (Result.quality): the style at the output's long side
    style = reference_style(sweep.inputs.images[base.run.style], content.shape)
    contents = np.repeat(content[None], size, axis=0)
    styles = [style] * size

    def measure(images: np.ndarray) -> list[dict[str, float]]:
        n = len(images)
        padded = np.concatenate([images, np.repeat(images[-1:], size - n, axis=0)])
        values = scorer(padded, contents, styles, search.measures)
        return [{m: float(values[m][i]) for m in search.measures} for i in range(n)]

    return measure


def _run_generation(params, batch, contents, sweep, mesh, measure, search, folder, stream):
    """Runs one generation's batch, saves its images and tells the study its trials."""
    trials = [item.key for item in batch.items]
    generation = _Generation(search, trials, measure)
    display = ProgressDisplay(plan.image_steps([batch]), "search", stream=stream)
    try:
        observer = execute.Observers(generation, display)
        results = execute.run_prepared(
            params, [batch], contents, sweep.inputs.images, mesh=mesh, observer=observer
        )
    finally:
        display.close()
    finals = measure(np.stack([r.image for r in results]))
    for i, (trial, result) in enumerate(zip(trials, results)):
        save_image(folder / "trials" / f"{trial.number:05d}.png", result.image, "trial image")
        _tell(trial, search, result, finals[i], generation.pruned.get(i))


def _tell(trial: optuna.Trial, search: SearchSpec, result, measures, pruned) -> None:
    study = trial.study
    if pruned is not None:
        step, measures = pruned
        trial.set_user_attr("pruned_at", step)
    trial.set_user_attr("measures", measures)
    constraints = search.constraints(measures)
    trial.set_user_attr("constraints", constraints)
    for name, value in constraints.items():  # TPE models them; a NaN measure is infeasible
        trial.set_constraint(name, value if math.isfinite(value) else 1.0)
    score = search.score(measures)
    if result.failed_at is not None and pruned is None:
        trial.set_user_attr(search_study.FAILURE, f"non-finite loss at step {result.failed_at}")
        study.tell(trial, state=TrialState.FAIL)
    elif not math.isfinite(score):
        trial.set_user_attr(search_study.FAILURE, "non-finite measure")
        study.tell(trial, state=TrialState.FAIL)
    elif pruned is not None:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, score)


def _entry(trial: optuna.trial.FrozenTrial, folder: Path) -> dict[str, Any]:
    attrs = trial.user_attrs
    image = folder / "trials" / f"{trial.number:05d}.png"
    constraints = (attrs.get("constraints") or {}).values()
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "objective": trial.value,
        "params": trial.params,
        "measures": attrs.get("measures"),
        "step": attrs.get("pruned_at"),
        "intermediate": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
        "feasible": all(c is not None and c <= 0 for c in constraints),
        "image": f"trials/{image.name}" if image.exists() else None,
        "retry_of": attrs.get(search_study.RETRY_OF),
        "failure": attrs.get(search_study.FAILURE),
        "surplus": bool(attrs.get(search_study.SURPLUS, False)),
    }


def write_history(study: optuna.Study, folder: Path) -> list[dict[str, Any]]:
    """Writes ``trials.json``: every trial of the study by number, with the best feasible
    objective among the complete trials up to it (``best_so_far``)."""
    history, best = [], None
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        entry = _entry(trial, folder)
        if entry["state"] == "complete" and entry["feasible"]:
            best = entry["objective"] if best is None else max(best, entry["objective"])
        history.append({**entry, "best_so_far": best})
    atomic.write_text(folder / TRIALS_JSON, to_json(history))
    return history


def write_importances(study: optuna.Study, folder: Path) -> dict[str, float] | None:
    """Writes ``importances.json``: each parameter's importance for the objective over the
    complete trials (Optuna's PED-ANOVA, its default evaluator); None (nothing written) under two
    such trials."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return None
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # e.g. every complete trial has the same objective
        return None
    importances = {name: float(v) for name, v in importances.items()}
    atomic.write_text(folder / IMPORTANCES_JSON, to_json(importances))
    return importances


def best_trial(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The complete feasible trial of highest objective (None: none)."""
    done = [e for e in history if e["state"] == "complete" and e["feasible"]]
    return max(done, key=lambda e: e["objective"]) if done else None


def _generation_line(generation: int, trials, history) -> str:
    best = best_trial(history)
    numbers = [t.number for t in trials]
    shown = f"best {best['objective']:.4g} (trial {best['trial']})" if best else "no best yet"
    return f"search: generation {generation}: trials {min(numbers)}-{max(numbers)} told; {shown}"
