"""Feed-forward style transfer (Johnson et al. 2016): transformation networks trained on the
package's perceptual losses, K networks (styles or settings) in one compiled training step.

- :func:`train` (:mod:`.training`) trains from a :class:`TrainConfig` into a model folder;
- :func:`load_model` and :func:`apply` (:mod:`.inference`) stylise images with it.
"""

from nstjax.feedforward.config import NetworkConfig, TrainConfig
from nstjax.feedforward.inference import Model, apply, load_model
from nstjax.feedforward.network import TransformerNet, count_params
from nstjax.feedforward.training import TrainResult, train

__all__ = [
    "Model",
    "NetworkConfig",
    "TrainConfig",
    "TrainResult",
    "TransformerNet",
    "apply",
    "count_params",
    "load_model",
    "train",
]
