"""nstjax: batched, compiled Gatys-style neural style transfer in JAX."""

from nstjax.api import Result, Run, stylize, stylize_batch

__all__ = ["Result", "Run", "stylize", "stylize_batch"]
__version__ = "0.1.0"
