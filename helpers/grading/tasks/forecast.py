"""The forecasting challenge (07): the next 10 values of a noisy sine series from its past 40."""
from __future__ import annotations

from typing import Any

import numpy as np

from helpers.grading.tasks.base import Task

#: Past window and horizon (values), and the series' noise.
FORECAST_WINDOW, FORECAST_HORIZON, FORECAST_NOISE = 40, 10, 0.1


def forecast_windows(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """series (S, L) -> non-overlapping (X (S * K, WINDOW), y (S * K, HORIZON)) samples, K = L // (W + H)."""
    step = FORECAST_WINDOW + FORECAST_HORIZON
    k = series.shape[1] // step
    chunks = series[:, :k * step].reshape(-1, step)
    return chunks[:, :FORECAST_WINDOW].astype(np.float32), chunks[:, FORECAST_WINDOW:].astype(np.float32)


class SineForecaster(Task):
    """fit(X_train (N, 40) past values, y_train (N, 10) the next 10, X_val, y_val); the model maps
    (B, 40) -> (B, 10). Series: ``helpers.data.noisy_sines`` (noise 0.1), any seed. Scored by mse."""

    name, metric, higher_is_better = "sine_forecaster", "mse", False
    advice = ("more training series first (the generator is known: data.noisy_sines with any seed but 1, "
              "the validation seed), then a model that reads the window in order and predicts the 10 values "
              "without feeding its own errors back; compare the choices on the validation split.")

    def fit_arguments(self) -> tuple:
        import torch

        from helpers.data import noisy_sines

        X, y = forecast_windows(noisy_sines(n_series=400, length=200, seed=0, noise=FORECAST_NOISE))
        Xv, yv = self.validation()
        return torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(Xv), torch.from_numpy(yv)

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        from helpers.data import noisy_sines

        return forecast_windows(noisy_sines(n_series=100, length=200, seed=1, noise=FORECAST_NOISE))

    def output_shape(self, n: int) -> tuple[int, ...]:
        return (n, FORECAST_HORIZON)

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        """mean((outputs - targets)^2)."""
        return float(np.mean((outputs.astype(np.float64) - targets) ** 2))

    def heldout(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return arrays["inputs"].astype(np.float32), arrays["targets"].astype(np.float32)

    def heldout_file(self) -> tuple[str, Any]:
        """series_test.npz: 800 samples cut from 200 series seeded from the secret (no code holds their seed)."""
        from helpers.data import noisy_sines

        def build(digits: np.ndarray, labels: np.ndarray, seed_for: Any) -> dict[str, np.ndarray]:
            # seeded with the full secret (purpose ""), as the file has been since 07's challenge
            past, future = forecast_windows(noisy_sines(n_series=200, length=200, seed=seed_for(""),
                                                        noise=FORECAST_NOISE))
            return {"inputs": past, "targets": future}

        return "series_test.npz", build
