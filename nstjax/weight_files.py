"""The two VGG-19 weight file formats, read and written strictly (numpy and h5py, no JAX).

- The Keras-layout HDF5 file (:func:`read_h5`): groups ``blockB_convI`` holding
  ``blockB_convI_W_1:0`` (kernel, HWIO) and ``blockB_convI_b_1:0`` (bias).
- The fast-loading ``.npz`` (:func:`write_npz`, :func:`load_npz`): float32 arrays under flat keys
  ``"conv1_1/kernel"`` ... ``"conv5_4/bias"`` and one ``__meta__`` entry, a JSON string with the
  input convention and the source file's md5.

Every layer is checked against :func:`nstjax.architecture.expected_shapes`: a missing, extra or
misshapen layer is an :class:`~nstjax.errors.NstjaxError` naming the file and the layer. Which
file to read, its md5 and the cache live in :mod:`nstjax.weights`.
"""

import json
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np

from nstjax.architecture import expected_shapes
from nstjax.atomic import atomic_path
from nstjax.errors import NstjaxError, one_line

FORMAT = "nstjax.vgg19"
"""The ``format`` field of an ``.npz``'s metadata."""
_META_KEY = "__meta__"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"


def _check_shapes(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Raises NstjaxError unless ``shapes`` has exactly the expected keys and shapes."""
    expected = expected_shapes()
    missing = [k for k in expected if k not in shapes]
    if missing:
        raise NstjaxError(f"{path}: missing layer weight(s) {', '.join(missing)}")
    extra = sorted(k for k in shapes if k not in expected)
    if extra:
        raise NstjaxError(f"{path}: unexpected layer weight(s) {', '.join(extra)}")
    for key, shape in expected.items():
        if tuple(shapes[key]) != shape:
            raise NstjaxError(
                f"{path}: layer {key} has shape {tuple(shapes[key])}, expected {shape}"
            )


def _h5_key(group: str, dataset: str) -> str:
    """Maps the Keras ``blockB_convI/blockB_convI_W_1:0`` layout to ``convB_I/kernel``."""
    layer = group
    if group.startswith("block") and "_conv" in group:
        block, conv = group[len("block") :].split("_conv", 1)
        layer = f"conv{block}_{conv}"
    role = {f"{group}_W_1:0": "kernel", f"{group}_b_1:0": "bias"}.get(dataset, dataset)
    return f"{layer}/{role}"


def _h5_datasets(f: h5py.File) -> dict[str, h5py.Dataset]:
    found: dict[str, h5py.Dataset] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            group, _, dataset = name.rpartition("/")
            found[_h5_key(group, dataset)] = obj

    f.visititems(visit)
    return found


def read_h5(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads the Keras-layout VGG-19 HDF5 file, strictly.

    Args:
        path: the ``.h5`` file.

    Returns:
        float32 arrays under flat keys ``"conv1_1/kernel"`` (HWIO) ... ``"conv5_4/bias"``.

    Raises:
        NstjaxError: the file is unreadable, not HDF5 or truncated, or a layer is missing, extra or
            of the wrong shape (the message names the file and the layer).
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            datasets = _h5_datasets(f)
            _check_shapes(path, {k: d.shape for k, d in datasets.items()})
            return {k: np.asarray(datasets[k][()], dtype=np.float32) for k in expected_shapes()}
    except (OSError, ValueError, KeyError) as e:
        raise NstjaxError(f"{path}: not a readable VGG-19 HDF5 file ({one_line(e)})") from e


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Writes ``arrays`` and the JSON ``meta`` as an ``.npz`` that :func:`load_npz` reads,
    atomically (a reader never sees a partial file).

    Args:
        path: where to write.
        arrays: float32 arrays under flat keys (``"conv1_1/kernel"`` ...).
        meta: JSON-serialisable metadata (``format``, ``preprocess``, ``source_md5``, ...).
    """
    with atomic_path(Path(path)) as tmp:
        np.savez(tmp, **arrays, **{_META_KEY: np.array(json.dumps(meta))})


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Loads an ``.npz`` written by :func:`convert`, strictly.

    Args:
        path: the ``.npz`` file.

    Returns:
        ``(arrays, metadata)``: float32 arrays under flat keys, and the metadata dict (``preprocess``,
        ``source_md5``, ...).

    Raises:
        NstjaxError: unreadable file, no metadata, or a layer missing, extra or of the wrong shape.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            entries = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise NstjaxError(f"{path}: not a readable weights .npz ({one_line(e)})") from e
    if _META_KEY not in entries:
        raise NstjaxError(f"{path}: no {_META_KEY} entry; not written by `nstjax weights convert`")
    try:
        meta = json.loads(str(entries.pop(_META_KEY)))
    except json.JSONDecodeError as e:
        raise NstjaxError(f"{path}: {_META_KEY} is not valid JSON ({one_line(e)})") from e
    _check_shapes(path, {k: v.shape for k, v in entries.items()})
    return {k: v.astype(np.float32, copy=False) for k, v in entries.items()}, meta


def sniff(path: Path) -> str:
    """``"h5"`` or ``"npz"`` from a weights file's first bytes; NstjaxError for anything else."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_HDF5_MAGIC):
        return "h5"
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    raise NstjaxError(f"{path}: neither an HDF5 (.h5) nor an .npz weights file")
