"""9,000 real MNIST digits, shipped with the course, with a fixed train/validation split.

    X_train, y_train = load_digits("train")              # X: (8000, 28, 28) float32 in [0, 1]
    X_val, y_val = load_digits("val", flatten=True)       # X: (1000, 784)
    loader = digits_loader("train", batch_size=64, seed=0)  # batches of (B, 1, 28, 28), (B,)

The course's *test* digits (1,000 more) are not shipped: the instructor holds them to grade the
challenges (``autograder.authoring.heldout``). Choose hyper-parameters on "val"; "test" is an older name of the
same validation split, kept so that older notebooks run. With the defaults the split is fixed (the
first 8,000 shipped digits train, the last 1,000 validate); another ``val_fraction`` or ``seed`` gives
a stratified split of the 9,000 instead. The same arguments give the same samples in the same order
on every machine. torch is imported only by ``digits_dataset`` and ``digits_loader``.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from helpers.data.shipped import shipped_path

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from torch.utils.data import DataLoader, TensorDataset

IMAGE_SHAPE = (28, 28)
N_CLASSES = 10


#: The shipped file: the training split (its first ``N_TRAIN`` digits), then the validation split.
DIGITS_FILE = "mnist9k.npz"
N_TRAIN = 8000
SPLITS = ("train", "val", "validation", "test")  # "validation" and "test": other names of "val"


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """images: (9000, 28, 28) uint8, labels: (9000,) uint8, read once and checked."""
    with np.load(shipped_path(DIGITS_FILE)) as f:
        images, labels = f["images"], f["labels"]
    images.setflags(write=False)  # shared by every call: nobody may change it in place
    labels.setflags(write=False)
    return images, labels


@lru_cache(maxsize=8)
def _split_indices(test_fraction: float | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices. The default (None, 0) is the fixed split of the file; otherwise a
    stratified split: each class puts round(test_fraction * count) samples in the validation set."""
    _, labels = _raw_digits()
    if test_fraction is None and seed == 0:
        return np.arange(N_TRAIN), np.arange(N_TRAIN, len(labels))
    fraction = (len(labels) - N_TRAIN) / len(labels) if test_fraction is None else test_fraction
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(N_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(fraction * len(idx)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    # Shuffle across classes, so that consecutive samples are not all the same digit.
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))


def _fraction(test_fraction: float | None) -> float | None:
    return None if test_fraction is None else float(test_fraction)


@lru_cache(maxsize=8)
def digits_mean_std(test_fraction: float | None = None, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of all pixels of the TRAIN split (pixels scaled to [0, 1]).

    These are the statistics ``normalize=True`` uses for every split: validation (and test) data
    must be scaled with numbers computed on the training set only. They cover all 8,000 training
    digits: a notebook that carves a test stand-in out of them computes its own statistics on
    what it trains on (as 06 does).
    """
    images, _ = _raw_digits()
    train_idx, _ = _split_indices(_fraction(test_fraction), int(seed))
    x = images[train_idx].astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def load_digits(
    split: str = "train",
    test_fraction: float | None = None,
    seed: int = 0,
    normalize: bool = False,
    flatten: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the shipped digits as numpy arrays.

    Inputs:
    - split: "train" or "val" (disjoint; every class keeps its share in both). "validation" and
      "test" are other names of "val": the course's real test digits are not shipped.
    - test_fraction: fraction of each class that goes to the validation split; None (default):
      the fixed split (8,000 train, 1,000 val) when seed is 0, else 1/9 of each class
    - seed: seed of a stratified split (a local RNG; global RNGs are not touched)
    - normalize: if True, standardise with the TRAIN split's pixel mean and std
      (see ``digits_mean_std``); otherwise pixels are in [0, 1]
    - flatten: if True, return X as (N, 784) instead of (N, 28, 28)

    Returns a tuple of:
    - X: (N, 28, 28) or (N, 784) float32
    - y: (N,) int64, labels 0..9

    With the defaults the train split has 8,000 samples and the validation split 1,000.
    """
    if split not in SPLITS:
        raise ValueError(f'split must be "train" or "val", got {split!r}')
    images, labels = _raw_digits()
    train_idx, val_idx = _split_indices(_fraction(test_fraction), int(seed))
    idx = train_idx if split == "train" else val_idx
    X = images[idx].astype(np.float32) / np.float32(255.0)
    if normalize:
        mean, std = digits_mean_std(_fraction(test_fraction), int(seed))
        X = (X - np.float32(mean)) / np.float32(std)
    if flatten:
        X = X.reshape(len(X), -1)
    return X, labels[idx].astype(np.int64)


def digits_dataset(
    split: str = "train", test_fraction: float | None = None, seed: int = 0, normalize: bool = False
) -> TensorDataset:
    """The digits as a ``torch.utils.data.TensorDataset`` of (image (1, 28, 28) float32, label int64).

    Same split and scaling as ``load_digits`` with the same arguments.
    """
    import torch
    from torch.utils.data import TensorDataset

    X, y = load_digits(split, test_fraction=test_fraction, seed=seed, normalize=normalize)
    return TensorDataset(torch.from_numpy(X).unsqueeze(1), torch.from_numpy(y))


def digits_loader(
    split: str = "train",
    batch_size: int = 64,
    shuffle: bool | None = None,
    seed: int = 0,
    normalize: bool = False,
    test_fraction: float | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A ``DataLoader`` over ``digits_dataset(split, ...)`` yielding (x: (B, 1, 28, 28), y: (B,)).

    - shuffle: defaults to True for "train" and False for the validation split
    - seed: seeds both the split and the loader's own ``torch.Generator``, so the order of the
      batches repeats exactly (epoch after epoch it changes, deterministically) without
      touching torch's global RNG.
    """
    import torch
    from torch.utils.data import DataLoader

    if shuffle is None:
        shuffle = split == "train"
    dataset = digits_dataset(split, test_fraction=test_fraction, seed=seed, normalize=normalize)
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last
    )
