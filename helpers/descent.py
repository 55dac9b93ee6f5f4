"""Walking downhill: descent paths, update rules against torch.optim, regimes, maps, noise, schedules.

    q = surfaces.Quadratic(eigenvalues=(1, 10))
    path = descent.descent_path(q, "sgd", lr=0.15, steps=50)  # torch.optim.SGD does the stepping
    descent.classify_path(path).words                         # 'oscillating, converging: ...'
    fig = descent.plot_paths(q, {"lr 0.15": path})

Everything here is a pure function of its arguments (no global RNG is touched, nothing is
drawn unless asked), so the demos of ``helpers.demos`` and the tests can call it alike.

The update rules of the optimisers are the *exercises* of notebook 03, so they are not written
here: the stepping engine is ``torch.optim`` (``descent_path``, ``convergence_map``,
``minibatch_path``), or an update-rule function you pass in (``run_update_rule``,
``compare_with_torch``). Learning-rate schedules come from ``torch.optim.lr_scheduler``
(``schedule_curve``). The surfaces walked on are those of ``helpers.surfaces``.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from helpers.surfaces import LeastSquares, Quadratic, Rosenbrock, Surface, draw_surface

# --------------------------------------------------------------------------------------------- #
# Descent paths, driven by torch.optim
# --------------------------------------------------------------------------------------------- #

#: Optimisers by name: (torch.optim class, default hyper-parameters).
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {"alpha": 0.99}),
    "adam": (torch.optim.Adam, {}),
}


def make_optimizer(name: str, params: Any, lr: float, **hyper: Any) -> torch.optim.Optimizer:
    """``torch.optim`` optimiser by name (see ``OPTIMIZERS``). ``beta1``/``beta2`` set Adam's betas."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimiser {name!r}; known: {sorted(OPTIMIZERS)}")
    cls, defaults = OPTIMIZERS[key]
    kwargs = {**defaults, **hyper}
    if "beta1" in kwargs or "beta2" in kwargs:
        kwargs["betas"] = (float(kwargs.pop("beta1", 0.9)), float(kwargs.pop("beta2", 0.999)))
    return cls(params, lr=lr, **kwargs)


@dataclass
class Path:
    """A descent path: ``points`` (n+1, 2) from the start, ``losses`` (n+1,) at those points.

    ``diverged_at`` is the step at which the loss blew up (the path stops there), else None.
    """

    points: np.ndarray
    losses: np.ndarray
    diverged_at: int | None = None
    min_value: float = 0.0
    label: str = ""

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def steps(self) -> int:
        """Number of steps taken (len(points) - 1)."""
        return len(self.points) - 1

    @property
    def gaps(self) -> np.ndarray:
        """losses - min_value (>= 0): how far above the minimum each point is."""
        return np.maximum(self.losses - self.min_value, 0.0)


def _blew_up(gap: float, gap0: float, blowup: float) -> bool:
    return not math.isfinite(gap) or gap > blowup * max(gap0, 1e-12)


def descent_path(surface: Surface, optimizer: str | Callable[[list], torch.optim.Optimizer] = "sgd",
                 lr: float = 0.1, steps: int = 50, start: Sequence[float] | None = None,
                 blowup: float = 1e6, **hyper: Any) -> Path:
    """Minimise ``surface`` from ``start`` with a torch.optim optimiser; record every point.

    - optimizer: a name of ``OPTIMIZERS`` ("sgd", "momentum", "adam", ...) built with ``lr`` and
      ``hyper`` (e.g. momentum=0.5, alpha=0.9, beta1=0.8), or a function params -> optimiser
    - steps: number of optimiser steps; the path has steps + 1 points
    - blowup: stop (diverged) when loss - min exceeds blowup times its starting value, or is
      not finite
    Computed in float64. Returns a ``Path``.
    """
    p = torch.tensor(surface.start if start is None else start, dtype=torch.float64).clone()
    p.requires_grad_(True)
    opt = make_optimizer(optimizer, [p], lr, **hyper) if isinstance(optimizer, str) else optimizer([p])
    points, losses = [p.detach().numpy().copy()], [float(surface(p.detach()))]
    gap0 = losses[0] - surface.min_value
    diverged_at = None
    for t in range(1, steps + 1):
        with torch.no_grad():
            p.grad = surface.gradient(p.detach()).clone()
        opt.step()
        with torch.no_grad():
            loss = float(surface(p.detach()))
        points.append(p.detach().numpy().copy())
        losses.append(loss)
        if _blew_up(loss - surface.min_value, gap0, blowup) or not np.all(np.isfinite(points[-1])):
            diverged_at = t
            break
    name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "optimizer")
    return Path(np.array(points), np.array(losses), diverged_at, surface.min_value, f"{name}, lr {lr:g}")


