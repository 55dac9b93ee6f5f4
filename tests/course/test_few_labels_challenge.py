"""15_few_labels' challenge through the real CLI: the reference, a weak fit (a CNN on the 100 labels only),
the released stub, and three fits that break the rules: one trains on every label ``load_digits("train")``
returns, one reads the labels straight from the package's digits file, one looks for the instructor's
held-out digits. In the graded sandbox the package's digits file carries only the 100 given labels
(``FewLabelDigitsClassifier.sandbox_files``): the first two train on withheld labels (all 0) and score like a
blank model, far below what they reach at home; the third finds no held-out file and returns a blank model.
"""
from __future__ import annotations

import pytest

from tests.support import submissions as subs
from tests.support.course import REPO

AID = "15_few_labels"
EXERCISES = 7                                            # the notebook's 4 exercises; the challenge is 5 more

WEAK = '''def fit_few_labels(X_labelled, y_labelled, X_unlabelled):
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):                       # the 100 labels only, no augmentation, no unlabelled digits
        loss = F.cross_entropy(model(X_labelled), y_labelled)
        opt.zero_grad(); loss.backward(); opt.step()
    return model
'''

_TRAIN_ON = '''
    model = nn.Sequential(nn.Conv2d(1, 16, 5, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 12 * 12, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(3):
        order = torch.randperm(len(X))
        for i in range(0, len(X), 64):
            b = order[i:i + 64]
            loss = F.cross_entropy(model(X[b]), y[b])
            opt.zero_grad(); loss.backward(); opt.step()
    return model
'''
# every training label, through the course's own loader
LOADER = '''def fit_few_labels(X_labelled, y_labelled, X_unlabelled):
    from helpers.data import load_digits
    X, y = load_digits("train")
    X, y = torch.from_numpy(X[:, None]), torch.from_numpy(y)
''' + _TRAIN_ON
# every training label, read from the package's file directly (no checksum, no loader)
RAW_FILE = '''def fit_few_labels(X_labelled, y_labelled, X_unlabelled):
    import os
    import helpers
    with np.load(os.path.join(os.path.dirname(helpers.__file__), "datasets", "mnist9k.npz")) as f:
        X = torch.from_numpy(f["images"][:8000, None].astype(np.float32) / 255)
        y = torch.from_numpy(f["labels"][:8000].astype(np.int64))
''' + _TRAIN_ON
# the instructor's held-out digits, wherever the course might be: trains on them if it finds them
HELDOUT = '''def fit_few_labels(X_labelled, y_labelled, X_unlabelled):
    import os
    from pathlib import Path
    places = [Path(%r) / "course" / "heldout" / "digits_test.npz"]
    for up in [Path.cwd(), *Path.cwd().parents]:
        places += [up / "heldout" / "digits_test.npz", up / "course" / "heldout" / "digits_test.npz"]
    for p in places:
        try:
            with np.load(p) as f:
                X = torch.from_numpy(f["images"][:, None].astype(np.float32) / 255)
                y = torch.from_numpy(f["labels"].astype(np.int64))
            break
        except Exception:
            continue
    else:
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))     # found nothing: a blank model
''' % str(REPO) + _TRAIN_ON


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    variants = {"strong": None, "weak": WEAK, "missing": subs.STUB, "loader": LOADER, "rawfile": RAW_FILE,
                "heldout": HELDOUT}
    return subs.challenge_batch(tmp_path_factory.mktemp("fewlabels"), AID, "few_label_digits", "fit_few_labels",
                                variants)


def _accuracy(verdict: str) -> float:
    import re

    return float(re.search(r"accuracy ([0-9.]+) %", verdict).group(1)) / 100


@pytest.mark.slow
def test_strong_weak_missing_and_three_ways_around_the_rule(graded):
    assert graded["result"].returncode == 0, graded["result"].stderr[-3000:]
    g, verdict = graded["grades"], graded["verdict"]
    for student in ("strong", "weak", "missing", "loader", "rawfile", "heldout"):
        print(f"{student}: {g[(student, AID)]['score']} / {g[(student, AID)]['max_score']}: {verdict(student)}")
    assert (g[("strong", AID)]["score"], g[("strong", AID)]["max_score"]) == ("12", "12"), verdict("strong")
    assert "5 / 5 points" in verdict("strong")
    weak = float(g[("weak", AID)]["score"])
    assert EXERCISES < weak < EXERCISES + 5, verdict("weak")
    assert g[("missing", AID)]["score"] == str(EXERCISES) and "not implemented yet" in verdict("missing")
    for cheat in ("loader", "rawfile", "heldout"):
        assert g[(cheat, AID)]["score"] == str(EXERCISES), (cheat, verdict(cheat))
    # the label readers trained on the withheld labels (all 0): a blank model's accuracy, below the weak fit's
    for cheat in ("loader", "rawfile"):
        assert _accuracy(verdict(cheat)) < min(0.2, _accuracy(verdict("weak"))), verdict(cheat)


@pytest.mark.slow
def test_at_home_the_label_reader_is_a_full_label_model():
    """The same loader cheat outside the sandbox (the student's own machine): a full-label model. So the
    grade above is the file replacement's doing, not a weak cheat's."""
    from helpers.grading.challenges import Spec, evaluate

    ns: dict = {}
    exec("import numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n" + LOADER, ns)
    spec = Spec("few_label_digits", "few_label_digits", 50_000, 40, "accuracy", 0.94, 0.60, 5, 10)
    run, value = evaluate(spec, ns["fit_few_labels"])
    print(f"the loader cheat at home: validation accuracy {value:.1%}, {run.cpu_seconds:.1f} CPU s")
    assert run.error is None and value > 0.95, (run, value)
