"""Tests of helpers.data.download against a real HTTP server on 127.0.0.1.

Every test runs with a socket guard that refuses any connection to a non-loopback address,
with proxies unset and the cache in a temporary directory: they pass offline and never
reach the internet. Retries are off (``RETRIES = 0``: pooch waits seconds between tries)
except in the tests of retrying.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import ipaddress
import os
import pickle
import socket
import struct
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from helpers.data import DownloadError, load_cifar10, load_fashion_mnist, load_mnist
from helpers.data import download as dl


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def offline_sandbox(monkeypatch, tmp_path):
    """Cache in tmp_path, no mirror or proxy from the environment, loopback-only sockets."""
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(dl, "RETRIES", 0)
    monkeypatch.delenv(dl.BASE_URL_ENV, raising=False)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    real_connect = socket.socket.connect

    def loopback_only(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"test tried to connect to non-loopback address {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


class Server:
    """A tiny HTTP server on 127.0.0.1: ``files`` maps a URL path to bytes.

    ``truncate`` paths announce a Content-Length larger than the body, send part of it and
    close the connection; ``slow`` paths wait before answering; ``flaky`` maps a path to the
    number of requests answered "503 Service Unavailable" before it is served.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.slow: set[str] = set()
        self.flaky: dict[str, int] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path in server.slow:
                    time.sleep(1.0)
                if server.flaky.get(self.path, 0) > 0:
                    server.flaky[self.path] -= 1
                    self.send_error(503)
                    return
                if self.path not in server.files:
                    self.send_error(404)
                    return
                body = server.files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if self.path in server.truncate:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def dead_url():
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


PAYLOAD = bytes(range(256)) * 1000  # 256 kB, several read chunks


# ----------------------------------------------------------------------------- download()

