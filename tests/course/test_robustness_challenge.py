"""14_robustness: the robust_digits challenge graded through the real CLI (slow).

Submissions: the solution (fast adversarial training: full marks), a plain CNN without adversarial training
(partial points: clean digits right, attacked ones much less), the released stub (none), and a peeker whose
fit first tries to read the held-out file (by its absolute path in the graded course and by relative paths)
and to write next to it and into the host's temporary folder, then trains the same plain CNN: it must get
exactly the plain CNN's points (had it read the file, it would have returned a blank model) and leave no
file on the host (a write into the sandbox's own private /tmp may succeed there, and vanishes with it). The figures the notebook states for the reference and the plain CNN are those graded here.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat
import pytest

from tests.support import submissions as subs
from tests.support.course import REPO

AID = "14_robustness"
EXERCISES = 14            # the six exercises; the challenge is 5 more

PLAIN = '''def fit_robust_digits(X_train, y_train, X_val, y_val):
    class Standardise(nn.Module):
        def forward(self, x):
            return (x - 0.1307) / 0.3081

    model = nn.Sequential(
        Standardise(),
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 3 * 3, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(3):                       # no attack: a plain CNN, notebook 05's kind
        model.train()
        order = torch.randperm(len(X_train))
        for i in range(0, len(X_train), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(model(X_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model
'''

PEEK = '''def fit_robust_digits(X_train, y_train, X_val, y_val):
    import os
    seen = []
    for path in {paths!r} + ["../" * k + "course/heldout/attacked_digits_test.npz" for k in range(8)]:
        try:
            with open(path, "rb") as f:
                seen.append(len(f.read()))
        except OSError:
            pass
    for path in {writes!r}:                      # the host must not see these (the sandbox's own /tmp may take them)
        try:
            with open(path, "w") as f:
                f.write("peeked")
        except OSError:
            pass
    if seen:                                     # the held-out file read: a blank model, 0 points
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    return plain_fit(X_train, y_train, X_val, y_val)
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robust")
    course_heldout = tmp / "repo" / "course" / "heldout"          # where challenge_batch copies the course
    marker_host = Path(tempfile.gettempdir()) / f"robust-peek-{tmp.name}"
    paths = [str(course_heldout / "attacked_digits_test.npz"), str(REPO / "course" / "heldout" / "attacked_digits_test.npz")]
    writes = [str(course_heldout / "PEEKED"), str(marker_host)]
    peek = PLAIN.replace("def fit_robust_digits(", "def plain_fit(") + "\n\n" + PEEK.format(paths=paths, writes=writes)
    variants = {"strong": None, "plain": PLAIN, "missing": subs.STUB, "peeker": peek}
    out = subs.challenge_batch(tmp, AID, "robust_digits", "fit_robust_digits", variants)
    out["markers"] = [course_heldout / "PEEKED", marker_host]
    return out


@pytest.mark.slow
def test_strong_plain_missing_peeker(graded):
    assert graded["result"].returncode == 0, graded["result"].stderr[-3000:]
    g = graded["grades"]
    assert (g[("strong", AID)]["score"], g[("strong", AID)]["max_score"]) == ("19", "19"), graded["verdict"]("strong")
    assert "5 / 5 points" in graded["verdict"]("strong")
    plain = float(g[("plain", AID)]["score"])
    assert EXERCISES < plain < EXERCISES + 5, graded["verdict"]("plain")
    assert g[("missing", AID)]["score"] == str(EXERCISES) and "not implemented yet" in graded["verdict"]("missing")
    assert float(g[("peeker", AID)]["score"]) == plain, graded["verdict"]("peeker")   # read nothing, wrote nothing
    assert not any(p.exists() for p in graded["markers"])


@pytest.mark.slow
def test_the_figures_the_notebook_states_are_the_graded_ones(graded):
    import re

    text = "\n".join(c.source for c in nbformat.read(REPO / "release" / AID / f"{AID}.ipynb", as_version=4).cells)
    figures = {}
    for who in ("strong", "plain"):
        m = re.search(r"test mean of clean and attacked accuracy (\d+\.\d) %", graded["verdict"](who))
        assert m, graded["verdict"](who)
        figures[who] = m.group(1)
    assert f"{figures['strong']} % on the test set" in text, figures
    assert f"and {figures['plain']} %. Do not train" in text, figures


@pytest.mark.slow
def test_the_plain_cnns_validation_figure_is_the_one_stated():
    """The plain CNN's home figure (the public attacked validation set), fitted as the harness fits: seeded 0,
    one torch thread."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    from helpers.grading.tasks import get_task

    task = get_task("attacked_digits")
    scope = {"nn": nn, "torch": torch, "F": F}
    exec(PLAIN, scope)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        np.random.seed(0)
        model = scope["fit_robust_digits"](*task.fit_arguments())
    finally:
        torch.set_num_threads(threads)
    inputs, targets = task.validation()
    value = task.describe(task.score(task.outputs(model, inputs), targets))
    text = "\n".join(c.source for c in nbformat.read(REPO / "release" / AID / f"{AID}.ipynb", as_version=4).cells)
    assert f"adversarial training) {value} and" in text, value
