"""A search's history as the sweep report shows it: the objective of each trial, best so far.

A search over settings records its trials in ``DIR/trials.json`` (written atomically, rewritten
as trials finish); the report (``report.html``) draws it when the file is there::

    {
      "objective": "content_fidelity",        the name of what is optimised
      "direction": "maximize",                "maximize" or "minimize"
      "trials": [
        {"trial": 0, "objective": 0.61, "params": {"style_weight": 30.0}, "run": "0000"},
        {"trial": 1, "objective": null, "params": {"style_weight": 1e4}},
        ...
      ]
    }

``objective`` is ``null`` for a trial without a value (failed, pruned or still running);
``run`` (optional) is the id of the run folder the trial wrote, linking it to the runs' table.

A search run by :mod:`nstjax.sweep.search` keeps its own ``DIR/search/trials.json``: a list of
``{trial, state, objective, params, feasible, ...}`` whose score is maximised; :func:`read` takes
it when there is no ``DIR/trials.json``, counting the objective of the complete, feasible trials
(the ones its best so far counts) and no value for the others.
"""

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nstjax.errors import NstjaxError
from nstjax.sweep.workdir import SEARCH

TRIALS = "trials.json"
"""The history's file in the workdir."""
SEARCH_TRIALS = (SEARCH, "trials.json")
"""Where :mod:`nstjax.sweep.search` writes its trials, under the workdir."""

DIRECTIONS = ("maximize", "minimize")


@dataclasses.dataclass(frozen=True)
class Trial:
    """One trial of a search.

    Attributes:
        trial: its number.
        objective: its objective value, ``None`` if it has none.
        params: the settings it tried.
        run: the run folder it wrote, if any.
    """

    trial: int
    objective: float | None
    params: dict[str, Any]
    run: str | None = None


@dataclasses.dataclass(frozen=True)
class SearchHistory:
    """A search's trials and what they optimise.

    Attributes:
        objective: the objective's name.
        direction: ``"maximize"`` or ``"minimize"``.
        trials: in the order they were numbered.
    """

    objective: str
    direction: str
    trials: list[Trial]

    def best_so_far(self) -> list[float | None]:
        """For each trial, the best objective among it and the trials before it (``None``
        until a trial has a value)."""
        return best_so_far([t.objective for t in self.trials], self.direction)


def best_so_far(objectives: Sequence[float | None], direction: str) -> list[float | None]:
    """The running best of ``objectives`` (``None`` and non-finite values skipped).

    Args:
        objectives: in trial order.
        direction: ``"maximize"`` or ``"minimize"``.

    Returns:
        One entry per objective: the best finite value up to and including it, or ``None``.
    """
    better = (lambda a, b: a > b) if direction == "maximize" else (lambda a, b: a < b)
    best, out = None, []
    for value in objectives:
        if value is not None and math.isfinite(value) and (best is None or better(value, best)):
            best = value
        out.append(best)
    return out


def from_dict(data: dict[str, Any], where: str = TRIALS) -> SearchHistory:
    """A :class:`SearchHistory` from the JSON form documented above.

    Raises:
        NstjaxError: a field is missing or of the wrong kind (naming ``where``).
    """
    try:
        direction = data["direction"]
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        trials = [
            Trial(
                trial=int(t["trial"]),
                objective=None if t.get("objective") is None else float(t["objective"]),
                params=dict(t.get("params") or {}),
                run=None if t.get("run") is None else str(t["run"]),
            )
            for t in data["trials"]
        ]
        return SearchHistory(str(data["objective"]), direction, trials)
    except (KeyError, TypeError, ValueError) as e:
        raise NstjaxError(f"{where}: not a search history ({type(e).__name__}: {e})") from e


def from_search_list(entries: list[dict[str, Any]], where: str) -> SearchHistory:
    """A :class:`SearchHistory` from :mod:`nstjax.sweep.search`'s list of trials (its score,
    maximised; only complete, feasible trials count).

    Raises:
        NstjaxError: an entry lacks a field.
    """
    counted = lambda e: e.get("state") == "complete" and e.get("feasible", True)
    data = {
        "objective": "score",
        "direction": "maximize",
        "trials": [{**e, "objective": e.get("objective") if counted(e) else None} for e in entries],
    }
    return from_dict(data, where)


def read(workdir: str | Path) -> SearchHistory | None:
    """The search history of ``workdir``: its ``trials.json``, else a search's
    ``search/trials.json``; ``None`` when there is neither.

    Raises:
        NstjaxError: the file exists but is not a search history.
    """
    for path in (Path(workdir) / TRIALS, Path(workdir).joinpath(*SEARCH_TRIALS)):
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        try:
            data = json.loads(text)
        except ValueError as e:
            raise NstjaxError(f"{path}: not JSON ({e})") from e
        if isinstance(data, list):
            return from_search_list(data, str(path))
        return from_dict(data, str(path))
    return None
