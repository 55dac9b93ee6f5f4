"""Tests of helpers.data: shipped digits and names, synthetic sets, sequence tasks."""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from helpers.data import (
    CharVocab,
    ShippedDataError,
    digits_dataset,
    digits_loader,
    digits_mean_std,
    load_digits,
    load_names,
    make_circles,
    make_context_pairs,
    make_function_1d,
    make_moons,
    make_padded_batch,
    make_separable,
    make_sequence_task,
    make_spirals,
    make_windows,
    make_xor,
    noisy_sines,
    sequence_loader,
)
from helpers.data.digits import _raw_digits
from helpers.data.shipped import DATASETS_DIR, shipped_path

REPO = Path(__file__).resolve().parents[2]
CLASS_COUNTS = [901, 1027, 891, 932, 880, 763, 914, 970, 844, 878]  # the 9,000 shipped digits


# ----------------------------------------------------------------------------- digits

@pytest.mark.parametrize("split, n", [("train", 8000), ("val", 1000), ("test", 1000)])
def test_load_digits_shapes_dtypes_range(split, n):
    X, y = load_digits(split)
    assert X.shape == (n, 28, 28) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    Xf, yf = load_digits(split, flatten=True)
    assert Xf.shape == (n, 784)
    np.testing.assert_array_equal(Xf, X.reshape(n, 784))
    np.testing.assert_array_equal(yf, y)


def test_digits_file_content_matches_provenance():
    images, labels = _raw_digits()
    assert images.shape == (9000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == CLASS_COUNTS


def test_digits_split_is_disjoint_complete_and_stratified():
    images, labels = _raw_digits()
    X_tr, y_tr = load_digits("train")
    X_te, y_te = load_digits("val")
    # Every sample appears exactly once in train + val (as many times as in the file).
    as_bytes = lambda X, y: Counter((np.rint(x * 255).astype(np.uint8).tobytes(), int(c)) for x, c in zip(X, y))
    assert as_bytes(X_tr, y_tr) + as_bytes(X_te, y_te) == Counter(
        (x.tobytes(), int(c)) for x, c in zip(images, labels))
    # The fixed split: every class is in both, and the old 2,000-digit test split's survivors validate.
    assert np.bincount(y_te, minlength=10).min() >= 70 and len(y_te) == 1000
    assert load_digits("test")[1].tolist() == y_te.tolist(), '"test" is an older name of "val"'
    # A stratified split (another seed): each class contributes round(1/9) of its samples.
    _, y_s = load_digits("val", seed=5)
    assert np.bincount(y_s, minlength=10).tolist() == [round(c / 9) for c in CLASS_COUNTS]


def test_digits_split_is_shuffled_across_classes():
    _, y = load_digits("train")
    assert (np.diff(y[:200]) != 0).sum() > 100, "consecutive samples should not be sorted by class"


def test_digits_split_deterministic_and_seed_dependent():
    X1, y1 = load_digits("test", seed=3)
    X2, y2 = load_digits("test", seed=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = load_digits("test", seed=4)
    assert not np.array_equal(X1, X3)
    X4, _ = load_digits("test", test_fraction=0.1)
    assert len(X4) == sum(round(0.1 * c) for c in CLASS_COUNTS)


def test_digits_returned_arrays_are_private_copies():
    X, y = load_digits("train")
    X[:] = -1.0
    y[:] = 99
    X2, y2 = load_digits("train")
    assert X2.min() == 0.0 and y2.max() == 9


def test_digits_normalize_uses_train_statistics():
    mean, std = digits_mean_std()
    X_tr, _ = load_digits("train")
    assert mean == pytest.approx(float(X_tr.astype(np.float64).mean()), rel=1e-6)
    assert std == pytest.approx(float(X_tr.astype(np.float64).std()), rel=1e-6)
    Xn_tr, _ = load_digits("train", normalize=True)
    assert abs(Xn_tr.mean()) < 1e-4 and abs(Xn_tr.std() - 1) < 1e-4
    X_te, _ = load_digits("test")
    Xn_te, _ = load_digits("test", normalize=True)
    np.testing.assert_allclose(Xn_te, (X_te - mean) / std, rtol=1e-5, atol=1e-5)
    own = (X_te - X_te.mean()) / X_te.std()
    assert not np.allclose(Xn_te, own, rtol=1e-5, atol=1e-5), "scale test with TRAIN statistics, not its own"


def test_load_digits_rejects_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        load_digits("holdout")
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits("train", test_fraction=1.5)


def test_digits_dataset_and_loader():
    ds = digits_dataset("test")
    x, y = ds[0]
    assert len(ds) == 1000
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    X_np, y_np = load_digits("test")
    np.testing.assert_array_equal(ds.tensors[0][:, 0].numpy(), X_np)

    state = torch.get_rng_state()
    first = [yb.clone() for _, yb in digits_loader("train", batch_size=500, seed=1)]
    again = [yb.clone() for _, yb in digits_loader("train", batch_size=500, seed=1)]
    other = [yb.clone() for _, yb in digits_loader("train", batch_size=500, seed=2)]
    assert torch.equal(torch.get_rng_state(), state), "digits_loader must not use torch's global RNG"
    assert len(first) == 16 and first[0].shape == (500,)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))

    loader = digits_loader("train", batch_size=500, seed=1)
    epoch1 = torch.cat([yb for _, yb in loader])
    epoch2 = torch.cat([yb for _, yb in loader])
    assert not torch.equal(epoch1, epoch2), "each epoch should be shuffled differently"

    xb, yb = next(iter(digits_loader("test", batch_size=10)))
    assert xb.shape == (10, 1, 28, 28)
    assert torch.equal(yb, torch.from_numpy(y_np[:10])), "the test loader is not shuffled by default"


