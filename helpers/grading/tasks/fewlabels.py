"""15_few_labels' challenge: a digit classifier from 100 labelled digits and 7,900 unlabelled ones.

``fit(X_labelled, y_labelled, X_unlabelled)``: the 8,000 training digits of ``helpers.data.load_digits``,
of which only 100 keep their labels (10 per class, picked by the public seed ``LABELLED_SEED``); the
model maps (B, 1, 28, 28) -> (B, 10) logits and is scored by accuracy, at home on the validation split
and by the grader on the course's held-out test digits (``digits_test.npz``, as 05's challenge).

The rule is enforced, not trusted: in the graded sandbox ``sandbox_files`` replaces the shipped digits
file by one whose labels are all withheld (set to 0) except the 100 given ones, validation split
included, so a fit that calls ``load_digits("train")`` (or reads the file) finds only those 100; every
other package file that holds labels of those digits is replaced too (``WITHHOLD``). The loader checks
the digits file's sha256, so the replacement also carries ``data/shipped.py`` with that file's checksum
(the same source otherwise).
"""
from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np

from helpers.data.shipped import npz_bytes
from helpers.grading.tasks.base import Task

#: How many labels per class the fit gets, and the public seed that picks them from the training split.
PER_CLASS, LABELLED_SEED = 10, 15
#: The value every withheld label takes in the sandbox's copy of the digits file (a class the loaders
#: accept, the same for every digit: it tells nothing).
WITHHELD = 0
DIGITS_FILE = "mnist9k.npz"


#: The 100 labelled digits: indices into the training split, sorted (``np.random.default_rng(LABELLED_SEED)``
#: drew 10 of each class from the original labels; fixed here, since the sandbox's copy of the file has no
#: other labels to draw from; ``tests/course/test_few_labels.py`` draws them again).
LABELLED = (
    314, 353, 396, 425, 490, 493, 498, 519, 588, 670, 712, 733, 735, 736, 742, 1013, 1054, 1227, 1255,
    1431, 1473, 1654, 1689, 1732, 1936, 1987, 2009, 2075, 2081, 2087, 2206, 2390, 2470, 2593, 2772,
    2797, 2808, 2842, 2980, 3121, 3178, 3419, 3534, 3576, 3723, 3732, 3762, 3859, 3998, 4090, 4101,
    4388, 4678, 4755, 4927, 5013, 5068, 5108, 5110, 5384, 5388, 5457, 5478, 5695, 5732, 5794, 5799,
    5804, 5903, 6007, 6087, 6261, 6336, 6370, 6415, 6551, 6560, 6718, 6738, 6952, 6959, 7089, 7197,
    7241, 7288, 7374, 7402, 7424, 7440, 7442, 7458, 7490, 7543, 7640, 7764, 7794, 7938, 7954, 7985, 7992,
)


def labelled_indices() -> np.ndarray:
    """Indices (into the training split, sorted) of the 100 labelled digits: 10 per class (``LABELLED``)."""
    out = np.array(LABELLED, dtype=np.int64)
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


def _arrays(original: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(original), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def withheld_digits_file(original: bytes) -> bytes:
    """The bytes of ``mnist9k.npz`` with every label but the 100 given ones replaced by ``WITHHELD``
    (validation labels too); same arrays, shapes and dtypes, images unchanged."""
    arrays = _arrays(original)
    labels = np.full_like(arrays["labels"], WITHHELD)
    keep = labelled_indices()  # the training split is the file's first 8,000 digits
    labels[keep] = arrays["labels"][keep]
    arrays["labels"] = labels
    return npz_bytes(**arrays)


def withheld_attacked_file(original: bytes) -> bytes:
    """14_robustness's public attacked validation set (``digits_val_attacked.npz``: the validation digits,
    clean and attacked, with their labels) without what tells their labels: labels replaced by
    ``WITHHELD``, and the attacked images by the clean ones (an attack's perturbation follows the gradient of
    the true class's loss, so it carries the label too). Same arrays, shapes and dtypes."""
    arrays = _arrays(original)
    arrays["labels"] = np.full_like(arrays["labels"], WITHHELD)
    if "attacked" in arrays and "clean" in arrays:
        arrays["attacked"] = arrays["clean"].copy()
    return npz_bytes(**arrays)


#: Every file of ``helpers/datasets`` that holds (or could give away) labels of the shipped digits, and how
#: the graded sandbox's copy withholds them. The rest hold no digit: PROVENANCE.md, names.txt
#: (``tests/course/test_few_labels.py`` fails when a new file appears there, until it is listed here or
#: there).
WITHHOLD = {DIGITS_FILE: withheld_digits_file, "digits_val_attacked.npz": withheld_attacked_file}
LABEL_FREE = ("PROVENANCE.md", "names.txt")


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
        """The package's data files without the labels the rule withholds (``WITHHOLD``), and the loader's
        checksum table with the replaced digits file's checksum."""
        from helpers.data import shipped

        out: dict[str, bytes] = {}
        for name, withhold in WITHHOLD.items():
            path = shipped.DATASETS_DIR / name
            if path.is_file():
                out[f"datasets/{name}"] = withhold(path.read_bytes())
        source_path = shipped.__file__
        with open(source_path, encoding="utf-8") as f:
            source = f.read()
        for name, data in out.items():
            old = shipped.SHIPPED_SHA256.get(name.split("/")[-1])
            if old is None:
                continue                                # a file the loader does not check
            if source.count(old) != 1:
                raise RuntimeError(f"{source_path}: cannot find the checksum of {name} to replace")
            source = source.replace(old, hashlib.sha256(data).hexdigest())
        shipped.shipped_path(DIGITS_FILE)                # the original is intact (its checksum checked)
        out["data/shipped.py"] = source.encode("utf-8")
        return out
