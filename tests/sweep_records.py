"""Sweep records and configs shared by the sweep report's tests: a synthetic sweep, TensorBoard
event files read back, a small sweep config."""

import itertools
import math
import struct
from collections import defaultdict

import numpy as np
from PIL import Image

from nstjax.sweep import default_config
from nstjax.sweep.expand import Expansion, SweepRun


def _run(index, style_weight, layers):
    label = f"style_weight={style_weight:g}, style_layers={'+'.join(layers)}"
    coords = {
        "content": "tubingen",
        "style": "wave",
        "style_weight": f"{style_weight:g}",
        "style_layers": "+".join(layers),
    }
    values = {"style_weight": style_weight, "style_layers": layers, "seed": 0}
    return SweepRun(f"{index:04d}", index, label, "x/tubingen.jpg", "x/wave.jpg", values, coords)


QUALITY = {"content_fidelity": True, "global_effects": True, "style_distance": False}


def synthetic(tmp_path, n_done=4, n_runs=6, steps=300, seed=0):
    """A sweep of ``n_runs`` runs of which the first ``n_done`` finished (the last of those
    failed), with images, histories and quality measures."""
    rng = np.random.default_rng(seed)
    grid_ = list(itertools.product([0.5, 30.0, 1000.0], [["conv1_1"], ["conv1_1", "conv2_1"]]))
    runs = [_run(i, w, layers) for i, (w, layers) in enumerate(grid_[:n_runs])]
    expansion = Expansion(
        runs,
        {
            "content": ["tubingen"],
            "style": ["wave"],
            "style_weight": ["0.5", "30", "1000"],
            "style_layers": ["conv1_1", "conv1_1+conv2_1"],
        },
        ["style_weight", "style_layers"],
    )
    records = {}
    for run in runs[:n_done]:
        folder = tmp_path / "runs" / run.id
        folder.mkdir(parents=True)
        pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "image.png")
        history = {
            t: list(10 ** rng.uniform(-2, 3) * np.exp(-np.arange(steps) / 50.0))
            for t in ("loss", "content", "style", "tv")
        }
        records[run.id] = {
            "status": "failed" if run.index == n_done - 1 else "done",
            "final": {t: v[-1] for t, v in history.items()},
            "history": history,
            "quality": {m: float(rng.random()) for m in QUALITY},
            "wall_s": 1.25,
        }
    return expansion, records


def read_events(folder):
    """Every event of every event file in ``folder``: TFRecords are a little-endian uint64
    length, its CRC, the payload and the payload's CRC."""
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack_from("<Q", data, at)
            payload = data[at + 12 : at + 12 + length]
            events.append(event_pb2.Event.FromString(payload))
            at += 12 + length + 4
    return events


def logged(folder):
    """scalars: tag -> {step: value}; images: tag -> PNG bytes; hparams: name -> value."""
    from tensorboardX.proto import plugin_hparams_pb2

    scalars, images, hparams = defaultdict(dict), {}, {}
    for event in read_events(folder):
        for value in event.summary.value:
            if value.HasField("image"):
                images[value.tag] = value.image.encoded_image_string
            elif value.tag == "_hparams_/session_start_info":
                data = plugin_hparams_pb2.HParamsPluginData.FromString(
                    value.metadata.plugin_data.content
                )
                for name, v in data.session_start_info.hparams.items():
                    hparams[name] = getattr(v, v.WhichOneof("kind"))
            elif value.WhichOneof("value") == "simple_value":
                scalars[value.tag][event.step] = value.simple_value
    return scalars, images, hparams


def f32(value):
    return math.nan if value is None else float(np.float32(value))


STEPS = 3


def small_config(images_dir):
    config = default_config()
    config.data.content = [str(images_dir / "tubingen.jpg")]
    config.data.style = [str(images_dir / "starry_night.jpg"), str(images_dir / "great_wave.jpg")]
    config.data.size = 16
    config.loss.content_layers = ["conv2_1"]
    config.loss.style_layers = ["conv1_1", "conv2_1"]
    config.loss.tv_weight = 1e-3
    config.optim.steps = STEPS
    config.optim.learning_rate = 2.0
    config.sweep.axes.style_weight = [10.0, 1000.0]
    config.sweep.chunk = 2
    return config
