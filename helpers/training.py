"""A small, readable training loop: the one you would write yourself, with progress bars.

    history = fit(model, train_loader, val_loader, loss_fn=nn.CrossEntropyLoss(),
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=5, seed=0)
    history["val_accuracy"]        # [0.91, 0.94, ...], one number per epoch
    evaluate(model, test_loader)   # {"loss": 0.2, "accuracy": 0.95}

Each epoch: ``model.train()``, then for every batch: forward, loss, ``zero_grad``, ``backward``,
``step``. Then, if there is a validation loader, ``evaluate``: ``model.eval()`` and
``torch.no_grad()`` (dropout off, batch norm uses its running statistics, no graph is built).

``train_steps(model, loader, optimizer, steps)`` runs the same step for a number of mini-batches
instead of epochs, recording every loss (a learning-rate range test, loss curves per step).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows where argmax(outputs (B, K)) equals targets (B,)."""
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        raise ValueError(
            f"accuracy needs class scores of shape (B, K) with K >= 2, got {tuple(outputs.shape)}. "
            "With one output per sample pass your own metric, e.g. for logits: "
            "def binary_accuracy(out, y): return ((out.squeeze(1) > 0) == y).float().mean().item()")
    return (outputs.argmax(dim=1) == targets).float().mean().item()


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {"accuracy": accuracy}


@dataclass
class History:
    """Per-epoch averages. ``train_metrics["accuracy"][e]`` is the accuracy of epoch e."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_metrics: dict[str, list[float]] = field(default_factory=dict)
    val_metrics: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, list[float]]:
        """Flat dict such as {"train_loss": [...], "val_loss": [...], "train_accuracy": [...]}."""
        out = {"train_loss": self.train_loss, "val_loss": self.val_loss}
        out.update({f"train_{k}": v for k, v in self.train_metrics.items()})
        out.update({f"val_{k}": v for k, v in self.val_metrics.items()})
        return {k: list(v) for k, v in out.items() if v}

    def __getitem__(self, key: str) -> list[float]:
        return self.to_dict()[key]


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: CPU unless asked otherwise.

    - None or "cpu": the CPU (the course never needs a GPU)
    - "auto": CUDA if available, else Apple's MPS if available, else the CPU
    - "cuda", "mps", "cuda:1", ...: that device (an error says so if it is not available)
    """
    if prefer is None:
        return torch.device("cpu")
    if str(prefer) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(prefer)
    if (device.type == "cuda" and not torch.cuda.is_available()) or (device.type == "mps" and not _mps_available()):
        raise RuntimeError(f"device {device} was asked for but is not available here; "
                           'use pick_device("auto") to fall back to the CPU')
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)  # Apple-silicon GPUs
    return mps is not None and mps.is_available()


def _metric_fns(metrics: Iterable[str | Callable]) -> dict[str, Callable]:
    """("accuracy", my_fn) -> {"accuracy": accuracy, "my_fn": my_fn}."""
    fns = {}
    for m in metrics:
        if callable(m):
            fns[m.__name__] = m
        elif m in METRICS:
            fns[m] = METRICS[m]
        else:
            raise ValueError(f"unknown metric {m!r}; known: {list(METRICS)} (or pass a function)")
    return fns


def _run_epoch(model, loader, loss_fn, metric_fns, device, optimizer=None, bar_desc=None, progress=True):
    """One pass over ``loader``; trains if ``optimizer`` is given. Returns sample-weighted means."""
    totals, n_seen = {"loss": 0.0, **{k: 0.0 for k in metric_fns}}, 0
    for x, y in tqdm(loader, desc=bar_desc, leave=False, disable=not progress):
        x, y = x.to(device), y.to(device)
        outputs = model(x)
        loss = loss_fn(outputs, y)
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        n = len(x)
        n_seen += n
        totals["loss"] += loss.item() * n
        with torch.no_grad():
            for name, fn in metric_fns.items():
                totals[name] += float(fn(outputs, y)) * n
    return {k: v / max(n_seen, 1) for k, v in totals.items()}


def evaluate(model: nn.Module, loader, loss_fn: Callable | None = None,
             metrics: Iterable[str | Callable] = ("accuracy",), device=None, progress: bool = False) -> dict[str, float]:
    """Mean loss and metrics of ``model`` over ``loader``, in eval mode and without gradients.

    Returns e.g. {"loss": 0.31, "accuracy": 0.91}. The model's train/eval mode is restored after.
    """
    device = pick_device(device) if device is not None else _model_device(model)
    return _evaluate(model, loader, loss_fn or nn.functional.cross_entropy, _metric_fns(metrics), device, progress)


