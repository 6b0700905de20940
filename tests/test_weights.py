"""Tests of nstjax.weights and `nstjax weights`: strict reading, the cache, resolution, download."""

import hashlib
import http.server
import os
import socket
import struct
import threading
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import pytest

from nstjax import weight_files, weights
from nstjax.architecture import LAYERS
from nstjax.cli import main
from nstjax.errors import NstjaxError

VGG19_CONV_PARAMETERS = 20_024_384  # Simonyan & Zisserman's 16 conv layers, 3x3 kernels + biases


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Every test caches under its own tmp dir, talks to 127.0.0.1 directly, uses no mirror."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(weights.ENV_URL, raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def real_arrays(real_h5) -> dict[str, np.ndarray]:
    return weight_files.read_h5(real_h5)


@pytest.fixture(scope="session")
def real_npz(real_h5, tmp_path_factory) -> Path:
    return weights.convert(real_h5, tmp_path_factory.mktemp("npz") / "vgg19.npz")


def _keras_group(name: str) -> str:
    block, conv = name[len("conv") :].split("_")
    return f"block{block}_conv{conv}"


def make_fake_h5(path: Path, drop=(), extra=(), shapes=None, data=False) -> Path:
    """A Keras-layout file with all-zero (unwritten, so tiny) datasets, optionally altered.

    Args:
        path: where to write.
        drop: layer names (``"conv5_4"``) left out.
        extra: Keras group names added with a kernel and bias.
        shapes: ``{"conv1_1/kernel": shape}`` overrides.
        data: write ones into conv1_1's kernel, so that the file holds real data.
    """
    shapes = shapes or {}
    with h5py.File(path, "w") as f:
        for name, cin, cout in LAYERS:
            if name in drop:
                continue
            group = _keras_group(name)
            g = f.create_group(group)
            g.create_dataset(
                f"{group}_W_1:0", shapes.get(f"{name}/kernel", (3, 3, cin, cout)), "float32"
            )
            g.create_dataset(f"{group}_b_1:0", shapes.get(f"{name}/bias", (cout,)), "float32")
        for group in extra:
            g = f.create_group(group)
            g.create_dataset(f"{group}_W_1:0", (3, 3, 512, 512), "float32")
            g.create_dataset(f"{group}_b_1:0", (512,), "float32")
        f.create_group("block1_pool")  # weightless layers are present in the real file too
        if data:
            f["block1_conv1/block1_conv1_W_1:0"][...] = 1.0
    return path


# --- the real file ---------------------------------------------------------------------------


@pytest.mark.weights
def test_read_h5_real_file_has_all_vgg19_conv_parameters(real_arrays):
    assert sum(a.size for a in real_arrays.values()) == VGG19_CONV_PARAMETERS
    expected_keys = {
        f"conv{b}_{i}/{r}"
        for b, n in zip(range(1, 6), (2, 2, 4, 4, 4))
        for i in range(1, n + 1)
        for r in ("kernel", "bias")
    }
    assert set(real_arrays) == expected_keys
    assert all(a.dtype == np.float32 for a in real_arrays.values())
    assert real_arrays["conv4_2/kernel"].shape == (3, 3, 512, 512)


@pytest.mark.weights
def test_read_h5_conv1_1_kernel_is_the_keras_dataset(real_h5, real_arrays):
    with h5py.File(real_h5, "r") as f:
        kernel = f["block1_conv1/block1_conv1_W_1:0"][()]
        bias = f["block5_conv4/block5_conv4_b_1:0"][()]
    np.testing.assert_array_equal(real_arrays["conv1_1/kernel"], kernel)
    np.testing.assert_array_equal(real_arrays["conv5_4/bias"], bias)


@pytest.mark.weights
def test_md5sum_of_real_file_is_the_published_hash(real_h5):
    assert weights.md5sum(real_h5) == "253f8cb515780f3b799900260a226db6" == weights.WEIGHTS_MD5


@pytest.mark.weights
def test_convert_then_load_npz_round_trips(real_npz, real_arrays):
    arrays, meta = weight_files.load_npz(real_npz)
    assert set(arrays) == set(real_arrays)
    for key, value in real_arrays.items():
        np.testing.assert_array_equal(arrays[key], value)
    assert meta["preprocess"] == weights.CAFFE_PREPROCESS
    assert meta["source_md5"] == weights.WEIGHTS_MD5