def _n_state(rule: Callable) -> int:
    """Number of state arrays of rule(p, g, *state, t): its parameters minus p, g and t."""
    params = inspect.signature(rule).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        raise TypeError("pass n_state= for a rule taking *args")
    return len([p for p in params if p.default is p.empty]) - 3


def run_update_rule(surface: Surface, rule: Callable, steps: int = 50, start: Sequence[float] | None = None,
                    n_state: int | None = None, blowup: float = 1e6) -> Path:
    """Minimise ``surface`` with a hand-written update rule (numpy), recording every point.

    ``rule(p, g, *state, t)`` gets the parameters p (2,), the gradient g (2,), the optimiser's
    state arrays (each starts as zeros like p) and the step number t (1, 2, ...), and returns
    ``(p_new, *state_new)``. For example, with ``adam_step(p, g, m, v, t, lr, b1, b2, eps)``:
    ``rule = lambda p, g, m, v, t: adam_step(p, g, m, v, t, 0.1, 0.9, 0.999, 1e-8)``.
    ``n_state`` defaults to the number of parameters of ``rule`` minus 3.
    """
    n_state = _n_state(rule) if n_state is None else n_state
    p = np.array(surface.start if start is None else start, dtype=np.float64)
    state = [np.zeros_like(p) for _ in range(n_state)]
    points, losses = [p.copy()], [float(surface(p))]
    gap0 = losses[0] - surface.min_value
    diverged_at = None
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, steps + 1):
            out = rule(p.copy(), surface.gradient(p), *[s.copy() for s in state], t)
            if not isinstance(out, tuple) or len(out) != n_state + 1:
                raise ValueError(f"the rule must return (p_new, *state) with {n_state} state array(s), "
                                 f"got {type(out).__name__}")
            p, state = np.asarray(out[0], dtype=np.float64), [np.asarray(s, dtype=np.float64) for s in out[1:]]
            points.append(p.copy())
            losses.append(float(surface(p)))
            if _blew_up(losses[-1] - surface.min_value, gap0, blowup) or not np.all(np.isfinite(p)):
                diverged_at = t
                break
    return Path(np.array(points), np.array(losses), diverged_at, surface.min_value, "hand-written")


@dataclass
class Comparison:
    """A hand-written rule and torch.optim on the same surface, step by step."""

    hand: Path
    torch: Path
    max_abs_diff: np.ndarray  # (steps + 1,): max |p_hand - p_torch| at each step

    @property
    def worst(self) -> float:
        return float(np.max(self.max_abs_diff)) if self.max_abs_diff.size else 0.0


def compare_with_torch(rule: Callable, optimizer: str, surface: Surface | None = None, steps: int = 50,
                       lr: float = 0.01, start: Sequence[float] | None = None, n_state: int | None = None,
                       **hyper: Any) -> Comparison:
    """Run ``rule`` (see ``run_update_rule``) and ``torch.optim`` (``optimizer``, ``lr``, ``hyper``)
    side by side from the same start on ``surface`` (default: Rosenbrock); compare every step.

    Both see the true gradient of the point they are at, so a tiny difference in the rule grows
    step after step: agreement to ~1e-10 over many steps means the same update rule.
    """
    surface = surface or Rosenbrock()
    hand = run_update_rule(surface, rule, steps, start, n_state)
    ref = descent_path(surface, optimizer, lr=lr, steps=steps, start=start, **hyper)
    n = min(len(hand.points), len(ref.points))
    with np.errstate(invalid="ignore"):
        diff = np.max(np.abs(hand.points[:n] - ref.points[:n]), axis=1)
    if len(hand.points) != len(ref.points):  # one diverged earlier than the other
        diff = np.append(diff, np.inf)
    return Comparison(hand, ref, np.nan_to_num(diff, nan=np.inf))