@pytest.fixture
def copy_of_datasets(tmp_path):
    for name in ("mnist9k.npz", "names.txt"):
        shutil.copy(DATASETS_DIR / name, tmp_path / name)
    return tmp_path


def test_shipped_file_damaged_or_missing_gives_clear_error(copy_of_datasets):
    d = copy_of_datasets
    assert shipped_path("names.txt", d) == d / "names.txt"
    data = bytearray((d / "mnist9k.npz").read_bytes())
    data[1000] ^= 0xFF
    (d / "mnist9k.npz").write_bytes(bytes(data))
    with pytest.raises(ShippedDataError, match="damaged.*sha256"):
        shipped_path("mnist9k.npz", d)
    (d / "names.txt").unlink()
    with pytest.raises(ShippedDataError, match="missing"):
        shipped_path("names.txt", d)


# ----------------------------------------------------------------------------- names

def test_load_names():
    names = load_names()
    assert len(names) == 5163
    assert names == sorted(set(names))
    assert all(n.isalpha() and n.islower() and n.isascii() for n in names)
    assert names[:3] == ["aaron", "abbey", "abbie"]


def test_char_vocab_roundtrip_and_errors():
    vocab = CharVocab.from_words(load_names())
    assert vocab.size == len(vocab) == 27
    assert vocab.itos[0] == "." and vocab.stoi["a"] == 1 and vocab.stoi["z"] == 26
    assert vocab.encode("emma") == [5, 13, 13, 1]
    assert vocab.decode(np.array([5, 13, 13, 1])) == "emma"
    assert vocab.decode(torch.tensor([0, 2, 15, 0])) == ".bo."
    with pytest.raises(ValueError, match="'A'.*not in the vocabulary"):
        vocab.encode("Anna")
    with pytest.raises(ValueError, match="special"):
        CharVocab("a.b")


def test_make_context_pairs():
    vocab = CharVocab.from_words(["emma", "bo"])
    X, y = make_context_pairs(["emma"], vocab, context=3)
    dec = lambda row: vocab.decode(row)
    assert [dec(r) for r in X] == ["...", "..e", ".em", "emm", "mma"]
    assert dec(y) == "emma."
    names = load_names()
    X, y = make_context_pairs(names, CharVocab.from_words(names), context=4)
    assert X.shape == (sum(len(n) + 1 for n in names), 4) and X.dtype == np.int64
    assert y.shape == (len(X),) and y.dtype == np.int64
    assert (y == 0).sum() == len(names), "each name ends with exactly one end symbol"


