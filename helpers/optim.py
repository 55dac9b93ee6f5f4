"""The optimisation lab of lecture 3: loss surfaces, descent paths, maps, range tests, schedules.

    q = Quadratic(eigenvalues=(1, 10))              # f(p) = 1/2 (p - c)^T A (p - c), A known
    path = descent_path(q, "sgd", lr=0.15, steps=50) # torch.optim.SGD does the stepping
    classify_path(path).words                        # 'oscillating, converging: ...'
    fig = plot_paths(q, {"lr 0.15": path})

Everything here is a pure function of its arguments (no global RNG is touched, nothing is
drawn unless asked), so the widgets of ``helpers.widgets`` and the tests can call it alike.

The update rules of the optimisers are the *exercises* of notebook 03, so they are not written
here: the stepping engine is ``torch.optim`` (``descent_path``, ``convergence_map``,
``lr_range_test``), or an update-rule function you pass in (``run_update_rule``,
``compare_with_torch``). Learning-rate schedules come from ``torch.optim.lr_scheduler``.

Surfaces (``Quadratic``, ``Rosenbrock``, ``LeastSquares``) take numpy arrays or torch tensors:
``surface(p)`` with p of shape (..., 2) gives the loss (...), ``surface.gradient(p)`` (..., 2).
"""
from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

# --------------------------------------------------------------------------------------------- #
# Loss surfaces in two dimensions
# --------------------------------------------------------------------------------------------- #


def _stack(a: Any, b: Any) -> Any:
    """Stack two same-shaped arrays (or tensors) on a new last axis: (...), (...) -> (..., 2)."""
    if isinstance(a, torch.Tensor):
        return torch.stack([a, b], dim=-1)
    return np.stack([a, b], axis=-1)


