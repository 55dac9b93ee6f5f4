"""Tests of helpers.lr_finder: the learning-rate range test and the digits loss curves of notebook 03,
trained with helpers.training.train_steps on helpers.data's digits, compared on a validation split."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from helpers import data, lr_finder  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_small_mlp_is_seeded_without_touching_the_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = lr_finder.small_mlp(16, seed=1), lr_finder.small_mlp(16, seed=1)
    assert torch.equal(torch.rand(1), before)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert a(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_curves_train_on_the_training_split_and_are_compared_on_validation(monkeypatch):
    asked = []
    real = data.digits_loader

    def recorded(split, **kw):
        asked.append((split, kw.get("batch_size"), kw.get("normalize")))
        return real(split, **kw)
    monkeypatch.setattr(data, "digits_loader", recorded)
    curve = lr_finder.digits_loss_curve(0.1, steps=3, batch_size=32)
    assert asked == [("train", 32, True), ("val", 500, True)]
    assert np.all(np.isfinite(curve.losses)) and 0 <= curve.val_accuracy <= 1


def test_digits_loss_curves_learn_and_blow_up():
    good = lr_finder.digits_loss_curve(0.1, steps=20)
    again = lr_finder.digits_loss_curve(0.1, steps=20)
    np.testing.assert_array_equal(good.losses, again.losses)
    assert good.losses.shape == (20,) and good.smoothed()[-1] < 0.8 * good.losses[0]
    assert good.describe().startswith(("learning", "slow")) and 0.3 < good.val_accuracy <= 1
    assert "validation accuracy" in good.describe() and "test" not in good.describe()
    bad = lr_finder.digits_loss_curve(1000.0, steps=20)
    assert bad.describe().startswith(("diverged", "unstable")), bad.describe()
    tiny = lr_finder.digits_loss_curve(1e-5, steps=20)
    assert tiny.describe().startswith("stuck"), tiny.describe()


def test_a_diverged_curve_is_nan_after_the_divergence():
    curve = lr_finder.TrainCurve(1.0, np.array([2.3, 5.0, np.nan, np.nan]), float("nan"), diverged_at=3)
    assert curve.describe() == "diverged: the loss became inf/NaN at step 3"
    real = lr_finder.digits_loss_curve(1e9, steps=30)  # so large that the loss overflows
    assert real.diverged_at is not None and np.isnan(real.val_accuracy)
    assert np.all(np.isfinite(real.losses[: real.diverged_at - 1])) and np.all(np.isnan(real.losses[real.diverged_at - 1:]))


def test_lr_range_test_grows_the_lr_and_leaves_the_model_alone():
    X, y = data.load_digits("train", flatten=True, normalize=True)
    loader = DataLoader(TensorDataset(torch.from_numpy(X[:2000]), torch.from_numpy(y[:2000])), batch_size=64,
                        shuffle=True, generator=torch.Generator().manual_seed(0))
    model = lr_finder.small_mlp(32, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    res = lr_finder.lr_range_test(model, loader, lr_min=1e-3, lr_max=100.0, steps=60, progress=False)
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
    ratios = res.lrs[1:] / res.lrs[:-1]
    np.testing.assert_allclose(ratios, (1e5) ** (1 / 59), rtol=1e-9)
    assert res.lrs[0] == pytest.approx(1e-3)
    assert res.stopped_early and len(res.lrs) < 60  # lr 100 blows up
    assert len(res.losses) == len(res.lrs) == len(res.smoothed)
    np.testing.assert_allclose(res.smoothed, lr_finder.smooth(res.losses))
    assert res.suggested_lr == pytest.approx(res.best_lr / 3)
    assert res.smoothed[np.argmin(np.abs(res.lrs - res.best_lr))] == pytest.approx(res.smoothed.min())
    assert 1e-3 < res.steepest_lr <= res.best_lr


def test_lr_range_test_refuses_bad_ranges():
    loader = DataLoader(TensorDataset(torch.zeros(8, 784), torch.zeros(8, dtype=torch.int64)), batch_size=4)
    with pytest.raises(ValueError, match="lr_min < lr_max"):
        lr_finder.lr_range_test(lr_finder.small_mlp(4), loader, lr_min=1.0, lr_max=0.1, progress=False)
    with pytest.raises(ValueError, match="at least 2 steps"):
        lr_finder.lr_range_test(lr_finder.small_mlp(4), loader, steps=1, progress=False)


def test_smooth_corrects_the_start_bias():
    np.testing.assert_allclose(lr_finder.smooth(np.full(10, 2.0), 0.9), 2.0)
    np.testing.assert_allclose(lr_finder.smooth([1.0, 3.0], 0.5), [1.0, (0.25 * 1 + 0.5 * 3) / 0.75])


def test_plot_lr_range_marks_the_suggestions_and_renders():
    res = lr_finder.LRRangeTest(np.geomspace(1e-3, 1, 10), np.linspace(2, 1, 10), np.linspace(2, 1, 10), 1.0, 0.33, 0.1)
    fig = lr_finder.plot_lr_range(res)
    assert isinstance(fig, Figure)
    xs = sorted(line.get_xdata()[0] for line in fig.axes[0].lines[2:])
    assert xs == pytest.approx([0.33, 1.0])
    fig.canvas.draw()
