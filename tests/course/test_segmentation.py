"""12_segmentation's data and challenge task: the scene conventions the notebook states, the
scenes_segmenter task's scoring, the challenge's numbers in the text, and (slow) the reference's
figures quoted in the notebook and grading through the real CLI (strong, weak, missing, endless, a
model that carries a table of the training scenes)."""
import json
import re

import nbformat
import numpy as np
import pytest

from tests.support import submissions as subs
from autograder.authoring.challenges import load_challenges
from autograder.course import Course
from tests.support.course import REPO
from helpers.data import scenes
from helpers.grading.tasks import get_task
from helpers.grading.tasks.segmentation import scenes_mean_iou

AID = "12_segmentation"
COURSE = Course(REPO / "course")
NOTEBOOK = REPO / "source_notebooks" / AID / f"{AID}.ipynb"


def test_later_digit_wins_where_ink_overlaps():
    blob = np.zeros((2, 28, 28), dtype=np.float32)
    blob[:, 4:24, 4:24] = 1.0                            # two identical 20x20 squares (10x10 after shrinking)
    X, label_map, inst = scenes.make_scenes(blob, np.array([3, 5]), np.random.default_rng(0), n=20,
                                            size=10, min_digits=2, max_digits=2, noise=0.0)
    for lm, masks in zip(label_map, inst):             # one place only: the second digit hides the first
        assert not masks[0].any() and masks[1].all()
        assert len(np.unique(lm)) == 1 and lm[0, 0] in (4, 6)
    assert set(np.unique(label_map[:, 0, 0])) == {4, 6}   # both orders happen


def test_public_scenes_keep_their_conventions():
    X, Y, inst = scenes.load_scenes("val")
    assert X.shape == (500, 1, 32, 32) and X.dtype == np.float32 and Y.dtype == np.int64 and inst.shape == (500, 3, 32, 32)
    assert np.array_equal(np.round(X * 255) / 255, X) and X.min() >= 0 and X.max() <= 1
    assert (inst.sum(axis=1) <= 1).all() and np.array_equal(inst.any(axis=1), Y > 0)
    counts = inst.any(axis=(2, 3)).sum(axis=1)
    assert set(np.unique(counts)) == {2, 3}
    for k in range(3):                                  # each instance carries one digit label
        for lm, m in zip(Y[:50], inst[:50, k]):
            assert len(np.unique(lm[m])) <= 1
    X2, Y2, _ = scenes.load_scenes("val")
    assert np.array_equal(X, X2) and np.array_equal(Y, Y2)
    assert len(scenes.load_scenes("train")[0]) == 2000


def test_scoring_counts_digits_only_and_invalid_values_as_wrong():
    truth = np.zeros((2, 32, 32), dtype=np.int64)
    truth[0, :4, :4], truth[1, 10:20, 10:20] = 3, 7
    assert scenes_mean_iou(truth.astype(float), truth) == 1.0
    assert scenes_mean_iou(np.zeros_like(truth, dtype=float), truth) == 0.0
    half = truth.astype(float)
    half[1, 10:20, 10:15] = 0.5                         # not a class: wrong pixels, in class 7's union
    assert scenes_mean_iou(half, truth) == pytest.approx((1.0 + 0.5) / 2)
    pred = truth.astype(float)
    pred[0, 30, 30] = 9                                 # one false class 9 pixel: IoU_9 = 0 joins the mean
    assert scenes_mean_iou(pred, truth) == pytest.approx(2 / 3)
    assert scenes_mean_iou(truth.astype(float), truth) == scenes.mean_iou(truth, truth)


def test_task_shapes_and_heldout_build_is_seeded_by_the_caller():
    task = get_task("scenes_segmenter")
    assert task.output_shape(7) == (7, 32, 32) and task.higher_is_better
    name, build = task.heldout_file()
    digits = (np.random.default_rng(0).random((40, 28, 28)) * 255).astype(np.uint8)
    labels = np.arange(40) % 10
    a = build(digits, labels, lambda purpose: 123)
    b = build(digits, labels, lambda purpose: 123)
    c = build(digits, labels, lambda purpose: 124)
    assert name == "scenes_test.npz" and a["images"].dtype == np.uint8 and a["images"].shape == (500, 1, 32, 32)
    assert np.array_equal(a["images"], b["images"]) and not np.array_equal(a["images"], c["images"])
    assert a["labels"].shape == (500, 32, 32) and a["labels"].max() <= 10