@dataclass
class Regime:
    """What a descent path did, in one word (``kind``) and in a sentence (``words``).

    kind: "diverging", "oscillating", "converging" or "too slow".
    steps_to_tol: the step from which loss - min stays <= tol * (starting loss - min) until the
    end of the path, or None if the path does not end there.
    """

    kind: str
    words: str
    converged: bool
    steps_to_tol: int | None
    reversals: float  # fraction of consecutive steps that reverse direction (zig-zag)


def classify_path(path: Path, tol: float = 1e-3) -> Regime:
    """Detect divergence, oscillation and convergence from the path itself (any surface).

    - diverging: the loss blew up, is not finite, or ended above where it started
    - converged: loss - min fell below ``tol`` times its starting value and stayed there
    - oscillating: at least half of the consecutive steps (before converging) point backwards
      (negative dot product): the path zig-zags across the valley
    - too slow: none of these within the steps taken
    """
    gaps = path.gaps
    g0, g_end = float(gaps[0]), float(gaps[-1])
    n = path.steps
    if path.diverged or not math.isfinite(g_end) or g_end > g0:
        if path.diverged:
            words = f"the loss blew up to {path.losses[-1]:.3g} at step {path.diverged_at}"
        else:
            words = f"the loss grew from {path.losses[0]:.3g} to {path.losses[-1]:.3g} in {n} steps"
        return Regime("diverging", words, False, None, _reversals(path.points))
    above = np.flatnonzero(gaps > tol * g0)  # converged: below tol from some step to the end
    steps_to_tol = (int(above[-1]) + 1 if above.size else 0) if gaps[-1] <= tol * g0 else None
    upto = steps_to_tol if steps_to_tol is not None else n
    rev = _reversals(path.points[: upto + 1])
    if steps_to_tol is not None:
        progress = f"the loss fell {1 / tol:.0e}x in {steps_to_tol} steps".replace("e+0", "e")
    else:
        progress = f"the loss only fell from {path.losses[0]:.3g} to {path.losses[-1]:.3g} in {n} steps"
    if rev >= 0.5:
        tail = "but converges" if steps_to_tol is not None else "and has not converged"
        return Regime("oscillating", f"zig-zags across the valley {tail}: {progress}",
                      steps_to_tol is not None, steps_to_tol, rev)
    if steps_to_tol is not None:
        return Regime("converging", progress, True, steps_to_tol, rev)
    return Regime("too slow", progress, False, None, rev)


def _reversals(points: np.ndarray) -> float:
    d = np.diff(points, axis=0)
    if len(d) < 3:
        return 0.0
    dots = np.sum(d[:-1] * d[1:], axis=1)
    return float(np.mean(dots < 0))


# --------------------------------------------------------------------------------------------- #
# The (learning rate, momentum) map on a quadratic
# --------------------------------------------------------------------------------------------- #


@dataclass
class ConvergenceMap:
    """Steps needed to shrink the loss ``1/tol`` times for good, for each (momentum, lr) pair.

    steps: (n_momenta, n_lrs) float: the step from which loss - min stays below ``tol`` times its
    starting value (as ``classify_path(...).steps_to_tol``); ``max_steps`` where it is not there
    after ``max_steps``; NaN where it diverged. ``lrs`` (n_lrs,), ``momenta`` (n_momenta,).
    """

    lrs: np.ndarray
    momenta: np.ndarray
    steps: np.ndarray
    max_steps: int
    tol: float

    @property
    def diverged(self) -> np.ndarray:
        return np.isnan(self.steps)

    @property
    def converged(self) -> np.ndarray:
        return ~self.diverged & (self.steps < self.max_steps)

    def best(self) -> tuple[float, float, int]:
        """(lr, momentum, steps) of the fastest pair on the map."""
        s = np.where(self.converged, self.steps, np.inf)
        i, j = np.unravel_index(np.argmin(s), s.shape)
        return float(self.lrs[j]), float(self.momenta[i]), int(self.steps[i, j])

    def steps_at(self, lr: float, momentum: float) -> float:
        """The map's value at the grid point nearest to (lr, momentum) (lr compared in log)."""
        j = int(np.argmin(np.abs(np.log(self.lrs) - math.log(lr))))
        i = int(np.argmin(np.abs(self.momenta - momentum)))
        return float(self.steps[i, j])