def test_good_file_is_downloaded_and_verified(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    target = tmp_path / "cache" / "x" / "data.bin"
    path = dl.download(server.url + "/data.bin", target, sha256(PAYLOAD), progress=False)
    assert path == target
    assert target.read_bytes() == PAYLOAD
    assert files_under(tmp_path / "cache") == [target], "no temporary file may be left beside it"
    # md5 checksums are accepted as well
    target.unlink()
    dl.download(server.url + "/data.bin", target, md5(PAYLOAD), progress=False)
    assert target.read_bytes() == PAYLOAD


def test_checksum_mismatch_raises_and_leaves_nothing(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    target = tmp_path / "cache" / "data.bin"
    with pytest.raises(DownloadError, match="corrupt.*sha256.*load_digits") as err:
        dl.download(server.url + "/data.bin", target, sha256(b"something else"), progress=False)
    assert server.url in str(err.value)
    assert files_under(tmp_path / "cache") == []


def test_interrupted_transfer_raises_and_leaves_no_partial_file(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.truncate.add("/data.bin")
    target = tmp_path / "cache" / "data.bin"
    with pytest.raises(DownloadError, match="interrupted: received 128,000 of 256,000 bytes"):
        dl.download(server.url + "/data.bin", target, sha256(PAYLOAD), progress=False)
    assert files_under(tmp_path / "cache") == []


def test_server_down_gives_clear_error(dead_url, tmp_path):
    target = tmp_path / "cache" / "data.bin"
    with pytest.raises(DownloadError) as err:
        dl.download(dead_url + "/data.bin", target, sha256(PAYLOAD), progress=False)
    message = str(err.value)
    assert "Could not download" in message and dead_url in message
    assert "refused" in message.lower()
    assert "load_digits" in message and dl.BASE_URL_ENV in message
    assert f"save it as {target}" in message, "tell where a hand-downloaded file belongs"
    assert files_under(tmp_path / "cache") == []


def test_http_error_and_timeout(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        dl.download(server.url + "/missing.bin", tmp_path / "cache" / "m.bin", sha256(b""), progress=False)
    server.files["/slow.bin"] = PAYLOAD
    server.slow.add("/slow.bin")
    with pytest.raises(DownloadError, match="timed out"):
        dl.download(server.url + "/slow.bin", tmp_path / "cache" / "s.bin", sha256(PAYLOAD),
                    timeout=0.2, progress=False)
    assert files_under(tmp_path / "cache") == []


def test_failed_download_is_retried(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "RETRIES", 1)
    server.files["/data.bin"] = PAYLOAD
    server.flaky["/data.bin"] = 1
    target = tmp_path / "cache" / "data.bin"
    assert dl.download(server.url + "/data.bin", target, sha256(PAYLOAD), progress=False) == target
    assert target.read_bytes() == PAYLOAD
    assert server.requests == ["/data.bin"] * 2
    # Every try failed: the last error is reported, nothing is left.
    server.flaky["/data.bin"] = 5
    target.unlink()
    with pytest.raises(DownloadError, match="HTTP 503"):
        dl.download(server.url + "/data.bin", target, sha256(PAYLOAD), progress=False)
    assert server.requests == ["/data.bin"] * 4
    assert files_under(tmp_path / "cache") == []


def test_valid_cached_file_is_reused_without_network(server, dead_url, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    target = tmp_path / "cache" / "data.bin"
    dl.download(server.url + "/data.bin", target, sha256(PAYLOAD), progress=False)
    assert server.requests == ["/data.bin"]
    mtime = target.stat().st_mtime_ns
    # Server gone: the cached copy is used without any connection.
    assert dl.download(dead_url + "/data.bin", target, sha256(PAYLOAD), progress=False) == target
    assert target.stat().st_mtime_ns == mtime
    assert server.requests == ["/data.bin"]


def test_corrupt_cached_file_is_never_used(server, dead_url, tmp_path):
    target = tmp_path / "cache" / "data.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD[:1000])  # e.g. left by an older tool after an interruption
    with pytest.raises(DownloadError):
        dl.download(dead_url + "/data.bin", target, sha256(PAYLOAD), progress=False)
    assert not target.exists(), "a cached file with a wrong checksum must be removed"
    server.files["/data.bin"] = PAYLOAD
    target.write_bytes(b"garbage")
    dl.download(server.url + "/data.bin", target, sha256(PAYLOAD), progress=False)
    assert target.read_bytes() == PAYLOAD


def test_file_becomes_visible_by_atomic_rename_from_same_directory(server, tmp_path, monkeypatch):
    server.files["/data.bin"] = PAYLOAD
    target = tmp_path / "cache" / "data.bin"
    calls = []

    def spy(real):
        def rename(src, dst, *args, **kwargs):
            calls.append((Path(src), Path(dst), target.exists()))
            return real(src, dst, *args, **kwargs)
        return rename

    # pooch renames with shutil.move, i.e. os.rename on one file system; os.replace is spied too
    for name in ("rename", "replace"):
        monkeypatch.setattr(os, name, spy(getattr(os, name)))
    dl.download(server.url + "/data.bin", target, sha256(PAYLOAD), progress=False)
    [(src, dst, existed)] = calls
    assert dst == target and src.parent == target.parent and src != target
    assert not existed, "the final name must not exist before the verified file is renamed"


def test_non_http_url_rejected(tmp_path):
    with pytest.raises(DownloadError, match="http"):
        dl.download("file:///etc/passwd", tmp_path / "p", sha256(b""), progress=False)
    with pytest.raises(ValueError, match="md5"):
        dl.download("http://127.0.0.1:1/x", tmp_path / "p", "abc", progress=False)


# ----------------------------------------------------------------------------- registry, env vars

def test_fetch_dataset_uses_mirror_layout_and_env_vars(server, tmp_path, monkeypatch):
    text = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    server.files["/tinyshakespeare/input.txt"] = text
    monkeypatch.setenv(dl.BASE_URL_ENV, server.url + "/")
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "elsewhere"))
    paths = dl.fetch_dataset("tinyshakespeare", checksums={"input.txt": sha256(text)}, progress=False)
    assert paths["input.txt"] == tmp_path / "elsewhere" / "tinyshakespeare" / "input.txt"
    assert dl.load_tiny_shakespeare(checksums={"input.txt": sha256(text)}, progress=False) == text.decode()
    assert server.requests == ["/tinyshakespeare/input.txt"], "second call must come from the cache"
    # Without an override the published checksum is pinned, and this file does not match it.
    paths["input.txt"].unlink()
    with pytest.raises(DownloadError, match="corrupt"):
        dl.fetch_dataset("tinyshakespeare", progress=False)
    with pytest.raises(ValueError, match="unknown data set"):
        dl.fetch_dataset("imagenet")


def test_explicit_cache_dir_wins_over_env_var(server, tmp_path):
    text = b"To be, or not to be\n"
    server.files["/tinyshakespeare/input.txt"] = text
    paths = dl.fetch_dataset("tinyshakespeare", cache_dir=tmp_path / "mine", base_url=server.url,
                             checksums={"input.txt": sha256(text)}, progress=False)
    assert paths["input.txt"] == tmp_path / "mine" / "tinyshakespeare" / "input.txt"
    assert paths["input.txt"].read_bytes() == text
    assert files_under(tmp_path / "cache") == [], "$DL_COURSE_DATA must not be used"


def test_registry_pins_published_checksums():
    assert dl.REGISTRY["mnist"][0].checksum == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert dl.REGISTRY["cifar10"][0].checksum == "c58f30108f718f92721af3b95e74349a"
    fashion = {f.filename: f.checksum for f in dl.REGISTRY["fashion_mnist"]}
    assert fashion["t10k-labels-idx1-ubyte.gz"] == "bb300cfdad3c16e7a12a480ee83cd310"
    for files in dl.REGISTRY.values():
        for f in files:
            assert f.url.startswith(("http://", "https://")) and f.url.endswith(f.filename)
            assert f.algorithm in ("md5", "sha256")


def test_default_cache_dir(monkeypatch, tmp_path):
    assert dl.default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv(dl.CACHE_ENV)
    assert dl.default_cache_dir() == Path.home() / ".cache" / "dl-course"


# ----------------------------------------------------------------------------- formats

def make_idx(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_load_mnist_from_keras_npz(server):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 6).astype(np.uint8),
              "x_test": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 4).astype(np.uint8)}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    server.files["/mnist/mnist.npz"] = buf.getvalue()
    kw = dict(base_url=server.url, checksums={"mnist.npz": sha256(buf.getvalue())}, progress=False)
    X, y = load_mnist("train", **kw)
    assert X.shape == (6, 28, 28) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(X * 255, arrays["x_train"], atol=1e-4)
    np.testing.assert_array_equal(y, arrays["y_train"])
    X, y = load_mnist("test", flatten=True, **kw)
    assert X.shape == (4, 784)
    np.testing.assert_array_equal(y, arrays["y_test"])
    assert server.requests == ["/mnist/mnist.npz"]


def test_load_fashion_mnist_from_idx_files(server):
    rng = np.random.default_rng(1)
    data = {"train": (rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)),
            "t10k": (rng.integers(0, 256, (3, 28, 28)), rng.integers(0, 10, 3))}
    checksums = {}
    for prefix, (images, labels) in data.items():
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            server.files[f"/fashion_mnist/{name}"] = make_idx(arr)
            checksums[name] = md5(make_idx(arr))
    X, y = load_fashion_mnist("test", base_url=server.url, checksums=checksums, progress=False)
    assert X.shape == (3, 28, 28) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(X * 255, data["t10k"][0], atol=1e-4)
    np.testing.assert_array_equal(y, data["t10k"][1])
    X, _ = load_fashion_mnist("train", flatten=True, base_url=server.url, checksums=checksums, progress=False)
    assert X.shape == (5, 784)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x12\x34\x56\x78rest"))
    with pytest.raises(ValueError, match="not an IDX file"):
        dl.read_idx(bad)
    short = tmp_path / "short.gz"
    short.write_bytes(make_idx(np.zeros((2, 3, 3)))[:-5])  # gzip stream cut: corrupt
    with pytest.raises((EOFError, ValueError, OSError)):
        dl.read_idx(short)
    wrong_size = tmp_path / "wrong.gz"
    wrong_size.write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\x00" * 7))
    with pytest.raises(ValueError, match="header says shape"):
        dl.read_idx(wrong_size)


