"""The robustness challenge (14): a digit classifier graded on clean digits and on attacked ones.

The students' data: ``helpers.data.load_digits`` ("train": 8,000, "val": 1,000), as for 05. The
held-out file (``course/heldout/attacked_digits_test.npz``, instructor only) holds the instructor's
1,000 held-out (perturbed) digits twice: clean, and attacked by PGD (L-infinity, ``EPS`` in pixel
units of [0, 1]) against an **instructor-only surrogate CNN** whose initialisation and data order are
drawn from the secret and whose weights are never saved. The sandbox only classifies the 2,000 given
images (in an order drawn from the secret); the labels and which images are attacked stay on the
trusted side. A submission cannot make itself look robust by masking its own gradients: the attack
was computed beforehand on another model (a transfer attack).

At home, ``validation()`` scores the same way on ``helpers/datasets/digits_val_attacked.npz``: the
1,000 validation digits, clean and attacked the same way against a **public** surrogate (public
seed). The grader's surrogate is another network (other seeds, secret), so the home figure estimates
the grade; it is not the grade. Both files are made by the instructor's tool
(``autograder.authoring.attacks``), which is never bundled:

    python -m autograder.authoring.attacks     # rewrites helpers/datasets/digits_val_attacked.npz
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from helpers.grading.tasks.base import Task

#: held-out file; the public validation file (in helpers/datasets/)
HELDOUT_FILE = "attacked_digits_test.npz"
VALIDATION_FILE = "digits_val_attacked.npz"
#: The attack (made on the trusted side, ``autograder.authoring.attacks``): PGD in the L-infinity ball
#: of radius EPS (pixels in [0, 1]); EPS = 51/255 = 0.2 exactly in uint8 units.
EPS_LEVELS = 51
EPS = EPS_LEVELS / 255.0
#: What builds the held-out file, on the trusted side only (the instructor's tool, never bundled: the
#: surrogate is a strong CNN of 05's kind and its training is 05's challenge's kind of solution).
BUILDER = "autograder.authoring.attacks:heldout_build"


def validation_path() -> Path:
    return Path(__file__).resolve().parents[2] / "datasets" / VALIDATION_FILE


def load_validation() -> dict[str, np.ndarray]:
    """The public attacked validation set: {"clean", "attacked": (1000, 28, 28) uint8, "labels": (1000,) uint8}."""
    with np.load(validation_path(), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _pairs(clean: np.ndarray, attacked: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(images (2N, 1, 28, 28) uint8: clean then attacked; targets (2N, 2) int64: label, attacked 0/1)."""
    n = len(labels)
    images = np.concatenate([clean, attacked])[:, None]
    targets = np.stack([np.concatenate([labels, labels]).astype(np.int64),
                        np.repeat(np.array([0, 1], dtype=np.int64), n)], axis=1)
    return images, targets


class AttackedDigitsClassifier(Task):
    """fit(X_train (8000, 1, 28, 28) float32 in [0, 1], y_train (8000,) int64, X_val (1000, 1, 28, 28),
    y_val (1000,)); the model maps (B, 1, 28, 28) float32 in [0, 1] -> (B, 10) logits. Scored on clean
    digits and the same digits attacked (transfer PGD, L-infinity EPS = 0.2) by the mean of the two
    accuracies (``score``)."""

    name, metric, higher_is_better = "attacked_digits", "mean of clean and attacked accuracy", True
    heldout_purpose = "14_robustness attacked_digits: order of the held-out images"
    items = "digits (half of them attacked)"
    # gives direction, never the reference model
    advice = ("adversarial training: train on examples attacked on the fly against the model itself "
              "(FGSM from a random start is cheap; PGD is stronger and costs a gradient per step), with an "
              "eps near the grader's 0.2, mixed with clean examples so that the clean accuracy does not "
              "fall too far; measure both figures on the public attacked validation set.")

    def fit_arguments(self) -> tuple:
        import torch

        from helpers.data import load_digits

        (X, y), (Xv, yv) = load_digits("train"), load_digits("val")
        return (torch.from_numpy(X[:, None]), torch.from_numpy(y), torch.from_numpy(Xv[:, None]),
                torch.from_numpy(yv))

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        """The public attacked validation set: inputs (2000, 1, 28, 28) float32 in [0, 1] (1,000 clean, then
        the same 1,000 attacked), targets (2000, 2) int64 (label, attacked 0/1)."""
        v = load_validation()
        images, targets = _pairs(v["clean"], v["attacked"], v["labels"])
        return images.astype(np.float32) / np.float32(255.0), targets

    def output_shape(self, n: int) -> tuple[int, ...]:
        return (n, 10)

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        """(clean accuracy + attacked accuracy) / 2: the accuracy (argmax of the outputs == the label) on
        the clean images and on the attacked ones, each over its own images, then their mean.
        targets: (n, 2) int64, column 0 the label, column 1 whether the image is attacked (1) or clean (0)."""
        targets = np.asarray(targets)
        right = np.argmax(outputs, axis=1) == targets[:, 0]
        attacked = targets[:, 1] == 1
        return float((right[~attacked].mean() + right[attacked].mean()) / 2)

    def describe(self, value: float) -> str:
        return f"{value * 100:.1f} %"

    def heldout(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The 2,000 images (uint8, (2000, 1, 28, 28): the sandbox scales by 255) in an order drawn from the
        secret; the targets (label, attacked) kept here, in the same order."""
        images, targets = _pairs(arrays["clean"], arrays["attacked"], arrays["labels"])
        order = rng.permutation(len(images))
        return np.ascontiguousarray(images[order]), np.ascontiguousarray(targets[order])

    def heldout_file(self) -> tuple[str, Any]:
        """attacked_digits_test.npz, built on the trusted side by ``BUILDER``: the held-out digits, clean and
        attacked against a surrogate seeded from the secret (no code holds its seed; its weights are never
        saved)."""
        return HELDOUT_FILE, BUILDER
