"""Many hosts, one sweep: ``jax.distributed`` from flags or the environment, and each process's share.

(``nstjax train`` joins its processes the same way: :func:`add_options`, :func:`resolve`,
:func:`initialize`; its processes then share every training step, see
:mod:`nstjax.feedforward.placement`.)

Every host runs the same command. With a coordinator address, a process count and this process's
index (``--coordinator HOST:PORT --num-processes N --process-id I``, or the environment variables
``NSTJAX_COORDINATOR``, ``NSTJAX_NUM_PROCESSES``, ``NSTJAX_PROCESS_ID``), the processes join with
:func:`jax.distributed.initialize`. Each then computes its own share of the global run list on its
local devices; no collective runs during the sweep, only two small agreements (the workdir is
ready; process 0 broadcasts whether it could prepare it).

Only process 0 prepares the workdir and takes its lock (:meth:`nstjax.sweep.workdir.Workdir.lock`).
The others coordinate through :meth:`Cluster.agree`: they write nothing into the workdir until
process 0 says it is prepared, and stop when it could not prepare it (for instance because
another sweep holds the lock). Process 0's lock therefore guards every process of the sweep.
"""

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np

from nstjax.errors import NstjaxError

ENV_COORDINATOR = "NSTJAX_COORDINATOR"
ENV_NUM_PROCESSES = "NSTJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "NSTJAX_PROCESS_ID"

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands among the processes of a sweep.

    Attributes:
        process_id: this process's index, 0 .. ``num_processes - 1``.
        num_processes: processes sharing the sweep.
    """

    process_id: int = 0
    num_processes: int = 1

    @property
    def is_leader(self) -> bool:
        """Process 0 prepares the workdir and writes the manifest and the reports."""
        return self.process_id == 0

    def agree(self, ok: bool) -> bool:
        """Waits for every process and returns process 0's ``ok`` to all of them.

        The sweep uses it once, after process 0 has prepared and locked the workdir: the other
        processes start writing into it only when this returns True.

        Args:
            ok: on process 0, whether it succeeded at what the others wait for.

        Returns:
            Process 0's ``ok``.
        """
        if self.num_processes == 1:
            return ok
        from jax.experimental import multihost_utils

        return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


def add_options(parser, what: str) -> None:
    """Adds ``--coordinator``, ``--num-processes`` and ``--process-id`` (see :func:`resolve`)
    to an argparse parser; ``what`` names the job in the help (``"sweep"``, ``"run"``)."""
    parser.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (multi-host)")
    parser.add_argument("--num-processes", type=int, default=None, help=f"processes in the {what}")
    parser.add_argument("--process-id", type=int, default=None, help="this process's index")


def _int(value, name: str, problems: list[str]) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        problems.append(f"{name} must be an integer, got {value!r}")
        return None


def resolve(
    coordinator: str | None,
    num_processes: int | str | None,
    process_id: int | str | None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[str, int, int] | None:
    """The coordinator, process count and index from flags, else the environment.

    Args:
        coordinator: ``HOST:PORT`` of process 0's coordinator, or ``None``.
        num_processes: the number of processes, or ``None``.
        process_id: this process's index, or ``None``.
        environ: where ``NSTJAX_COORDINATOR`` etc. are looked up when a flag is ``None``.

    Returns:
        ``(coordinator, num_processes, process_id)``, or ``None`` for a single process.

    Raises:
        NstjaxError: some but not all of the three are given, or they are inconsistent (every
            problem listed).
    """
    problems: list[str] = []
    coordinator = coordinator or environ.get(ENV_COORDINATOR) or None
    count = _int(
        num_processes if num_processes is not None else environ.get(ENV_NUM_PROCESSES),
        f"--num-processes / {ENV_NUM_PROCESSES}",
        problems,
    )
    index = _int(
        process_id if process_id is not None else environ.get(ENV_PROCESS_ID),
        f"--process-id / {ENV_PROCESS_ID}",
        problems,
    )
    if problems:
        raise NstjaxError("; ".join(problems))
    if coordinator is None and count in (None, 1) and index in (None, 0):
        return None
    if coordinator is None:
        problems.append(
            f"--coordinator (or {ENV_COORDINATOR}) HOST:PORT is needed with several processes"
        )
    elif ":" not in coordinator:
        problems.append(f"--coordinator must be HOST:PORT, got {coordinator!r}")
    if count is None:
        problems.append(f"--num-processes (or {ENV_NUM_PROCESSES}) is needed with --coordinator")
    elif count < 1:
        problems.append(f"--num-processes must be >= 1, got {count}")
    if index is None:
        problems.append(f"--process-id (or {ENV_PROCESS_ID}) is needed with --coordinator")
    elif count is not None and not 0 <= index < max(count, 1):
        problems.append(f"--process-id must be in 0..{count - 1}, got {index}")
    if problems:
        raise NstjaxError("; ".join(problems))
    return coordinator, count, index


def initialize(
    spec: tuple[str, int, int] | None, timeout_s: int = 300, shutdown_timeout_s: int = 300
) -> Cluster:
    """Joins the processes of a sweep (:func:`jax.distributed.initialize`); call before JAX runs.

    Args:
        spec: from :func:`resolve`; ``None`` is a single process and does nothing.
        timeout_s: how long to wait for the other processes to join.
        shutdown_timeout_s: how long a process that finished its share may wait at exit for the
            others (JAX's shutdown barrier); make it cover the slowest process's remaining work.

    Returns:
        This process's :class:`Cluster`.
    """
    if spec is None:
        return Cluster()
    coordinator, count, index = spec
    import jax

    try:  # CPU processes agree through gloo; it is the default in recent JAX, set it if not
        if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:
        pass
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=count,
            process_id=index,
            initialization_timeout=timeout_s,
            shutdown_timeout_seconds=shutdown_timeout_s,
        )
    except Exception as e:  # the runtime's errors are long; keep the first line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NstjaxError(
            f"could not join {count} processes at {coordinator} as process {index}: {first}"
        ) from e
    return Cluster(process_id=jax.process_index(), num_processes=jax.process_count())


def share(items: Sequence[T], process_id: int, num_processes: int) -> list[T]:
    """This process's contiguous share of ``items``: shares differ in size by at most one.

    Args:
        items: the global list (the same on every process).
        process_id: this process's index.
        num_processes: the number of processes.

    Returns:
        ``items[start:stop]`` for this process; the shares of all processes partition ``items``.
    """
    n = len(items)
    start = process_id * n // num_processes
    stop = (process_id + 1) * n // num_processes
    return list(items[start:stop])


def local_mesh():
    """A 1-D mesh with axis ``"runs"`` over this process's devices, or ``None`` for one device."""
    import jax
    from jax.sharding import Mesh

    devices = jax.local_devices()
    if len(devices) < 2:
        return None
    return Mesh(np.array(devices), ("runs",))
