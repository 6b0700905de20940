"""The fields of a sweep config, their defaults, and which of them a sweep axis may vary.

A sweep config is an ``ml_collections.ConfigDict`` returned by ``get_config(arg)`` in a Python
file (see ``configs/``); :func:`default_config` holds every field with its default, and config
files start from it and change a few fields::

    data.content, data.style   lists of image files or folders (folders: their images, by name);
                               default: the example photo and painting shipped with nstjax
    data.pairing               "product" (every content with every style) or "zip" (in order)
    data.size                  longer side of the output, pixels
    data.style_scale           style image's longer side relative to the output's
    data.colors                "style" | "luminance" | "histogram" (see nstjax.color)
    data.style_blend           [] (each content with each style) or one weight per style: one
                               run per content with every style blended into one target
    data.masks                 [] or one mask image per style (white: that style's region),
                               spatial control; implies a blend (equal weights unless given)
    loss.content_weight, loss.style_weight, loss.tv_weight, loss.content_layers,
    loss.style_layers, loss.normalize_gradients
    loss.style_loss            a style loss or a weighted mix, "gram:1,sliced_wasserstein:0.5"
                               (nstjax.style_losses.STYLE_LOSSES)
    optim.optimizer            "adam" | "lbfgs" (fixed step) | "lbfgs_wolfe" | "lbfgs_wolfe_torch" (line search)
    optim.steps, optim.learning_rate (None: the optimiser's default), optim.lbfgs_history
    optim.average_decay        return the moving average of the iterates (0: the last iterate)
    optim.loss_tolerance, optim.grad_tolerance   per-run convergence stops (0: off)
    optim.multiscale           [] or a coarse-to-fine schedule [[size, steps], ...] (growing
                               sizes) that replaces data.size and optim.steps
    optim.upscale_detail       with optim.multiscale: the fraction of the content's detail added
                               when a run moves to the next scale (nstjax.Run.upscale_detail)
    init                       "content" | "noise" | "uniform" | "style" | an image file
    noise_scale                std of init "noise" in grey levels (nstjax.init)
    seed                       seed of the noise initialisation
    preset                     "" or a reference's objective and settings (nstjax.presets):
                               it supplies every field it sets that the config leaves at its
                               default and no axis varies; its per-layer constants follow
                               each run's layers and output size
    model.weights              VGG-19 weights file ("" = $NSTJAX_WEIGHTS, the cache, a download)
    model.pooling, model.dtype, model.remat
    sweep.axes                 field -> list of values, combined as a product
    sweep.zip                  field -> list of values, all lists of one length, varied together
    sweep.contact_sheet.rows, sweep.contact_sheet.cols   the axes of the contact sheet's grid
    sweep.contact_sheet.cell   longer side of each thumbnail, pixels
    sweep.save_every           save snapshots every N steps (0: none)
    sweep.chunk                steps between progress updates
    sweep.run_memory_mb        memory one run needs (0: estimated from the layer shapes)
    sweep.checkpoint_every     save each batch in flight every N steps (0: by time only)
    sweep.checkpoint_minutes   ... and every M minutes (0: by steps only); a resumed sweep
                               continues the batch from its last save (nstjax.sweep.inflight)
    sweep.quality              measure every finished run (nstjax.quality: content fidelity,
                               global effects, ...) into run.json, summary.csv and the report
    sweep.tensorboard          also write TensorBoard logs under DIR/tensorboard (default off:
                               needs the optional tensorboardX package)
    search.*                   a hyperparameter search instead of a grid
                               (nstjax.sweep.search_space)

``data.style_blend``, ``data.masks``, ``optim.multiscale`` and ``optim.upscale_detail`` describe
``nstjax stylize``'s runs (it builds this config from its flags); a sweep refuses them, and runs a
preset's schedule (gatys, crowsonkb) at ``data.size`` alone.

Explicit values: a field fixed by a one-value ``sweep.axes`` entry counts as chosen even when it
equals its default, so a preset never replaces it; this is how ``nstjax stylize`` and
:func:`nstjax.preset_run.make` pass what the user gave (one value: nothing varies, no label
changes).

An axis is named by the field's last part (``style_weight``, ``size``, ...). Besides the fields
below, the axis ``content_style_ratio`` sets ``style_weight = content_weight / ratio`` per run,
which is how Gatys et al. state their grid (alpha / beta).
"""

import ml_collections