@pytest.mark.weights
def test_real_h5_is_read_directly_without_the_cache(real_h5, real_arrays, tmp_path):
    arrays, meta = weights.load_arrays(real_h5)
    np.testing.assert_array_equal(arrays["conv3_4/kernel"], real_arrays["conv3_4/kernel"])
    assert meta["source_md5"] == weights.WEIGHTS_MD5
    assert not (tmp_path / "xdg").exists()


@pytest.mark.weights
def test_load_arrays_from_env_var_npz(real_npz, monkeypatch):
    monkeypatch.setenv("NSTJAX_WEIGHTS", str(real_npz))
    arrays, meta = weights.load_arrays()
    assert sum(a.size for a in arrays.values()) == VGG19_CONV_PARAMETERS
    assert meta["preprocess"]["channel_order"] == "BGR"
    assert weights.describe()["source"] == "$NSTJAX_WEIGHTS"


@pytest.mark.weights
def test_cli_weights_info_real(real_npz, capsys):
    assert main(["weights", "info", "--path", str(real_npz)]) == 0
    out = capsys.readouterr().out
    assert "20,024,384" in out and weights.WEIGHTS_MD5 in out and "BGR" in out


# --- cache location ---------------------------------------------------------------------------


def test_cache_dir_respects_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert weights.cache_dir() == tmp_path / "c" / "nstjax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "nstjax"


def test_md5sum_matches_hashlib_across_chunks(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)
    (tmp_path / "f").write_bytes(data)
    assert weights.md5sum(tmp_path / "f") == hashlib.md5(data).hexdigest()


# --- strict checks on fake files ---------------------------------------------------------------


def test_fake_complete_h5_reads_as_zeros(tmp_path):
    arrays = weight_files.read_h5(make_fake_h5(tmp_path / "w.h5"))
    assert sum(a.size for a in arrays.values()) == VGG19_CONV_PARAMETERS
    assert not any(a.any() for a in arrays.values())


def test_read_h5_missing_layer_names_file_and_layer(tmp_path):
    path = make_fake_h5(tmp_path / "w.h5", drop=("conv5_4",))
    with pytest.raises(NstjaxError, match="conv5_4/kernel") as e:
        weight_files.read_h5(path)
    assert str(path) in str(e.value) and "missing" in str(e.value)


def test_read_h5_extra_layer_names_file_and_layer(tmp_path):
    path = make_fake_h5(tmp_path / "w.h5", extra=("block6_conv1",))
    with pytest.raises(NstjaxError, match="conv6_1/kernel") as e:
        weight_files.read_h5(path)
    assert str(path) in str(e.value) and "unexpected" in str(e.value)


def test_read_h5_wrong_shape_names_layer_and_both_shapes(tmp_path):
    path = make_fake_h5(tmp_path / "w.h5", shapes={"conv2_1/kernel": (3, 3, 64, 100)})
    with pytest.raises(NstjaxError) as e:
        weight_files.read_h5(path)
    message = str(e.value)
    assert str(path) in message and "conv2_1/kernel" in message
    assert "(3, 3, 64, 100)" in message and "(3, 3, 64, 128)" in message


