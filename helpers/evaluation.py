"""Honest evaluation: a validation split carved from the training data, loaders, and figures.

    X_tr, y_tr, X_val, y_val = train_val_split(X, y, val_fraction=0.125, seed=0)
    train_loader, val_loader = digits_train_val_loaders(batch_size=64, normalize=True)
    fig = plot_confusion_matrix(cm)              # cm: (K, K), rows = true class

The rule every notebook follows: choices (learning rate, epochs, model, threshold) are made on
**validation** data; a **test** set is looked at once, at the end, for the figure we report. The
students' copy of the digits has a training split (8,000) and a validation split (1,000,
``load_digits("val")``); the course's test digits stay with the instructor (the challenges). The
shipped ``val`` split is always called validation. A notebook that needs a test figure of its own
(06, 09) carves a **test stand-in** out of the training split with ``digits_train_val`` (its second
part), names it so, and looks at it once. Nothing here computes a metric a notebook
asks students to write (the confusion matrix, precision and recall, early stopping are
exercises of notebook 06).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from torch.utils.data import DataLoader

#: Digits set aside from the 8,000 training digits by ``digits_train_val`` (a notebook's test stand-in).
DIGITS_VAL_SIZE = 1000


def train_val_split(X: Any, y: Any, val_fraction: float = 0.125, seed: int = 0,
                    stratify: bool = True) -> tuple[Any, Any, Any, Any]:
    """Split (X, y) into a training part and a validation part, at random but repeatably.

    - X: (N, ...) array or tensor; y: (N,) labels (or targets) of the same length
    - val_fraction: share of the samples that go to validation, strictly between 0 and 1
    - seed: seed of a local generator (global RNGs are not touched)
    - stratify: each class keeps its share in both parts (needs integer class labels in y);
      with False, or float targets, a plain random split

    Returns (X_train, y_train, X_val, y_val), indexed from X and y (so arrays stay arrays,
    tensors stay tensors), each part in a shuffled order. The same arguments give the same
    split on every machine.
    """
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)}: they must have the same length")
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
    if stratify and labels.ndim == 1 and labels.dtype.kind in "iub":
        classes, counts = np.unique(labels, return_counts=True)
        quotas = _largest_remainder(counts, int(round(val_fraction * n)))
        train, val = [], []
        for c, n_val in zip(classes, quotas):
            idx = rng.permutation(np.flatnonzero(labels == c))
            val.append(idx[:n_val])
            train.append(idx[n_val:])
        train_idx, val_idx = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))
    else:
        order = rng.permutation(n)
        n_val = int(round(val_fraction * n))
        val_idx, train_idx = order[:n_val], order[n_val:]
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"val_fraction={val_fraction} of {n} samples leaves one part empty")
    if hasattr(X, "index_select"):  # torch tensors: index with a tensor, keep the type
        import torch

        t_train, t_val = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
        return X[t_train], y[t_train], X[t_val], y[t_val]
    return X[train_idx], y[train_idx], X[val_idx], y[val_idx]


def _largest_remainder(counts: np.ndarray, total: int) -> list[int]:
    """Integer shares of ``total`` proportional to ``counts`` that add up to ``total`` exactly."""
    exact = counts * (total / counts.sum())
    shares = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - shares), kind="stable")[: total - shares.sum()]:
        shares[i] += 1
    return [int(s) for s in shares]


def digits_train_val(val_size: int = DIGITS_VAL_SIZE, normalize: bool = False, flatten: bool = False,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The students' training digits (``load_digits("train")``) split into two parts.

    - val_size: digits set aside (stratified: each class keeps its share); notebooks 06 and 09 use
      them as a test stand-in, looked at once, since the shipped validation split is their
      validation data
    - normalize, flatten: as in ``helpers.data.load_digits`` (standardised with the statistics
      of the whole training split, fixed numbers that no choice depends on)

    Returns (X_train, y_train, X_aside, y_aside): X (n, 28, 28) or (n, 784) float32, y (n,) int64.
    The shipped validation split (``load_digits("val")``) is not touched. With ``normalize``, the
    statistics cover all 8,000 training digits, the set-aside part included: a notebook that
    reports a test figure on that part computes its own statistics on the rest (as 06 does).
    """
    from helpers.data import load_digits

    X, y = load_digits("train", normalize=normalize, flatten=flatten)
    if not 0 < val_size < len(X):
        raise ValueError(f"val_size must be between 1 and {len(X) - 1}, got {val_size}")
    return train_val_split(X, y, val_fraction=val_size / len(X), seed=seed)


def array_loader(X: Any, y: Any, batch_size: int = 64, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """A ``DataLoader`` over (X, y) numpy arrays or tensors, its shuffling seeded by its own generator.

    X: (N, ...) becomes float32 (integer targets stay int64); batches are (B, ...), (B,).
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    X_t, y_t = torch.as_tensor(X), torch.as_tensor(y)
    if X_t.is_floating_point():
        X_t = X_t.float()
    if y_t.is_floating_point():
        y_t = y_t.float()
    return DataLoader(TensorDataset(X_t, y_t), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(int(seed)))


def digits_train_val_loaders(batch_size: int = 64, val_size: int = DIGITS_VAL_SIZE, normalize: bool = False,
                             seed: int = 0, val_batch_size: int = 500) -> tuple[DataLoader, DataLoader]:
    """(train_loader, val_loader) over ``digits_train_val``: batches of (B, 1, 28, 28), (B,).

    The training loader shuffles (seeded, repeatable); the validation loader does not.
    """
    X_tr, y_tr, X_val, y_val = digits_train_val(val_size, normalize=normalize, seed=seed)
    return (array_loader(X_tr[:, None], y_tr, batch_size, shuffle=True, seed=seed),
            array_loader(X_val[:, None], y_val, val_batch_size, shuffle=False))


def mean_and_spread(values: Sequence[float] | np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation (divisor n - 1) over ``axis``: runs (seeds) along axis 0.

    values: (n_runs,) or (n_runs, n_epochs) with n_runs >= 2. Returns (mean, std), shaped like
    one run. The standard error of the mean is std / sqrt(n_runs).
    """
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 0 or a.shape[axis] < 2:
        raise ValueError(f"need at least two runs along axis {axis} to measure a spread, got shape {a.shape}")
    return a.mean(axis=axis), a.std(axis=axis, ddof=1)


def plot_confusion_matrix(cm: Any, class_names: Sequence[str] | None = None, normalize: bool = False,
                          ax: Axes | None = None, title: str = "confusion matrix") -> Figure:
    """Draw a (K, K) confusion matrix: rows are the true classes, columns the predicted ones.

    normalize: divide each row by its total (the diagonal is then each class's recall).
    Every cell is written as a number; the diagonal is where a perfect classifier puts everything.
    """
    import matplotlib.pyplot as plt

    m = np.asarray(cm, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix is square (K, K), got shape {m.shape}")
    if normalize:
        totals = m.sum(axis=1, keepdims=True)
        m = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    k = m.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k} x {k} matrix")
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.45 * k + 2.5, 0.45 * k + 2.0))
    else:
        fig = ax.figure
    image = ax.imshow(m, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    threshold = m.max() / 2 if m.size and m.max() > 0 else 1.0
    for i in range(k):
        for j in range(k):
            text = f"{m[i, j]:.2f}" if normalize else f"{int(round(m[i, j]))}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > threshold else "black")
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    return fig