class Surface:
    """A 2-D loss surface. Subclasses define ``value(x, y)`` and ``grad(x, y)``.

    Attributes: ``name``, ``start`` (default starting point), ``minimum`` (the minimiser),
    ``min_value`` (the loss there), ``xlim`` and ``ylim`` (the view used for plots).
    """

    name = "surface"
    start: tuple[float, float] = (0.0, 0.0)
    minimum: tuple[float, float] = (0.0, 0.0)
    min_value = 0.0
    xlim: tuple[float, float] = (-1.0, 1.0)
    ylim: tuple[float, float] = (-1.0, 1.0)

    def value(self, x: Any, y: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def grad(self, x: Any, y: Any) -> tuple[Any, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, p: Any) -> Any:
        """Loss at points p: (..., 2) numpy array or tensor -> (...)."""
        return self.value(p[..., 0], p[..., 1])

    def gradient(self, p: Any) -> Any:
        """Gradient at points p: (..., 2) -> (..., 2), same kind (numpy or torch) as p."""
        gx, gy = self.grad(p[..., 0], p[..., 1])
        return _stack(gx, gy)

    def grid(self, n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X, Y, Z): an n x n grid over the view and the loss on it, for contour plots."""
        xs = np.linspace(*self.xlim, n)
        ys = np.linspace(*self.ylim, n)
        X, Y = np.meshgrid(xs, ys)
        return X, Y, np.asarray(self.value(X, Y), dtype=np.float64)

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Quadratic(Surface):
    """f(p) = 1/2 (p - c)^T A (p - c) with A = R diag(eigenvalues) R^T, R a rotation by ``angle``.

    - eigenvalues: (lambda_1, lambda_2) > 0, the curvatures along the two principal axes
    - angle: rotation of the principal axes in degrees (0: aligned with x and y)
    - start: starting point; default: one unit along each principal axis from c, so that
      both the flat and the steep direction start with an error
    The eigenvalues are known by construction: ``lambda_max``, ``lambda_min``,
    ``condition_number`` and ``stability_limit`` = 2 / lambda_max are attributes.
    """

    def __init__(self, eigenvalues: Sequence[float] = (1.0, 10.0), angle: float = 30.0,
                 center: Sequence[float] = (0.0, 0.0), start: Sequence[float] | None = None,
                 extent: float | None = None):
        lam = np.asarray(eigenvalues, dtype=np.float64)
        if lam.shape != (2,) or np.any(lam <= 0):
            raise ValueError(f"eigenvalues must be two positive numbers, got {eigenvalues!r}")
        self.eigenvalues = lam
        self.angle = float(angle)
        t = math.radians(self.angle)
        self.rotation = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        self.A = self.rotation @ np.diag(lam) @ self.rotation.T
        self.center = tuple(float(v) for v in center)
        if start is None:  # one unit along each eigenvector (flat one first)
            order = np.argsort(lam)
            start = np.asarray(self.center) + self.rotation[:, order[0]] * 1.6 + self.rotation[:, order[1]] * 0.8
        self.start = tuple(float(v) for v in start)
        self.minimum = self.center
        r = extent if extent is not None else 1.25 * max(abs(s - c) for s, c in zip(self.start, self.center)) + 0.2
        self.xlim = (self.center[0] - r, self.center[0] + r)
        self.ylim = (self.center[1] - r, self.center[1] + r)
        self.name = f"quadratic, eigenvalues {lam[0]:g} and {lam[1]:g}"

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues.max())

    @property
    def lambda_min(self) -> float:
        return float(self.eigenvalues.min())

    @property
    def condition_number(self) -> float:
        """kappa = lambda_max / lambda_min: how elongated the valley is."""
        return self.lambda_max / self.lambda_min

    @property
    def stability_limit(self) -> float:
        """Gradient descent on this quadratic converges iff 0 < lr < 2 / lambda_max."""
        return 2.0 / self.lambda_max

    def value(self, x: Any, y: Any) -> Any:
        (a, b), (_, d) = self.A
        dx, dy = x - self.center[0], y - self.center[1]
        return 0.5 * (a * dx * dx + 2 * b * dx * dy + d * dy * dy)

    def grad(self, x: Any, y: Any) -> tuple[Any, Any]:
        (a, b), (_, d) = self.A
        dx, dy = x - self.center[0], y - self.center[1]
        return a * dx + b * dy, b * dx + d * dy


class Rosenbrock(Surface):
    """The "banana": f(x, y) = (a - x)^2 + b (y - x^2)^2, minimum 0 at (a, a^2).

    A curved, narrow valley: the gradient points across it (steep walls, curvature ~ 2b) while
    the way to the minimum runs along it (curvature ~ 2): a hard case for plain gradient descent.
    """

    def __init__(self, a: float = 1.0, b: float = 100.0, start: Sequence[float] = (-1.5, 2.0)):
        self.a, self.b = float(a), float(b)
        self.start = tuple(float(v) for v in start)
        self.minimum = (self.a, self.a ** 2)
        self.xlim = (-2.0, 2.0)
        self.ylim = (-1.0, 3.0)
        self.name = f"Rosenbrock (b = {self.b:g})"

    def value(self, x: Any, y: Any) -> Any:
        return (self.a - x) ** 2 + self.b * (y - x * x) ** 2

    def grad(self, x: Any, y: Any) -> tuple[Any, Any]:
        r = y - x * x
        return -2.0 * (self.a - x) - 4.0 * self.b * x * r, 2.0 * self.b * r


class LeastSquares(Surface):
    """Linear regression with two weights: f(w) = 1/2 mean_i (x_i . w - y_i)^2 over n samples.

    The full-batch loss is a quadratic (Hessian X^T X / n); a mini-batch of samples gives a
    noisy estimate of its gradient (``batch_gradient``). Data come from ``seed`` (local RNG).
    """

    def __init__(self, n: int = 200, noise: float = 0.5, seed: int = 0,
                 w_true: Sequence[float] = (1.0, -0.5), start: Sequence[float] = (-1.5, 1.5)):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, 2))
        self.X = np.column_stack([z[:, 0], 0.6 * z[:, 0] + 0.5 * z[:, 1]])  # correlated features
        self.y = self.X @ np.asarray(w_true, dtype=np.float64) + noise * rng.normal(size=n)
        self.n = n
        self.H = self.X.T @ self.X / n
        self.b_vec = self.X.T @ self.y / n
        self.c = float(np.mean(self.y ** 2)) / 2
        w_star = np.linalg.solve(self.H, self.b_vec)
        self.minimum = (float(w_star[0]), float(w_star[1]))
        self.min_value = float(self.value(*w_star))
        self.start = tuple(float(v) for v in start)
        r = 1.3 * float(np.max(np.abs(np.asarray(self.start) - w_star))) + 0.2
        self.xlim = (w_star[0] - r, w_star[0] + r)
        self.ylim = (w_star[1] - r, w_star[1] + r)
        self.name = f"least squares, {n} samples"

    def value(self, x: Any, y: Any) -> Any:
        (h11, h12), (_, h22) = self.H
        b1, b2 = self.b_vec
        return 0.5 * (h11 * x * x + 2 * h12 * x * y + h22 * y * y) - (b1 * x + b2 * y) + self.c

    def grad(self, x: Any, y: Any) -> tuple[Any, Any]:
        (h11, h12), (_, h22) = self.H
        b1, b2 = self.b_vec
        return h11 * x + h12 * y - b1, h12 * x + h22 * y - b2

    def batch_gradient(self, w: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Gradient (2,) of the loss on the samples ``idx`` only, at weights w (2,)."""
        Xb = self.X[idx]
        return Xb.T @ (Xb @ np.asarray(w, dtype=np.float64) - self.y[idx]) / len(idx)


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
# Real model on the digits: loss curves and the learning-rate range test
# --------------------------------------------------------------------------------------------- #


@lru_cache(maxsize=1)
def _digits_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(X_train (8000, 784), y_train, X_test (2000, 784), y_test), standardised float32."""
    from helpers.data import load_digits

    Xtr, ytr = load_digits("train", flatten=True, normalize=True)
    Xte, yte = load_digits("test", flatten=True, normalize=True)
    return torch.from_numpy(Xtr), torch.from_numpy(ytr), torch.from_numpy(Xte), torch.from_numpy(yte)


def digits_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The shipped digits as flat, standardised tensors: X_train (8000, 784), y_train (8000,),
    X_test (2000, 784), y_test (2000,). Read once, then cached (do not modify them in place)."""
    return _digits_tensors()


def small_mlp(hidden: int = 64, seed: int = 0, n_in: int = 784, n_out: int = 10) -> nn.Sequential:
    """Flatten -> Linear(n_in, hidden) -> ReLU -> Linear(hidden, n_out), initialised from ``seed``
    (without touching torch's global RNG). Takes (N, 784) or images (N, 1, 28, 28)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def _batches(n: int, batch_size: int, steps: int, seed: int) -> list[np.ndarray]:
    """``steps`` index batches, epoch after epoch in a new random order (local RNG)."""
    rng = np.random.default_rng(seed)
    out, order, pos = [], rng.permutation(n), 0
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        out.append(order[pos:pos + batch_size])
        pos += batch_size
    return out


@dataclass
class TrainCurve:
    """Per-step training losses (NaN after a divergence) and the final test accuracy."""

    lr: float
    losses: np.ndarray
    test_accuracy: float
    diverged_at: int | None = None

    def smoothed(self, beta: float = 0.9) -> np.ndarray:
        return smooth(self.losses, beta)

    def describe(self) -> str:
        """A short verdict: 'diverged at step 7', 'unstable: ...', 'stuck: ...', 'slow: ...' or 'learning: ...'."""
        if self.diverged_at is not None:
            return f"diverged: the loss became inf/NaN at step {self.diverged_at}"
        s = self.smoothed()
        first, last = float(self.losses[0]), float(s[-1])
        numbers = f"loss {first:.3g} -> {last:.3g}, test accuracy {self.test_accuracy:.0%}"
        if float(np.max(self.losses)) > 3 * first:
            return f"unstable: the loss jumped to {float(np.max(self.losses)):.3g}; {numbers}"
        if last >= 0.9 * first:
            return f"stuck: {numbers}"
        if last > 0.5 * first:
            return f"slow: {numbers}"
        return f"learning: {numbers}"


def smooth(values: Sequence[float], beta: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (as Adam corrects m): (n,) -> (n,)."""
    v = np.asarray(values, dtype=np.float64)
    out = np.empty_like(v)
    avg = 0.0
    for i, x in enumerate(v):
        avg = beta * avg + (1 - beta) * x
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def digits_loss_curve(lr: float, steps: int = 150, batch_size: int = 64, hidden: int = 64,
                      optimizer: str = "sgd", seed: int = 0, **hyper: Any) -> TrainCurve:
    """Train ``small_mlp(hidden, seed)`` on the digits for ``steps`` mini-batches; return the curve.

    The initial weights and the batch order depend only on ``seed``, so runs with different
    learning rates differ only by the learning rate. Stops at the first non-finite loss.
    """
    Xtr, ytr, Xte, yte = digits_tensors()
    model = small_mlp(hidden, seed)
    opt = make_optimizer(optimizer, model.parameters(), lr, **hyper)
    losses = np.full(steps, np.nan)
    diverged_at = None
    for t, idx in enumerate(_batches(len(Xtr), batch_size, steps, seed)):
        ib = torch.from_numpy(idx)
        loss = nn.functional.cross_entropy(model(Xtr[ib]), ytr[ib])
        if not torch.isfinite(loss):
            diverged_at = t + 1
            break
        losses[t] = loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = float((model(Xte).argmax(1) == yte).float().mean()) if diverged_at is None else float("nan")
    return TrainCurve(float(lr), losses, acc, diverged_at)


@dataclass
class LRRangeTest:
    """Result of ``lr_range_test``: ``lrs`` and ``losses`` (raw and ``smoothed``) per step.

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


def lr_range_test(model: nn.Module, X: torch.Tensor, y: torch.Tensor, lr_min: float = 1e-4,
                  lr_max: float = 10.0, steps: int = 100, batch_size: int = 64,
                  make_optimizer: Callable[[Any, float], torch.optim.Optimizer] | None = None,
                  loss_fn: Callable | None = None, beta: float = 0.9, stop_factor: float = 4.0,
                  seed: int = 0, progress: bool = True) -> LRRangeTest:
    """Leslie Smith's learning-rate range test: train a COPY of ``model`` while the learning rate
    grows exponentially from ``lr_min`` to ``lr_max`` over ``steps`` mini-batches (ExponentialLR),
    recording the loss. The loss first barely moves (lr too small), then falls fast, then blows
    up (too large); stops early once the smoothed loss exceeds ``stop_factor`` times its best.

    - X, y: training inputs (N, ...) and targets (N,); batches drawn with a local RNG (``seed``)
    - make_optimizer(params, lr): default SGD with momentum 0.9
    - progress: show a tqdm progress bar
    ``model`` itself is not changed.
    """
    from tqdm.auto import tqdm

    net = copy.deepcopy(model)
    net.train()
    loss_fn = loss_fn or nn.functional.cross_entropy
    opt = (make_optimizer or (lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9)))(net.parameters(), lr_min)
    gamma = (lr_max / lr_min) ** (1.0 / max(steps - 1, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    lrs, losses, smoothed = [], [], []
    avg, best, stopped = 0.0, math.inf, False
    for t, idx in enumerate(tqdm(_batches(len(X), batch_size, steps, seed), desc="LR range test",
                                 disable=not progress, leave=False)):
        ib = torch.from_numpy(idx)
        loss = loss_fn(net(X[ib]), y[ib])
        value = loss.item()
        if not math.isfinite(value):
            stopped = True
            break
        lrs.append(opt.param_groups[0]["lr"])
        losses.append(value)
        avg = beta * avg + (1 - beta) * value
        smoothed.append(avg / (1 - beta ** (t + 1)))
        best = min(best, smoothed[-1])
        if t > 5 and smoothed[-1] > stop_factor * best:
            stopped = True
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    lrs_a, sm = np.array(lrs), np.array(smoothed)
    i_best = int(np.argmin(sm))
    slope = np.gradient(sm, np.log(lrs_a)) if len(sm) > 2 else np.zeros_like(sm)
    i_steep = int(np.argmin(slope[: i_best + 1]))
    return LRRangeTest(lrs_a, np.array(losses), sm, float(lrs_a[i_best]), float(lrs_a[i_best] / 3),
                       float(lrs_a[i_steep]), stopped)


# --------------------------------------------------------------------------------------------- #
# Plots (each returns the matplotlib Figure; pass ax= to draw into your own axes)
# --------------------------------------------------------------------------------------------- #


def contour_levels(surface: Surface, Z: np.ndarray, n: int = 14) -> np.ndarray:
    """Levels spaced geometrically above the minimum, so that the valley floor shows."""
    top = float(np.nanmax(Z)) - surface.min_value
    return surface.min_value + np.geomspace(max(top, 1e-12) * 1e-4, top, n)


def draw_surface(ax: Any, surface: Surface, n: int = 120, levels: int = 14) -> Any:
    """Contour lines of ``surface`` over its view, with the minimum as a star; returns the ContourSet."""
    X, Y, Z = surface.grid(n)
    cs = ax.contour(X, Y, Z, levels=contour_levels(surface, Z, levels), cmap="viridis", linewidths=0.8)
    ax.plot(*surface.minimum, marker="*", color="k", markersize=10, linestyle="none")
    ax.set_xlim(*surface.xlim)
    ax.set_ylim(*surface.ylim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("$p_1$")
    ax.set_ylabel("$p_2$")
    return cs


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


def plot_lr_range(result: LRRangeTest, ax: Any = None) -> Any:
    """Loss against learning rate (log x): raw (faint) and smoothed, with the suggestions marked."""
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


__all__ = [
    "OPTIMIZERS", "SCHEDULES", "Comparison", "ConvergenceMap", "LRRangeTest", "LeastSquares", "Path",
    "Quadratic", "Regime", "Rosenbrock", "Surface", "TrainCurve", "classify_path", "compare_with_torch",
    "contour_levels", "convergence_map", "descent_path", "digits_loss_curve", "digits_tensors",
    "draw_convergence_map", "draw_surface", "gradient_noise", "heavy_ball_optimum", "lr_range_test",
    "make_optimizer", "minibatch_path", "momentum_stability_limit", "plot_convergence_map",
    "plot_lr_range", "plot_paths", "run_update_rule", "schedule_curve", "small_mlp", "smooth",
]
