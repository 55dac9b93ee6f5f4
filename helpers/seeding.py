"""Seeding: one call makes Python, NumPy and (if imported) PyTorch repeatable."""
from __future__ import annotations

import os
import random
import sys

import numpy as np


def seed_everything(seed: int = 0, deterministic_torch: bool = True) -> np.random.Generator:
    """Seed ``random``, NumPy's legacy global RNG and torch (when installed).

    Returns a fresh ``numpy.random.Generator`` seeded with ``seed``, the RNG that
    course code should prefer over the legacy global state.

    Nothing is seeded at import time: call this at the top of a notebook.
    """
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses started later
    if "torch" in sys.modules or _torch_importable():
        import torch

        torch.manual_seed(seed)
        if deterministic_torch:
            torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def _torch_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None
