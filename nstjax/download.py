"""Downloads that land whole or not at all: fetched by pooch to a temporary name, md5-checked,
renamed.

pooch's :class:`pooch.HTTPDownloader` streams the file (``requests``: HTTP errors, redirects,
proxies, and a body shorter than its ``Content-Length`` all raise) and :func:`pooch.file_hash`
checks it; :func:`nstjax.atomic.atomic_path` gives the temporary name and the rename. Used for the
VGG-19 weights (:func:`nstjax.weights.fetch`); tested against a local HTTP server.
"""

import sys
import time
from pathlib import Path

import pooch
import requests

from nstjax.atomic import atomic_path
from nstjax.errors import NstjaxError, one_line

_CHUNK = 1 << 20
_TIMEOUT_S = 30.0


class _Progress:
    """pooch's progress-bar protocol (``total``, ``update``, ``reset``, ``close``): megabytes,
    percent and MB/s on stderr, at most five times a second."""

    def __init__(self):
        self.total, self.done = 0, 0  # pooch sets total
        self.start = self.shown = time.monotonic()

    def _line(self) -> str:
        rate = self.done / 1e6 / max(time.monotonic() - self.start, 1e-9)
        if self.total:
            percent = 100 * min(self.done, self.total) / self.total
            return f"\r{self.done / 1e6:8.1f}/{self.total / 1e6:.1f} MB {percent:5.1f}% {rate:7.1f} MB/s"
        return f"\r{self.done / 1e6:8.1f} MB {rate:7.1f} MB/s"

    def update(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self.shown > 0.2:
            self.shown = time.monotonic()
            print(self._line(), end="", file=sys.stderr, flush=True)

    def reset(self) -> None:
        self.done = 0

    def close(self) -> None:
        print(self._line(), file=sys.stderr, flush=True)


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
    bar = _Progress() if progress else False
    fetch = pooch.HTTPDownloader(progressbar=bar, chunk_size=_CHUNK, timeout=_TIMEOUT_S)
    with atomic_path(dest) as tmp:
        try:
            fetch(url, str(tmp), None)
        except requests.exceptions.ChunkedEncodingError as e:  # after the headers
            raise NstjaxError(f"download from {url} broke off ({one_line(e)}); retry") from e
        except (requests.RequestException, OSError, ValueError) as e:
            raise NstjaxError(
                f"could not download {what} from {url} ({one_line(e)}). {hint}"
            ) from e
        md5 = pooch.file_hash(str(tmp), alg="md5")
        if md5 != expected_md5:
            raise NstjaxError(
                f"download from {url} is corrupt: md5 {md5}, expected {expected_md5}; {hint}"
            )
    return dest
