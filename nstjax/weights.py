"""VGG-19 weights: which file, where it comes from, its md5, the cache and the download.

The weights are the Caffe-trained VGG-19 convolutions in the layout Keras distributes (an HDF5 file
with groups ``blockB_convI`` holding ``blockB_convI_W_1:0`` and ``blockB_convI_b_1:0``). They are read
once, checked against :func:`nstjax.architecture.expected_shapes`, and cached as an ``.npz`` with flat
keys (``"conv1_1/kernel"`` ... ``"conv5_4/bias"``) and the input convention that goes with them (the
two file formats, read and written strictly: :mod:`nstjax.weight_files`).

Resolution order of :func:`load_arrays`: an explicit path, then ``$NSTJAX_WEIGHTS``, then the converted
cache in :func:`cache_dir`, then a download (:func:`fetch`) followed by :func:`convert`. An explicit
path or ``$NSTJAX_WEIGHTS`` is read as it is (an ``.h5`` md5-checked and read with h5py, an ``.npz``
loaded) and never touches the cache. Only the last two steps use the cache: a cache entry that does
not load is rebuilt from the downloaded ``.h5`` beside it (md5-checked), or, without one, reported
with the command that rebuilds it (:data:`REBUILD_HINT`).
"""

import functools
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from nstjax import download, weight_files
from nstjax.architecture import LAYER_NAMES
from nstjax.cache import cache_dir
from nstjax.errors import NstjaxError

WEIGHTS_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = (
    f"https://storage.googleapis.com/tensorflow/keras-applications/vgg19/{WEIGHTS_FILENAME}"
)
WEIGHTS_MD5 = "253f8cb515780f3b799900260a226db6"
ENV_WEIGHTS = "NSTJAX_WEIGHTS"
ENV_URL = "NSTJAX_WEIGHTS_URL"
REBUILD_HINT = (
    "rebuild it with `nstjax weights fetch` (or `nstjax weights convert FILE.h5`), "
    f"or set {ENV_WEIGHTS} to a good .h5"
)
"""What an error about a broken cache entry tells the user to run."""

CAFFE_PREPROCESS = {
    "name": "caffe",
    "channel_order": "BGR",
    "scale": 255.0,
    "mean_rgb": [123.68, 116.779, 103.939],
    "std_rgb": [1.0, 1.0, 1.0],
}
"""Input convention of the weights: mean and std in RGB order; conv1_1 expects ``channel_order``."""

_CHUNK = 1 << 20


def md5sum(path: str | os.PathLike) -> str:
    """MD5 hex digest of a file, read in chunks.

    Args:
        path: the file.

    Returns:
        32 lowercase hex digits.
    """
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=16)
def _md5_memo(path: str, size: int, mtime_ns: int) -> str:
    return md5sum(path)


