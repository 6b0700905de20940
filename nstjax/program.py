"""What is static about a batch of runs (:class:`Program`): the layers computed, pooling, the
optimiser, dtype, remat, the style losses. Runs that differ in any of it compile separately;
everything else about a run is traced (:mod:`nstjax.engine`)."""

import dataclasses

import jax

from nstjax import averaging, optim, style_mix
from nstjax.architecture import CONTENT_LAYER, LAYER_NAMES, STYLE_LAYERS


@dataclasses.dataclass(frozen=True)
class Program:
    """What is static about a batch: changing any field recompiles.

    Attributes:
        content_layers: layers whose content loss is computed (per-run layer weights select and
            weight them; a weight of 0 switches one off without recompiling).
        style_layers: layers whose style loss is computed, likewise.
        pooling: ``"max"`` or ``"avg"``.
        optimizer: one of :data:`nstjax.optim.OPTIMIZERS` (``"adam"``, ``"lbfgs"``, ``"lbfgs_wolfe"``).
        lbfgs_history: curvature pairs kept by L-BFGS.
        dtype: ``"float32"`` or ``"bfloat16"`` (activations; Grams and losses accumulate in fp32).
        remat: rematerialise VGG blocks in the backward pass (memory for compute).
        guided: style targets are per-region (guided Grams with masks).
        convolution: which kernels run VGG's convolutions and the Gram products
            (:data:`nstjax.kernels.CONVOLUTIONS`), chosen once per call or sweep
            (:func:`nstjax.kernels.choose`); the parameters must be prepared for it
            (:func:`nstjax.vgg.prepare`).
        style_losses: the style losses computed (:data:`nstjax.style_losses.STYLE_LOSSES`, in
            that order); each run weights them (``Hyper.style_loss_weights``), so a weight of 0
            switches one off without recompiling. ``"gram"`` alone is today's program.
        style_loss_layers: for each of ``style_losses``, the layers it is computed at (``()``:
            all of ``style_layers``).
        average_decay: iterate averaging (:mod:`nstjax.averaging`): a run returns the moving
            average of its iterates with this decay; 0: its last iterate.
    """

    content_layers: tuple[str, ...] = (CONTENT_LAYER,)
    style_layers: tuple[str, ...] = STYLE_LAYERS
    pooling: str = "max"
    optimizer: str = "adam"
    lbfgs_history: int = optim.LBFGS_HISTORY
    dtype: str = "float32"
    remat: bool = False
    guided: bool = False
    convolution: str = "xla"
    style_losses: tuple[str, ...] = ("gram",)
    style_loss_layers: tuple[tuple[str, ...], ...] = ()
    average_decay: float = 0.0

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(n for n in LAYER_NAMES if n in self.content_layers or n in self.style_layers)

    def layers_of(self, style_loss: str) -> tuple[str, ...]:
        """The layers ``style_loss`` is computed at."""
        i = self.style_losses.index(style_loss)
        own = self.style_loss_layers[i] if i < len(self.style_loss_layers) else ()
        return own or self.style_layers

    @property
    def style(self) -> style_mix.StyleProgram:
        """The static part of the style losses (:func:`nstjax.style_mix.style_loss`)."""
        layers = tuple(self.layers_of(n) for n in self.style_losses)
        return style_mix.StyleProgram(self.style_losses, layers, self.convolution)

    def make_optimizer(self) -> optim.Optimizer:
        return averaging.averaged(
            optim.make(self.optimizer, self.lbfgs_history), self.average_decay
        )

    def output_pixels(self, pixels: jax.Array, opt_state) -> jax.Array:
        """The images a batch's runs return: their iterates ``pixels``, or their averages (kept
        in the optimiser's state)."""
        return averaging.average(opt_state) if self.average_decay else pixels
