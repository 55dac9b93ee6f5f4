"""The attacked digits of 14_robustness's challenge, made on the trusted side (the instructor's tool).

A surrogate CNN (05's kind of network: its training here is close to 05's challenge solution, which is
why this module is the autograder's and never ships to students) is trained on the students' training
digits from a seed, and PGD attacks digits against it:

- ``heldout_build`` (named by ``helpers.grading.tasks.robustness.AttackedDigitsClassifier.heldout_file``,
  run by ``python -m autograder.authoring.heldout build``): the instructor's held-out digits, clean and
  attacked against a surrogate seeded from the secret; its weights are never saved;
- ``make_validation_file``: the public attacked validation set students score on at home
  (``helpers/datasets/digits_val_attacked.npz``), against a surrogate with the public seed.

    python -m autograder.authoring.attacks     # rewrites helpers/datasets/digits_val_attacked.npz
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from helpers.data.shipped import npz_bytes
from helpers.grading.tasks.robustness import EPS, EPS_LEVELS, HELDOUT_FILE, validation_path

#: The attack: PGD in the L-infinity ball of radius EPS (pixels in [0, 1]), PGD_STEPS steps of
#: PGD_ALPHA from a uniform random start, on the surrogate's cross-entropy; the attacked images are
#: rounded to uint8 and kept within EPS_LEVELS levels of the clean one.
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


def heldout_build(digits: np.ndarray, labels: np.ndarray, seed_for: Callable[[str], int]) -> dict[str, np.ndarray]:
    """The held-out file's arrays (``Task.heldout_file``'s build): the instructor's held-out digits, clean
    and attacked against a surrogate seeded from the secret."""
    return attacked_set(np.asarray(digits, dtype=np.uint8), np.asarray(labels), seed_for(SURROGATE_PURPOSE))


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


if __name__ == "__main__":  # pragma: no cover - maintainer tool
    print(make_validation_file())
