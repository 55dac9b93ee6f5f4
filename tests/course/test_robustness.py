"""14_robustness: the attacked-digits challenge's data (helpers/grading/tasks/robustness.py, made by
autograder/authoring/attacks.py).

The held-out file holds the instructor's 1,000 held-out digits, clean and attacked (PGD, eps = 51/255)
against a surrogate seeded from the secret; the public validation file the same for the validation digits
against a public surrogate. These tests check what matters and not the last bit of a float (a rebuild on
another machine may differ in a few pixels): every attacked digit within eps of its clean one, the labels,
the surrogate fooled by its own attack, the attack transferring to another plain CNN, the sandbox's inputs
holding images only (no label, no mask) in an order drawn from the secret, and the scorer.
"""
from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest

from autograder.authoring import attacks
from autograder.authoring.challenges import challenge_plans, load_challenges
from autograder.authoring.heldout import HELDOUT_DIR, heldout_secret, load_heldout, secret_seed
from autograder.course import Course
from helpers.data import load_digits
from helpers.grading.tasks import get_task
from helpers.grading.tasks import robustness as rb
from tests.support.course import REPO

AID = "14_robustness"
COURSE = Course(REPO / "course")


def _accuracy(model, images_u8, labels) -> float:
    import torch

    with torch.no_grad():
        x = torch.from_numpy(images_u8.astype(np.float32) / np.float32(255.0))[:, None]
        return float((model(x).argmax(1).numpy() == labels).mean())


@pytest.fixture(scope="module")
def heldout():
    return load_heldout(rb.HELDOUT_FILE, HELDOUT_DIR)


@pytest.fixture(scope="module")
def public_plain_cnn():
    """A plain CNN trained by the students' code path (the training digits, no attack), public seed."""
    X, y = load_digits("train")
    return attacks.train_surrogate(X[:, None], y, seed=20_241)


# -- the held-out file -------------------------------------------------------------------------------

def test_heldout_digits_are_the_instructors_and_every_attack_stays_within_eps(heldout):
    digits = load_heldout("digits_test.npz", HELDOUT_DIR)
    assert set(heldout) == {"clean", "attacked", "labels"}
    assert heldout["clean"].dtype == heldout["attacked"].dtype == np.uint8
    assert heldout["clean"].shape == heldout["attacked"].shape == (1000, 28, 28)
    assert (heldout["clean"] == digits["images"]).all() and (heldout["labels"] == digits["labels"]).all()
    assert np.bincount(heldout["labels"], minlength=10).tolist() == [100] * 10      # balanced
    diff = np.abs(heldout["attacked"].astype(np.int64) - heldout["clean"].astype(np.int64))
    assert diff.max() <= rb.EPS_LEVELS == 51 and rb.EPS == pytest.approx(0.2)
    changed = (diff > 0).reshape(1000, -1).any(axis=1)
    assert changed.all()                                                            # every digit attacked
    assert (diff == rb.EPS_LEVELS).reshape(1000, -1).sum(1).min() > 50             # and by the whole budget somewhere


@pytest.mark.slow  # trains a CNN
def test_the_secret_surrogate_is_fooled_by_its_own_attack():
    """Retrain the instructor's surrogate from the secret (its weights are never stored) and score it on the
    stored file: right on the clean digits, wrong on most attacked ones."""
    secret = heldout_secret(HELDOUT_DIR)
    X, y = load_digits("train")
    surrogate = attacks.train_surrogate(X[:, None], y, secret_seed(secret, attacks.SURROGATE_PURPOSE))
    data = load_heldout(rb.HELDOUT_FILE, HELDOUT_DIR)
    clean, attacked = _accuracy(surrogate, data["clean"], data["labels"]), _accuracy(surrogate, data["attacked"], data["labels"])
    assert clean > 0.9 and attacked < 0.2, (clean, attacked)


@pytest.mark.slow  # trains a CNN
def test_the_attack_transfers_to_a_plain_cnn_of_the_students(heldout, public_plain_cnn):
    clean = _accuracy(public_plain_cnn, heldout["clean"], heldout["labels"])
    attacked = _accuracy(public_plain_cnn, heldout["attacked"], heldout["labels"])
    assert clean > 0.9 and attacked < clean - 0.25, (clean, attacked)


def test_no_surrogate_weights_and_no_heldout_data_ship():
    held = load_heldout(rb.HELDOUT_FILE, HELDOUT_DIR)
    assert sorted(p.name for p in HELDOUT_DIR.iterdir() if "attacked" in p.name) == [rb.HELDOUT_FILE]
    public = rb.load_validation()
    published = np.concatenate([public["clean"], public["attacked"]]).reshape(2000, -1)
    rows = {r.tobytes() for r in published}
    assert not any(r.tobytes() in rows for r in held["attacked"].reshape(1000, -1))
    for folder in ("release", "helpers"):
        assert not list((REPO / folder).rglob(rb.HELDOUT_FILE)), folder


# -- the sandbox's inputs and the targets kept outside ------------------------------------------------

