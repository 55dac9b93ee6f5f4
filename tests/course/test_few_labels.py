"""15_few_labels: the few_label_digits task (what fit gets, the 100 labels), the files it withholds from
the graded sandbox (every label but the 100, replaced; the loader still works on them), an audit of the
helpers package for other sources of the digits' labels, the challenge's numbers in the text, and the
figures the notebook's text relies on (from the run's one execution of the source notebook)."""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

import helpers
from autograder.authoring.challenges import load_challenges
from autograder.course import Course
from helpers.data import load_digits
from helpers.data import shipped
from helpers.grading.tasks import fewlabels as fl
from helpers.grading.tasks import get_task
from tests.support.course import REPO
from tests.support.executed import executed, printed

AID = "15_few_labels"
COURSE = Course(REPO / "course")
PACKAGE = Path(helpers.__file__).resolve().parent


# -- what fit gets -----------------------------------------------------------------------------------

def test_fit_gets_100_labels_ten_per_class_and_the_other_7900_unlabelled():
    X, y, Xu = get_task("few_label_digits").fit_arguments()
    Xt, yt = load_digits("train")
    keep = fl.labelled_indices()
    assert X.shape == (100, 1, 28, 28) and X.dtype.is_floating_point and str(X.dtype) == "torch.float32"
    assert y.shape == (100,) and str(y.dtype) == "torch.int64" and Xu.shape == (7900, 1, 28, 28)
    assert np.bincount(y.numpy(), minlength=10).tolist() == [10] * 10
    assert (X.numpy()[:, 0] == Xt[keep]).all() and (y.numpy() == yt[keep]).all()
    rest = np.setdiff1d(np.arange(8000), keep)
    assert (Xu.numpy()[:, 0] == Xt[rest]).all()               # every other training digit, once, in order
    assert 0.0 <= float(X.min()) and float(X.max()) <= 1.0


def test_the_labelled_digits_are_fixed_by_the_public_seed():
    keep = fl.labelled_indices()
    _, yt = load_digits("train")
    r = np.random.default_rng(fl.LABELLED_SEED)               # the notebook's pick_labelled(y_train, 10, seed=15)
    again = np.sort(np.concatenate([r.choice(np.flatnonzero(yt == c), 10, replace=False) for c in range(10)]))
    assert (keep == again).all() and len(set(keep.tolist())) == 100 and keep.dtype == np.int64
    text = NOTEBOOK.read_text()
    assert "pick_labelled(y_train, 10, seed=15)" in text and fl.LABELLED_SEED == 15


def test_validation_is_the_shipped_validation_split_and_scored_by_accuracy():
    task = get_task("few_label_digits")
    Xv, yv = task.validation()
    X2, y2 = load_digits("val")
    assert Xv.shape == (1000, 1, 28, 28) and (Xv[:, 0] == X2).all() and (yv == y2).all()
    out = np.zeros((4, 10)); out[[0, 1, 2, 3], [3, 1, 4, 1]] = 1
    assert task.score(out, np.array([3, 1, 4, 0])) == 0.75 and task.output_shape(7) == (7, 10)


# -- what the graded sandbox sees --------------------------------------------------------------------

@pytest.fixture(scope="module")
def replaced():
    return get_task("few_label_digits").sandbox_files()


def test_the_sandbox_digits_file_keeps_only_the_100_labels(replaced):
    present = {f"datasets/{n}" for n in fl.WITHHOLD if (PACKAGE / "datasets" / n).is_file()}
    assert "datasets/mnist9k.npz" in present and set(replaced) == present | {"data/shipped.py"}
    for rel in replaced:                                       # each names a file the package has
        assert (PACKAGE / rel).is_file()
    with np.load(io.BytesIO(replaced["datasets/mnist9k.npz"])) as f, np.load(PACKAGE / "datasets/mnist9k.npz") as g:
        assert sorted(f.files) == sorted(g.files) == ["images", "labels"]
        for k in f.files:
            assert f[k].shape == g[k].shape and f[k].dtype == g[k].dtype
        assert (f["images"] == g["images"]).all()
        keep = fl.labelled_indices()
        assert (f["labels"][keep] == g["labels"][keep]).all()
        others = np.setdiff1d(np.arange(len(g["labels"])), keep)
        assert (f["labels"][others] == fl.WITHHELD).all()    # one value for every withheld label: nothing to learn
        # what is left: the 100 given labels, nothing of the validation split
        assert (f["labels"][8000:] == fl.WITHHELD).all() and int((f["labels"] != g["labels"]).sum()) > 7000


