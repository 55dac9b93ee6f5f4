"""2-D toy densities for density estimation (notebook 16_flows), drawn from a seed.

The two moons are ``helpers.data.synthetic.make_moons``; this module adds a density whose exact
log-density is known, so that a model's log-likelihood can be compared with the truth:

- ``make_ring``: an equal mixture of k isotropic Gaussians whose means lie on a circle;
- ``ring_log_density``: the exact log-density of that mixture at any points.

Nothing is drawn at import time; every draw uses a local ``np.random.default_rng(seed)``.
"""
from __future__ import annotations

import numpy as np


def _ring_means(k: int, radius: float) -> np.ndarray:
    angles = 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (k, 2)


def _check(k: int, radius: float, std: float) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if radius < 0 or std <= 0:
        raise ValueError(f"need radius >= 0 and std > 0, got radius={radius}, std={std}")


def make_ring(n: int = 2000, k: int = 8, radius: float = 2.0, std: float = 0.2,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points of an equal mixture of k Gaussians N(m_j, std^2 I), m_j = radius (cos 2pi j/k, sin 2pi j/k).

    Returns X: (n, 2) float64 and y: (n,) int64, the component j of each point (uniform over the k).
    """
    _check(k, radius, std)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    X = _ring_means(k, radius)[y] + std * rng.normal(size=(n, 2))
    return X, y.astype(np.int64)


def ring_log_density(points: np.ndarray, k: int = 8, radius: float = 2.0, std: float = 0.2) -> np.ndarray:
    """Exact log-density (nats) of ``make_ring``'s mixture at points (..., 2) -> (...)."""
    _check(k, radius, std)
    points = np.asarray(points, dtype=np.float64)
    d2 = ((points[..., None, :] - _ring_means(k, radius)) ** 2).sum(-1)          # (..., k)
    log_comp = -d2 / (2 * std ** 2) - np.log(2 * np.pi * std ** 2)               # each N(m_j, std^2 I) in 2-D
    top = log_comp.max(-1, keepdims=True)
    return (top + np.log(np.exp(log_comp - top).mean(-1, keepdims=True)))[..., 0]  # log (1/k) sum_j
