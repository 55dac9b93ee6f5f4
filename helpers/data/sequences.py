"""Toy sequence tasks for recurrent and attention models.

Token tasks (inputs and targets: (n, length) int64 tokens in 0 .. vocab_size - 1):
- "copy":    targets = inputs
- "reverse": targets = inputs[:, ::-1]
- "sort":    targets = np.sort(inputs, axis=1)
The adding problem (Hochreiter & Schmidhuber 1997):
- "adding":  inputs (n, length, 2) float: channel 0 random values in [0, 1), channel 1 a marker
             that is 1 at exactly two positions (one in each half); targets (n, 1) = the sum of
             the two marked values.

    loader = sequence_loader("reverse", n=2000, batch_size=64, seed=0, length=10)
    for inputs, targets in loader: ...      # LongTensor (B, 10), LongTensor (B, 10)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from torch.utils.data import DataLoader

TASKS = ("copy", "reverse", "sort", "adding")


def make_sequence_task(
    task: str, n: int = 1000, length: int = 10, vocab_size: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` examples of ``task`` (see the module docstring) as numpy arrays.

    Returns:
    - copy/reverse/sort: inputs (n, length) int64, targets (n, length) int64
    - adding: inputs (n, length, 2) float64, targets (n, 1) float64 (``vocab_size`` unused)
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    rng = np.random.default_rng(seed)
    if task == "adding":
        if length < 2:
            raise ValueError(f"the adding problem needs length >= 2, got {length}")
        values = rng.uniform(0.0, 1.0, size=(n, length))
        half = length // 2
        first = rng.integers(0, half, size=n)
        second = rng.integers(half, length, size=n)
        markers = np.zeros((n, length))
        rows = np.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        targets = (values[rows, first] + values[rows, second]).reshape(n, 1)
        return np.stack([values, markers], axis=-1), targets
    tokens = rng.integers(0, vocab_size, size=(n, length), dtype=np.int64)
    if task == "copy":
        targets = tokens.copy()
    elif task == "reverse":
        targets = tokens[:, ::-1].copy()
    else:
        targets = np.sort(tokens, axis=1)
    return tokens, targets


def sequence_loader(
    task: str,
    n: int = 1000,
    batch_size: int = 32,
    seed: int = 0,
    length: int = 10,
    vocab_size: int = 10,
    shuffle: bool = True,
) -> DataLoader:
    """A ``DataLoader`` of (inputs, targets) tensors for ``task``.

    Token tasks give LongTensors (B, length) and (B, length); "adding" gives float32 tensors
    (B, length, 2) and (B, 1). ``seed`` fixes both the data and the shuffling order (through
    the loader's own ``torch.Generator``; the global RNG is not touched).
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    inputs, targets = make_sequence_task(task, n=n, length=length, vocab_size=vocab_size, seed=seed)
    if task == "adding":
        inputs, targets = inputs.astype(np.float32), targets.astype(np.float32)
    dataset = TensorDataset(torch.from_numpy(inputs), torch.from_numpy(targets))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(int(seed)))