def test_the_sandbox_gets_images_only_in_an_order_drawn_from_the_secret(heldout):
    plan = challenge_plans(COURSE, AID)["robust_digits"]
    doc = json.loads(plan.sandbox_inputs())
    assert set(doc) == {"challenge", "spec", "inputs"}
    assert set(doc["inputs"]) == {"dtype", "shape", "scale", "data"}
    assert doc["inputs"]["dtype"] == "uint8" and doc["inputs"]["shape"] == [2000, 1, 28, 28]
    spec_text = json.dumps(doc["spec"])
    assert "label" not in spec_text and "attacked\"" not in spec_text and "mask" not in spec_text
    images = np.asarray(doc["inputs"]["data"], dtype=np.uint8).reshape(2000, 28, 28)
    # the targets stay here: (label, attacked) in the same shuffled order as the images
    targets = np.asarray(plan.targets)
    assert targets.shape == (2000, 2) and targets[:, 1].sum() == 1000
    both = np.concatenate([heldout["clean"], heldout["attacked"]])
    assert not (targets[:, 1] == np.repeat([0, 1], 1000)).all()                  # shuffled
    order = get_task("attacked_digits").heldout(heldout, np.random.default_rng(0))[1]
    assert not (order == targets).all()                                          # not a public seed's order
    lookup = {img.tobytes(): i for i, img in enumerate(both)}
    idx = np.array([lookup[img.tobytes()] for img in images])
    assert (targets[:, 1] == (idx >= 1000)).all() and (targets[:, 0] == np.concatenate([heldout["labels"]] * 2)[idx]).all()


def test_the_score_is_the_mean_of_the_clean_and_the_attacked_accuracy():
    task = get_task("attacked_digits")
    labels = np.arange(8) % 10
    targets = np.stack([np.concatenate([labels, labels]), np.repeat([0, 1], 8)], axis=1)
    perfect = np.eye(10)[targets[:, 0]]
    assert task.score(perfect, targets) == 1.0
    clean_only = perfect.copy()
    clean_only[8:] = np.eye(10)[(targets[8:, 0] + 1) % 10]
    assert task.score(clean_only, targets) == 0.5
    half_attacked = perfect.copy()
    half_attacked[8:12] = np.eye(10)[(targets[8:12, 0] + 1) % 10]
    assert task.score(half_attacked, targets) == pytest.approx((1.0 + 0.5) / 2)
    order = np.random.default_rng(3).permutation(16)
    assert task.score(half_attacked[order], targets[order]) == pytest.approx(0.75)   # the order does not matter
    # unequal halves: each accuracy over its own images (not the pooled accuracy)
    t = np.array([[0, 0], [1, 1], [2, 1], [3, 1]])
    out = np.eye(10)[[0, 1, 9, 9]]
    assert task.score(out, t) == pytest.approx((1.0 + 1 / 3) / 2)


# -- the public validation set ------------------------------------------------------------------------

@pytest.mark.slow  # trains a CNN
def test_the_public_validation_set_is_the_validation_digits_attacked_within_eps(public_plain_cnn):
    v = rb.load_validation()
    Xv, yv = load_digits("val")
    assert (v["clean"] == np.rint(Xv * 255).astype(np.uint8)).all() and (v["labels"] == yv).all()
    assert np.abs(v["attacked"].astype(np.int64) - v["clean"]).max() <= rb.EPS_LEVELS
    inputs, targets = get_task("attacked_digits").validation()
    assert inputs.shape == (2000, 1, 28, 28) and inputs.dtype == np.float32 and targets[:, 1].sum() == 1000
    clean, attacked = _accuracy(public_plain_cnn, v["clean"], v["labels"]), _accuracy(public_plain_cnn, v["attacked"], v["labels"])
    assert clean > 0.9 and attacked < clean - 0.2, (clean, attacked)


# -- the declaration and the notebook agree ---------------------------------------------------------

def test_the_declaration_and_the_notebook_agree():
    ch = load_challenges(COURSE.cases_file(AID))["robust_digits"]
    assert (ch.task, ch.heldout, ch.metric, ch.full, ch.zero) == ("attacked_digits", rb.HELDOUT_FILE,
                                                                   get_task("attacked_digits").metric, 0.85, 0.60)
    text = "\n".join(c.source for c in nbformat.read(REPO / "release" / AID / f"{AID}.ipynb", as_version=4).cells)
    assert "5 points for $s \\ge 85.0\\,\\%$" in text and "0 for $s \\le 60.0\\,\\%$" in text
    assert "a score of 80 % gives 4.0 points" in text and 5 * (0.80 - 0.60) / (0.85 - 0.60) == pytest.approx(4.0)
    assert "$\\varepsilon = 0.2$ (51 of 255 gray levels" in text and rb.EPS_LEVELS == 51
    assert f"PGD ({attacks.PGD_STEPS} steps of {attacks.PGD_ALPHA:g} from a random start)" in text
    assert "$s = (a_\\text{clean} + a_\\text{attacked})/2$" in text


def test_the_surrogate_and_its_training_never_ship():
    """The surrogate is a strong CNN of 05's kind, trained the way 05's challenge is solved: its code
    is the instructor tool's (autograder/authoring/attacks.py), never in helpers/ (which is bundled)."""
    source = (REPO / "helpers" / "grading" / "tasks" / "robustness.py").read_text()
    for name in ("def surrogate_cnn", "def train_surrogate", "def pgd_attack_uint8", "nn.Conv2d"):
        assert name not in source, name
    assert get_task("attacked_digits").heldout_file() == (rb.HELDOUT_FILE, rb.BUILDER)