@pytest.mark.parametrize("kind", ["truncated", "text", "empty"])
def test_read_h5_unreadable_file_is_one_line_error(tmp_path, kind):
    path = tmp_path / "w.h5"
    if kind == "truncated":
        full = make_fake_h5(tmp_path / "full.h5", data=True).read_bytes()
        path.write_bytes(full[: len(full) // 2])
    else:
        path.write_text("not hdf5\n" if kind == "text" else "")
    with pytest.raises(NstjaxError) as e:
        weight_files.read_h5(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_convert_rejects_wrong_md5_naming_both_hashes(tmp_path):
    path = make_fake_h5(tmp_path / "w.h5")
    with pytest.raises(NstjaxError) as e:
        weights.convert(path)
    message = str(e.value)
    assert str(path) in message
    assert weights.WEIGHTS_MD5 in message and weights.md5sum(path) in message
    assert not (tmp_path / "xdg").exists()


def test_convert_no_verify_default_path_and_metadata(tmp_path):
    path = make_fake_h5(tmp_path / "w.h5", data=True)
    md5 = weights.md5sum(path)
    out = weights.convert(path, verify_md5=False)
    assert out == tmp_path / "xdg" / "nstjax" / f"vgg19-caffe-{md5[:12]}.npz"
    arrays, meta = weight_files.load_npz(out)
    assert meta["source_md5"] == md5 and meta["preprocess"] == weights.CAFFE_PREPROCESS
    assert (arrays["conv1_1/kernel"] == 1).all() and not arrays["conv1_2/kernel"].any()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left


def test_load_arrays_refuses_non_canonical_h5(tmp_path):
    path = make_fake_h5(tmp_path / "w.h5")
    with pytest.raises(NstjaxError, match=weights.WEIGHTS_MD5):
        weights.load_arrays(path)


def test_load_npz_strict_on_foreign_npz(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros(3))
    with pytest.raises(NstjaxError, match="__meta__"):
        weight_files.load_npz(tmp_path / "a.npz")
    (tmp_path / "b.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(NstjaxError, match="b.npz"):
        weight_files.load_npz(tmp_path / "b.npz")


def test_load_npz_strict_on_missing_layer(tmp_path):
    out = weights.convert(make_fake_h5(tmp_path / "w.h5"), tmp_path / "w.npz", verify_md5=False)
    with np.load(out) as npz:
        entries = {k: npz[k] for k in npz.files if k != "conv3_2/bias"}
    np.savez(out, **entries)
    with pytest.raises(NstjaxError, match="conv3_2/bias"):
        weight_files.load_npz(out)


@pytest.mark.parametrize("origin", ["argument", "$NSTJAX_WEIGHTS"])
def test_nonexistent_path_names_path_and_origin(tmp_path, monkeypatch, origin):
    missing = tmp_path / "nowhere.h5"
    argument = missing if origin == "argument" else None
    if argument is None:
        monkeypatch.setenv("NSTJAX_WEIGHTS", str(missing))
    with pytest.raises(NstjaxError) as e:
        weights.load_arrays(argument)
    assert str(missing) in str(e.value) and origin in str(e.value) and "\n" not in str(e.value)


def test_describe_without_local_weights_does_not_download(monkeypatch):
    monkeypatch.delenv("NSTJAX_WEIGHTS", raising=False)
    monkeypatch.setattr(weights, "fetch", pytest.fail)
    with pytest.raises(NstjaxError, match="nstjax weights fetch"):
        weights.describe()


# --- where the weights come from; a corrupt cache ------------------------------------------------


@pytest.fixture
def canonical_fake_h5(tmp_path, monkeypatch) -> Path:
    """A fake .h5 (conv1_1's kernel all ones, the rest zeros) taken as the canonical file."""
    (tmp_path / "given").mkdir()
    h5 = make_fake_h5(tmp_path / "given" / "w.h5", data=True)
    monkeypatch.setattr(weights, "WEIGHTS_MD5", weights.md5sum(h5))
    monkeypatch.delenv("NSTJAX_WEIGHTS", raising=False)
    return h5


def cache_entry(tmp_path: Path) -> Path:
    """Where the converted canonical weights live (XDG_CACHE_HOME is tmp_path/xdg)."""
    return tmp_path / "xdg" / "nstjax" / f"vgg19-caffe-{weights.WEIGHTS_MD5[:12]}.npz"


def corrupt_cache(tmp_path: Path) -> tuple[Path, bytes]:
    """Writes a broken cache entry (a cut-off zip); returns it and its bytes."""
    npz, garbage = cache_entry(tmp_path), b"PK\x03\x04 cut off here"
    npz.parent.mkdir(parents=True, exist_ok=True)
    npz.write_bytes(garbage)
    return npz, garbage


def is_the_fake(arrays: dict[str, np.ndarray]) -> bool:
    return bool((arrays["conv1_1/kernel"] == 1).all() and not arrays["conv1_2/kernel"].any())


@pytest.mark.parametrize("how", ["argument", "env h5", "env npz"])
def test_explicit_weights_ignore_a_corrupt_cache(canonical_fake_h5, tmp_path, monkeypatch, how):
    given = canonical_fake_h5
    if how == "env npz":
        given = weights.convert(given, tmp_path / "given" / "w.npz")
    npz, garbage = corrupt_cache(tmp_path)
    if how != "argument":
        monkeypatch.setenv("NSTJAX_WEIGHTS", str(given))
    arrays, meta = weights.load_arrays(given if how == "argument" else None)
    assert is_the_fake(arrays) and meta["source_md5"] == weights.WEIGHTS_MD5
    assert npz.read_bytes() == garbage  # neither read nor rebuilt
    assert [p.name for p in npz.parent.iterdir()] == [npz.name]


def test_explicit_h5_leaves_no_cache_and_info_says_so(canonical_fake_h5, tmp_path, capsys):
    info = weights.describe(canonical_fake_h5)
    assert (info["source"], info["path"], info["npz"]) == (
        "argument",
        str(canonical_fake_h5),
        None,
    )
    assert info["md5"] == weights.md5sum(canonical_fake_h5)
    assert main(["weights", "info", "--path", str(canonical_fake_h5)]) == 0
    assert "read directly" in capsys.readouterr().out
    assert not (tmp_path / "xdg").exists()


def test_corrupt_cache_without_an_h5_names_file_and_rebuild_command(canonical_fake_h5, tmp_path):
    npz, _ = corrupt_cache(tmp_path)
    with pytest.raises(NstjaxError) as e:
        weights.load_arrays()
    message = str(e.value)
    assert message.startswith(f"weights cache {npz}: not a readable weights .npz")
    assert "`nstjax weights fetch`" in message and "nstjax weights convert" in message
    assert "\n" not in message


def test_cli_corrupt_cache_is_one_line_exit_2(canonical_fake_h5, tmp_path, capsys):
    npz, _ = corrupt_cache(tmp_path)
    assert main(["weights", "info"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(npz) in err and "nstjax weights fetch" in err


def test_corrupt_cache_is_rebuilt_from_the_downloaded_h5(canonical_fake_h5, tmp_path, capsys):
    npz, garbage = corrupt_cache(tmp_path)
    downloaded = npz.parent / weights.WEIGHTS_FILENAME
    downloaded.write_bytes(canonical_fake_h5.read_bytes())
    assert is_the_fake(weights.load_arrays()[0])
    err = capsys.readouterr().err
    assert f"rebuilding it from {downloaded}" in err and err.count("\n") == 1
    assert npz.read_bytes() != garbage and is_the_fake(weight_files.load_npz(npz)[0])
    info = weights.describe()
    assert (info["source"], info["npz"]) == ("cache", str(npz))


def test_corrupt_cache_and_a_corrupt_download_say_how_to_rebuild(canonical_fake_h5, tmp_path):
    npz, _ = corrupt_cache(tmp_path)
    (npz.parent / weights.WEIGHTS_FILENAME).write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(NstjaxError) as e:
        weights.load_arrays()
    message = str(e.value)
    assert weights.WEIGHTS_FILENAME in message and "does not match" in message
    assert "`nstjax weights fetch`" in message and "\n" not in message


def test_downloaded_h5_is_converted_once_into_the_cache(canonical_fake_h5, tmp_path, monkeypatch):
    downloaded = cache_entry(tmp_path).parent / weights.WEIGHTS_FILENAME
    downloaded.parent.mkdir(parents=True)
    downloaded.write_bytes(canonical_fake_h5.read_bytes())
    assert weights.locate() == ("download", downloaded)
    assert is_the_fake(weights.load_arrays()[0])
    assert weights.locate() == ("cache", cache_entry(tmp_path))

    def no_second_read(path):
        raise AssertionError(f"read_h5({path}) called again")

    monkeypatch.setattr(weight_files, "read_h5", no_second_read)
    assert is_the_fake(weights.load_arrays()[0])


# --- download -----------------------------------------------------------------------------------

PAYLOAD = os.urandom(300_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self):
        self.requests.append(self.path)
        declared = len(PAYLOAD) + (0 if self.path == "/good" or self.path == "/mirror" else 100_000)
        self.send_response(200)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        if self.path == "/reset":  # half the body, then a TCP reset
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        self.wfile.write(PAYLOAD)  # then the connection closes (HTTP/1.0)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{weights.WEIGHTS_FILENAME}"


def test_fetch_good_file_with_progress(server, tmp_path, capsys):
    dest = weights.fetch(f"{server}/good", tmp_path / "d" / "w.h5", PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path / "d") == ["w.h5"]
    err = capsys.readouterr().err
    assert "100.0%" in err and "MB/s" in err


def test_fetch_uses_url_env_and_skips_existing_good_file(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(weights.ENV_URL, f"{server}/mirror")
    dest = tmp_path / "w.h5"
    _Handler.requests.clear()
    weights.fetch(dest=dest, expected_md5=PAYLOAD_MD5, progress=False)
    weights.fetch(dest=dest, expected_md5=PAYLOAD_MD5, progress=False)
    assert _Handler.requests == ["/mirror"]
    weights.fetch(dest=dest, expected_md5=PAYLOAD_MD5, progress=False, force=True)
    assert _Handler.requests == ["/mirror", "/mirror"]
    assert capsys.readouterr().err == ""


def test_fetch_corrupt_leaves_nothing(server, tmp_path):
    with pytest.raises(NstjaxError) as e:
        weights.fetch(f"{server}/good", tmp_path / "w.h5", "0" * 32, progress=False)
    assert PAYLOAD_MD5 in str(e.value) and "0" * 32 in str(e.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("path", "says"),
    [
        # the body ends 100 kB short of its Content-Length: requests (urllib3) says how short
        ("/truncated", f"broke off .*{len(PAYLOAD)} bytes read, 100000 more expected"),
        ("/reset", "broke off .*reset"),
    ],
)
def test_fetch_cut_short_leaves_nothing(server, tmp_path, path, says):
    with pytest.raises(NstjaxError, match=says):
        weights.fetch(f"{server}{path}", tmp_path / "w.h5", PAYLOAD_MD5, progress=False)
    assert os.listdir(tmp_path) == []


def test_fetch_unreachable_says_what_to_download_and_where(closed_port_url, tmp_path):
    with pytest.raises(NstjaxError) as e:
        weights.fetch(closed_port_url, progress=False)
    message = str(e.value)
    assert closed_port_url in message and "NSTJAX_WEIGHTS" in message
    assert str(tmp_path / "xdg" / "nstjax" / weights.WEIGHTS_FILENAME) in message
    assert "\n" not in message
    assert list((tmp_path / "xdg" / "nstjax").iterdir()) == []


def test_fetch_existing_good_file_needs_no_network(closed_port_url, tmp_path):
    (tmp_path / "w.h5").write_bytes(PAYLOAD)
    assert weights.fetch(closed_port_url, tmp_path / "w.h5", PAYLOAD_MD5) == tmp_path / "w.h5"


def test_load_arrays_falls_back_to_download(closed_port_url, monkeypatch):
    monkeypatch.delenv("NSTJAX_WEIGHTS", raising=False)
    monkeypatch.setenv(weights.ENV_URL, closed_port_url)
    with pytest.raises(NstjaxError, match="could not download"):
        weights.load_arrays()


# --- command line -------------------------------------------------------------------------------


def test_cli_convert_and_info_on_fake_file(tmp_path, capsys):
    h5 = make_fake_h5(tmp_path / "w.h5")
    out = tmp_path / "w.npz"
    assert main(["weights", "convert", str(h5), "--output", str(out), "--no-verify"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["weights", "info", "--path", str(out)]) == 0
    assert "20,024,384" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv_tail",
    [
        ["convert", "{h5}"],  # md5 is not the canonical one
        ["convert", "{tmp}/missing.h5"],
        ["info", "--path", "{tmp}/missing.npz"],
        ["info", "--path", "{h5}"],
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv_tail):
    h5 = make_fake_h5(tmp_path / "w.h5")
    argv = ["weights"] + [a.format(h5=h5, tmp=tmp_path) for a in argv_tail]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nstjax: error: ") and err.count("\n") == 1


def test_cli_fetch_unreachable_is_exit_2(closed_port_url, capsys):
    assert main(["weights", "fetch", "--url", closed_port_url]) == 2
    err = capsys.readouterr().err
    assert closed_port_url in err.splitlines()[-1] and "NSTJAX_WEIGHTS" in err
