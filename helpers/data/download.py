"""Full-size data sets, downloaded only when asked for, checked before they are used.

    X, y = load_mnist("train")            # (60000, 28, 28) float32, (60000,) int64
    X, y = load_fashion_mnist("test")     # (10000, 28, 28) float32, (10000,) int64
    X, y = load_cifar10("train")          # (50000, 3, 32, 32) float32, (50000,) int64

How a file gets into the cache (``download`` and ``fetch_dataset``, both on ``pooch``):
1. If the cache already holds the file and its checksum matches, it is used: no network.
2. Otherwise it is downloaded into a temporary file in the same directory, its published
   checksum is verified, and only then is it renamed into place (atomic on one file system).
   A failed or corrupt download is deleted, never used, and reported as a ``DownloadError``
   that says what to do instead.

What pooch does: the cache folder and its per-file registry of md5/sha256 checksums
(``pooch.create``), the download over HTTP(S) with a timeout and a progress bar
(``pooch.HTTPDownloader``, on ``requests``), the temporary file, its check and its rename, and
``RETRIES`` more tries after a network error or a checksum mismatch (waiting 1 s, then 2 s).

What stays ours, because pooch does not do it, or not the way the course needs:
- the cache directory and its layout (below): pooch's ``env`` would replace the whole path,
  per-data-set subfolder included, and override an explicit ``cache_dir``;
- a cached file whose checksum does not match is deleted when it cannot be replaced (pooch
  keeps it and tries again at every call);
- only http(s) URLs, refused with a clear message (pooch also knows ftp://, sftp:// and doi:);
- errors: pooch raises ``requests`` exceptions and a ``ValueError``; students get one
  ``DownloadError`` that says what went wrong and what to do offline;
- the data set registry (files, official URLs, published checksums), the mirror layout and the
  parsers of the downloaded formats.

Where things live:
- cache directory: ``$DL_COURSE_DATA`` or ``~/.cache/dl-course`` (argument ``cache_dir``);
  a file is stored as ``<cache>/<dataset>/<filename>``.
- mirror: ``$DL_COURSE_BASE_URL`` or the argument ``base_url`` replaces the official URLs (it
  becomes pooch's base URL); the mirror must have the cache's layout,
  ``<base_url>/<dataset>/<filename>``. A filled cache directory served with
  ``python -m http.server`` is such a mirror (handy for a classroom).

Offline? The course never needs these: ``helpers.data.load_digits()`` gives 9,000 real MNIST
digits that ship with the course.
"""
from __future__ import annotations

import gzip
import os
import pickle
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_ENV = "DL_COURSE_DATA"
BASE_URL_ENV = "DL_COURSE_BASE_URL"
DEFAULT_TIMEOUT = 30.0  # seconds without any data before a download is abandoned
RETRIES = 2  # more tries after a failed download (pooch waits 1 s, then 2 s, between them)

OFFLINE_HINT = (
    "Offline? Use the data that ship with the course instead: "
    "`from helpers.data import load_digits; X, y = load_digits('train')` (9,000 real MNIST "
    "digits) or `load_names()` (5,163 first names, for character-level models)."
)


class DownloadError(RuntimeError):
    """A data set could not be downloaded or failed its checksum. The message says what to do."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: where it comes from and its published checksum.

    ``checksum`` is a hex digest: 32 characters for md5, 64 for sha256.
    """

    filename: str
    url: str
    checksum: str

    @property
    def algorithm(self) -> str:
        return _algorithm(self.checksum)


_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# dataset name -> the files it needs. Checksums from helpers/datasets/PROVENANCE.md.
REGISTRY: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": (
        RemoteFile(
            "mnist.npz",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
            "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
        ),
    ),
    "fashion_mnist": (
        RemoteFile("train-images-idx3-ubyte.gz", _FASHION + "train-images-idx3-ubyte.gz",
                   "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        RemoteFile("train-labels-idx1-ubyte.gz", _FASHION + "train-labels-idx1-ubyte.gz",
                   "25c81989df183df01b3e8a0aad5dffbe"),
        RemoteFile("t10k-images-idx3-ubyte.gz", _FASHION + "t10k-images-idx3-ubyte.gz",
                   "bef4ecab320f06d8554ea6380940ec79"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", _FASHION + "t10k-labels-idx1-ubyte.gz",
                   "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    "cifar10": (
        RemoteFile(
            "cifar-10-python.tar.gz",
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
        ),
    ),
    "tinyshakespeare": (
        RemoteFile(
            "input.txt",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        ),
    ),
}

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


def _algorithm(checksum: str) -> str:
    algorithms = {32: "md5", 64: "sha256"}
    if len(checksum) not in algorithms:
        raise ValueError(f"checksum {checksum!r} is neither an md5 (32 hex) nor a sha256 (64 hex)")
    return algorithms[len(checksum)]


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f'split must be "train" or "test", got {split!r}')