def test_the_attacked_validation_set_keeps_no_label(replaced):
    """14's public attacked validation digits: their labels, and the attacks (which follow the gradient of
    the true class's loss), are withheld; the clean digits stay."""
    name = "datasets/digits_val_attacked.npz"
    if name not in replaced:
        pytest.skip("14_robustness ships no attacked validation set")
    with np.load(io.BytesIO(replaced[name])) as f, np.load(PACKAGE / name) as g:
        assert sorted(f.files) == sorted(g.files)
        for k in f.files:
            assert f[k].shape == g[k].shape and f[k].dtype == g[k].dtype
        assert (f["labels"] == fl.WITHHELD).all() and (f["clean"] == g["clean"]).all()
        assert (f["attacked"] == g["clean"]).all() and not (g["attacked"] == g["clean"]).all()


def test_the_replacement_is_the_same_bytes_every_time(replaced):
    assert get_task("few_label_digits").sandbox_files() == replaced


def test_the_loader_accepts_the_replaced_file_and_only_its_checksum_changes(replaced, tmp_path):
    import hashlib

    new_source = replaced["data/shipped.py"].decode()
    old_source = (PACKAGE / "data/shipped.py").read_text()
    digest = hashlib.sha256(replaced["datasets/mnist9k.npz"]).hexdigest()
    assert new_source == old_source.replace(shipped.SHIPPED_SHA256["mnist9k.npz"], digest)
    # a copy of the package with the two files in place, as the sandbox binds them
    copy = tmp_path / "helpers"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for rel, data in replaced.items():
        (copy / rel).write_bytes(data)
    probe = ("import json, numpy as np; from helpers.data import load_digits; "
             "from helpers.grading.tasks import get_task; X, y = load_digits('train'); Xv, yv = load_digits('val'); "
             "_, yl, _ = get_task('few_label_digits').fit_arguments(); "
             "print(json.dumps([X.shape[0], np.bincount(y, minlength=10).tolist(), int((yv != 0).sum()), "
             "yl.tolist()]))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    n, counts, val_nonzero, given = json.loads(out.stdout)
    assert n == 8000 and counts == [7910] + [10] * 9 and val_nonzero == 0
    X, y, _ = get_task("few_label_digits").fit_arguments()
    assert given == y.tolist()                                  # the fit still gets its 100 labels there


def test_no_other_file_of_the_package_holds_the_digits_labels():
    """Audit: the shipped data files are the ones this task replaces or that hold no digit (names); no
    source or text file of the package spells out a run of the training or validation labels."""
    data_files = {p.name for p in (PACKAGE / "datasets").iterdir()}
    unknown = data_files - set(fl.WITHHOLD) - set(fl.LABEL_FREE)
    assert not unknown, (f"new files in helpers/datasets: {sorted(unknown)}: audit them for the digits' labels and "
                         "list each in helpers.grading.tasks.fewlabels.WITHHOLD (with how to withhold them) or LABEL_FREE")
    _, yt = load_digits("train")
    _, yv = load_digits("val")
    runs = ["".join(map(str, y[i:i + 24])) for y in (yt, yv) for i in range(0, len(y) - 24, 997)]
    binaries = {".npz", ".pyc", ".png", ".jpg", ".gz", ".pt", ".npy", ".pkl", ".bin"}
    for path in PACKAGE.rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts or path.name in fl.WITHHOLD:
            continue
        assert path.suffix not in binaries, f"{path}: a binary file in the package: audit it for labels"
        text = re.sub(r"\D", "", path.read_text(errors="ignore"))
        assert not any(r in text for r in runs), f"{path} spells out a run of the digits' labels"


# -- the declaration and the text --------------------------------------------------------------------

NOTEBOOK = REPO / "source_notebooks" / AID / f"{AID}.ipynb"


def test_the_declaration_and_the_notebook_agree():
    ch = load_challenges(COURSE.cases_file(AID))["few_label_digits"]
    assert (ch.task, ch.heldout, ch.metric, ch.full, ch.zero) == ("few_label_digits", "digits_test.npz", "accuracy",
                                                                   0.94, 0.60)
    checks = json.loads((REPO / "release" / AID / "checks.json").read_text())["challenges"]["few_label_digits"]
    text = "\n".join(c.source for c in nbformat.read(REPO / "release" / AID / f"{AID}.ipynb", as_version=4).cells)
    assert f"**{checks['max_parameters']:,} numbers**" in text
    assert f"**{checks['cpu_seconds']:g} CPU\nseconds**" in text or f"**{checks['cpu_seconds']:g} CPU seconds**" in text
    whole = checks["cpu_seconds"] + checks["allowance_seconds"]
    assert f"**{whole:g} CPU seconds**: the {checks['cpu_seconds']:g} s of training plus {checks['allowance_seconds']:g} s" in text
    assert "5 points for $a \\ge 94.0\\,\\%$" in text and "0 for $a \\le 60.0\\,\\%$" in text
    assert "(85 % gives 3.7 points)" in text and round(5 * (0.85 - 0.60) / (0.94 - 0.60), 1) == 3.7
    se = np.sqrt(0.94 * 0.06 / 1000)
    assert "about 0.75 percentage points at 94 %" in text and round(100 * se, 2) == 0.75
    points = sum(c.metadata["nbgrader"].get("points", 0) for c in nbformat.read(NOTEBOOK, as_version=4).cells
                 if c.metadata.get("nbgrader", {}).get("grade"))
    import tomllib

    syllabus = tomllib.loads((REPO / "course" / "syllabus.toml").read_text())["assignment"]
    assert points == 12 == next(a["points"] for a in syllabus if a["id"] == AID)


def test_nothing_held_out_ships():
    from autograder.authoring.heldout import HELDOUT_DIR, load_heldout

    test = load_heldout("digits_test.npz", HELDOUT_DIR)["images"]
    checks = (REPO / "release" / AID / "checks.json").read_text()
    assert test.shape == (1000, 28, 28)
    # the exercises' cases are small synthetic arrays: no digit image (784 pixels) travels in checks.json
    assert len(checks) < 100_000, len(checks)


# -- what the text says, against what the notebook printed -------------------------------------------

@pytest.fixture(scope="module")
def out():
    return printed(executed(AID))


def _pct(text, pattern):
    m = re.search(pattern, text)
    assert m, pattern
    return float(m.group(1)) / 100


@pytest.mark.slow  # the executed notebook (about 30 s)
def test_the_figures_the_text_relies_on(out):
    # section 1: freezing right leaves the layer as it was; zeroing its gradient does not (weight decay)
    assert "left out of the optimiser: largest change 0.0" in out
    moved = float(re.search(r"still in the optimiser \(weight decay\):\s+largest change ([0-9.e+-]+)", out).group(1))
    assert moved > 1e-4
    # section 2: a forward pass in train mode moves the running statistics
    assert float(re.search(r"running_mean moved by up to ([0-9.]+)", out).group(1)) > 0.01
    # section 3: the contrastive loss falls below the loss of an encoder that cannot tell views apart
    first, last, chance = map(float, re.search(r"NT-Xent loss: ([0-9.]+) .* -> ([0-9.]+) .* = ([0-9.]+) is", out).groups())
    assert last < first < chance + 0.5 and last < chance
    # probes and k-NN: SimCLR's features beat random features and raw pixels
    simclr = _pct(out, r"linear probe on\s+SimCLR features: ([0-9.]+)%")
    random_ = _pct(out, r"linear probe on\s+random features: ([0-9.]+)%")
    assert simclr > random_ + 0.05
    knn = {name: _pct(out, rf"k-NN on\s+{name}: k = 1 ([0-9.]+)%") for name in ("pixels", "random", "SimCLR")}
    assert knn["SimCLR"] > knn["pixels"] and knn["SimCLR"] > knn["random"]
    # the introduction: a CNN on the 100 labels alone gets more than one validation digit in ten wrong; and
    # section 4: it beats the probe on 80 steps of SimCLR
    end_to_end = _pct(out, r"CNN trained end to end on the 100 labels: ([0-9.]+)%")
    assert end_to_end < 0.9 and end_to_end > simclr
    # section 1: the probe is clearly the worst; fine-tuning beats scratch on average, by less than the spread
    table = {m: (float(a) / 100, float(s) / 100) for m, a, s in
             re.findall(r"^\s*([a-z ,-]+?):\s+([0-9.]+)% \+- ([0-9.]+)%", out, flags=re.M)}
    scratch, probe_ = table["from scratch"], table["linear probe"]
    for ft in ("fine-tune all", "fine-tune, smaller rate early"):
        assert probe_[0] < table[ft][0] - 0.05 and probe_[0] < scratch[0] - 0.05
        assert scratch[0] < table[ft][0] < scratch[0] + scratch[1] + table[ft][1], (ft, table)
    assert "source task (0-4): 4106 labelled" in out and "scored on 475 validation digits 5-9" in out


def test_an_encoder_that_cannot_tell_views_apart_has_loss_log_2n_minus_1():
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("cases15", REPO / "source_notebooks" / AID / "cases.py")
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    for n in (1, 3, 128):
        z = np.ones((2 * n, 4))                                 # every view the same embedding
        assert float(cases._xent(z, 0.2)) == pytest.approx(np.log(2 * n - 1), abs=1e-9)
    z = np.random.default_rng(0).normal(size=(10, 3))          # and the loss is F.cross_entropy's, as the text says
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = u @ u.T / 0.5
    np.fill_diagonal(s, -np.inf)
    loop = np.mean([-(s[i, (i + 5) % 10] - np.log(np.exp(s[i][np.arange(10) != i]).sum())) for i in range(10)])
    assert float(cases._xent(z, 0.5)) == pytest.approx(loop, rel=1e-12)
