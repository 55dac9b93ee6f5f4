"""Small synthetic data sets generated from a seed (no global RNG is touched).

2-D classification (X: (n, 2) float64, y: (n,) int64, rows shuffled):
    make_separable, make_xor, make_moons, make_circles, make_spirals
1-D regression (x: (n, 1) float64 sorted ascending, y: (n, 1) float64):
    make_function_1d

The same arguments always give the same arrays.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _counts(n: int, k: int) -> list[int]:
    """Split n samples over k groups as evenly as possible: _counts(10, 3) == [4, 3, 3]."""
    if n < k:
        raise ValueError(f"need at least {k} samples (one per class), got n={n}")
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _shuffled(rng: np.random.Generator, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(X))
    return X[order].astype(np.float64), y[order].astype(np.int64)


def make_separable(n: int = 200, seed: int = 0, margin: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs that a straight line separates with a gap of at least ``margin``.

    A random line (random direction, offset from the origin) is drawn; points on its two
    sides get labels 0 and 1 (n // 2 and n - n // 2 of them). Every point is at least
    ``margin / 2`` from the line, so the perceptron learning rule is guaranteed to converge.

    Returns X: (n, 2) float64, y: (n,) int64 in {0, 1}.
    """
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.cos(angle), np.sin(angle)])       # unit normal of the line
    centre = rng.uniform(-1.0, 1.0, size=2)                 # a point on the line
    n0, n1 = _counts(n, 2)
    y = np.repeat([0, 1], [n0, n1])
    P = rng.normal(size=(n, 2))
    dist = P @ normal                                       # signed distance to the line
    side = np.where(y == 1, 1.0, -1.0)
    # Move each point along the normal to its class's side, at least margin/2 away.
    P += (side * (np.abs(dist) + margin / 2) - dist)[:, None] * normal
    return _shuffled(rng, P + centre, y)


def make_xor(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """XOR: four clusters at (+-1, +-1); label 1 where the signs of x1 and x2 differ.

    No straight line separates the classes (a single perceptron fails; one hidden layer works).
    ``noise`` is the standard deviation of each cluster. Returns X: (n, 2), y: (n,) in {0, 1}.
    """
    rng = np.random.default_rng(seed)
    corners = np.array([[-1, -1], [1, 1], [-1, 1], [1, -1]], dtype=np.float64)
    labels = np.array([0, 0, 1, 1])
    which = np.repeat(np.arange(4), _counts(n, 4))
    X = corners[which] + noise * rng.normal(size=(n, 2))
    return _shuffled(rng, X, labels[which])


def make_moons(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as scikit-learn's ``make_moons``).

    Class 0: upper half circle of radius 1 centred at (0, 0); class 1: lower half circle
    centred at (1, 0.5). Gaussian noise of std ``noise``. Returns X: (n, 2), y: (n,) in {0, 1}.
    """
    rng = np.random.default_rng(seed)
    n0, n1 = _counts(n, 2)
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n1)
    X = np.concatenate([
        np.stack([np.cos(t0), np.sin(t0)], axis=1),
        np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], axis=1),
    ])
    X += noise * rng.normal(size=X.shape)
    return _shuffled(rng, X, np.repeat([0, 1], [n0, n1]))


def make_circles(
    n: int = 200, noise: float = 0.05, factor: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A small circle (class 1, radius ``factor``) inside a big one (class 0, radius 1).

    Separable by the radius, i.e. by a feature x1^2 + x2^2, not by a line.
    Returns X: (n, 2), y: (n,) in {0, 1}.
    """
    if not 0 < factor < 1:
        raise ValueError(f"factor must be between 0 and 1, got {factor}")
    rng = np.random.default_rng(seed)
    n0, n1 = _counts(n, 2)
    t0 = np.linspace(0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0, 2 * np.pi, n1, endpoint=False)
    X = np.concatenate([
        np.stack([np.cos(t0), np.sin(t0)], axis=1),
        factor * np.stack([np.cos(t1), np.sin(t1)], axis=1),
    ])
    X += noise * rng.normal(size=X.shape)
    return _shuffled(rng, X, np.repeat([0, 1], [n0, n1]))


def make_spirals(
    n: int = 300, n_classes: int = 3, noise: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spirals (the CS231n example), one arm per class.

    ``n`` is the total number of points, split evenly over the classes. Along each arm the
    radius grows from 0 to 1 while the angle turns by 4 radians, plus Gaussian noise of std
    ``noise`` on the angle. Returns X: (n, 2), y: (n,) in {0, ..., n_classes - 1}.
    """
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c, m in enumerate(_counts(n, n_classes)):
        r = np.linspace(0.0, 1.0, m)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, m) + noise * rng.normal(size=m)
        X.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        y.append(np.full(m, c))
    return _shuffled(rng, np.concatenate(X), np.concatenate(y))


FUNCTIONS_1D: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sin": np.sin,
    "quadratic": lambda x: x**2 / 3.0,
    "cubic": lambda x: x**3 / 9.0 - x,
    "abs": np.abs,
    "step": lambda x: (x > 0).astype(np.float64),
    "sawtooth": lambda x: 2.0 * (x / 2.0 - np.floor(x / 2.0 + 0.5)),
    "bump": lambda x: np.exp(-(x**2)),
    "tanh": np.tanh,
}


def make_function_1d(
    fn: str | Callable[[np.ndarray], np.ndarray] = "sin",
    n: int = 100,
    noise: float = 0.1,
    seed: int = 0,
    x_range: tuple[float, float] = (-3.0, 3.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy samples y = fn(x) + noise * N(0, 1) with x uniform in ``x_range``.

    - fn: a name from ``FUNCTIONS_1D`` ("sin", "quadratic", "cubic", "abs", "step",
      "sawtooth", "bump", "tanh") or a vectorised numpy function
    - noise: standard deviation of the Gaussian noise added to y (0 for exact values)

    Returns x: (n, 1) float64 sorted ascending (handy for plotting), y: (n, 1) float64.
    """
    if isinstance(fn, str):
        if fn not in FUNCTIONS_1D:
            raise ValueError(f"unknown function {fn!r}; choose one of {sorted(FUNCTIONS_1D)} "
                             "or pass a callable")
        fn = FUNCTIONS_1D[fn]
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(x_range[0], x_range[1], size=n))
    y = np.asarray(fn(x), dtype=np.float64)
    if y.shape != x.shape:
        raise ValueError(f"fn must map an array of shape {x.shape} to the same shape, got {y.shape}")
    y = y + noise * rng.normal(size=n)
    return x.reshape(n, 1), y.reshape(n, 1)
