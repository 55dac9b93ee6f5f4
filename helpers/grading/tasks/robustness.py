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
seed, ``make_validation_file``). The grader's surrogate is another network (other seeds, secret), so
the home figure estimates the grade; it is not the grade.

    python -m helpers.grading.tasks.robustness     # rewrites helpers/datasets/digits_val_attacked.npz
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from helpers.data.shipped import npz_bytes
from helpers.grading.tasks.base import Task

#: held-out file; the public validation file (in helpers/datasets/)
HELDOUT_FILE = "attacked_digits_test.npz"
VALIDATION_FILE = "digits_val_attacked.npz"
#: The attack: PGD in the L-infinity ball of radius EPS (pixels in [0, 1]), PGD_STEPS steps of
#: PGD_ALPHA from a uniform random start, on the surrogate's cross-entropy. EPS = 51/255 = 0.2 exactly
#: in uint8 units: the attacked images are rounded to uint8 and kept within 51 levels of the clean one.
EPS_LEVELS = 51
EPS = EPS_LEVELS / 255.0
PGD_STEPS, PGD_ALPHA = 20, 0.025
#: The surrogate's training: epochs, batch, Adam's learning rate (about 98 % on the validation digits).
SURROGATE_EPOCHS, SURROGATE_BATCH, SURROGATE_LR = 3, 64, 2e-3
#: The public surrogate's seed (validation file only; the grader's surrogate is seeded from the secret).
PUBLIC_SEED = 14
SURROGATE_PURPOSE = f"{HELDOUT_FILE}: surrogate"


def surrogate_cnn():
    """The surrogates' architecture (the 05 challenge's kind of CNN): (B, 1, 28, 28) in [0, 1] -> (B, 10)."""
    from torch import nn

    class Standardise(nn.Module):
        def forward(self, x):
            return (x - 0.1307) / 0.3081

    return nn.Sequential(
        Standardise(),
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 3 * 3, 10),
    )


def train_surrogate(X: np.ndarray, y: np.ndarray, seed: int):
    """A surrogate CNN trained on X (N, 1, 28, 28) float32 in [0, 1], y (N,) int64; its initialisation,
    data order and everything random come from ``seed`` (any int; one torch thread, the global torch
    generator restored afterwards): the same seed gives the same network on the same machine."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) % (2 ** 63))
            model = surrogate_cnn()
            Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(np.ascontiguousarray(y))
            opt = torch.optim.Adam(model.parameters(), lr=SURROGATE_LR)
            for _ in range(SURROGATE_EPOCHS):
                model.train()
                order = torch.randperm(len(Xt))
                for i in range(0, len(Xt), SURROGATE_BATCH):
                    idx = order[i:i + SURROGATE_BATCH]
                    loss = F.cross_entropy(model(Xt[idx]), yt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def pgd_attack_uint8(model: Any, images: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """PGD (L-infinity, EPS, PGD_STEPS steps of PGD_ALPHA, uniform random start drawn from ``seed``) on
    ``model``'s cross-entropy: images (N, 28, 28) uint8 -> attacked (N, 28, 28) uint8, every pixel within
    EPS_LEVELS of the clean one (so |attacked - clean| <= EPS in [0, 1] units after rounding)."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) % (2 ** 63))
            model.eval()
            x = torch.from_numpy(images.astype(np.float32) / np.float32(255.0))[:, None]
            y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
            adv = (x + EPS * (2 * torch.rand(x.shape) - 1)).clamp(0, 1)
            for _ in range(PGD_STEPS):
                adv.requires_grad_(True)
                grad, = torch.autograd.grad(F.cross_entropy(model(adv), y, reduction="sum"), adv)
                with torch.no_grad():
                    adv = adv + PGD_ALPHA * grad.sign()
                    adv = torch.min(torch.max(adv, x - EPS), x + EPS).clamp(0, 1)
            adv = adv.detach()[:, 0].numpy()
    finally:
        torch.set_num_threads(threads)
    clean = images.astype(np.int64)
    out = np.clip(np.rint(adv.astype(np.float64) * 255.0), clean - EPS_LEVELS, clean + EPS_LEVELS)
    return np.clip(out, 0, 255).astype(np.uint8)


def attacked_set(images: np.ndarray, labels: np.ndarray, surrogate_seed: int) -> dict[str, np.ndarray]:
    """Train a surrogate from ``surrogate_seed`` on the students' training digits and attack ``images``
    ((N, 28, 28) uint8) with it: {"clean": uint8 (N, 28, 28), "attacked": uint8 (N, 28, 28), "labels": uint8 (N,)}.
    The surrogate is dropped here: its weights are never written anywhere."""
    from helpers.data import load_digits

    X, y = load_digits("train")
    surrogate = train_surrogate(X[:, None], y, surrogate_seed)
    attacked = pgd_attack_uint8(surrogate, images, labels, surrogate_seed + 1)
    return {"clean": np.asarray(images, dtype=np.uint8), "attacked": attacked,
            "labels": np.asarray(labels, dtype=np.uint8)}


def validation_path() -> Path:
    return Path(__file__).resolve().parents[2] / "datasets" / VALIDATION_FILE


def make_validation_file(path: Path | None = None) -> Path:
    """Write the public attacked validation set: the 1,000 validation digits, clean and attacked by PGD
    against a public surrogate (seed PUBLIC_SEED) trained on the training digits."""
    from helpers.data import load_digits

    Xv, yv = load_digits("val")
    images = np.rint(Xv * 255.0).astype(np.uint8)
    arrays = attacked_set(images, yv, PUBLIC_SEED)
    path = path or validation_path()
    path.write_bytes(npz_bytes(**arrays))
    return path


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
        """attacked_digits_test.npz: the held-out digits, clean and attacked against a surrogate seeded from
        the secret (no code holds its seed; its weights are never saved)."""

        def build(digits: np.ndarray, labels: np.ndarray, seed_for: Any) -> dict[str, np.ndarray]:
            return attacked_set(np.asarray(digits, dtype=np.uint8), np.asarray(labels),
                                seed_for(SURROGATE_PURPOSE))

        return HELDOUT_FILE, build


if __name__ == "__main__":  # pragma: no cover - maintainer tool
    print(make_validation_file())
