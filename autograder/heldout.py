"""Held-out data of the graded challenges: instructor-only, checked by sha256.

The course's 10,000 MNIST digits (``../shared/data/mnist10k.npz``, see its PROVENANCE.md) are
split once, deterministically, into

- ``helpers/datasets/mnist9k.npz``: what students get (the bundle ships it): 9,000 digits, the
  8,000 of the training split first, in their training order, then 1,000 validation digits;
- ``course/heldout/digits_test.npz``: 1,000 test digits (100 of the 863..1,135 of each class,
  stratified: half of each class's share of the old 2,000-digit test split), which exist only on the
  instructor's side: never in ``release/``, the bundle or ``helpers/``;
- ``course/heldout/series_test.npz``: 800 forecasting samples (past 40 values -> next 10) cut from
  200 noisy sine series drawn with ``helpers.data.noisy_sines`` (the generator students have: they
  may draw as many series as they like) seeded with the full 256 bits of ``course/heldout/SECRET``.

``SECRET`` (shared mechanism, added for 07; any challenge may draw its trusted-side randomness from
it through ``secret_seed``): 32 bytes from ``os.urandom``, written once by the first ``build`` and
never again, kept only in ``course/heldout/`` (which is never released, bundled or bound into a
sandbox) and listed in the manifest. No code holds a seed of the held-out series, so neither the
release nor this repository's code can regenerate them (a seed search over small integers finds
nothing: ``tests/test_challenges.py``).

``python -m autograder.heldout build ../shared/data/mnist10k.npz`` rebuilds the files (byte for
byte given the secret: fixed seeds, fixed order, no timestamps) and ``MANIFEST.json``;
``load_heldout(name)`` reads a held-out set after checking its sha256 against the manifest. The labels are read only by the
trusted scorer (``autograder.challenges``); the sandbox receives images only.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HELDOUT_DIR = REPO / "course" / "heldout"
MANIFEST = HELDOUT_DIR / "MANIFEST.json"
SOURCE_SHA256 = "0217e13bd0668deb198aa7d305edbf0331eb89f8a6e7dd226e03d1aa3a9bd4ef"  # mnist10k.npz
SHIPPED_NAME = "mnist9k.npz"
DIGITS_TEST = "digits_test.npz"
SERIES_TEST = "series_test.npz"
SECRET = "SECRET"  # the instructor's secret: 32 random bytes, in course/heldout/ only
SECRET_BYTES = 32
_OLD_TEST_FRACTION, _OLD_SEED = 0.2, 0  # the split the course used before the challenges
_HELDOUT_SEED = 20_191  # picks, per class, which half of the old test digits is held out


class HeldoutError(RuntimeError):
    """A held-out file is missing, damaged or unknown."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    """A deterministic .npz (stored, fixed timestamps): the same arrays give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, body.getvalue())
    return buf.getvalue()


def heldout_secret(directory: Path = HELDOUT_DIR, create: bool = False) -> bytes:
    """The 32 secret bytes of ``directory/SECRET``. ``create``: make them (``os.urandom``) if the
    file does not exist yet; an existing secret is never replaced (the held-out sets depend on it)."""
    path = directory / SECRET
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise HeldoutError(f"{path} is missing: the held-out series cannot be rebuilt without it "
                               "(restore it from git)") from None
        directory.mkdir(parents=True, exist_ok=True)
        secret = os.urandom(SECRET_BYTES)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(secret)
    if len(secret) != SECRET_BYTES:
        raise HeldoutError(f"{path} holds {len(secret)} bytes, not {SECRET_BYTES}")
    return secret


def secret_seed(secret: bytes, purpose: str = "") -> int:
    """A 256-bit seed for ``np.random.default_rng`` from the secret: the secret itself for the
    held-out series (``purpose`` empty), else sha256(secret + purpose), so that each use of the
    secret draws an independent stream."""
    raw = secret if not purpose else hashlib.sha256(secret + purpose.encode()).digest()
    return int.from_bytes(raw, "big")


