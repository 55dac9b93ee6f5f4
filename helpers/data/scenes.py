"""Digit scenes for segmentation: 2-3 real MNIST digits on a larger canvas, with per-pixel labels.

    X, label_map, instances = load_scenes("train")   # X: (N, 1, 32, 32) float32 in [0, 1]
    # label_map: (N, 32, 32) int64, 0 = background, 1 + d = ink of digit d (11 classes in all)
    # instances: (N, 3, 32, 32) bool, one mask per placed digit (all False where a scene has 2)

The scenes are made by ``make_scenes(digits, labels, rng)``, a pure function of the digit images,
their labels and a numpy Generator, so that the same code can build scenes from any pool of
digits: the course's public scenes come from the shipped digits (``load_digits("train")`` for the
training scenes, ``load_digits("val")`` for the validation scenes, fixed public seeds), and the
instructor builds the held-out test scenes from the held-out test digits with secret randomness
(students never have those digits nor that randomness).

Conventions (students need them):
- each 28x28 digit is first averaged over 2x2 blocks (``shrink``): 14x14, so that two or three fit
  on the 32x32 canvas and a small network trains in seconds;
- each digit is cut to the bounding box of its ink (pixels >= ``INK``) and pasted at a random
  position; the canvas keeps the **brightest** value where digits overlap (``np.maximum``);
- a pixel is ink of a digit where that digit's value is >= ``INK`` (0.5); the label map holds
  ``1 + digit`` there, 0 elsewhere (background);
- **where the ink of two digits overlaps, the digit placed later wins**: its label overwrites the
  earlier one, and the earlier digit's instance mask loses those pixels. Instance masks are the
  *visible* pixels of each digit: they never overlap and their union is ``label_map > 0``;
- a placement that would hide more than ``MAX_HIDDEN`` (25 %) of an earlier digit's visible ink is
  redrawn (up to 20 tries, then the last is kept), to keep most of every digit visible;
- Gaussian noise (standard deviation ``noise``, default 0.08) is added to the whole canvas, the
  result clipped to [0, 1] and rounded to whole grey levels k / 255 (an 8-bit image: the held-out
  scenes travel as uint8); labels come from the clean digits, so noise never changes a label.

Nothing is drawn at import time; the same arguments give the same scenes on every machine.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

SIZE = 32                 # canvas side (pixels)
SHRINK = 2                # digits are averaged over SHRINK x SHRINK blocks: 28x28 -> 14x14
N_CLASSES = 11            # background + 10 digits
INK = 0.5                 # a digit pixel >= INK is ink (labelled); below is background
MAX_DIGITS = 3
MAX_HIDDEN = 0.25
NOISE = 0.08
#: public seeds and sizes of the course's scenes (the held-out ones use the instructor's secret)
PUBLIC = {"train": (1200, 2000), "val": (1201, 500)}


def _crop(digit: np.ndarray) -> np.ndarray:
    """The digit cut to the bounding box of its ink (at least one pixel)."""
    rows = np.flatnonzero((digit >= INK).any(axis=1))
    cols = np.flatnonzero((digit >= INK).any(axis=0))
    if len(rows) == 0:
        return digit
    return digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def make_scenes(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, n: int = 1000,
                size: int = SIZE, min_digits: int = 2, max_digits: int = MAX_DIGITS,
                noise: float = NOISE, shrink: int = SHRINK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build ``n`` scenes from a pool of digits.

    Inputs:
    - digits: (M, 28, 28) float in [0, 1] (any square or rectangular digit size up to ``size``)
    - labels: (M,) int, 0..9
    - rng: the numpy Generator that draws everything (which digits, how many, where, the noise)
    - n, size, min_digits, max_digits, noise: number of scenes, canvas side, digits per scene
      (drawn uniformly in [min_digits, max_digits]), noise standard deviation

    Returns (X, label_map, instances):
    - X: (n, 1, size, size) float32 in [0, 1], multiples of 1/255
    - label_map: (n, size, size) int64, 0 background, 1 + digit where that digit's ink is visible
      (the later digit wins where ink overlaps)
    - instances: (n, max_digits, size, size) bool, the visible ink of each placed digit in the
      order they were placed; all False for the unused slots
    """
    digits = np.asarray(digits, dtype=np.float32)
    if shrink > 1:                       # average over shrink x shrink blocks (a trailing partial block is dropped)
        M, h, w = digits.shape
        h, w = h // shrink * shrink, w // shrink * shrink
        digits = digits[:, :h, :w].reshape(M, h // shrink, shrink, w // shrink, shrink).mean(axis=(2, 4))
    labels = np.asarray(labels, dtype=np.int64)
    X = np.zeros((n, size, size), dtype=np.float32)
    label_map = np.zeros((n, size, size), dtype=np.int64)
    instances = np.zeros((n, max_digits, size, size), dtype=bool)
    for i in range(n):
        count = int(rng.integers(min_digits, max_digits + 1))
        for k, j in enumerate(rng.integers(0, len(digits), size=count)):
            patch = _crop(digits[j])
            h, w = patch.shape
            ink = patch >= INK
            for _ in range(20):
                r, c = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
                visible = instances[i, :k, r:r + h, c:c + w]
                hidden = (visible & ink).sum(axis=(1, 2))
                total = instances[i, :k].sum(axis=(1, 2))
                if np.all(hidden <= MAX_HIDDEN * np.maximum(total, 1)):
                    break
            X[i, r:r + h, c:c + w] = np.maximum(X[i, r:r + h, c:c + w], patch)
            window = label_map[i, r:r + h, c:c + w]
            window[ink] = 1 + labels[j]                              # the later digit wins
            instances[i, :k, r:r + h, c:c + w] &= ~ink               # earlier digits lose those pixels
            instances[i, k, r:r + h, c:c + w] = ink
    if noise > 0:
        X = np.clip(X + rng.normal(0.0, noise, size=X.shape).astype(np.float32), 0.0, 1.0)
    X = (np.round(X * 255.0) / 255.0).astype(np.float32)   # whole grey levels, as an 8-bit image
    return X[:, None], label_map, instances


@lru_cache(maxsize=4)
def _public(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from helpers.data.digits import load_digits

    seed, n = PUBLIC[split]
    digits, labels = load_digits(split)
    out = make_scenes(digits, labels, np.random.default_rng(seed), n=n)
    for a in out:
        a.setflags(write=False)
    return out


def load_scenes(split: str = "train", n: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The course's public scenes: "train" (2,000 scenes from the 8,000 training digits) or "val"
    (500 scenes from the 1,000 validation digits); the two share no digit. ``n``: the first n only.

    Returns copies (X (n, 1, 32, 32) float32, label_map (n, 32, 32) int64, instances (n, 3, 32, 32) bool).
    The test scenes of the challenge are the instructor's: built by ``make_scenes`` from held-out
    digits with secret randomness.
    """
    if split not in PUBLIC:
        raise ValueError(f'split must be "train" or "val", got {split!r}')
    X, label_map, instances = _public(split)
    n = len(X) if n is None else int(n)
    return X[:n].copy(), label_map[:n].copy(), instances[:n].copy()


def confusion_matrix(pred: np.ndarray, target: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: rows = true class, columns = predicted class."""
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    return np.bincount(target * n_classes + pred, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def mean_iou(pred: np.ndarray, target: np.ndarray, n_classes: int = N_CLASSES) -> float:
    """Mean IoU over the digit classes 1..n_classes-1 (background excluded); a class absent from
    both the truth and the prediction is skipped. pred, target: integer label maps of one shape."""
    cm = confusion_matrix(pred, target, n_classes).astype(np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)[1:]
    return float(np.nanmean(iou)) if np.any(union[1:] > 0) else float("nan")