def default_cache_dir() -> Path:
    """``$DL_COURSE_DATA`` if set, else ``~/.cache/dl-course`` (read at each call)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dl-course").expanduser()


def download(
    url: str,
    path: str | Path,
    checksum: str,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> Path:
    """Make ``path`` hold the file at ``url`` whose md5/sha256 is ``checksum``; return ``path``.

    A valid file already at ``path`` is reused without any network access. Raises
    ``DownloadError`` when the file cannot be fetched or does not match; in that case nothing
    new is left at ``path`` or beside it.
    """
    path = Path(path)
    cache = _pooch(path.parent, "", {path.name: checksum}, {path.name: url})
    return _fetch(cache, path.name, timeout, progress)


def fetch_dataset(
    name: str,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> dict[str, Path]:
    """Download (or find in the cache) every file of data set ``name``; return filename -> path.

    - name: a key of ``REGISTRY`` ("mnist", "fashion_mnist", "cifar10", "tinyshakespeare")
    - cache_dir: default ``default_cache_dir()``; files go to ``<cache_dir>/<name>/``
    - base_url: a mirror with the cache's layout (default ``$DL_COURSE_BASE_URL``, else the
      official URLs)
    - checksums: filename -> md5/sha256 hex, replacing the published ones (for tests and for
      mirrors of other versions)
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(REGISTRY)}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    base_url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV)
    checksums = dict(checksums or {})
    files = REGISTRY[name]
    cache = _pooch(
        root / name,
        f"{base_url.rstrip('/')}/{name}/" if base_url else "",
        {f.filename: checksums.get(f.filename, f.checksum) for f in files},
        {} if base_url else {f.filename: f.url for f in files},  # a mirror replaces them all
    )
    return {f.filename: _fetch(cache, f.filename, timeout, progress) for f in files}


def _pooch(folder: Path, base_url: str, checksums: dict[str, str], urls: dict[str, str]):
    """A pooch cache in ``folder`` of the files in ``checksums`` (name -> md5/sha256 hex);
    a file is fetched from ``urls[name]`` if given, else from ``base_url + name``."""
    import pooch  # imported when needed: ``import helpers.data`` stays light

    registry = {name: f"{_algorithm(c)}:{c}" for name, c in checksums.items()}
    return pooch.create(folder, base_url, registry=registry, urls=urls, retry_if_failed=RETRIES)


def _fetch(cache, filename: str, timeout: float, progress: bool) -> Path:
    """``cache.fetch(filename)`` with the course's rules (module docstring); return its path."""
    import pooch
    import requests

    url, path = cache.get_url(filename), Path(cache.path) / filename
    try:
        if not url.startswith(("http://", "https://")):
            raise DownloadError(f"Only http(s) URLs can be downloaded, got {url!r}.")
        downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
        cache.fetch(filename, downloader=downloader)
    except (DownloadError, requests.RequestException, ValueError) as e:
        known_hash = cache.registry[filename]
        algorithm, checksum = known_hash.split(":")
        if path.is_file() and pooch.file_hash(str(path), alg=algorithm) != checksum:
            path.unlink()  # a corrupt or stale cached copy that was not replaced: never use it
        raise DownloadError(f"{_explain(e, url, known_hash)}\nOr fetch {url} by hand (e.g. in a "
                            f"browser) and save it as {path}: it is checked before it is used.") from e
    return path


def _explain(error: Exception, url: str, known_hash: str) -> str:
    """What went wrong with downloading ``url`` and what to do, from pooch's or requests' error.

    ``known_hash`` is pooch's form of the checksum, ``"<algorithm>:<hex>"``.
    """
    import requests

    if isinstance(error, DownloadError):
        return str(error)
    cause = error
    while cause.__cause__ or cause.__context__:  # e.g. ConnectionRefusedError, IncompleteRead
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, ValueError):  # pooch: "... expected <known> but got <actual>. ..."
        algorithm, checksum = known_hash.split(":")
        actual = (re.findall(r"but got (\w+)", str(error)) or ["different"])[0]
        return (f"The file downloaded from {url} is corrupt: its {algorithm} is {actual}, "
                f"expected {checksum}. It was deleted. Try again later or from another mirror "
                f"(${BASE_URL_ENV}). {OFFLINE_HINT}")
    if isinstance(error, requests.HTTPError):
        return (f"Downloading {url} failed: the server answered HTTP {error.response.status_code} "
                f"{error.response.reason}. The file may have moved: try a mirror "
                f"(${BASE_URL_ENV}). {OFFLINE_HINT}")
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        received = (f"received {cause.partial:,} of {cause.partial + cause.expected:,} bytes"
                    if isinstance(getattr(cause, "expected", None), int) else cause)
        return (f"The download of {url} was interrupted: {received}. The partial file was "
                f"deleted; try again. {OFFLINE_HINT}")
    return (f"Could not download {url}: {cause}. Check your internet connection (or proxy "
            f"settings) and try again, or set ${BASE_URL_ENV} to a mirror. {OFFLINE_HINT}")