def test_make_padded_batch():
    vocab = CharVocab.from_words(["emma", "bo"])
    inputs, targets, lengths = make_padded_batch(["emma", "bo"], vocab)
    assert inputs.shape == targets.shape == (2, 5)
    assert lengths.tolist() == [5, 3]
    assert vocab.decode(inputs[0]) == ".emma" and vocab.decode(targets[0]) == "emma."
    assert vocab.decode(inputs[1, :3]) == ".bo" and vocab.decode(targets[1, :3]) == "bo."
    assert targets[1, 3:].tolist() == [-100, -100]
    # The padding contributes nothing to cross-entropy (its default ignore_index is -100).
    logits = torch.randn(2, 5, vocab.size, generator=torch.Generator().manual_seed(0))
    full = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab.size), torch.from_numpy(targets).reshape(-1))
    real = torch.from_numpy(targets >= 0).reshape(-1)
    manual = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab.size)[real],
                                               torch.from_numpy(targets).reshape(-1)[real])
    assert torch.allclose(full, manual)


# ----------------------------------------------------------------------------- synthetic 2-D

TWO_D = {
    "separable": lambda seed: make_separable(n=101, seed=seed),
    "xor": lambda seed: make_xor(n=101, seed=seed),
    "moons": lambda seed: make_moons(n=101, seed=seed),
    "circles": lambda seed: make_circles(n=101, seed=seed),
    "spirals": lambda seed: make_spirals(n=101, n_classes=3, seed=seed),
}


@pytest.mark.parametrize("name", TWO_D)
def test_2d_sets_shapes_dtypes_determinism(name):
    X, y = TWO_D[name](0)
    assert X.shape == (101, 2) and X.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int64
    k = 3 if name == "spirals" else 2
    counts = np.bincount(y)
    assert len(counts) == k and counts.max() - counts.min() <= 1, f"classes unbalanced: {counts}"
    X2, y2 = TWO_D[name](0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = TWO_D[name](1)
    assert not np.allclose(X, X3)
    assert (np.diff(y) != 0).sum() > 20, "rows should be shuffled"


def _linearly_separable(X, y) -> bool:
    """Is there (w, b) with s_i (w.x_i + b) >= 1 for all i (s = +-1)? A linear feasibility problem."""
    s = np.where(y == 1, 1.0, -1.0)
    A = -s[:, None] * np.column_stack([X, np.ones(len(X))])
    res = linprog(np.zeros(3), A_ub=A, b_ub=-np.ones(len(X)), bounds=[(None, None)] * 3)
    return res.status == 0


def test_separable_is_separable_with_margin_and_xor_is_not():
    for seed in range(5):
        X, y = make_separable(n=200, seed=seed, margin=0.5)
        assert _linearly_separable(X, y)
    assert not _linearly_separable(*make_xor(n=200, seed=0))
    assert not _linearly_separable(*make_circles(n=200, seed=0))
    # The gap between the classes along the best direction is at least the margin.
    X, y = make_separable(n=200, seed=0, margin=1.0)
    angles = np.linspace(0, np.pi, 3601)
    dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    proj = X @ dirs.T
    gaps = np.maximum(proj[y == 1].min(0) - proj[y == 0].max(0), proj[y == 0].min(0) - proj[y == 1].max(0))
    assert gaps.max() >= 1.0 - 1e-3


def test_xor_labels_follow_quadrants():
    X, y = make_xor(n=400, noise=0.1, seed=0)
    np.testing.assert_array_equal(y, (np.sign(X[:, 0]) != np.sign(X[:, 1])).astype(int))


def test_circles_radii_and_moons_geometry():
    X, y = make_circles(n=400, noise=0.0, factor=0.3, seed=0)
    r = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.3)
    X, y = make_moons(n=400, noise=0.0, seed=0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 0], axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 1] - [1.0, 0.5], axis=1), 1.0)


def test_make_function_1d():
    x, y = make_function_1d("sin", n=50, noise=0.0, seed=0)
    assert x.shape == y.shape == (50, 1) and x.dtype == y.dtype == np.float64
    assert np.all(np.diff(x[:, 0]) >= 0)
    assert x.min() >= -3 and x.max() <= 3
    np.testing.assert_allclose(y, np.sin(x))
    x2, y2 = make_function_1d(lambda t: 2 * t, n=50, noise=0.5, seed=0, x_range=(0, 1))
    assert 0 <= x2.min() and x2.max() <= 1
    assert 0.2 < np.std(y2 - 2 * x2) < 1.0
    np.testing.assert_array_equal(make_function_1d("step", seed=4)[1], make_function_1d("step", seed=4)[1])
    with pytest.raises(ValueError, match="unknown function"):
        make_function_1d("sinh")


