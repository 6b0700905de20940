"""Search the style weight, the TV weight and the style layers' weights for one pair at 64 px.

    nstjax sweep --config configs/search_style.py --workdir runs/search_style
    nstjax sweep --config configs/search_style.py:quick --workdir /tmp/search   # CI-sized

A grid over seven settings is out of reach (three values each is 2,187 runs); a search samples
them instead. TPE proposes 8 trials per generation, each generation one compiled batch of 8
runs; at steps 50 and 100 each generation is halved on the objective, the worse runs stopped
alone. The objective is Wang et al.'s content fidelity plus global effects plus local patterns
(each in [0, 1], higher is better: nstjax.quality), the three measured on the final image. The
trials and their measures are in ``runs/search_style/search/trials.json``; the best trial's
parameters are printed at the end and its image is ``search/trials/NNNNN.png``.
"""

from nstjax import examples
from nstjax.sweep import default_config

STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def get_config(arg=None):
    config = default_config()
    config.data.content = [str(examples.CONTENT)]
    config.data.style = [str(examples.STYLES[1])]  # The Great Wave
    config.data.size = 64
    config.optim.steps = 200
    config.loss.style_layers = STYLE_LAYERS

    search = config.search
    search.trials = 32
    search.generation = 8
    search.sampler = "tpe"
    search.space.style_weight = [1.0, 1e4, "log"]  # beta; alpha (content_weight) stays 1
    search.space.tv_weight = [1e-3, 10.0, "log"]
    search.space.style_layers = {name: [0.01, 1.0, "log"] for name in STYLE_LAYERS}
    search.objective.weights.content_fidelity = 1.0
    search.objective.weights.global_effects = 1.0
    search.objective.weights.local_patterns = 1.0
    search.prune.steps = [50, 100]
    search.prune.keep = 0.5

    if arg == "quick":
        config.data.size = 48  # the measures need 24 px a side: the style is 26x48
        config.optim.steps = 6
        config.sweep.chunk = 3
        search.trials = 4
        search.generation = 2
        search.prune.steps = [3]
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (variants: quick)")
    return config