PER_RUN_FIELDS: dict[str, str] = {
    "content_weight": "loss.content_weight",
    "style_weight": "loss.style_weight",
    "tv_weight": "loss.tv_weight",
    "content_layers": "loss.content_layers",
    "style_layers": "loss.style_layers",
    "normalize_gradients": "loss.normalize_gradients",
    "style_loss": "loss.style_loss",
    "learning_rate": "optim.learning_rate",
    "loss_tolerance": "optim.loss_tolerance",
    "grad_tolerance": "optim.grad_tolerance",
    "init": "init",
    "noise_scale": "noise_scale",
    "seed": "seed",
    "style_scale": "data.style_scale",
    "colors": "data.colors",
    "upscale_detail": "optim.upscale_detail",
}
"""Axis name -> config path of the fields of :class:`nstjax.api.Run`: traced per run (or, as
``upscale_detail``, applied on the host between scales), so runs that differ only in these share
one compiled program."""

STATIC_FIELDS: dict[str, str] = {
    "size": "data.size",
    "steps": "optim.steps",
    "optimizer": "optim.optimizer",
    "lbfgs_history": "optim.lbfgs_history",
    "average_decay": "optim.average_decay",
    "pooling": "model.pooling",
    "dtype": "model.dtype",
    "remat": "model.remat",
}
"""Axis name -> config path of the fields that change shapes or the compiled program: runs that
differ in them fall into different groups, each compiled once."""

DERIVED_AXES: tuple[str, ...] = ("content_style_ratio",)
"""Axes that are not config fields: ``content_style_ratio`` sets style_weight = content_weight /
ratio."""

AXES: tuple[str, ...] = (*PER_RUN_FIELDS, *STATIC_FIELDS, *DERIVED_AXES)


CHECKPOINT_EVERY = 0
"""Default of ``sweep.checkpoint_every``: no saves by step count (the time rule bounds the loss)."""
CHECKPOINT_MINUTES = 5.0
"""Default of ``sweep.checkpoint_minutes``: a preempted or killed sweep loses at most about five
minutes of a batch; a save costs one write of the batch's state (for L-BFGS with 20 pairs about
45 image-sized arrays per run)."""


def search_defaults() -> ml_collections.ConfigDict:
    """The ``search`` section with its defaults (the one source of them; read by
    :mod:`nstjax.sweep.search_space`)."""
    s = ml_collections.ConfigDict()
    s.trials = 0
    s.generation = 8
    s.sampler = "tpe"
    s.seed = 0
    s.space = ml_collections.ConfigDict()
    s.objective = ml_collections.ConfigDict()
    s.objective.weights = ml_collections.ConfigDict()
    s.objective.bounds = ml_collections.ConfigDict()
    s.prune = ml_collections.ConfigDict()
    s.prune.steps = []
    s.prune.keep = 0.5
    s.prune.measure = ""
    s.storage = ""
    s.study = "search"
    return s


def default_config() -> ml_collections.ConfigDict:
    """Every field of a sweep config with its default: one run of the shipped example pair with
    the package's defaults, read from :class:`nstjax.Run` and :class:`nstjax.Options` (so a sweep
    and ``nstjax stylize`` cannot drift apart).

    Returns:
        An unlocked ConfigDict; config files change fields and return it.
    """
    from nstjax import examples
    from nstjax.run import DEFAULT_SIZE, Options, Run

    run, options = Run(), Options()
    config = ml_collections.ConfigDict()

    config.data = ml_collections.ConfigDict()
    config.data.content = [str(examples.CONTENT)]
    config.data.style = [str(examples.STYLE)]
    config.data.pairing = "product"
    config.data.size = DEFAULT_SIZE
    config.data.style_scale = run.style_scale
    config.data.colors = run.colors
    config.data.style_blend = []  # no blend: every content x style pair
    config.data.masks = []

    config.loss = ml_collections.ConfigDict()
    config.loss.content_weight = run.content_weight
    config.loss.style_weight = run.style_weight
    config.loss.tv_weight = run.tv_weight
    config.loss.content_layers = list(run.content_layers)
    config.loss.style_layers = list(run.style_layers)
    config.loss.normalize_gradients = run.normalize_gradients
    config.loss.style_loss = run.style_loss

    config.optim = ml_collections.ConfigDict()
    config.optim.optimizer = options.optimizer
    config.optim.steps = options.steps
    # None: the optimiser's default (nstjax.run.DEFAULT_LEARNING_RATES: adam 4, lbfgs 1)
    config.optim.learning_rate = run.learning_rate
    config.optim.lbfgs_history = options.lbfgs_history
    config.optim.average_decay = options.average_decay  # 0: each run returns its last iterate
    config.optim.loss_tolerance = run.loss_tolerance  # 0: never stop early
    config.optim.grad_tolerance = run.grad_tolerance
    config.optim.multiscale = []  # one scale: data.size, optim.steps
    # 0: each later scale of a schedule starts from the last one's image, upsampled
    config.optim.upscale_detail = run.upscale_detail

    config.init = run.init
    config.noise_scale = run.noise_scale
    config.seed = run.seed
    config.preset = ""

    config.model = ml_collections.ConfigDict()
    config.model.weights = ""
    config.model.pooling = options.pooling
    config.model.dtype = options.dtype
    config.model.remat = options.remat

    config.sweep = _sweep_defaults(options)
    config.search = search_defaults()  # a search instead of a grid (nstjax.sweep.search_space)
    return config


