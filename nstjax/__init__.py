"""nstjax: batched, compiled Gatys-style neural style transfer in JAX."""

from nstjax import xla_flags

xla_flags.apply_defaults()  # before anything starts a JAX backend

from nstjax.api import Result, Run, stylize, stylize_batch  # noqa: E402

__all__ = ["Result", "Run", "stylize", "stylize_batch"]
__version__ = "0.1.0"