def convergence_map(surface: Quadratic, lrs: Sequence[float], momenta: Sequence[float],
                    tol: float = 1e-6, max_steps: int = 300, start: Sequence[float] | None = None,
                    nesterov: bool = False) -> ConvergenceMap:
    """Run SGD with momentum (torch.optim.SGD) from ``start`` for every (lr, momentum) pair.

    All learning rates of one momentum run at once as the rows of one parameter tensor: SGD with
    learning rate lr on f is exactly SGD with learning rate 1 on lr * f (torch's velocity
    v <- momentum * v + g then scales by lr too), so each row gets lr * gradient and the optimiser
    lr = 1. One parameter group per momentum value.
    """
    lrs_np = np.asarray(lrs, dtype=np.float64)
    moms_np = np.asarray(momenta, dtype=np.float64)
    p0 = torch.tensor(surface.start if start is None else start, dtype=torch.float64)
    scale = torch.from_numpy(lrs_np)[:, None]
    params = [p0.repeat(len(lrs_np), 1) for _ in moms_np]
    groups = [{"params": [p], "momentum": float(m), "nesterov": nesterov and m > 0} for p, m in zip(params, moms_np)]
    opt = torch.optim.SGD(groups, lr=1.0, foreach=False)
    gap0 = max(float(surface(p0)) - surface.min_value, 1e-300)
    last_above = np.zeros((len(moms_np), len(lrs_np)))  # the last step with loss - min > tol * gap0
    diverged = np.zeros(last_above.shape, dtype=bool)
    gaps = np.full(last_above.shape, gap0)
    for t in range(1, max_steps + 1):
        with torch.no_grad():
            for p in params:
                p.grad = scale * surface.gradient(p)
        opt.step()
        with torch.no_grad():
            gaps = torch.stack([surface(p) for p in params]).numpy() - surface.min_value
        with np.errstate(invalid="ignore"):
            diverged |= ~np.isfinite(gaps) | (gaps > 1e6 * gap0)
            last_above[~(gaps <= tol * gap0)] = t
        if diverged.all():
            break
    with np.errstate(invalid="ignore"):
        converged = ~diverged & (gaps <= tol * gap0)
    steps = np.where(converged, last_above + 1, float(max_steps))
    steps[diverged] = np.nan
    return ConvergenceMap(lrs_np, moms_np, steps, max_steps, tol)


def heavy_ball_optimum(lambda_min: float, lambda_max: float) -> tuple[float, float]:
    """Polyak's best (lr, momentum) for a quadratic with curvatures in [lambda_min, lambda_max].

    lr* = 4 / (sqrt(L) + sqrt(mu))^2, momentum* = ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2.
    """
    sl, sm = math.sqrt(lambda_max), math.sqrt(lambda_min)
    return 4.0 / (sl + sm) ** 2, ((sl - sm) / (sl + sm)) ** 2


def momentum_stability_limit(lambda_max: float, momentum: Any) -> Any:
    """Largest stable lr of SGD with momentum (heavy ball) on a quadratic: 2 (1 + momentum) / lambda_max."""
    return 2.0 * (1.0 + np.asarray(momentum, dtype=np.float64)) / lambda_max


# --------------------------------------------------------------------------------------------- #
# Mini-batch noise
# --------------------------------------------------------------------------------------------- #