def make_cifar_tarball(batches: dict[str, tuple[np.ndarray, list[int]]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, (data, labels) in batches.items():
            payload = pickle.dumps({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                                    b"filenames": [b"x.png"] * len(labels)}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_load_cifar10_from_python_tarball(server):
    rng = np.random.default_rng(2)
    batches = {name: (rng.integers(0, 256, (2, 3072), dtype=np.uint8), rng.integers(0, 10, 2).tolist())
               for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    blob = make_cifar_tarball(batches)
    server.files["/cifar10/cifar-10-python.tar.gz"] = blob
    kw = dict(base_url=server.url, checksums={"cifar-10-python.tar.gz": md5(blob)}, progress=False)
    X, y = load_cifar10("train", **kw)
    assert X.shape == (10, 3, 32, 32) and X.dtype == np.float32 and y.dtype == np.int64
    # channels first: the first 1024 values of a row are the red plane
    np.testing.assert_allclose(X[0, 0] * 255, batches["data_batch_1"][0][0, :1024].reshape(32, 32), atol=1e-4)
    np.testing.assert_allclose(X[9, 2] * 255, batches["data_batch_5"][0][1, 2048:].reshape(32, 32), atol=1e-4)
    assert y.tolist() == sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    X, y = load_cifar10("test", **kw)
    assert X.shape == (2, 3, 32, 32) and y.tolist() == batches["test_batch"][1]


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_reader_refuses_arbitrary_pickles(tmp_path, capsys):
    bad = tmp_path / "evil.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        payload = pickle.dumps({b"data": Evil(), b"labels": []})
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    bad.write_bytes(buf.getvalue())
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        dl.read_cifar10(bad, "test")
    assert "pwned" not in capsys.readouterr().out


def test_socket_guard_blocks_non_loopback_addresses(tmp_path):
    # 192.0.2.1 is TEST-NET-1 (RFC 5737); the guard stops the connection before any packet is sent.
    with pytest.raises(AssertionError, match="non-loopback"):
        dl.download("http://192.0.2.1/x.bin", tmp_path / "cache" / "x.bin", sha256(b""), timeout=1, progress=False)
    assert files_under(tmp_path / "cache") == []
