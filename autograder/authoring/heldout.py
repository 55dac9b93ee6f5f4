"""Held-out data of the graded challenges: instructor-only, checked by sha256.

The course's 10,000 MNIST digits (``../shared/data/mnist10k.npz``, see its PROVENANCE.md) are
split once, deterministically, into

- ``helpers/datasets/mnist9k.npz``: what students get (the bundle ships it): 9,000 digits, the
  8,000 of the training split first, in their training order, then 1,000 validation digits;
- ``course/heldout/digits_test.npz``: 1,000 test digits made from the other 1,000 (100 of the
  863..1,135 of each class, stratified: half of each class's share of the old 2,000-digit test
  split), which exist only on the instructor's side: never in ``release/``, the bundle or
  ``helpers/``. Their sources are public (anyone with MNIST's test set can list the 1,000 digits
  that the shipped 9,000 leave out), so each is **re-drawn with a secret perturbation**
  (``perturb_digit``: rotation, scale, smooth elastic distortion, a shift of its centre of mass, then
  re-quantised to uint8; the draws come from the secret) and kept only if it is at least
  ``MIN_PUBLIC_DISTANCE`` from every one of the 10,000 public digits (its own source included): no
  test image exists verbatim, or nearly, in a public data set, and a nearest-neighbour lookup of
  the public digits labels fewer test digits right than the reference CNN does
  (``tests/course/test_challenges.py`` measures both);
- ``course/heldout/series_test.npz``: 800 forecasting samples (past 40 values -> next 10) cut from
  200 noisy sine series drawn with ``helpers.data.noisy_sines`` (the generator students have: they
  may draw as many series as they like) seeded with the full 256 bits of ``course/heldout/SECRET``.

``SECRET`` (shared mechanism, added for 07; any challenge may draw its trusted-side randomness from
it through ``secret_seed``): 32 bytes from ``os.urandom``, written once by the first ``build`` and
never again, kept only in ``course/heldout/`` (which is never released, bundled or bound into a
sandbox) and listed in the manifest. No code holds a seed of the held-out series, so neither the
release nor this repository's code can regenerate them (a seed search over small integers finds
nothing: ``tests/course/test_challenges.py``).

``python -m autograder.authoring.heldout build ../shared/data/mnist10k.npz`` rebuilds the files (byte for
byte given the secret and the same numpy and scipy: fixed order, no timestamps, every random draw
from the secret) and ``MANIFEST.json``;
``load_heldout(name)`` reads a held-out set after checking its sha256 against the manifest. The labels are read only by the
trusted scorer (``autograder.authoring.challenges``); the sandbox receives images only.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from autograder.course import REPO
from helpers.data.shipped import npz_bytes

HELDOUT_DIR = REPO / "course" / "heldout"
MANIFEST = HELDOUT_DIR / "MANIFEST.json"
SOURCE_SHA256 = "0217e13bd0668deb198aa7d305edbf0331eb89f8a6e7dd226e03d1aa3a9bd4ef"  # mnist10k.npz
SHIPPED_NAME = "mnist9k.npz"
DIGITS_TEST = "digits_test.npz"
SECRET = "SECRET"  # the instructor's secret: 32 random bytes, in course/heldout/ only
SECRET_BYTES = 32
_OLD_TEST_FRACTION, _OLD_SEED = 0.2, 0  # the split the course used before the challenges
_HELDOUT_SEED = 20_191  # picks, per class, which half of the old test digits is held out (public anyway)
#: Purpose string of the held-out digits' perturbations: their stream is drawn from the secret.
PERTURB_PURPOSE = "digits_test.npz: perturbation of each held-out digit"
#: The perturbation (``perturb_digit``): rotation up to +-10 degrees, scale 0.92..1.08, a smooth
#: elastic displacement (Gaussian-filtered noise, sigma 3 px) of at most 2 px, and the centre of mass
#: moved by up to 1 px in each direction. Measured on the 1,000 digits (issue 27, H10): each stays a
#: digit of its class (the reference CNN of 05 labels 97.1 % right, 99.2 % of the unperturbed ones;
#: tests/course/test_challenges.py); without the shift, each digit stays so near its source that a lookup of
#: the nearest public digit labels more right than the reference does (97.7 % against 97.2 %).
_ROTATE_DEG, _SCALE, _ELASTIC_PX, _ELASTIC_SIGMA, _SHIFT_PX = 10.0, (0.92, 1.08), 2.0, 3.0, 1.0
#: Least L2 distance (pixels in [0, 1]) from a held-out digit to every public digit; a draw nearer
#: than this is drawn again. 2.0 is about the 5th percentile of the distance from a public digit to
#: its nearest other public digit (1st percentile 1.53, 5th 2.01, median 4.71): no test image is
#: nearer to a public image than 95 % of the public digits are to each other, and the nearest public
#: image is off by at least 2.0**2 / 784 = 0.005 in MSE on every test digit (0.032 on average,
#: twice the reference denoiser's error).
MIN_PUBLIC_DISTANCE = 2.0
_MAX_DRAWS = 50


class HeldoutError(RuntimeError):
    """A held-out file is missing, damaged or unknown."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def perturb_digit(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(28, 28) uint8 -> a new rendering of the same digit, (28, 28) uint8: rotated and scaled about
    its centre of mass, displaced by a smooth elastic field, its centre of mass shifted, sampled
    bilinearly and rounded back to 0..255. Every draw comes from ``rng`` (the secret's stream)."""
    from scipy import ndimage

    img = image.astype(np.float64)
    angle = np.deg2rad(rng.uniform(-_ROTATE_DEG, _ROTATE_DEG))
    scale = rng.uniform(*_SCALE)
    shift = rng.uniform(-_SHIFT_PX, _SHIFT_PX, size=2)
    field = [ndimage.gaussian_filter(rng.standard_normal(img.shape), _ELASTIC_SIGMA) for _ in range(2)]
    field_max = max(float(np.abs(f).max()) for f in field)
    centre = np.array(ndimage.center_of_mass(img))
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(np.float64)
    y0, x0 = yy - centre[0] - shift[0], xx - centre[1] - shift[1]  # output pixel -> where it samples
    cos, sin = np.cos(angle), np.sin(angle)
    ys = (cos * y0 - sin * x0) / scale + centre[0] + _ELASTIC_PX * field[0] / field_max
    xs = (sin * y0 + cos * x0) / scale + centre[1] + _ELASTIC_PX * field[1] / field_max
    out = ndimage.map_coordinates(img, [ys, xs], order=1, mode="constant", cval=0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def public_distances(images: np.ndarray, public: np.ndarray) -> np.ndarray:
    """(N, 28, 28), (M, 28, 28) uint8 -> (N, M) L2 distances with pixels in [0, 1] (float64)."""
    q = images.reshape(len(images), -1).astype(np.float64) / 255.0
    p = public.reshape(len(public), -1).astype(np.float64) / 255.0
    d2 = (q * q).sum(1)[:, None] + (p * p).sum(1)[None, :] - 2.0 * q @ p.T
    return np.sqrt(np.maximum(d2, 0.0))


def perturb_heldout(sources: np.ndarray, public: np.ndarray, secret: bytes) -> np.ndarray:
    """The held-out images: each of ``sources`` (N, 28, 28) uint8 perturbed (``perturb_digit``) with
    draws from the secret, drawn again while it lies within ``MIN_PUBLIC_DISTANCE`` of any of
    ``public`` (M, 28, 28) uint8. Deterministic given the secret."""
    rng = np.random.default_rng(secret_seed(secret, PERTURB_PURPOSE))
    out = np.empty_like(sources)
    for i, src in enumerate(sources):
        for _ in range(_MAX_DRAWS):
            out[i] = perturb_digit(src, rng)
            if public_distances(out[i:i + 1], public).min() >= MIN_PUBLIC_DISTANCE:
                break
        else:
            raise HeldoutError(f"held-out digit {i}: no perturbation in {_MAX_DRAWS} draws is "
                               f"{MIN_PUBLIC_DISTANCE} from every public digit")
    return out


def build(source: Path) -> dict[str, str]:
    """Write the shipped file, the held-out files and the manifest from ``source`` (mnist10k.npz);
    the series come from ``course/heldout/SECRET`` (made here, once, if it does not exist)."""
    raw = source.read_bytes()
    if _sha256(raw) != SOURCE_SHA256:
        raise HeldoutError(f"{source} is not the course's mnist10k.npz (sha256 differs)")
    with np.load(io.BytesIO(raw)) as f:
        images, labels = f["images"], f["labels"]
    shipped, held = split_digits(images, labels)
    from helpers.grading.tasks import TASKS, get_task

    secret = heldout_secret(HELDOUT_DIR, create=True)
    test_images = perturb_heldout(images[held], images, secret)
    files = {REPO / "helpers" / "datasets" / SHIPPED_NAME: npz_bytes(images=images[shipped], labels=labels[shipped]),
             HELDOUT_DIR / DIGITS_TEST: npz_bytes(images=test_images, labels=labels[held])}
    for name in sorted(TASKS):  # each task with a held-out file of its own builds it from the held-out digits
        made = get_task(name).heldout_file()
        if made is not None:
            fname, make = made
            if isinstance(make, str):  # "module:function" of the trusted side (a task in helpers names it)
                module, func = make.split(":")
                make = getattr(importlib.import_module(module), func)
            files[HELDOUT_DIR / fname] = npz_bytes(**make(test_images, labels[held],
                                                           lambda purpose: secret_seed(secret, purpose)))
    HELDOUT_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path, data in files.items():
        path.write_bytes(data)
        if path.parent == HELDOUT_DIR:
            path.chmod(0o600)  # the test data: the instructor's only (the shipped file stays readable)
    digests = {path.name: _sha256(data) for path, data in files.items()}
    MANIFEST.write_text(json.dumps({
        "note": "Instructor-only test data of the graded challenges (autograder/authoring/heldout.py). Never "
                "release, bundle or copy it into helpers/. Built from mnist10k.npz (sha256 "
                f"{SOURCE_SHA256}); MNIST: LeCun, Cortes, Burges, CC BY-SA 3.0.",
        "sha256": {p.name: digests[p.name] for p in files if p.parent == HELDOUT_DIR},
        "shipped_sha256": {SHIPPED_NAME: digests[SHIPPED_NAME]},
        "secret": {SECRET: _sha256(secret)},  # the file only: its bytes never leave course/heldout/
    }, indent=1, sort_keys=True) + "\n")
    MANIFEST.chmod(0o600)
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
                           "rebuild it: python -m autograder.authoring.heldout build ../shared/data/mnist10k.npz") from None
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
        sys.exit("usage: python -m autograder.authoring.heldout build PATH/TO/mnist10k.npz")
    for fname, digest in build(Path(sys.argv[2])).items():
        print(f"{fname}  sha256 {digest}")