def minibatch_path(problem: LeastSquares, lr: float | Sequence[float] = 0.1, batch_size: int = 10,
                   steps: int = 60, start: Sequence[float] | None = None, seed: int = 0) -> Path:
    """SGD (torch.optim.SGD) on ``problem`` with gradients from random mini-batches.

    - lr: a constant, or one learning rate per step (a schedule: sequence of length ``steps``)
    Each epoch visits the samples in a new random order (local RNG from ``seed``);
    batch_size >= n gives full-batch gradient descent. losses are the FULL-batch losses.
    """
    schedule = np.broadcast_to(np.asarray(lr, dtype=np.float64), (steps,))
    rng = np.random.default_rng(seed)
    p = torch.tensor(problem.start if start is None else start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=float(schedule[0]) if steps else 0.0)
    points, losses = [p.detach().numpy().copy()], [float(problem(p.detach().numpy()))]
    order, pos = rng.permutation(problem.n), 0
    b = min(batch_size, problem.n)
    for t in range(steps):
        opt.param_groups[0]["lr"] = float(schedule[t])
        if pos + b > problem.n:
            order, pos = rng.permutation(problem.n), 0
        idx = order[pos:pos + b]
        pos += b
        p.grad = torch.from_numpy(problem.batch_gradient(p.detach().numpy(), idx))
        opt.step()
        points.append(p.detach().numpy().copy())
        losses.append(float(problem(points[-1])))
    return Path(np.array(points), np.array(losses), None, problem.min_value, f"batch {b}")


def gradient_noise(problem: LeastSquares, w: Sequence[float], batch_sizes: Sequence[int],
                   draws: int = 200, seed: int = 0) -> np.ndarray:
    """RMS distance between mini-batch gradients and the full gradient at w, per batch size.

    Batches are drawn without replacement; the noise shrinks roughly like 1/sqrt(batch_size).
    Returns (len(batch_sizes),).
    """
    rng = np.random.default_rng(seed)
    w = np.asarray(w, dtype=np.float64)
    full = problem.gradient(w)
    out = []
    for b in batch_sizes:
        d = [problem.batch_gradient(w, rng.choice(problem.n, size=int(b), replace=False)) - full
             for _ in range(draws)]
        out.append(float(np.sqrt(np.mean(np.sum(np.square(d), axis=1)))))
    return np.array(out)


# --------------------------------------------------------------------------------------------- #
# Learning-rate schedules (computed by torch.optim.lr_scheduler)
# --------------------------------------------------------------------------------------------- #

SCHEDULES = ("constant", "step", "exponential", "cosine", "warmup_cosine")


