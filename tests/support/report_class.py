"""A small synthetic class for 01_perceptron, written the way real students write:
the reference (alice), two independent correct solutions in their own styles (diana,
evan), two partly wrong ones with catalogued mistakes (carol; ivy, whose kernel also
dies half-way), a renamed copy of alice (frank), a partial copy of diana (gina), the
untouched release (bob) and an unreadable file (hugo).

``CLASS`` says, for the tests, what each student should get.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

from tests.support import submissions as subs

AID = "01_perceptron"

# -- diana: correct, her own style -------------------------------------------------------
DIANA = {
    "sigmoid": '''
    z = np.asarray(z, dtype=float)
    return 0.5 * (1.0 + np.tanh(0.5 * z))
''',
    "softmax": '''
    m = np.max(Z, axis=1)[:, None]
    ex = np.exp(Z - m)
    total = np.sum(ex, axis=1)[:, None]
    return ex / total
''',
    "activation_derivatives": '''
    sig = 0.5 * (1.0 + np.tanh(0.5 * z))
    t = np.tanh(z)
    pos = z > 0
    ds = sig - sig ** 2
    dt = 1.0 - t * t
    dr = np.where(pos, 1.0, 0.0)
    dl = np.where(pos, 1.0, 0.01)
    de = np.where(pos, 1.0, np.exp(np.where(pos, 0.0, z)))
    dsw = sig * (1.0 + z * (1.0 - sig))
    return ds, dt, dr, dl, de, dsw
''',
    "perceptron_predict": '''
    scores = np.dot(X, w) + b
    return np.where(scores >= 0, 1, 0)
''',
    "perceptron_update": '''
    pred = 1 if np.dot(w, x) + b >= 0 else 0
    if pred == y:
        return w.copy(), b
    step = lr * (y - pred)
    return w + step * x, b + step
''',
    "train_perceptron": '''
    n_features = X.shape[1]
    weights = np.zeros(n_features)
    bias = 0.0
    for epoch in range(epochs):
        for i in range(len(X)):
            weights, bias = perceptron_update(weights, bias, X[i], y[i], lr)
    return weights, bias
''',
    "logistic_loss_and_grad": '''
    N = len(y)
    z = X.dot(w) + b
    p = 1.0 / (1.0 + np.exp(-z))
    p = np.clip(p, 1e-12, 1 - 1e-12)
    loss = -(y @ np.log(p) + (1 - y) @ np.log(1 - p)) / N
    err = p - y
    dw = X.T.dot(err) / N
    db = err.sum() / N
    return loss, dw, db
''',
}

# -- evan: correct, loops and other identities ------------------------------------------
EVAN = {
    "sigmoid": '''
    z = np.array(z, dtype=np.float64)
    a = np.exp(-np.abs(z))
    result = np.where(z >= 0, 1 / (1 + a), a / (1 + a))
    return result
''',
    "softmax": '''
    rows = []
    for row in Z:
        shifted = np.exp(row - row.max())
        rows.append(shifted / shifted.sum())
    return np.array(rows)
''',
    "activation_derivatives": '''
    sg = 1 / (1 + np.exp(-np.clip(z, -500, 500)))
    d_sig = sg * (1 - sg)
    d_tanh = 1 / np.cosh(z) ** 2
    d_relu = np.heaviside(z, 0.0)
    d_leaky = np.maximum(d_relu, 0.01)
    d_elu = np.exp(np.minimum(z, 0.0))
    d_swish = sg + z * d_sig
    return d_sig, d_tanh, d_relu, d_leaky, d_elu, d_swish
''',
    "perceptron_predict": '''
    out = np.zeros(len(X), dtype=int)
    for i, row in enumerate(X):
        if row @ w + b >= 0:
            out[i] = 1
    return out
''',
    "perceptron_update": '''
    guess = float(np.sum(w * x) + b >= 0)
    delta = y - guess
    new_w = w + lr * delta * x
    new_b = b + lr * delta
    return new_w, new_b
''',
    "train_perceptron": '''
    w = np.zeros(X.shape[1])
    b = 0.0
    epoch = 0
    while epoch < epochs:
        for idx in range(X.shape[0]):
            w, b = perceptron_update(w, b, X[idx], y[idx], lr)
        epoch += 1
    return w, b
''',
    "logistic_loss_and_grad": '''
    n = X.shape[0]
    logits = X @ w + b
    probs = sigmoid(logits)
    losses = np.log1p(np.exp(-np.abs(logits))) + np.maximum(logits, 0) - y * logits
    loss = losses.mean()
    grad_z = probs - y
    return loss, X.T @ grad_z / n, grad_z.mean()
''',
}

# -- carol: four catalogued mistakes, one exercise left undone ---------------------------
CAROL = {
    "sigmoid": '''
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
''',
    "softmax": '''
    e = np.exp(Z)
    return e / e.sum(axis=0)
''',
    "activation_derivatives": '''
    s = sigmoid(z)
    relu_grad = (z > 0) * 1.0
    return (s * (1 - s), 1 - np.tanh(z), relu_grad, np.where(z > 0, 1, 0.01),
            np.where(z > 0, 1, np.exp(z)), s * (1 + z * (1 - s)))
''',
    "perceptron_predict": '''
    return ((X @ w + b) >= 0).astype(int)
''',
    "perceptron_update": '''
    err = y - int(x @ w + b >= 0)
    return w - lr * err * x, b - lr * err
''',
    "logistic_loss_and_grad": '''
    p = sigmoid(X @ w + b)
    loss = -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
    return loss, X.T @ (p - y), np.sum(p - y)
''',
}

# -- ivy: tanh for the sigmoid, softmax over columns; her kernel dies after predict -------
IVY = {
    "sigmoid": '''
    return np.tanh(z)
''',
    "softmax": '''
    out = np.empty_like(Z, dtype=float)
    for j in range(Z.shape[1]):
        col = np.exp(Z[:, j] - Z[:, j].max())
        out[:, j] = col / col.sum()
    return out
''',
    "activation_derivatives": '''
    sgm = 1 / (1 + np.exp(-z))
    return (sgm * (1 - sgm), 1 - np.tanh(z) ** 2, np.where(z > 0, 1.0, 0.0),
            np.where(z > 0, 1.0, 0.01), np.where(z > 0, 1.0, np.exp(z)), sgm + z * sgm * (1 - sgm))
''',
    "perceptron_predict": '''
    return np.array([1 if xi @ w + b >= 0 else 0 for xi in X])
''',
}

# -- gina: diana's first three exercises and her loss (a partial copy), the rest her own --
GINA = {name: DIANA[name] for name in ("sigmoid", "softmax", "activation_derivatives", "logistic_loss_and_grad")}
GINA.update({
    "perceptron_predict": '''
    return (X.dot(w) + b >= 0).astype(np.int64)
''',
    "perceptron_update": '''
    yhat = 1 if float(x.dot(w)) + b >= 0 else 0
    w_next = w + lr * (y - yhat) * x
    return w_next, b + lr * (y - yhat)
''',
    "train_perceptron": '''
    w, b = np.zeros(X.shape[1]), 0.0
    for t in range(epochs * len(X)):
        i = t % len(X)
        w, b = perceptron_update(w, b, X[i], y[i], lr)
    return w, b
''',
})

#: frank copies alice (the reference) and renames every local identifier.
RENAMES = {"z": "v", "out": "res", "pos": "mask", "ez": "expneg", "shifted": "zs", "e": "ex", "s": "sg",
           "d_sigmoid": "g1", "d_tanh": "g2", "d_relu": "g3", "d_leaky": "g4", "d_elu": "g5", "d_swish": "g6",
           "y_hat": "guess", "error": "diff", "x_i": "xrow", "y_i": "yrow", "n": "count", "p": "prob",
           "eps": "tiny", "loss": "bce", "dz": "grad", "Z": "M", "w": "W", "b": "bias", "X": "data"}


def _fill(nb: nbformat.NotebookNode, bodies: dict[str, str]) -> nbformat.NotebookNode:
    """The release with each named exercise's ``raise NotImplementedError()`` replaced by a body."""
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        name = gid.removesuffix("_impl")
        if cell.metadata.get("nbgrader", {}).get("solution") and name in bodies:
            head = cell.source.replace("    # YOUR CODE HERE\n    raise NotImplementedError()", "").rstrip()
            cell.source = head + "\n" + bodies[name].strip("\n") + "\n"
    return nb


