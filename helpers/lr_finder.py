"""Finding the learning rate of a real network: the range test, and loss curves on the digits.

    train_loader = data.digits_loader("train", batch_size=64, seed=0, normalize=True)
    found = lr_finder.lr_range_test(lr_finder.small_mlp(128), train_loader, lr_min=1e-4, lr_max=10)
    found.suggested_lr                                  # a few times below the edge of stability
    lr_finder.plot_lr_range(found)
    curve = lr_finder.digits_loss_curve(0.1, steps=100)  # a training-loss curve per mini-batch
    curve.describe()                                    # 'learning: loss 2.3 -> 0.41, validation accuracy 88%'

The training is ``helpers.training.train_steps`` (the step of ``helpers.training.fit``, counted
in mini-batches) and the batches come from ``helpers.data.digits_loader``. Learning rates are
compared on the digits' **validation** split ("val"), never on test data.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from helpers import data, descent, training

def small_mlp(hidden: int = 64, seed: int = 0, n_in: int = 784, n_out: int = 10) -> nn.Sequential:
    """Flatten -> Linear(n_in, hidden) -> ReLU -> Linear(hidden, n_out), initialised from ``seed``
    (without touching torch's global RNG). Takes (N, 784) or images (N, 1, 28, 28) -> (N, n_out)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def smooth(values: Sequence[float], beta: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (as Adam corrects m): (n,) -> (n,)."""
    v = np.asarray(values, dtype=np.float64)
    out = np.empty_like(v)
    avg = 0.0
    for i, x in enumerate(v):
        avg = beta * avg + (1 - beta) * x
        out[i] = avg / (1 - beta ** (i + 1))
    return out


# --------------------------------------------------------------------------------------------- #
# Loss curves on the digits, one learning rate at a time
# --------------------------------------------------------------------------------------------- #


@dataclass
class TrainCurve:
    """Per-step training losses (steps,) (NaN after a divergence) and the final validation accuracy
    (NaN after a divergence)."""

    lr: float
    losses: np.ndarray
    val_accuracy: float
    diverged_at: int | None = None

    def smoothed(self, beta: float = 0.9) -> np.ndarray:
        return smooth(self.losses, beta)

    def describe(self) -> str:
        """A short verdict: 'diverged: ...', 'unstable: ...', 'stuck: ...', 'slow: ...' or 'learning: ...'."""
        if self.diverged_at is not None:
            return f"diverged: the loss became inf/NaN at step {self.diverged_at}"
        s = self.smoothed()
        first, last = float(self.losses[0]), float(s[-1])
        numbers = f"loss {first:.3g} -> {last:.3g}, validation accuracy {self.val_accuracy:.0%}"
        if float(np.max(self.losses)) > 3 * first:
            return f"unstable: the loss jumped to {float(np.max(self.losses)):.3g}; {numbers}"
        if last >= 0.9 * first:
            return f"stuck: {numbers}"
        if last > 0.5 * first:
            return f"slow: {numbers}"
        return f"learning: {numbers}"


def digits_loss_curve(lr: float, steps: int = 150, batch_size: int = 64, hidden: int = 64,
                      optimizer: str = "sgd", seed: int = 0, **hyper: Any) -> TrainCurve:
    """Train ``small_mlp(hidden, seed)`` for ``steps`` mini-batches of the digits; return the curve.

    - optimizer, hyper: a name of ``helpers.descent.OPTIMIZERS`` and its hyper-parameters
    Batches: ``helpers.data.digits_loader("train", batch_size, seed=seed, normalize=True)``;
    ``val_accuracy`` is measured on the "val" split. The initial weights and the batch order depend
    only on ``seed``, so runs with different learning rates differ only by the learning rate.
    Stops at the first non-finite loss.
    """
    train_loader = data.digits_loader("train", batch_size=batch_size, seed=seed, normalize=True)
    val_loader = data.digits_loader("val", batch_size=500, seed=seed, normalize=True)
    model = small_mlp(hidden, seed)
    opt = descent.make_optimizer(optimizer, model.parameters(), lr, **hyper)
    log = training.train_steps(model, train_loader, opt, steps)
    losses = np.full(steps, np.nan)
    losses[: len(log.losses)] = log.losses
    diverged_at = log.stopped_at if log.diverged else None
    acc = training.evaluate(model, val_loader)["accuracy"] if diverged_at is None else float("nan")
    return TrainCurve(float(lr), losses, float(acc), diverged_at)


# --------------------------------------------------------------------------------------------- #
# The learning-rate range test
# --------------------------------------------------------------------------------------------- #


@dataclass
class LRRangeTest:
    """Result of ``lr_range_test``: ``lrs`` and ``losses`` (raw and ``smoothed``) per step, (n,) each.

    - best_lr: the lr where the smoothed loss was lowest (already at the edge of instability)
    - suggested_lr: best_lr / 3, a safe choice to train with (the usual advice: 3-10x below best_lr)
    - steepest_lr: where the smoothed loss fell fastest (per unit of log lr)
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    best_lr: float
    suggested_lr: float
    steepest_lr: float
    stopped_early: bool = False


def lr_range_test(model: nn.Module, train_loader, lr_min: float = 1e-4, lr_max: float = 10.0,
                  steps: int = 100, make_optimizer: Callable[[Any, float], torch.optim.Optimizer] | None = None,
                  loss_fn: Callable | None = None, beta: float = 0.9, stop_factor: float = 4.0,
                  progress: bool = True) -> LRRangeTest:
    """Leslie Smith's learning-rate range test: train a COPY of ``model`` while the learning rate
    grows exponentially from ``lr_min`` to ``lr_max`` over ``steps`` mini-batches (ExponentialLR),
    recording the loss. The loss first barely moves (lr too small), then falls fast, then blows
    up (too large); stops early once the smoothed loss exceeds ``stop_factor`` times its best.

    - train_loader: batches (x, y) of the training data (e.g. ``helpers.data.digits_loader``)
    - make_optimizer(params, lr): default SGD with momentum 0.9
    - progress: show a tqdm progress bar
    The stepping is ``helpers.training.train_steps``. ``model`` itself is not changed.
    """
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got lr_min={lr_min}, lr_max={lr_max}")
    if steps < 2:
        raise ValueError(f"the range test needs at least 2 steps, got {steps}")
    net = copy.deepcopy(model)
    opt = (make_optimizer or (lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9)))(net.parameters(), lr_min)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=(lr_max / lr_min) ** (1.0 / (steps - 1)))
    running = {"avg": 0.0, "best": math.inf}

    def blew_up(log: training.StepLog) -> bool:
        t = len(log.losses)
        running["avg"] = beta * running["avg"] + (1 - beta) * log.losses[-1]
        smoothed = running["avg"] / (1 - beta ** t)
        running["best"] = min(running["best"], smoothed)
        return t > 6 and smoothed > stop_factor * running["best"]

    log = training.train_steps(net, train_loader, opt, steps, loss_fn=loss_fn, scheduler=sched, stop=blew_up,
                               progress=progress, desc="LR range test")
    if len(log.losses) < 2:
        raise ValueError(f"the loss was not finite after {len(log.losses)} step(s): lower lr_min ({lr_min:g})")
    lrs, sm = np.array(log.lrs), smooth(log.losses, beta)
    i_best = int(np.argmin(sm))
    slope = np.gradient(sm, np.log(lrs)) if len(sm) > 2 else np.zeros_like(sm)
    i_steep = int(np.argmin(slope[: i_best + 1]))
    return LRRangeTest(lrs, np.array(log.losses), sm, float(lrs[i_best]), float(lrs[i_best] / 3),
                       float(lrs[i_steep]), log.stopped_at is not None)


def plot_lr_range(result: LRRangeTest, ax: Any = None) -> Any:
    """Loss against learning rate (log x): raw (faint) and smoothed, with the suggestions marked.

    Returns the matplotlib Figure (pass ``ax=`` to draw into your own axes)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogx(result.lrs, result.losses, color="C0", alpha=0.3, lw=1, label="loss per batch")
    ax.semilogx(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed")
    ax.axvline(result.best_lr, color="C3", ls=":", label=f"lowest loss: lr {result.best_lr:.3g}")
    ax.axvline(result.suggested_lr, color="C2", ls="--", label=f"suggested (/3): lr {result.suggested_lr:.3g}")
    ax.set_xlabel("learning rate (grows every step)")
    ax.set_ylabel("training loss")
    start = result.smoothed[: max(3, len(result.smoothed) // 5)]  # the loss before it falls
    if start.size and np.all(np.isfinite(start)):
        ax.set_ylim(0, 1.3 * float(np.max(start)))  # the final blow-up leaves the plot
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    ax.set_title("learning-rate range test")
    return ax.figure


__all__ = ["LRRangeTest", "TrainCurve", "digits_loss_curve", "lr_range_test", "plot_lr_range", "small_mlp",
           "smooth"]
