"""15_few_labels' challenge: a digit classifier from 100 labelled digits and 7,900 unlabelled ones.

``fit(X_labelled, y_labelled, X_unlabelled)``: the 8,000 training digits of ``helpers.data.load_digits``,
of which only 100 keep their labels (10 per class, picked by the public seed ``LABELLED_SEED``); the
model maps (B, 1, 28, 28) -> (B, 10) logits and is scored by accuracy, at home on the validation split
and by the grader on the course's held-out test digits (``digits_test.npz``, as 05's challenge).

The rule is enforced, not trusted: in the graded sandbox ``sandbox_files`` replaces the shipped digits
file by one whose labels are all withheld (set to 0) except the 100 given ones, validation split
included, so a fit that calls ``load_digits("train")`` (or reads the file) finds only those 100.
The loader checks the file's sha256, so the replacement also carries ``data/shipped.py`` with that
file's checksum (the same source otherwise).
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from functools import lru_cache
from typing import Any

import numpy as np

from helpers.grading.tasks.base import Task

#: How many labels per class the fit gets, and the public seed that picks them from the training split.
PER_CLASS, LABELLED_SEED = 10, 15
#: The value every withheld label takes in the sandbox's copy of the digits file (a class the loaders
#: accept, the same for every digit: it tells nothing).
WITHHELD = 0
DIGITS_FILE = "mnist9k.npz"


@lru_cache(maxsize=1)
def labelled_indices() -> np.ndarray:
    """Indices (into the training split, sorted) of the 100 labelled digits: 10 per class, public seed."""
    from helpers.data import load_digits

    _, y = load_digits("train")
    rng = np.random.default_rng(LABELLED_SEED)
    idx = [rng.choice(np.flatnonzero(y == c), PER_CLASS, replace=False) for c in range(10)]
    out = np.sort(np.concatenate(idx))
    out.setflags(write=False)
    return out


def split_labelled() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X_labelled (100, 1, 28, 28) float32, y_labelled (100,) int64, X_unlabelled (7900, 1, 28, 28) float32)."""
    from helpers.data import load_digits

    X, y = load_digits("train")
    X = X[:, None]
    keep = labelled_indices()
    rest = np.setdiff1d(np.arange(len(X)), keep)
    return X[keep], y[keep], X[rest]


def withheld_digits_file(original: bytes) -> bytes:
    """The bytes of ``mnist9k.npz`` with every label but the 100 given ones replaced by ``WITHHELD``
    (validation labels too); same arrays, shapes and dtypes, images unchanged."""
    with np.load(io.BytesIO(original)) as f:
        arrays = {k: f[k] for k in f.files}
    labels = np.full_like(arrays["labels"], WITHHELD)
    keep = labelled_indices()  # the training split is the file's first 8,000 digits
    labels[keep] = arrays["labels"][keep]
    arrays["labels"] = labels
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:  # an .npz, byte for byte the same each time
        for name, arr in arrays.items():
            entry = io.BytesIO()
            np.lib.format.write_array(entry, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, entry.getvalue())
    return buf.getvalue()


class FewLabelDigitsClassifier(Task):
    """fit(X_labelled (100, 1, 28, 28) float32 in [0, 1], y_labelled (100,) int64 (10 per class),
    X_unlabelled (7900, 1, 28, 28) float32); the model maps (B, 1, 28, 28) -> (B, 10) logits. Accuracy."""

    name, metric, higher_is_better = "few_label_digits", "accuracy", True
    # gives direction, never the reference model
    advice = ("use the 7,900 unlabelled digits: pretrain an encoder on them (a contrastive loss on two "
              "augmented views), or train on the labelled digits, label the unlabelled ones you are most "
              "confident about and train again; augment the 100 labelled digits (small shifts); compare the "
              "choices on the validation split, never by training on it.")

    def fit_arguments(self) -> tuple:
        import torch

        X, y, Xu = split_labelled()
        return torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(Xu)

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        from helpers.data import load_digits

        X, y = load_digits("val")
        return X[:, None], y

    def output_shape(self, n: int) -> tuple[int, ...]:
        return (n, 10)

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        """mean(argmax(outputs, 1) == targets)."""
        return float(np.mean(np.argmax(outputs, axis=1) == targets))

    def heldout(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return arrays["images"][:, None], arrays["labels"].astype(np.int64)  # uint8 to the sandbox, labels kept

    def sandbox_files(self) -> dict[str, bytes]:
        """The digits file with only the 100 given labels, and the loader's checksum table that accepts it."""
        from helpers.data import shipped

        original = shipped.shipped_path(DIGITS_FILE).read_bytes()
        replaced = withheld_digits_file(original)
        source_path = shipped.__file__
        with open(source_path, encoding="utf-8") as f:
            source = f.read()
        old = shipped.SHIPPED_SHA256[DIGITS_FILE]
        if source.count(old) != 1:
            raise RuntimeError(f"{source_path}: cannot find the checksum of {DIGITS_FILE} to replace")
        new = hashlib.sha256(replaced).hexdigest()
        return {f"datasets/{DIGITS_FILE}": replaced,
                "data/shipped.py": source.replace(old, new).encode("utf-8")}
