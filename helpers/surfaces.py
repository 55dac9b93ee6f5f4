"""Loss surfaces in two dimensions, and how to draw them (the landscapes of lecture 3).

    q = surfaces.Quadratic(eigenvalues=(1, 10))   # f(p) = 1/2 (p - c)^T A (p - c), A known
    q.stability_limit                             # 2 / lambda_max
    surfaces.draw_surface(ax, q)                  # contour lines, the minimum as a star

Surfaces (``Quadratic``, ``Rosenbrock``, ``LeastSquares``) take numpy arrays or torch tensors:
``surface(p)`` with p of shape (..., 2) gives the loss (...), ``surface.gradient(p)`` (..., 2).
Each knows its ``start``, ``minimum``, ``min_value`` and the view (``xlim``, ``ylim``) used for
plots. Everything here is a pure function of its arguments (``LeastSquares`` draws its data from
its own ``seed``; no global RNG is touched). How to walk on them is ``helpers.descent``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


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
# Drawing
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


__all__ = ["LeastSquares", "Quadratic", "Rosenbrock", "Surface", "contour_levels", "draw_surface"]