def _renamed(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Every solution cell with its local names renamed (whole words; the def lines kept)."""
    pattern = re.compile(r"\b(" + "|".join(sorted(RENAMES, key=len, reverse=True)) + r")\b")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            lines = cell.source.splitlines()
            body = [pattern.sub(lambda m: RENAMES[m.group(1)], l) if not l.lstrip().startswith(('def ', '"""'))
                    else l for l in lines]
            # the parameters are renamed too, so the code still runs
            body = [_rename_params(l, pattern) if l.startswith("def ") else l for l in body]
            cell.source = "\n".join(body) + "\n    # checked it works\n"
    return nb


def _rename_params(line: str, pattern: re.Pattern) -> str:
    name, params = line.split("(", 1)
    return name + "(" + pattern.sub(lambda m: RENAMES[m.group(1)], params)


#: student -> (score out of 12, flagged as similar to, what it is)
CLASS = {
    "alice": (12, {"frank"}, "the reference solution"),
    "bob": (0, set(), "the untouched release"),
    "carol": (2, set(), "softmax over axis 0, d_tanh, update sign, missing 1/N; train not done"),
    "diana": (12, {"gina"}, "independent, correct"),
    "evan": (12, set(), "independent, correct, loops"),
    "frank": (12, {"alice"}, "alice's code with identifiers renamed"),
    "gina": (12, {"diana"}, "diana's sigmoid, softmax, derivatives and loss; her own predict, update, train"),
    "hugo": (0, set(), "not JSON"),
    "ivy": (3, set(), "tanh as the sigmoid, softmax over columns; kernel dies after perceptron_predict"),
}