def schedule_curve(kind: str, base_lr: float = 0.1, steps: int = 100, *, step_size: int | None = None,
                   gamma: float | None = None, warmup: int | None = None, min_lr: float = 0.0) -> np.ndarray:
    """The learning rate used at steps 0 .. steps-1, as torch.optim.lr_scheduler computes it.

    kind:
    - "constant":      base_lr
    - "step":          StepLR: times ``gamma`` (default 0.1) every ``step_size`` steps (default steps // 3)
    - "exponential":   ExponentialLR: times ``gamma`` (default 0.97) every step
    - "cosine":        CosineAnnealingLR from base_lr down to ``min_lr`` over ``steps``
    - "warmup_cosine": linear warm-up from 0 over ``warmup`` steps (default steps // 10)
                       (LinearLR), then cosine down to ``min_lr`` (CosineAnnealingLR), chained
                       by SequentialLR
    Returns (steps,) float64.
    """
    sched = torch.optim.lr_scheduler
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    if kind == "constant":
        s = sched.LambdaLR(opt, lambda t: 1.0)
    elif kind == "step":
        s = sched.StepLR(opt, step_size=step_size or max(steps // 3, 1), gamma=0.1 if gamma is None else gamma)
    elif kind == "exponential":
        s = sched.ExponentialLR(opt, gamma=0.97 if gamma is None else gamma)
    elif kind == "cosine":
        s = sched.CosineAnnealingLR(opt, T_max=steps, eta_min=min_lr)
    elif kind == "warmup_cosine":
        w = max(steps // 10, 1) if warmup is None else int(warmup)
        if not 0 <= w < steps:
            raise ValueError(f"warmup must be in [0, steps), got {w}")
        cosine = sched.CosineAnnealingLR(opt, T_max=steps - w, eta_min=min_lr)
        if w == 0:
            s = cosine
        else:  # LinearLR needs start_factor > 0: 1e-12 is 0 for any plot or test
            warm = sched.LinearLR(opt, start_factor=1e-12, end_factor=1.0, total_iters=w)
            s = sched.SequentialLR(opt, [warm, cosine], milestones=[w])
    else:
        raise ValueError(f"unknown schedule {kind!r}; known: {SCHEDULES}")
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return np.array(lrs, dtype=np.float64)


# --------------------------------------------------------------------------------------------- #
# Plots (each returns the matplotlib Figure; pass ax= to draw into your own axes)
# --------------------------------------------------------------------------------------------- #


def plot_paths(surface: Surface, paths: Mapping[str, Path], title: str | None = None) -> Any:
    """Paths on the contour plot (left) and their loss - min per step, log scale (right)."""
    import matplotlib.pyplot as plt

    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(10, 4.2))
    draw_surface(ax, surface)
    for i, (label, path) in enumerate(paths.items()):
        color = plt.get_cmap("tab10")(i % 10)
        ax.plot(path.points[:, 0], path.points[:, 1], ".-", color=color, lw=1.2, markersize=3, label=label)
        ax_loss.semilogy(np.arange(len(path.losses)), np.maximum(path.gaps, 1e-16), color=color, label=label)
    ax.legend(fontsize="small", loc="upper right")
    ax.set_title(title or surface.name)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss - minimum")
    ax_loss.grid(alpha=0.3)
    ax_loss.set_title("loss")
    fig.tight_layout()
    return fig


def plot_convergence_map(cmap: ConvergenceMap, ax: Any = None, lambda_max: float | None = None) -> Any:
    """The map as an image: log lr on x, momentum on y, colour = steps (grey: diverged).

    With ``lambda_max``, the stability limit 2 (1 + momentum) / lambda_max is drawn dashed."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4.2))
    mesh = draw_convergence_map(ax, cmap, lambda_max)
    ax.figure.colorbar(mesh, ax=ax, label=f"steps to shrink the loss {1 / cmap.tol:.0e}x".replace("e+0", "e"))
    return ax.figure


def draw_convergence_map(ax: Any, cmap: ConvergenceMap, lambda_max: float | None = None) -> Any:
    """Draw the map into ``ax``; returns the QuadMesh (update it with ``mesh.set_array(steps.ravel())``)."""
    import matplotlib as mpl

    lr_edges = _edges(np.log10(cmap.lrs))
    mom_edges = _edges(cmap.momenta)
    colors = mpl.colormaps["magma_r"].with_extremes(bad="0.82")
    mesh = ax.pcolormesh(10 ** lr_edges, mom_edges, np.ma.masked_invalid(cmap.steps), cmap=colors,
                         norm=mpl.colors.LogNorm(vmin=min(5, cmap.max_steps), vmax=cmap.max_steps), shading="flat")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("momentum")
    if lambda_max is not None:
        m = np.linspace(cmap.momenta.min(), cmap.momenta.max(), 50)
        ax.plot(momentum_stability_limit(lambda_max, m), m, "w--", lw=1.2)
    ax.set_xlim(10 ** lr_edges[0], 10 ** lr_edges[-1])
    ax.set_ylim(mom_edges[0], mom_edges[-1])
    return mesh


def _edges(centers: np.ndarray) -> np.ndarray:
    c = np.asarray(centers, dtype=np.float64)
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


__all__ = [
    "OPTIMIZERS", "SCHEDULES", "Comparison", "ConvergenceMap", "Path", "Regime", "classify_path",
    "compare_with_torch", "convergence_map", "descent_path", "draw_convergence_map", "gradient_noise",
    "heavy_ball_optimum", "make_optimizer", "minibatch_path", "momentum_stability_limit",
    "plot_convergence_map", "plot_paths", "run_update_rule", "schedule_curve",
]
