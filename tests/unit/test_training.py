"""Tests of helpers.training: the loop learns, repeats when seeded, and switches modes correctly."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.data import make_moons
from helpers.training import History, evaluate, fit, pick_device


def moons_loaders(batch_size=32):
    X, y = make_moons(n=256, noise=0.1, seed=0)
    Xv, yv = make_moons(n=128, noise=0.1, seed=1)
    train = TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))
    val = TensorDataset(torch.tensor(Xv, dtype=torch.float32), torch.tensor(yv))
    # The train loader has no generator of its own: its shuffling uses torch's global RNG.
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(val, batch_size=64)


def mlp(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 2))


def train(seed, dropout=0.2, epochs=3):
    model = mlp(dropout=dropout)
    train_loader, val_loader = moons_loaders()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return fit(model, train_loader, val_loader, optimizer=opt, epochs=epochs, seed=seed, progress=False)


def test_fit_learns_a_tiny_problem():
    history = train(seed=0, dropout=0.0, epochs=15)
    assert isinstance(history, History)
    assert len(history.train_loss) == len(history.val_loss) == 15
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val_metrics["accuracy"][-1] > 0.95
    d = history.to_dict()
    assert set(d) == {"train_loss", "val_loss", "train_accuracy", "val_accuracy"}
    assert history["val_accuracy"] == history.val_metrics["accuracy"]
    assert all(0.0 <= a <= 1.0 for a in d["train_accuracy"])


def test_fit_same_seed_same_history_other_seed_differs():
    a, b, c = train(seed=1), train(seed=1), train(seed=2)
    assert a.to_dict() == b.to_dict()
    assert a.train_loss != c.train_loss, "the seed must drive shuffling and dropout"


class ModeProbe(nn.Module):
    """Records the mode and grad state of every forward call."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.linear(x)


def test_train_and_eval_modes_and_no_grad():
    model = ModeProbe()
    train_loader, val_loader = moons_loaders(batch_size=128)  # 2 train batches, 2 val batches
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, train_loader, val_loader, optimizer=opt, epochs=2, progress=False)
    expected_epoch = [(True, True)] * 2 + [(False, False)] * 2
    assert model.calls == expected_epoch * 2
    assert model.training, "fit's final evaluation must hand back a model in training mode"
    model.calls.clear()
    model.eval()
    evaluate(model, val_loader)
    assert not model.training, "evaluate restores the previous mode"
    assert model.calls == [(False, False)] * 2


def test_batchnorm_running_stats_update_in_fit_not_in_evaluate():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    train_loader, val_loader = moons_loaders()
    bn = model[1]
    before = bn.running_mean.clone()
    fit(model, train_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), epochs=1, progress=False)
    after_fit = bn.running_mean.clone()
    assert not torch.equal(before, after_fit)
    evaluate(model, val_loader)
    assert torch.equal(bn.running_mean, after_fit), "evaluation must not update running statistics"


def test_evaluate_matches_manual_computation():
    model = mlp(dropout=0.5)
    _, val_loader = moons_loaders()
    result = evaluate(model, val_loader)
    X, y = val_loader.dataset.tensors
    model.eval()
    with torch.no_grad():
        logits = model(X)
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert evaluate(model, val_loader) == result, "dropout must be off in evaluation"


def test_regression_with_custom_loss_and_metric():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    loader = DataLoader(TensorDataset(x, 3 * x + 1), batch_size=16, shuffle=False)
    model = nn.Linear(1, 1)

    def max_error(out, target):
        return (out - target).abs().max().item()

    history = fit(model, loader, loader, loss_fn=nn.MSELoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.3),
                  epochs=30, metrics=(max_error,), progress=False)
    assert set(history.to_dict()) == {"train_loss", "val_loss", "train_max_error", "val_max_error"}
    assert history.val_loss[-1] < 1e-3
    assert history["val_max_error"][-1] < 0.1


def test_fit_argument_errors_and_progress_bars(capsys):
    model = mlp()
    train_loader, _ = moons_loaders()
    with pytest.raises(TypeError, match="optimizer"):
        fit(model, train_loader, epochs=1)
    one_output = nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r"\(B, K\) with K >= 2, got \(32, 1\)"):
        fit(one_output, train_loader, optimizer=torch.optim.SGD(one_output.parameters(), lr=0.1),
            loss_fn=lambda out, y: ((out.squeeze(1) - y) ** 2).mean(), progress=False)
    with pytest.raises(ValueError, match="unknown metric"):
        fit(model, train_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), metrics=("f1",))
    history = fit(model, train_loader, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, progress=True)
    assert "epochs" in capsys.readouterr().err, "tqdm writes its bars to stderr"
    assert history.val_loss == [] and "val_loss" not in history.to_dict()


def test_pick_device():
    assert pick_device() == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    if torch.cuda.is_available():
        assert pick_device("auto").type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="not available"):
            pick_device("cuda")


# -- train_steps: the same step, counted in mini-batches ---------------------------------------------


def _fixed_loader(n=96, batch_size=32):
    X, y = make_moons(n=n, noise=0.1, seed=2)
    return DataLoader(TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y)), batch_size=batch_size)


def test_train_steps_over_one_epoch_is_one_epoch_of_fit():
    from helpers.training import train_steps

    a, b = mlp(seed=3), mlp(seed=3)
    fit(a, _fixed_loader(), optimizer=torch.optim.SGD(a.parameters(), lr=0.1), epochs=1, progress=False)
    log = train_steps(b, _fixed_loader(), torch.optim.SGD(b.parameters(), lr=0.1), steps=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert len(log.losses) == 3 and log.stopped_at is None and not log.diverged


def test_train_steps_runs_past_the_end_of_the_loader_and_steps_the_scheduler_per_batch():
    from helpers.training import train_steps

    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    log = train_steps(model, _fixed_loader(), opt, steps=7, scheduler=sched)  # 3 batches per epoch
    assert len(log.losses) == 7
    assert log.lrs == pytest.approx([0.1 * 0.5 ** t for t in range(7)])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 7)
    with pytest.raises(ValueError, match="no batches"):
        train_steps(model, [], opt, steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_steps(model, _fixed_loader(), opt, steps=-1)


def test_train_steps_stops_when_asked_and_at_a_non_finite_loss_without_updating():
    from helpers.training import train_steps

    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    log = train_steps(model, _fixed_loader(), opt, steps=10, stop=lambda log: len(log.losses) == 4)
    assert len(log.losses) == 4 and log.stopped_at == 4 and not log.diverged

    calls = []

    def loss_fn(out, y):
        calls.append(1)
        loss = nn.functional.cross_entropy(out, y)
        return loss * float("inf") if len(calls) == 3 else loss
    before = [p.detach().clone() for p in model.parameters()]
    log = train_steps(model, _fixed_loader(), opt, steps=10, loss_fn=loss_fn)
    assert log.diverged and log.stopped_at == 3 and len(log.losses) == 2
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before))  # two updates were made
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the inf loss was never stepped on