def _evaluate(model, loader, loss_fn, metric_fns, device, progress=False) -> dict[str, float]:
    was_training = model.training
    model.eval()  # dropout off, batch norm uses running statistics
    with torch.no_grad():  # no graph: faster, less memory
        result = _run_epoch(model, loader, loss_fn, metric_fns, device, bar_desc="eval", progress=progress)
    model.train(was_training)
    return result


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def fit(model: nn.Module, train_loader, val_loader=None, loss_fn: Callable | None = None,
        optimizer: torch.optim.Optimizer | None = None, epochs: int = 1,
        metrics: Iterable[str | Callable] = ("accuracy",), device: str | torch.device | None = None,
        seed: int | None = None, progress: bool = True) -> History:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch ``History``.

    - train_loader / val_loader: iterables of (inputs, targets) batches
    - loss_fn: (outputs, targets) -> scalar tensor; default ``F.cross_entropy``
    - optimizer: required, e.g. ``torch.optim.SGD(model.parameters(), lr=0.1)``
    - metrics: names in ``METRICS`` ("accuracy") or functions (outputs, targets) -> float;
      use ``metrics=()`` for regression
    - device: None keeps the model where it is; "cpu", "cuda", "auto" (see ``pick_device``)
    - seed: if given, ``torch.manual_seed(seed)`` first, so that shuffling (for loaders without
      their own generator) and dropout repeat exactly. Initialise the model's weights before
      calling fit, with its own seed.
    - progress: show tqdm progress bars (they work in Jupyter and in a terminal)
    """
    if optimizer is None:
        raise TypeError("fit needs an optimizer, e.g. optimizer=torch.optim.SGD(model.parameters(), lr=0.1)")
    loss_fn = loss_fn or nn.functional.cross_entropy
    metric_fns = _metric_fns(metrics)
    device = pick_device(device) if device is not None else _model_device(model)
    model.to(device)
    if seed is not None:
        torch.manual_seed(seed)
    history = History(train_metrics={k: [] for k in metric_fns},
                      val_metrics={k: [] for k in metric_fns} if val_loader is not None else {})
    epoch_bar = tqdm(range(epochs), desc="epochs", disable=not progress)
    for epoch in epoch_bar:
        model.train()
        train = _run_epoch(model, train_loader, loss_fn, metric_fns, device, optimizer,
                           bar_desc=f"epoch {epoch + 1}", progress=progress)
        history.train_loss.append(train.pop("loss"))
        for k, v in train.items():
            history.train_metrics[k].append(v)
        postfix = {"loss": f"{history.train_loss[-1]:.4f}"}
        if val_loader is not None:
            val = _evaluate(model, val_loader, loss_fn, metric_fns, device)
            history.val_loss.append(val.pop("loss"))
            for k, v in val.items():
                history.val_metrics[k].append(v)
            postfix["val_loss"] = f"{history.val_loss[-1]:.4f}"
        epoch_bar.set_postfix(postfix)
    return history


@dataclass
class StepLog:
    """What ``train_steps`` recorded: one entry per mini-batch whose loss was finite.

    - losses: the training loss of each such mini-batch (computed before its update)
    - lrs: the learning rate (of the first parameter group) that mini-batch's update used
    - stopped_at: the step (1, 2, ...) at which training stopped early, else None
    - diverged: True when it stopped because the loss was not finite (inf or NaN)
    """

    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    stopped_at: int | None = None
    diverged: bool = False


def train_steps(model: nn.Module, train_loader, optimizer: torch.optim.Optimizer, steps: int,
                loss_fn: Callable | None = None, scheduler=None, stop: Callable[[StepLog], bool] | None = None,
                device: str | torch.device | None = None, progress: bool = False,
                desc: str = "steps") -> StepLog:
    """Train ``model`` for exactly ``steps`` mini-batches (not epochs), recording every loss.

    The same step as ``fit`` (forward, loss, ``zero_grad``, ``backward``, ``step``), counted in
    mini-batches: when ``train_loader`` runs out it starts again (a new epoch; a shuffling loader
    with its own generator, such as ``helpers.data.digits_loader``, gives a new order).

    - scheduler: a ``torch.optim.lr_scheduler`` stepped after every mini-batch (not every epoch)
    - stop(log): called after each loss is recorded, before its update; True stops there
      (the last loss is kept, its update is not made)
    Training also stops, before recording, at the first loss that is not finite (``diverged``).
    Returns a ``StepLog``; ``model`` is left in train mode.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    loss_fn = loss_fn or nn.functional.cross_entropy
    device = pick_device(device) if device is not None else _model_device(model)
    model.to(device)
    model.train()
    log = StepLog()
    batches = _cycle(train_loader)
    for step in tqdm(range(1, steps + 1), desc=desc, leave=False, disable=not progress):
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        value = loss.item()
        if not torch.isfinite(loss):
            log.stopped_at, log.diverged = step, True
            break
        log.losses.append(value)
        log.lrs.append(float(optimizer.param_groups[0]["lr"]))
        if stop is not None and stop(log):
            log.stopped_at = step
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return log


def _cycle(loader):
    """Batches of ``loader``, epoch after epoch (a fresh ``iter`` per epoch, so shuffling re-draws)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training loader yields no batches")
