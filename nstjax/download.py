"""Downloads that land whole or not at all: streamed to a temporary name, md5-checked, renamed.

Used for the VGG-19 weights (:func:`nstjax.weights.fetch`); tested against a local HTTP server.
"""

import hashlib
import http.client
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from nstjax.atomic import atomic_path
from nstjax.errors import NstjaxError, one_line

_CHUNK = 1 << 20
_TIMEOUT_S = 30.0


def _progress_line(done: int, total: int | None, elapsed: float) -> str:
    rate = done / 1e6 / max(elapsed, 1e-9)
    if total:
        return (
            f"\r{done / 1e6:8.1f}/{total / 1e6:.1f} MB {100 * done / total:5.1f}% {rate:7.1f} MB/s"
        )
    return f"\r{done / 1e6:8.1f} MB {rate:7.1f} MB/s"


def _open(url: str, what: str, hint: str) -> http.client.HTTPResponse:
    try:
        return urllib.request.urlopen(url, timeout=_TIMEOUT_S)
    except (OSError, ValueError) as e:
        raise NstjaxError(f"could not download {what} from {url} ({one_line(e)}). {hint}") from e


def _stream(response: http.client.HTTPResponse, out: Path, url: str, progress: bool) -> str:
    """Copies the response body to ``out``; returns its md5, or raises if it was cut short."""
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    digest, done, start, shown = hashlib.md5(), 0, time.monotonic(), 0.0
    with open(out, "wb") as f:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as e:
                raise NstjaxError(
                    f"download from {url} broke off after {done} bytes ({one_line(e)}); retry"
                ) from e
            if not chunk:
                break
            f.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if progress and time.monotonic() - shown > 0.2:
                shown = time.monotonic()
                print(
                    _progress_line(done, total, shown - start), end="", file=sys.stderr, flush=True
                )
    if progress:
        print(_progress_line(done, total, time.monotonic() - start), file=sys.stderr, flush=True)
    if total is not None and done < total:
        raise NstjaxError(f"download from {url} truncated: received {done} of {total} bytes; retry")
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    expected_md5: str,
    hint: str,
    *,
    progress: bool = True,
    what: str = "a file",
) -> Path:
    """Downloads ``url`` to ``dest`` if its md5 is ``expected_md5``; nothing is left otherwise.

    Args:
        url: where from.
        dest: where to (written under a temporary name, renamed when complete and checked).
        expected_md5: the md5 the file must have.
        hint: appended to errors: what the user can do instead.
        progress: show bytes, percent and MB/s on stderr.
        what: the file's description in errors.

    Returns:
        ``dest``.

    Raises:
        NstjaxError: no network, an HTTP error, a truncated or corrupt download.
    """
    with atomic_path(dest) as tmp:
        with _open(url, what, hint) as response:
            md5 = _stream(response, tmp, url, progress)
        if md5 != expected_md5:
            raise NstjaxError(
                f"download from {url} is corrupt: md5 {md5}, expected {expected_md5}; {hint}"
            )
    return dest