# ----------------------------------------------------------------------------- time series

def test_noisy_sines():
    s = noisy_sines(n_series=7, length=50, seed=0)
    assert s.shape == (7, 50) and s.dtype == np.float64
    np.testing.assert_array_equal(s, noisy_sines(n_series=7, length=50, seed=0))
    clean = noisy_sines(n_series=7, length=50, seed=0, noise=0.0)
    assert np.abs(clean).max() <= 1.5
    assert 0.05 < np.std(s - clean) < 0.15


def test_make_windows_values():
    series = np.arange(10.0)
    X, y = make_windows(series, window=3, horizon=2)
    assert X.shape == (6, 3) and y.shape == (6, 2)
    np.testing.assert_array_equal(X[0], [0, 1, 2])
    np.testing.assert_array_equal(y[0], [3, 4])
    np.testing.assert_array_equal(X[-1], [5, 6, 7])
    np.testing.assert_array_equal(y[-1], [8, 9])
    two = np.stack([np.arange(10.0), 100 + np.arange(10.0)])
    X2, y2 = make_windows(two, window=4)
    assert X2.shape == (12, 4) and y2.shape == (12, 1)
    np.testing.assert_array_equal(X2[6], [100, 101, 102, 103])
    np.testing.assert_array_equal(y2[6], [104])
    X2[0, 0] = -1
    assert two[0, 0] == 0, "windows must be copies, not views of the series"
    with pytest.raises(ValueError, match="longer than the series"):
        make_windows(series, window=9, horizon=2)


# ----------------------------------------------------------------------------- sequence tasks

def test_token_tasks():
    for task, expect in [("copy", lambda x: x), ("reverse", lambda x: x[:, ::-1]),
                         ("sort", lambda x: np.sort(x, axis=1))]:
        inputs, targets = make_sequence_task(task, n=50, length=7, vocab_size=5, seed=0)
        assert inputs.shape == targets.shape == (50, 7)
        assert inputs.dtype == targets.dtype == np.int64
        assert inputs.min() >= 0 and inputs.max() == 4
        np.testing.assert_array_equal(targets, expect(inputs))
    with pytest.raises(ValueError, match="unknown task"):
        make_sequence_task("shuffle")


def test_adding_problem():
    inputs, targets = make_sequence_task("adding", n=100, length=20, seed=0)
    assert inputs.shape == (100, 20, 2) and targets.shape == (100, 1)
    values, markers = inputs[..., 0], inputs[..., 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :10].sum(axis=1) == 1), "one marker in each half"
    np.testing.assert_allclose(targets[:, 0], (values * markers).sum(axis=1))


def test_sequence_loader():
    state = torch.get_rng_state()
    loader = sequence_loader("sort", n=100, batch_size=32, seed=0, length=6, vocab_size=8)
    batches = list(loader)
    assert len(batches) == 4
    x, y = batches[0]
    assert x.shape == y.shape == (32, 6) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y, torch.sort(x, dim=1).values)
    again = list(sequence_loader("sort", n=100, batch_size=32, seed=0, length=6, vocab_size=8))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    xa, ya = next(iter(sequence_loader("adding", n=10, batch_size=4, length=8)))
    assert xa.shape == (4, 8, 2) and ya.shape == (4, 1) and xa.dtype == ya.dtype == torch.float32
    assert torch.equal(torch.get_rng_state(), state), "sequence_loader must not use the global RNG"


# ----------------------------------------------------------------------------- hygiene

def test_generators_do_not_touch_global_numpy_rng():
    state = np.random.get_state()
    for make in TWO_D.values():
        make(0)
    make_function_1d("sin"), noisy_sines(), make_sequence_task("adding"), load_digits("test")
    after = np.random.get_state()
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(state, after))


def test_import_is_light():
    code = (
        "import sys, numpy as np\n"
        "import helpers\n"
        "torch_before = 'torch' in sys.modules\n"
        "state = np.random.get_state()[1].copy()\n"
        "import helpers.data\n"
        "assert ('torch' in sys.modules) == torch_before, 'helpers.data imported torch'\n"
        "assert (np.random.get_state()[1] == state).all(), 'helpers.data seeded numpy'\n"
        "assert helpers.data.digits._raw_digits.cache_info().currsize == 0, 'data loaded at import'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
