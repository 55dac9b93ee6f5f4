"""The segmentation challenge (12): a label map for every pixel of a digit scene.

The students' data: ``helpers.data.scenes.load_scenes`` ("train": 2,000 scenes from the 8,000 training
digits, "val": 500 from the 1,000 validation digits). The held-out test scenes
(``course/heldout/scenes_test.npz``, instructor only) are built by the same ``make_scenes`` from the
instructor's 1,000 held-out (perturbed) digits, with randomness drawn from the secret.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from helpers.grading.tasks.base import Inputs, Task

#: held-out file, number of held-out scenes
SCENES_TEST, N_TEST_SCENES = "scenes_test.npz", 500


def scenes_mean_iou(outputs: np.ndarray, targets: np.ndarray, n_classes: int = 11) -> float:
    """Mean IoU over the digit classes 1..n_classes-1 (background excluded), pooled over all scenes.

    outputs: predicted class indices (any shape, as float); targets: true classes, same shape.
    IoU_c = |pred c and true c| / |pred c or true c| over all pixels of all scenes; a class that is
    neither true nor predicted anywhere is skipped (with 500 scenes every digit class is present).
    A predicted value that is not a whole number in 0..n_classes-1 is a wrong pixel (it matches
    no class, and counts in the union of the pixel's true class)."""
    pred = np.asarray(outputs, dtype=np.float64).ravel()
    truth = np.asarray(targets).astype(np.int64).ravel()
    whole = np.rint(pred)
    ok = (whole == pred) & (whole >= 0) & (whole < n_classes)
    p = np.where(ok, whole, n_classes).astype(np.int64)           # n_classes: "no class"
    cm = np.bincount(truth * (n_classes + 1) + p, minlength=n_classes * (n_classes + 1))
    cm = cm.reshape(n_classes, n_classes + 1)
    tp = np.diag(cm[:, :n_classes]).astype(np.float64)
    union = cm.sum(axis=1) + cm[:, :n_classes].sum(axis=0) - tp
    digits = slice(1, n_classes)
    present = union[digits] > 0
    if not present.any():
        return float("nan")
    return float(np.mean(tp[digits][present] / union[digits][present]))


class ScenesSegmenter(Task):
    """fit(X_train (2000, 1, 32, 32) float32 in [0, 1], Y_train (2000, 32, 32) int64 label maps
    (0 background, 1 + d digit d), X_val (500, 1, 32, 32), Y_val (500, 32, 32)); the model maps
    (B, 1, 32, 32) float32 -> (B, 11, 32, 32) class scores. Scored by the mean IoU over the 10 digit
    classes of the argmax label maps."""

    name, metric, higher_is_better = "scenes_segmenter", "mean IoU", True
    # gives direction, never the reference model
    advice = ("an encoder-decoder with skip connections (a U-Net) and batch norm; a class-weighted "
              "per-pixel loss so that the background does not dominate; as many epochs as the CPU budget "
              "allows, since naming the digit is learnt much later than finding the ink; compare the "
              "choices on the validation scenes.")

    def fit_arguments(self) -> tuple:
        import torch

        from helpers.data.scenes import load_scenes

        X, Y, _ = load_scenes("train")
        Xv, Yv, _ = load_scenes("val")
        return torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(Xv), torch.from_numpy(Yv)

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        from helpers.data.scenes import load_scenes

        Xv, Yv, _ = load_scenes("val")
        return Xv, Yv

    def outputs(self, model: Any, inputs: Inputs, batch: int = 250) -> np.ndarray:
        """The label maps (N, 32, 32), as float: the argmax over the class axis of outputs of shape
        (B, 11, 32, 32). Any other output goes through as it is (concatenated over the batches): a model
        that returns label maps (B, 32, 32) itself is scored on them, and any other shape fails the
        shape check, which says so."""
        import torch

        model.eval()
        outs = []
        with torch.no_grad():
            for i in range(0, len(inputs), batch):
                x = torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch]))
                if x.dtype == torch.uint8:
                    x = x.float() / 255.0
                out = model(x)
                if isinstance(out, torch.Tensor) and out.ndim == 4 and tuple(out.shape[1:]) == (11, 32, 32):
                    out = out.argmax(dim=1)
                outs.append(out.detach().float().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out))
        return np.concatenate(outs) if outs else np.zeros((0, 32, 32))

    def output_shape(self, n: int) -> tuple[int, ...]:
        return (n, 32, 32)

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        return scenes_mean_iou(outputs, targets)

    def describe(self, value: float) -> str:
        return f"{value:.3f}"

    def heldout(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """uint8 scenes (N, 1, 32, 32) to the sandbox (it scales by 255), label maps kept here."""
        return arrays["images"], arrays["labels"].astype(np.int64)

    def heldout_file(self) -> tuple[str, Any]:
        """scenes_test.npz: 500 scenes made by ``make_scenes`` from the held-out digits, every draw from
        the secret (no code holds the seed)."""
        from helpers.data.scenes import make_scenes

        def build(digits: np.ndarray, labels: np.ndarray, seed_for: Any) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(seed_for(f"{SCENES_TEST}: scenes"))
            X, label_map, _ = make_scenes(np.asarray(digits, dtype=np.float32) / 255.0, labels, rng,
                                          n=N_TEST_SCENES)
            return {"images": np.round(X * 255.0).astype(np.uint8), "labels": label_map.astype(np.uint8)}

        return SCENES_TEST, build