# --------------------------------------------------------------------------------------------
# Parsers of the downloaded formats (usable on their own, e.g. on files you fetched by hand)
# --------------------------------------------------------------------------------------------

def read_mnist_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Keras ``mnist.npz`` -> {"x_train": (60000, 28, 28) uint8, "y_train": (60000,) uint8,
    "x_test": (10000, 28, 28) uint8, "y_test": (10000,) uint8}."""
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in ("x_train", "y_train", "x_test", "y_test")}


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST / Fashion-MNIST format), gzip-compressed if the name ends in .gz.

    Format: 2 zero bytes, a dtype code (0x08 = uint8), the number of dimensions d, then d
    big-endian uint32 sizes, then the data in C order. Returns an array of those sizes.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes of data), "
                         f"but the file holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 batches (dicts of lists, bytes and numpy arrays) and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes into a protocol-2 pickle
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def read_cifar10(path: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Read the CIFAR-10 python tarball without unpacking it to disk.

    Returns X: (N, 3, 32, 32) uint8 (channels first) and y: (N,) int64, with N = 50,000 for
    "train" (``data_batch_1`` .. ``data_batch_5`` in order) and 10,000 for "test" (``test_batch``).
    """
    _check_split(split)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    with tarfile.open(path, "r:gz") as tar:
        for name in names:
            member = tar.extractfile(f"cifar-10-batches-py/{name}")
            if member is None:
                raise ValueError(f"{path} has no file cifar-10-batches-py/{name}")
            batch = _ArraysOnlyUnpickler(member, encoding="bytes").load()
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------------------------
# Loaders: download if needed, parse, scale to float32 in [0, 1]
# --------------------------------------------------------------------------------------------

def load_mnist(split: str = "train", flatten: bool = False, **download_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST (Keras ``mnist.npz``): X (N, 28, 28) or (N, 784) float32 in [0, 1], y (N,) int64.

    N = 60,000 for "train", 10,000 for "test" (the official split). ``download_kwargs`` go to
    ``fetch_dataset`` (cache_dir, base_url, checksums, timeout, progress).
    """
    _check_split(split)
    path = fetch_dataset("mnist", **download_kwargs)["mnist.npz"]
    arrays = read_mnist_npz(path)
    X = arrays[f"x_{split}"].astype(np.float32) / np.float32(255.0)
    y = arrays[f"y_{split}"].astype(np.int64)
    return (X.reshape(len(X), -1) if flatten else X), y


def load_fashion_mnist(split: str = "train", flatten: bool = False, **download_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST: X (N, 28, 28) or (N, 784) float32 in [0, 1], y (N,) int64.

    N = 60,000 for "train", 10,000 for "test"; class names in ``FASHION_MNIST_CLASSES``.
    ``download_kwargs`` go to ``fetch_dataset``.
    """
    _check_split(split)
    paths = fetch_dataset("fashion_mnist", **download_kwargs)
    prefix = "train" if split == "train" else "t10k"
    X = read_idx(paths[f"{prefix}-images-idx3-ubyte.gz"]).astype(np.float32) / np.float32(255.0)
    y = read_idx(paths[f"{prefix}-labels-idx1-ubyte.gz"]).astype(np.int64)
    if len(X) != len(y):
        raise ValueError(f"Fashion-MNIST {split}: {len(X)} images but {len(y)} labels")
    return (X.reshape(len(X), -1) if flatten else X), y


def load_cifar10(split: str = "train", **download_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10: X (N, 3, 32, 32) float32 in [0, 1] (channels first, as torch wants), y (N,) int64.

    N = 50,000 for "train", 10,000 for "test"; class names in ``CIFAR10_CLASSES``. The
    download is 170 MB. ``download_kwargs`` go to ``fetch_dataset``.
    """
    _check_split(split)
    path = fetch_dataset("cifar10", **download_kwargs)["cifar-10-python.tar.gz"]
    X, y = read_cifar10(path, split)
    return X.astype(np.float32) / np.float32(255.0), y


def load_tiny_shakespeare(**download_kwargs) -> str:
    """The tinyshakespeare corpus (about 1.1 million characters) as one string.

    Offline alternative for character-level models: ``helpers.data.load_names()``.
    """
    path = fetch_dataset("tinyshakespeare", **download_kwargs)["input.txt"]
    return Path(path).read_text(encoding="utf-8")
