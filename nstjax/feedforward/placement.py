"""Where training's arrays live: one mesh over every device of every process.

The batch axis is sharded over all devices (``jax.devices()``: this machine's, or with
``jax.distributed`` every process's); everything else (VGG, the networks, their Adam states, the
style targets) is replicated. Each process loads only the rows of a batch that its own devices
hold (:meth:`Placement.rows`) and contributes them with
``jax.make_array_from_process_local_data``; the compiled step reduces the gradients over the
devices. A replicated array is read back from this process's own copy (:func:`local`), so the
host never needs another process's data.
"""

import dataclasses

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


@dataclasses.dataclass(frozen=True)
class Placement:
    """The mesh of a training run and its two shardings.

    Attributes:
        replicated: every device holds the whole array.
        by_batch: the leading (batch) axis split over the devices.
    """

    replicated: NamedSharding
    by_batch: NamedSharding

    @classmethod
    def over_all_devices(cls) -> "Placement":
        mesh = Mesh(np.array(jax.devices()), ("batch",))
        return cls(
            NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("batch"))
        )

    @property
    def is_leader(self) -> bool:
        """Process 0 writes the model folder's files other than the checkpoints."""
        return jax.process_index() == 0

    def rows(self, batch_size: int) -> range:
        """The rows of a ``batch_size`` batch held by this process's devices (contiguous)."""
        indices = self.by_batch.addressable_devices_indices_map((batch_size,)).values()
        starts = [i[0].start or 0 for i in indices]
        stops = [batch_size if i[0].stop is None else i[0].stop for i in indices]
        lo, hi = min(starts), max(stops)
        if hi - lo != sum(b - a for a, b in zip(starts, stops)):
            raise ValueError("this process's devices hold non-contiguous rows of the batch")
        return range(lo, hi)

    def batch(self, rows: np.ndarray, batch_size: int) -> jax.Array:
        """The global batch from this process's ``rows`` (:meth:`rows`) of it."""
        return jax.make_array_from_process_local_data(
            self.by_batch, rows, (batch_size, *rows.shape[1:])
        )

    def replicate(self, tree):
        """``tree`` (the same values on every process) replicated over every device."""

        def put(x):
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, self.replicated, lambda i: host[i])

        return jax.tree.map(put, tree)


def local(tree):
    """This process's copy of replicated arrays (on one of its devices); host arrays as they are."""
    return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)