def _sweep_defaults(options) -> ml_collections.ConfigDict:
    """The ``sweep`` section: how a sweep runs and reports (chunk from ``options``)."""
    s = ml_collections.ConfigDict()
    s.axes = ml_collections.ConfigDict()
    s.zip = ml_collections.ConfigDict()
    s.contact_sheet = ml_collections.ConfigDict()
    s.contact_sheet.rows = ""
    s.contact_sheet.cols = ""
    s.contact_sheet.cell = 128
    s.save_every = 0
    s.chunk = options.chunk
    s.run_memory_mb = 0.0
    s.checkpoint_every = CHECKPOINT_EVERY
    s.checkpoint_minutes = CHECKPOINT_MINUTES
    s.quality = True  # measure every finished run (nstjax.quality) into run.json
    s.tensorboard = False  # TensorBoard logs under DIR/tensorboard (needs tensorboardX)
    return s


def get(config: ml_collections.ConfigDict, path: str):
    """The value at a dotted ``path`` of ``config``."""
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def resolve(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, list[str]]:
    """``config`` on top of :func:`default_config`, and the problems found on the way.

    A field that ``config`` leaves out keeps its default; a field the defaults lack, or a value
    of the wrong type, is a problem. ``sweep.axes`` and ``sweep.zip`` hold axis names, checked by
    :func:`nstjax.sweep.expand.expand`.

    Args:
        config: a config as a config file returns it (overrides applied).

    Returns:
        The complete config (unlocked) and a list of one-line problems (empty when all is well).
    """
    merged = default_config()
    problems: list[str] = []

    def fill(target, source, prefix):
        for key in source.keys():
            name = f"{prefix}{key}"
            value = source[key]
            if key not in target:
                problems.append(f"unknown config field {name!r}")
            elif name in OPEN_GROUPS:
                if isinstance(value, (ml_collections.ConfigDict, dict)):
                    items = {k: _plain(v) for k, v in value.items()}
                    target[key] = ml_collections.ConfigDict(items)
                else:
                    problems.append(f"{name}: expected field -> list of values, got {value!r}")
            elif isinstance(target[key], ml_collections.ConfigDict):
                if isinstance(value, ml_collections.ConfigDict):
                    fill(target[key], value, f"{name}.")
                else:
                    problems.append(f"{name}: a group of fields, got {value!r}")
            else:
                try:
                    target[key] = _plain(value)
                except (TypeError, ValueError):
                    wanted = type(target[key]).__name__
                    problems.append(f"{name}: expected a {wanted}, got {value!r}")

    if all(field in config for field in _BENCH_FIELDS):
        fields = ", ".join(_BENCH_FIELDS)
        return merged, [f"it is a bench config (fields {fields}): run it with 'nstjax bench'"]
    fill(merged, config, "")
    return merged, problems


_BENCH_FIELDS = ("sizes", "batch_sizes", "precisions")
"""Fields that make a config a ``nstjax bench`` config (configs/bench.py)."""


OPEN_GROUPS = (
    "sweep.axes",
    "sweep.zip",
    "search.space",
    "search.objective.weights",
    "search.objective.bounds",
)
"""Groups whose keys are axis names rather than fixed fields."""


def _plain(value):
    """Tuples as lists (JSON has no tuples), recursively."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
