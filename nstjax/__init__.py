"""nstjax: batched, compiled Gatys-style neural style transfer in JAX."""

from nstjax import xla_flags

xla_flags.apply()  # before anything starts a JAX backend (nstjax/xla_flags.py says why)

from nstjax.api import Observer, Result, stylize, stylize_batch  # noqa: E402
from nstjax.run import Options, Run  # noqa: E402

__all__ = ["Observer", "Options", "Result", "Run", "stylize", "stylize_batch"]
__version__ = "0.1.0"