def notebooks() -> dict[str, nbformat.NotebookNode | str]:
    """student -> the notebook (or raw text) they hand in."""
    release = subs.release_notebook
    ivy = subs.insert_code(_fill(release(AID), IVY), "import os\nos._exit(0)", after="perceptron_predict")
    return {
        "alice": subs.solved(AID),
        "bob": release(AID),
        "carol": _fill(release(AID), CAROL),
        "diana": _fill(release(AID), DIANA),
        "evan": _fill(release(AID), EVAN),
        "frank": _renamed(subs.solved(AID)),
        "gina": _fill(release(AID), GINA),
        "hugo": "this is { not json",
        "ivy": ivy,
    }


def write_class(folder: Path) -> Path:
    for student, nb in notebooks().items():
        subs.write(folder, student, AID, nb)
    return folder


# -- the class graded once per test process through the real CLI -------------------------

#: Fixed so the hidden cases (and so every number) are the same on every run.
SEED = 1
#: The syllabus's due date given to the throw-away course, and who handed in late (nbgrader's
#: ``timestamp.txt`` beside the notebook): student -> seconds after the due date.
DUE = "2026-11-20T12:00:00Z"
LATE = {"carol": 3 * 86400 + 600, "evan": 2 * 3600 + 300}
_GRADED: dict[str, dict] = {}


def _set_due(course: Path) -> None:
    """Give 01_perceptron a due date in the copied syllabus (one line after its id)."""
    path = course / "syllabus.toml"
    text = path.read_text()
    line = f'id = "{AID}"\n'
    assert text.count(line) == 1, "syllabus layout changed"
    path.write_text(text.replace(line, line + f'due = "{DUE}"\n'))


def graded_class(tmp: Path) -> dict:
    """Grade the class into a copy of the course under ``tmp`` (once per process), then write the
    report with its CSV and JSON. Returns {course, folder, grade, report, html, csv, json}."""
    import datetime as dt

    from tests.support.course import copy_course, run_cli

    if "class" in _GRADED:
        return _GRADED["class"]
    course = copy_course(tmp)
    _set_due(course)
    with open(course / "nbgrader_config.py", "a") as f:  # lateness is reported; scores stay the exercises' points
        f.write("\nc.PerDayPenalty.percent_per_day = 0\n")
    folder = write_class(tmp / "submissions")
    due = dt.datetime.fromisoformat(DUE.replace("Z", "+00:00"))
    for student, seconds in LATE.items():
        when = (due + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
        (folder / student / AID / "timestamp.txt").write_text(when)
    grade = run_cli("grade", str(folder), "--workers", "2", "--seed", str(SEED), course=course)
    out = tmp / "out"
    report = run_cli("report", AID, "--to", str(out / "report.html"), "--csv", str(out / "report.csv"),
                     "--json", str(out / "report.json"), course=course)
    _GRADED["class"] = {"course": course, "folder": folder, "grade": grade, "report": report,
                        "html": out / "report.html", "csv": out / "report.csv", "json": out / "report.json"}
    return _GRADED["class"]


def hidden_numbers(course: Path, seed: int = SEED) -> set[str]:
    """Every hidden case's input and expected values as a page would print them (``.4g``, at
    least four significant digits, so that no ordinary number of the page matches by chance)."""
    from autograder.authoring.plan import grading_plan
    from helpers.grading.checking import encode

    def floats(obj):
        if isinstance(obj, dict):
            for v in obj.values():
                yield from floats(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                yield from floats(v)
        elif isinstance(obj, float):
            yield obj

    out = set()
    for plan in grading_plan(course.resolve(), AID, seed).values():
        for case in plan.cases:
            if case.hidden:
                for x in [*floats(case.inputs), *floats(encode(case.expected))]:
                    text = f"{x:.4g}"
                    if "e" not in text and len(text.replace("-", "").replace(".", "").lstrip("0")) >= 4:
                        out.add(text)
    return out
