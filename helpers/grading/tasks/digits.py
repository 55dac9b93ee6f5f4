"""Challenge tasks on the course's digits: a classifier (05) and a denoiser (10).

The students' data: ``helpers.data.load_digits`` ("train": 8,000, "val": 1,000). The held-out test
digits (``course/heldout/digits_test.npz``, instructor only): 1,000 digits re-drawn with a secret
perturbation (``autograder.authoring.heldout``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from helpers.grading.tasks.base import Task

#: The denoising task (10): notebook 10's diffusion schedule (T steps, betas linear from beta_1 to
#: beta_T), the steps t at which a model is scored (as many images at each), the validation noise seed.
DIFFUSION_T, DIFFUSION_BETA_1, DIFFUSION_BETA_T = 100, 1e-3, 0.1
DENOISE_STEPS = (10, 25, 40, 60)
_VAL_NOISE_SEED = 7


def _digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64) of a shipped split."""
    from helpers.data import load_digits

    X, y = load_digits(split)
    return X[:, None], y


def _heldout_digits(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The held-out file's digits: (uint8 images (N, 1, 28, 28), labels (N,) int64)."""
    return arrays["images"][:, None], arrays["labels"].astype(np.int64)


class DigitsClassifier(Task):
    """fit(X_train (8000, 1, 28, 28) float32 in [0, 1], y_train (8000,) int64, X_val (1000, 1, 28, 28),
    y_val (1000,)); the model maps (B, 1, 28, 28) -> (B, 10) logits. Scored by accuracy."""

    name, metric, higher_is_better = "digits_classifier", "accuracy", True
    # gives direction, never the reference model (issue 27 H2)
    advice = ("convolutions with pooling rather than dense layers on pixels; count where the parameters go "
              "(a dense head on a large map holds most) and spend them on features; standardised inputs, "
              "Adam with a one-cycle schedule, and as many epochs as the CPU budget allows; compare the "
              "choices on the validation split.")

    def fit_arguments(self) -> tuple:
        import torch

        (X, y), (Xv, yv) = _digits("train"), _digits("val")
        return torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(Xv), torch.from_numpy(yv)

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        return _digits("val")

    def output_shape(self, n: int) -> tuple[int, ...]:
        return (n, 10)

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        """mean(argmax(outputs, 1) == targets)."""
        return float(np.mean(np.argmax(outputs, axis=1) == targets))

    def heldout(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return _heldout_digits(arrays)  # uint8 images to the sandbox (it scales by 255), labels kept


def diffusion_betas() -> np.ndarray:
    """Notebook 10's schedule: (T + 1,) float64, betas[0] = 0, then T values from beta_1 to beta_T."""
    return np.concatenate([[0.0], np.linspace(DIFFUSION_BETA_1, DIFFUSION_BETA_T, DIFFUSION_T)])


def noised_at_steps(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """clean (N, 1, 28, 28) in [0, 1] -> (x_t (N, 1, 28, 28) float32, t (N,) int64).

    Each image gets one step of DENOISE_STEPS (as many images each; which image gets which step and
    the noise come from ``rng``) and is noised in the diffusion model's units:
    x_t = sqrt(alpha_bar_t) (2 x - 1) + sqrt(1 - alpha_bar_t) eps, eps ~ N(0, I)."""
    t = rng.permutation(np.resize(np.array(DENOISE_STEPS, dtype=np.int64), len(clean)))
    alpha_bar = np.cumprod(1.0 - diffusion_betas())[t].reshape(-1, 1, 1, 1)
    eps = rng.standard_normal(clean.shape)
    x_t = np.sqrt(alpha_bar) * (2.0 * clean.astype(np.float64) - 1.0) + np.sqrt(1.0 - alpha_bar) * eps
    return x_t.astype(np.float32), t


class DigitsDenoiser(Task):
    """fit(X_train (8000, 1, 28, 28) clean, X_val (1000, 1, 28, 28) clean, betas (T + 1,) float64); the
    model maps (x_t (B, 1, 28, 28) float32, t (B,) int64), a digit noised to step t of the schedule
    (``noised_at_steps``), -> the clean digit (B, 1, 28, 28) in [0, 1]. Scored by mean squared error."""

    name, metric, higher_is_better = "digits_denoiser", "mse", False
    heldout_purpose = "10_generative digits_denoiser: steps and noise of the held-out digits"
    advice = ("telling the network the step t (or the noise level it implies), training on freshly noised "
              "images at random steps each batch, and convolutions rather than dense layers on pixels; "
              "compare the choices on the validation split.")

    def fit_arguments(self) -> tuple:
        import torch

        X, Xv = _digits("train")[0], _digits("val")[0]
        return torch.from_numpy(X), torch.from_numpy(Xv), torch.from_numpy(diffusion_betas())

    def validation(self) -> tuple[tuple, np.ndarray]:
        Xv = _digits("val")[0]
        return noised_at_steps(Xv, np.random.default_rng(_VAL_NOISE_SEED)), Xv

    def output_shape(self, n: int) -> tuple[int, ...]:
        return (n, 1, 28, 28)

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        """mean((outputs - targets)^2) over every pixel."""
        return float(np.mean((outputs.astype(np.float64) - targets) ** 2))

    def heldout(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[tuple, np.ndarray]:
        """Each held-out digit noised to one step (steps and noise from the secret); clean targets kept."""
        clean = _heldout_digits(arrays)[0].astype(np.float32) / np.float32(255.0)
        return noised_at_steps(clean, rng), clean
