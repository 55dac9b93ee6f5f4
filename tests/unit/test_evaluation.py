"""Honest evaluation (helpers.evaluation), the notebooks' thread set-up (helpers.seeding), and the
conventions of notebook 06's evaluation exercises (the reference agrees with an independent
formulation of each documented rule). Nothing here measures time."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from autograder.course import Course
from autograder.authoring.reference import load_reference
from tests.support.course import REPO
from helpers import evaluation, seeding
from helpers.data import load_digits

# -- validation splits -----------------------------------------------------------------------


def test_train_val_split_is_stratified_disjoint_exact_and_repeatable():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=403)
    X = np.arange(len(y))                      # each sample is its own index: overlaps are visible
    X_tr, y_tr, X_val, y_val = evaluation.train_val_split(X, y, val_fraction=0.25, seed=3)
    assert len(X_val) == round(0.25 * len(y)) and len(X_tr) + len(X_val) == len(y)
    assert set(X_tr).isdisjoint(X_val) and set(X_tr) | set(X_val) == set(range(len(y)))
    assert np.array_equal(y[X_tr], y_tr) and np.array_equal(y[X_val], y_val)   # pairs stay together
    for c in range(4):                         # every class keeps its share, to within one sample
        assert abs((y_val == c).sum() - 0.25 * (y == c).sum()) <= 1
    again = evaluation.train_val_split(X, y, val_fraction=0.25, seed=3)
    other = evaluation.train_val_split(X, y, val_fraction=0.25, seed=4)
    assert np.array_equal(again[2], X_val) and not np.array_equal(other[2], X_val)


def test_train_val_split_keeps_tensors_and_splits_float_targets_plainly():
    X, y = torch.randn(50, 3), torch.linspace(0, 1, 50)       # regression targets: no strata
    X_tr, y_tr, X_val, y_val = evaluation.train_val_split(X, y, val_fraction=0.2)
    assert all(isinstance(t, torch.Tensor) for t in (X_tr, y_tr, X_val, y_val))
    assert X_val.shape == (10, 3) and y_tr.shape == (40,)


@pytest.mark.parametrize("kwargs, message", [
    ({"val_fraction": 0.0}, "between 0 and 1"),
    ({"val_fraction": 1.5}, "between 0 and 1"),
    ({"val_fraction": 0.01}, "leaves one part empty"),
])
def test_train_val_split_refuses_bad_fractions_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluation.train_val_split(np.zeros((10, 2)), np.arange(10) % 2, **kwargs)


def test_train_val_split_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        evaluation.train_val_split(np.zeros((10, 2)), np.zeros(9, dtype=int))


def test_digits_train_val_carves_validation_out_of_the_training_split_only():
    X_tr, y_tr, X_val, y_val = evaluation.digits_train_val()
    X_all, _ = load_digits("train")
    X_shipped_val, _ = load_digits("val")
    assert len(X_val) == evaluation.DIGITS_VAL_SIZE and len(X_tr) + len(X_val) == len(X_all)
    key = lambda X: {x.tobytes() for x in X}  # noqa: E731
    train_keys, val_keys = key(X_tr), key(X_val)
    assert train_keys.isdisjoint(val_keys)
    assert (train_keys | val_keys) <= key(X_all)
    assert key(X_shipped_val).isdisjoint(train_keys | val_keys)   # the shipped val split stays untouched
    assert np.bincount(y_val, minlength=10).min() >= 80             # stratified: every digit is there


def test_digits_train_val_loaders_yield_image_batches():
    train_loader, val_loader = evaluation.digits_train_val_loaders(batch_size=32, normalize=True)
    x, y = next(iter(train_loader))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert sum(len(b[1]) for b in val_loader) == evaluation.DIGITS_VAL_SIZE
    first = [next(iter(evaluation.digits_train_val_loaders(batch_size=32)[0]))[1] for _ in range(2)]
    assert torch.equal(first[0], first[1])                          # the shuffling is seeded


def test_mean_and_spread_uses_the_sample_standard_deviation():
    runs = np.array([[0.90, 0.93], [0.92, 0.95], [0.91, 0.94]])
    mean, std = evaluation.mean_and_spread(runs)
    assert np.allclose(mean, [0.91, 0.94]) and np.allclose(std, runs.std(axis=0, ddof=1))
    with pytest.raises(ValueError, match="at least two runs"):
        evaluation.mean_and_spread([0.9])


def test_plot_confusion_matrix_writes_every_count_and_refuses_non_square():
    import matplotlib

    matplotlib.use("Agg")
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 4, 6]])
    fig = evaluation.plot_confusion_matrix(cm, class_names=["a", "b", "c"])
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == sorted(str(v) for v in cm.ravel())
    fig = evaluation.plot_confusion_matrix(cm, normalize=True)
    assert "0.83" in {t.get_text() for t in fig.axes[0].texts}     # 5 / 6 on the diagonal: a recall
    with pytest.raises(ValueError, match="square"):
        evaluation.plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="class names"):
        evaluation.plot_confusion_matrix(cm, class_names=["a"])


# -- threads -----------------------------------------------------------------------------------


@pytest.fixture
def clean_thread_env(monkeypatch):
    for name in (seeding.THREADS_ENV, "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)


@pytest.mark.parametrize("cpus, expected", [(1, 1), (2, 1), (4, 2), (8, 4), (64, 4)])
def test_the_automatic_thread_count_is_half_the_cpus_between_1_and_4(clean_thread_env, cpus, expected):
    clean_thread_env.setattr(seeding, "available_cpus", lambda: cpus)
    assert seeding.default_threads() == expected


def test_the_environment_overrides_the_policy(clean_thread_env):
    clean_thread_env.setenv(seeding.THREADS_ENV, "3")
    assert seeding.default_threads() == 3
    clean_thread_env.setenv(seeding.THREADS_ENV, "many")
    with pytest.raises(ValueError, match="positive whole number"):
        seeding.default_threads()
    clean_thread_env.delenv(seeding.THREADS_ENV)
    clean_thread_env.setenv("OMP_NUM_THREADS", "2")
    assert seeding.default_threads() is None                      # OpenMP's own setting is respected
    assert seeding.configure_threads() is None


def test_configure_threads_limits_torch_and_blas(clean_thread_env):
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=None):                            # restores BLAS afterwards
        assert seeding.configure_threads(1) == 1
        assert torch.get_num_threads() == 1
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(n == 1 for n in blas)
    with pytest.raises(ValueError, match="positive int"):
        seeding.configure_threads(0)


def test_seed_everything_sets_threads_unless_told_not_to(clean_thread_env):
    clean_thread_env.setenv(seeding.THREADS_ENV, "1")
    torch.set_num_threads(2)
    seeding.seed_everything(0, threads=None)
    assert torch.get_num_threads() == 2
    seeding.seed_everything(0)
    assert torch.get_num_threads() == 1


def test_seed_everything_asks_for_deterministic_torch_without_loading_the_compiler():
    """The flag eager torch reads is set, and the compiler's configuration (1.1 s to import, in every
    notebook's start and every graded submission's) is left unloaded; run in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys, torch\nfrom helpers import seed_everything\nseed_everything(0, threads=None)\n"
            "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),"
            " 'torch._inductor.config' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.stdout.split() == ["True", "True", "False"], out.stderr[-2000:]


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "200000 100000\n"}, 2.0),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_the_cgroup_quota_is_read_in_v2_and_v1_forms(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert seeding._cgroup_cpu_quota(tmp_path) == quota


def test_a_cpu_quota_caps_the_available_cpus(monkeypatch):
    monkeypatch.setattr(seeding, "_cgroup_cpu_quota", lambda: 2.5)
    assert seeding.available_cpus() == min(2, len(os.sched_getaffinity(0)))


# -- notebook 06: the reference follows the documented conventions -------------------------------


@pytest.fixture(scope="module")
def reference06():
    course = Course(REPO / "course")
    return load_reference(course.source_notebook("06_deep_training"))


def _early_stopping_online(losses, patience, min_delta):
    """Keras's formulation: a wait counter reset by every improvement; stop when it reaches patience."""
    best_loss, best_epoch, wait, stopped_at = np.inf, 0, 0, None
    for t, loss in enumerate(losses):
        if t == 0 or loss < best_loss - min_delta:
            best_loss, best_epoch, wait = loss, t, 0
        else:
            wait += 1
        if wait >= patience and stopped_at is None:
            stopped_at = t
    return best_epoch, wait >= patience


def test_early_stopping_reference_agrees_with_a_wait_counter(reference06):
    ref = reference06["early_stopping"]
    rng = np.random.default_rng(0)
    for _ in range(300):
        T = int(rng.integers(1, 20))
        losses = (64 + np.cumsum(rng.choice([-3, -1, 0, 0, 1, 2], size=T))) / 32
        patience, min_delta = int(rng.integers(1, 5)), float(rng.choice([0.0, 1 / 32, 1 / 16]))
        for t in range(1, T + 1):                     # called after every epoch, as in the notebook
            best, stop = ref(losses[:t], patience, min_delta)
            assert (best, stop) == _early_stopping_online(losses[:t], patience, min_delta)
            assert type(best) is int and type(stop) is bool
            if stop:
                break


def test_early_stopping_convention_points(reference06):
    ref = reference06["early_stopping"]
    assert ref(np.array([1.0, 0.75, 0.75]), 5, 0.0) == (1, False)             # a tie keeps the earlier epoch
    assert ref(np.array([1.0, 0.5, 0.6, 0.7]), 2, 0.0) == (1, True)           # patience reached exactly
    assert ref(np.array([1.0, 0.5, 0.6]), 2, 0.0) == (1, False)               # one epoch short
    assert ref(np.array([1.0, 0.875]), 3, 0.125) == (0, False)                # exactly min_delta: not better


def test_confusion_matrix_and_precision_recall_follow_their_definitions(reference06):
    cm_fn, pr_fn = reference06["confusion_matrix"], reference06["precision_recall"]
    rng = np.random.default_rng(1)
    for _ in range(50):
        K = int(rng.integers(2, 8))
        y_true, y_pred = rng.integers(0, K - 1, size=60), rng.integers(0, K, size=60)
        C = cm_fn(y_true, y_pred, K)
        expected = np.histogram2d(y_true, y_pred, bins=K, range=[[0, K], [0, K]])[0]
        assert C.shape == (K, K) and np.array_equal(C, expected)
        precision, recall = pr_fn(C)
        for k in range(K):
            tp, predicted, actual = np.sum((y_pred == k) & (y_true == k)), np.sum(y_pred == k), np.sum(y_true == k)
            assert precision[k] == pytest.approx(tp / predicted if predicted else 0.0)
            assert recall[k] == pytest.approx(tp / actual if actual else 0.0)
    with np.errstate(all="raise"):                                            # 0/0 is never computed
        precision, recall = pr_fn(np.zeros((3, 3)))
    assert np.array_equal(precision, np.zeros(3)) and np.array_equal(recall, np.zeros(3))