def _md5(path: Path) -> str:
    """md5sum, computed once per process for an unchanged file."""
    st = path.stat()
    return _md5_memo(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _cache_npz(md5: str) -> Path:
    return cache_dir() / f"vgg19-caffe-{md5[:12]}.npz"


def _require_file(path: str | os.PathLike, origin: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise NstjaxError(f"weights file {path} (from {origin}) {problem}")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise NstjaxError(
            f"weights file {path} (from {origin}) cannot be read ({e.strerror})"
        ) from e
    return path


def _verify_md5(path: Path, found: str) -> None:
    if found != WEIGHTS_MD5:
        raise NstjaxError(
            f"{path}: md5 {found} does not match the VGG-19 weights' md5 {WEIGHTS_MD5} "
            "(corrupt or a different file)"
        )


def _h5_meta(h5_path: Path, md5: str) -> dict:
    """The metadata of weights read from an ``.h5`` (stored in the ``.npz`` by :func:`convert`)."""
    return {
        "format": weight_files.FORMAT,
        "preprocess": CAFFE_PREPROCESS,
        "source_md5": md5,
        "source_file": h5_path.name,
    }


def convert(
    h5_path: str | os.PathLike, out_path: str | os.PathLike | None = None, verify_md5: bool = True
) -> Path:
    """Converts the HDF5 weights into the fast-loading ``.npz`` cache, atomically.

    The ``.npz`` (:func:`nstjax.weight_files.write_npz`) holds the arrays under flat keys and the
    metadata: the preprocessing convention (:data:`CAFFE_PREPROCESS`) and the source file's md5.

    Args:
        h5_path: the Keras-layout ``.h5`` file.
        out_path: where to write; default ``cache_dir()/vgg19-caffe-<first 12 hex of md5>.npz``.
        verify_md5: require the file's md5 to be :data:`WEIGHTS_MD5`.

    Returns:
        The path written.

    Raises:
        NstjaxError: missing or unreadable file, md5 mismatch, or layers that do not check out.
    """
    h5_path = _require_file(h5_path, "convert")
    md5 = _md5(h5_path)
    if verify_md5:
        _verify_md5(h5_path, md5)
    arrays = weight_files.read_h5(h5_path)
    out_path = Path(out_path) if out_path is not None else _cache_npz(md5)
    weight_files.write_npz(out_path, arrays, _h5_meta(h5_path, md5))
    return out_path


def _read_given(path: Path) -> tuple[dict[str, np.ndarray], dict, Path | None]:
    """Reads a file the user named, without the cache: an ``.npz``, or an md5-checked ``.h5``;
    returns ``(arrays, metadata, the .npz read or None)``."""
    if weight_files.sniff(path) == "npz":
        return *weight_files.load_npz(path), path
    md5 = _md5(path)
    _verify_md5(path, md5)
    return weight_files.read_h5(path), _h5_meta(path, md5), None


def _load_cache() -> tuple[dict[str, np.ndarray], dict, Path]:
    """Loads the cache entry, (re)building it from the downloaded ``.h5`` when it is missing or
    does not load; returns ``(arrays, metadata, the entry)``."""
    npz, h5 = _cache_npz(WEIGHTS_MD5), cache_dir() / WEIGHTS_FILENAME
    if npz.is_file():
        try:
            return *weight_files.load_npz(npz), npz
        except NstjaxError as e:
            if not h5.is_file():
                raise NstjaxError(f"weights cache {e}; {REBUILD_HINT}") from e
            print(f"nstjax: weights cache {e}; rebuilding it from {h5}", file=sys.stderr)
    try:
        convert(h5, npz)
    except NstjaxError as e:
        raise NstjaxError(f"downloaded weights {e}; {REBUILD_HINT}") from e
    return *weight_files.load_npz(npz), npz


def _resolve(path: str | os.PathLike | None, download: bool) -> tuple[str, Path]:
    """Which step of the resolution order supplies the weights, and its file."""
    if path is not None:
        return "argument", _require_file(path, "argument")
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return f"${ENV_WEIGHTS}", _require_file(env, f"${ENV_WEIGHTS}")
    cached = _cache_npz(WEIGHTS_MD5)
    if cached.is_file():
        return "cache", cached
    if download:
        return "download", fetch()
    downloaded = cache_dir() / WEIGHTS_FILENAME
    if downloaded.is_file():
        return "download", downloaded
    raise NstjaxError(
        f"no VGG-19 weights found: no path given, ${ENV_WEIGHTS} unset, nothing in {cache_dir()}; "
        f"run `nstjax weights fetch` or set {ENV_WEIGHTS} to the .h5 file"
    )


def locate(path: str | os.PathLike | None = None) -> tuple[str, Path]:
    """Which step of the resolution order would supply the weights, without reading or
    downloading anything.

    Args:
        path: an explicit weights file, or None to resolve.

    Returns:
        ``(source, file)``: ``source`` is ``"argument"``, ``"$NSTJAX_WEIGHTS"``, ``"cache"`` (the
        converted ``.npz``) or ``"download"`` (the downloaded ``.h5``, not yet converted).

    Raises:
        NstjaxError: an explicit path or ``$NSTJAX_WEIGHTS`` that is not a file (naming where it
            came from), or no weights present locally.
    """
    return _resolve(path, download=False)


def _load(source: str, found: Path) -> tuple[dict[str, np.ndarray], dict, Path | None]:
    """``(arrays, metadata, the .npz read or None)`` for a step of the resolution order."""
    return _load_cache() if source in ("cache", "download") else _read_given(found)


def load_arrays(path: str | os.PathLike | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Finds, checks and loads the weights.

    Resolution order: ``path``, then ``$NSTJAX_WEIGHTS``, then the converted cache in
    :func:`cache_dir`, then :func:`fetch` and :func:`convert`. A file given by ``path`` or
    ``$NSTJAX_WEIGHTS`` is read directly and the cache is neither read nor written: an ``.h5`` is
    md5-verified and read with h5py, an ``.npz`` from :func:`convert` is loaded. A cache entry that
    does not load is rebuilt from the downloaded ``.h5`` (md5-verified) if there is one.

    Args:
        path: an ``.h5`` or ``.npz`` weights file, or None to resolve.

    Returns:
        ``(arrays, metadata)`` as :func:`nstjax.weight_files.load_npz` returns them.

    Raises:
        NstjaxError: a path that does not exist (naming where it came from), a file that does not
            check out, a cache entry that does not load and cannot be rebuilt (saying which
            command rebuilds it), or a failed download.
    """
    arrays, meta, _ = _load(*_resolve(path, download=True))
    return arrays, meta


def describe(path: str | os.PathLike | None = None) -> dict:
    """Says where the weights come from, without downloading them.

    Args:
        path: as for :func:`load_arrays`.

    Returns:
        A dict with ``source`` (as :func:`locate` says), ``path`` (the file found), ``npz`` (the
        ``.npz`` loaded, or None when an ``.h5`` is read directly), ``md5`` (of the original
        ``.h5``), ``preprocess`` and ``parameters`` (the parameter count).

    Raises:
        NstjaxError: as :func:`load_arrays`, or when no weights are present locally.
    """
    source, found = locate(path)
    arrays, meta, npz = _load(source, found)
    return {
        "source": source,
        "path": str(found),
        "npz": None if npz is None else str(npz),
        "md5": meta.get("source_md5"),
        "preprocess": meta.get("preprocess"),
        "layers": len(LAYER_NAMES),
        "parameters": sum(int(a.size) for a in arrays.values()),
    }


def fetch(
    url: str | None = None,
    dest: str | os.PathLike | None = None,
    expected_md5: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Downloads the weights file, md5-checked, to ``dest`` (atomically).

    Args:
        url: where from; default ``$NSTJAX_WEIGHTS_URL`` or :data:`WEIGHTS_URL`.
        dest: where to; default ``cache_dir()/WEIGHTS_FILENAME``.
        expected_md5: the md5 the file must have; default :data:`WEIGHTS_MD5`.
        progress: show a progress bar (bytes, percent, MB/s) on stderr.
        force: download even when ``dest`` already has the expected md5.

    Returns:
        ``dest``.

    Raises:
        NstjaxError: no network, an HTTP error, a truncated or corrupt download. Nothing is left at
            ``dest`` (beyond what was there before) and no temporary file remains.
    """
    url = url or os.environ.get(ENV_URL) or WEIGHTS_URL
    expected_md5 = expected_md5 or WEIGHTS_MD5
    dest = Path(dest) if dest is not None else cache_dir() / WEIGHTS_FILENAME
    if not force and dest.is_file() and _md5(dest) == expected_md5:
        return dest
    if progress:
        print(f"downloading {url} -> {dest}", file=sys.stderr)
    hint = (
        f"Download {url} by hand and put it at {dest} (md5 {expected_md5}), "
        f"or set {ENV_WEIGHTS} to the path of a copy."
    )
    return download.download(
        url, dest, expected_md5, hint, progress=progress, what="the VGG-19 weights"
    )
