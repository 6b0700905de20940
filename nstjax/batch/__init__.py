"""The one road from runs to a compiled batch: :mod:`~nstjax.batch.plan` groups and cuts runs
into batches that fit, :mod:`~nstjax.batch.build` turns a batch into the engine's arrays, and
:mod:`~nstjax.batch.memory` estimates what a run needs."""

from nstjax.batch import build, memory, plan
from nstjax.batch.build import Built
from nstjax.batch.plan import Batch, Group, Item

__all__ = ["Batch", "Built", "Group", "Item", "build", "memory", "plan"]