@pytest.mark.slow
def test_the_reference_figures_quoted_in_the_notebook():
    """The challenge text quotes the reference's validation and held-out mean IoU: recompute both."""
    import random

    import torch

    from autograder.authoring.heldout import load_heldout
    from autograder.authoring.reference import load_reference
    fit = load_reference(NOTEBOOK)["fit_scenes"]
    task = get_task("scenes_segmenter")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0), np.random.seed(0), random.seed(0)
        model = fit(*task.fit_arguments())
    finally:
        torch.set_num_threads(threads)
    val = task.score(task.outputs(model, task.validation()[0]), task.validation()[1])
    inputs, targets = task.heldout(load_heldout("scenes_test.npz"), np.random.default_rng(0))
    test = task.score(task.outputs(model, inputs.astype(np.float32) / 255.0), targets)
    text = "".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "markdown")
    quoted = re.search(r"reference, the solution below: ([0-9.]+) on validation, ([0-9.]+) on the test", text)
    assert quoted and float(quoted.group(1)) == pytest.approx(val, abs=6e-4), (val, quoted and quoted.groups())
    assert float(quoted.group(2)) == pytest.approx(test, abs=6e-4), test


def test_the_challenge_numbers_are_in_the_text():
    ch = load_challenges(COURSE.cases_file(AID))["scenes_unet"]
    checks = json.loads((REPO / "release" / AID / "checks.json").read_text())["challenges"]["scenes_unet"]
    assert (checks["full"], checks["zero"], checks["max_parameters"]) == (ch.full, ch.zero, ch.max_parameters)
    text = "\n".join(c.source for c in nbformat.read(REPO / "release" / AID / f"{AID}.ipynb", as_version=4).cells)
    assert f"{ch.max_parameters:,} numbers" in text and f"{ch.cpu_seconds:g} CPU seconds" in text
    assert f"5 points for $m \\ge {ch.full}$" in text and f"0 for $m \\le {ch.zero}$" in text
    assert "0.30 gives 3.75 points" in text and 5 * (0.30 - ch.zero) / (ch.full - ch.zero) == pytest.approx(3.75)
    whole = ch.cpu_seconds + ch.allowance_seconds
    assert f"**{whole:g} CPU seconds**, the {ch.cpu_seconds:g} s of training plus {ch.allowance_seconds:g} s" in text


# -- end to end through the CLI ---------------------------------------------------------------------

# the reference's U-Net trained for 3 epochs instead of 4: between the marks (1 epoch scores 0.045, under the zero mark)
def _weak(solved_source: str) -> str:
    assert "epochs, batch, max_lr = 4, 16, 5e-3" in solved_source
    return solved_source.replace("epochs, batch, max_lr = 4, 16, 5e-3", "epochs, batch, max_lr = 3, 16, 5e-3")


ENDLESS = '''def fit_scenes(X_train, Y_train, X_val, Y_val):
    while True:
        sum(range(10_000))
'''
# a tiny model that keeps the training scenes on itself: 2,000 x 1,024 numbers, over the budget
TABLED = '''def fit_scenes(X_train, Y_train, X_val, Y_val):
    model = nn.Conv2d(1, 11, 1)
    model.table = Y_train.clone()
    return model
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    reference = next(c.source for c in subs.solved(AID).cells
                     if c.metadata.get("nbgrader", {}).get("grade_id") == "fit_scenes_impl")
    variants = {"strong": None, "weak": _weak(reference), "missing": subs.STUB, "endless": ENDLESS, "tabled": TABLED}
    return subs.challenge_batch(tmp_path_factory.mktemp("scenes"), AID, "scenes_unet", "fit_scenes", variants)


@pytest.mark.slow
def test_strong_weak_missing_endless_tabled(graded):
    assert graded["result"].returncode == 0, graded["result"].stderr[-3000:]
    g = graded["grades"]
    exercises = 15                                          # the notebook's 7 exercises; the challenge is 5 more
    assert (g[("strong", AID)]["score"], g[("strong", AID)]["max_score"]) == ("20", "20"), graded["verdict"]("strong")
    weak = float(g[("weak", AID)]["score"])
    assert exercises < weak < exercises + 5, graded["verdict"]("weak")
    assert g[("missing", AID)]["score"] == str(exercises) and "not implemented yet" in graded["verdict"]("missing")
    assert g[("endless", AID)]["score"] == str(exercises), graded["verdict"]("endless")
    assert g[("tabled", AID)]["score"] == str(exercises) and "budget" in graded["verdict"]("tabled").lower()


def test_outputs_are_label_maps_and_other_shapes_fail_the_check():
    import torch

    task = get_task("scenes_segmenter")
    X = np.zeros((300, 1, 32, 32), dtype=np.float32)          # two batches of the default 250
    scores = torch.nn.Conv2d(1, 11, 1)
    with torch.no_grad():
        scores.weight.zero_(), scores.bias.copy_(torch.arange(11.0))
    out = task.outputs(scores, X)
    assert out.shape == (300, 32, 32) and (out == 10).all() and task.valid(out, 300)
    wrong = task.outputs(torch.nn.Conv2d(1, 5, 1), X)
    assert wrong.shape == (300, 5, 32, 32) and not task.valid(wrong, 300)
