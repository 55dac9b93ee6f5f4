"""Synthetic time series and the windowing that turns a series into (past -> future) samples.

    series = noisy_sines(n_series=50, length=200, seed=0)        # (50, 200)
    X, y = make_windows(series, window=20, horizon=1)             # (50 * 180, 20), (50 * 180, 1)
"""
from __future__ import annotations

import numpy as np


def noisy_sines(
    n_series: int = 100, length: int = 200, seed: int = 0, noise: float = 0.1
) -> np.ndarray:
    """Sine waves with random period (10 to 50 steps), amplitude (0.5 to 1.5) and phase,
    plus Gaussian noise of std ``noise``.

    Returns series: (n_series, length) float64; series[i, t] is series i at time step t.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    period = rng.uniform(10.0, 50.0, size=(n_series, 1))
    amplitude = rng.uniform(0.5, 1.5, size=(n_series, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n_series, 1))
    clean = amplitude * np.sin(2 * np.pi * t / period + phase)
    return clean + noise * rng.normal(size=(n_series, length))


def make_windows(series: np.ndarray, window: int, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cut series into overlapping (input window -> next ``horizon`` values) samples.

    Inputs:
    - series: (L,) one series, or (S, L) S series of the same length L
    - window: number of past values the model sees
    - horizon: number of future values to predict

    Returns, with W = L - window - horizon + 1 windows per series (in time order, series
    after series):
    - X: (S * W, window), X[k] = series[s, t : t + window]
    - y: (S * W, horizon), y[k] = series[s, t + window : t + window + horizon]
    """
    series = np.asarray(series)
    if series.ndim == 1:
        series = series[None, :]
    if series.ndim != 2:
        raise ValueError(f"series must be (L,) or (S, L), got shape {series.shape}")
    if window < 1 or horizon < 1:
        raise ValueError(f"window and horizon must be >= 1, got {window} and {horizon}")
    L = series.shape[1]
    if window + horizon > L:
        raise ValueError(f"window + horizon = {window + horizon} is longer than the series ({L})")
    views = np.lib.stride_tricks.sliding_window_view(series, window + horizon, axis=1)
    views = views.reshape(-1, window + horizon)        # (S * W, window + horizon), a copy
    return views[:, :window].copy(), views[:, window:].copy()