def split_digits(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shipped order, held-out order): indices into the 10,000 digits.

    shipped: (9000,) the old training split (8,000, its order), then the kept old test digits
             (1,000, their order); held_out: (1000,) the rest of the old test split, its order.
    """
    if images.shape != (10000, 28, 28) or labels.shape != (10000,):
        raise HeldoutError(f"expected the 10,000 course digits, got images {images.shape}, labels {labels.shape}")
    rng = np.random.default_rng(_OLD_SEED)  # exactly helpers.data.digits' old stratified split
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(_OLD_TEST_FRACTION * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    old_train = rng.permutation(np.concatenate(train))
    old_test = rng.permutation(np.concatenate(test))
    pick = np.random.default_rng(_HELDOUT_SEED)
    held = set()
    for c in range(10):
        of_c = old_test[labels[old_test] == c]
        held.update(pick.choice(of_c, size=100, replace=False).tolist())
    kept = np.array([i for i in old_test if i not in held])
    held_out = np.array([i for i in old_test if i in held])
    return np.concatenate([old_train, kept]), held_out


def build(source: Path) -> dict[str, str]:
    """Write the shipped file, the held-out files and the manifest from ``source`` (mnist10k.npz);
    the series come from ``course/heldout/SECRET`` (made here, once, if it does not exist)."""
    raw = source.read_bytes()
    if _sha256(raw) != SOURCE_SHA256:
        raise HeldoutError(f"{source} is not the course's mnist10k.npz (sha256 differs)")
    with np.load(io.BytesIO(raw)) as f:
        images, labels = f["images"], f["labels"]
    shipped, held = split_digits(images, labels)
    from helpers.challenges import FORECAST_NOISE, forecast_windows
    from helpers.data import noisy_sines

    secret = heldout_secret(HELDOUT_DIR, create=True)
    past, future = forecast_windows(noisy_sines(n_series=200, length=200, seed=secret_seed(secret),
                                                noise=FORECAST_NOISE))
    files = {REPO / "helpers" / "datasets" / SHIPPED_NAME: _npz_bytes(images=images[shipped], labels=labels[shipped]),
             HELDOUT_DIR / DIGITS_TEST: _npz_bytes(images=images[held], labels=labels[held]),
             HELDOUT_DIR / SERIES_TEST: _npz_bytes(inputs=past, targets=future)}
    HELDOUT_DIR.mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        path.write_bytes(data)
    digests = {path.name: _sha256(data) for path, data in files.items()}
    MANIFEST.write_text(json.dumps({
        "note": "Instructor-only test data of the graded challenges (autograder/heldout.py). Never "
                "release, bundle or copy it into helpers/. Built from mnist10k.npz (sha256 "
                f"{SOURCE_SHA256}); MNIST: LeCun, Cortes, Burges, CC BY-SA 3.0.",
        "sha256": {DIGITS_TEST: digests[DIGITS_TEST], SERIES_TEST: digests[SERIES_TEST]},
        "shipped_sha256": {SHIPPED_NAME: digests[SHIPPED_NAME]},
        "secret": {SECRET: _sha256(secret)},  # the file only: its bytes never leave course/heldout/
    }, indent=1, sort_keys=True) + "\n")
    return digests


@lru_cache(maxsize=4)
def load_heldout(name: str, directory: Path = HELDOUT_DIR) -> dict[str, np.ndarray]:
    """The arrays of held-out set ``name`` (e.g. ``"digits_test.npz"``), checked against the manifest.

    Returns read-only arrays, e.g. ``{"images": (1000, 28, 28) uint8, "labels": (1000,) uint8}``."""
    try:
        manifest = json.loads((directory / "MANIFEST.json").read_text())
        expected = manifest["sha256"][name]
    except (OSError, ValueError, KeyError) as e:
        raise HeldoutError(f"the held-out set {name!r} is not in {directory}/MANIFEST.json ({type(e).__name__}); "
                           "rebuild it: python -m autograder.heldout build ../shared/data/mnist10k.npz") from None
    path = directory / name
    try:
        raw = path.read_bytes()
    except OSError:
        raise HeldoutError(f"the held-out file {path} is missing (it is committed with the course; "
                           "restore it from git or rebuild it)") from None
    if _sha256(raw) != expected:
        raise HeldoutError(f"the held-out file {path} is damaged: its sha256 differs from the manifest")
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for arr in arrays.values():
        arr.setflags(write=False)
    return arrays


if __name__ == "__main__":  # pragma: no cover - instructor tool
    if len(sys.argv) != 3 or sys.argv[1] != "build":
        sys.exit("usage: python -m autograder.heldout build PATH/TO/mnist10k.npz")
    for fname, digest in build(Path(sys.argv[2])).items():
        print(f"{fname}  sha256 {digest}")
