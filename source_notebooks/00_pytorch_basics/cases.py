"""Graded exercises of 00_pytorch_basics: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 00_pytorch_basics.ipynb).
Every exercise is framework="torch": arrays arrive as float64 / int64 tensors.
Default tolerances (rtol 1e-4, atol 1e-6): a float32 answer passes.
"""
import numpy as np
import torch

from autograder.authoring.exercises import Exercise


# -- inputs ----------------------------------------------------------------------------------

def _features(rng, n=None, d=None):
    """(N, D) features whose columns have very different means and scales: D in 1..8, N in 2..16.

    N >= 2: a single sample has std 0 (the standardisation is undefined there)."""
    d = d or int(rng.integers(1, 9))
    n = n or int(rng.integers(2, 17))
    loc = rng.uniform(-5.0, 5.0, size=d)
    scale = rng.uniform(0.5, 4.0, size=d)
    return rng.normal(loc, scale, size=(n, d))


def _points_inputs(rng):
    """A: (N, D), B: (M, D) with N, M in 1..8 and D in 1..6."""
    d = int(rng.integers(1, 7))
    n = int(rng.integers(1, 9))
    m = int(rng.integers(1, 9))
    return {"A": rng.normal(0.0, 2.0, size=(n, d)), "B": rng.normal(0.5, 2.0, size=(m, d))}


def _scores_inputs(rng):
    """scores: (N, C) with C in 1..8, N in 1..12; labels: (N,) int64 in 0..C-1."""
    c = int(rng.integers(1, 9))
    n = int(rng.integers(1, 13))
    return {"scores": rng.normal(size=(n, c)), "labels": rng.integers(0, c, size=n)}


def _regression(rng, n=None, d=None):
    """X: (N, D), y: (N,), w: (D,), b: (1,) with N in 1..16 and D in 1..6."""
    n = n or int(rng.integers(1, 17))
    d = d or int(rng.integers(1, 7))
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + rng.normal() + 0.3 * rng.normal(size=n)
    return {"X": X, "y": y, "w": rng.normal(size=d), "b": rng.normal(size=1)}


def _gd_inputs(rng):
    case = _regression(rng)
    case["lr"] = float(rng.uniform(0.01, 0.2))
    case["steps"] = int(rng.integers(2, 9))
    return case


# -- known mistakes (wrong versions with the reference's signature) --------------------------

def _std_rows(X):
    return (X - X.mean(dim=1, keepdim=True)) / X.std(dim=1, correction=0, keepdim=True)


def _std_rows_no_keepdim(X):
    # X.mean(dim=1) is (N,); against (N, D) it broadcasts along the columns (only runs if N == D)
    return (X - X.mean(dim=1)) / X.std(dim=1, correction=0)


def _std_unbiased(X):
    return (X - X.mean(dim=0)) / X.std(dim=0)


def _std_no_centering(X):
    return X / X.std(dim=0, correction=0)


def _std_global(X):
    return (X - X.mean()) / X.std(correction=0)


def _std_variance(X):
    return (X - X.mean(dim=0)) / X.var(dim=0, correction=0)


def _dist_sqrt(A, B):
    return ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1).sqrt()


def _dist_transposed(A, B):
    return ((B[:, None, :] - A[None, :, :]) ** 2).sum(-1)


def _dist_plus_cross_term(A, B):
    return (A ** 2).sum(1)[:, None] + 2 * A @ B.T + (B ** 2).sum(1)[None, :]


def _dist_abs(A, B):
    return (A[:, None, :] - B[None, :, :]).abs().sum(-1)


def _dist_no_square(A, B):
    return (A[:, None, :] - B[None, :, :]).sum(-1)


def _pick_all_columns(scores, labels):
    return scores[:, labels]


def _pick_no_squeeze(scores, labels):
    return scores.gather(1, labels[:, None])


def _pick_row_max(scores, labels):
    return scores.max(dim=1).values


def _gather_dim0(scores, labels):
    return scores.gather(0, labels[:, None]).squeeze(1)


def _mse_grad(X, y, w, b, reduce="mean", bias=True, backward_calls=1, scale=1.0):
    w = w.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    for _ in range(backward_calls):
        sq = (X @ w + (b if bias else 0.0) - y) ** 2
        loss = scale * (sq.sum() if reduce == "sum" else sq.mean())
        loss.backward()
    db = b.grad if b.grad is not None else torch.zeros_like(b)
    return loss.detach(), w.grad, db


def _gd(X, y, w, b, lr, steps, zero_grad=True, sign=-1.0, max_steps=None, reduce="mean", update_b=True):
    w = w.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    for _ in range(steps if max_steps is None else min(steps, max_steps)):
        sq = (X @ w + b - y) ** 2
        (sq.sum() if reduce == "sum" else sq.mean()).backward()
        with torch.no_grad():
            w += sign * lr * w.grad
            if update_b:
                b += sign * lr * b.grad
        if zero_grad:
            w.grad.zero_()
            b.grad.zero_()
    return w.detach(), b.detach()


EXERCISES = [
    Exercise(
        "standardize", lambda rng: {"X": _features(rng)},
        # a square case: there the dim=1-without-keepdim mistake runs (and is wrong) instead of crashing
        fixed=({"X": np.array([[1.0, 10.0, -3.0, 0.5], [2.0, 30.0, -1.0, 0.7],
                               [4.0, 20.0, -2.0, 0.2], [5.0, 40.0, -6.0, 0.6]])},
               # degenerate sizes: a single feature (D = 1), two samples (N = 2, the least with std > 0)
               {"X": np.array([[3.0], [-1.0], [7.5], [0.0], [2.0]])},
               {"X": np.array([[1.0, -4.0, 10.0], [3.0, 6.0, 10.5]])}),
        framework="torch",
        mistakes={
            "statistics over the wrong axis: use one mean and one std per COLUMN (dim=0), not per row": _std_rows,
            "X.mean(dim=1) has shape (N,) and broadcasts along the columns: use dim=0 (per column)": _std_rows_no_keepdim,
            "torch's std divides by N-1 by default; use the population std: X.std(dim=0, correction=0)": _std_unbiased,
            "the column means are not subtracted: (X - mean) / std": _std_no_centering,
            "one mean and std for the whole tensor: each column needs its own (dim=0)": _std_global,
            "divided by the variance: divide by the standard deviation (its square root)": _std_variance,
        },
    ),
    Exercise(
        "pairwise_sq_distances", _points_inputs,
        # N == M: the transposed matrix has the right shape (and wrong values)
        fixed=({"A": np.array([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]]),
                "B": np.array([[1.0, 0.0], [-2.0, 2.0], [0.5, 0.5]])},
               # degenerate sizes: one point each in one dimension; one point against several
               {"A": np.array([[2.0]]), "B": np.array([[-1.5]])},
               {"A": np.array([[1.0, -1.0, 0.5]]), "B": np.array([[0.0, 2.0, 1.0], [3.0, -1.0, -2.0]])}),
        framework="torch",
        mistakes={
            "these are distances, not SQUARED distances: drop the square root": _dist_sqrt,
            "the (M, N) transpose: row i must hold the distances from A[i] to every row of B": _dist_transposed,
            "|a - b|^2 = |a|^2 - 2 a.b + |b|^2: the cross term is subtracted, not added": _dist_plus_cross_term,
            "summed absolute differences (the L1 distance): square each difference, then sum": _dist_abs,
            "the differences are summed without being squared: sum (a - b)**2 over the last axis": _dist_no_square,
        },
    ),
    Exercise(
        "pick_class_scores", _scores_inputs,
        # N > C (every label is a valid row index: the gather-along-dim-0 mistake runs, and is wrong);
        # degenerate sizes: one sample, one class
        fixed=({"scores": np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 3.0, 1.0],
                                    [0.25, 0.75, -1.25], [4.0, -3.0, 0.0]]),
                "labels": np.array([2, 0, 1, 1, 0])},
               {"scores": np.array([[0.3, -0.7, 1.9, 0.1]]), "labels": np.array([3])},
               {"scores": np.array([[1.5], [-2.0], [0.5]]), "labels": np.array([0, 0, 0])}),
        framework="torch",
        mistakes={
            "returned each row's largest score, not the score of its label": _pick_row_max,
            "gather along dim 0 picks rows: use scores.gather(1, labels[:, None]) (one column per row)": _gather_dim0,
            "scores[:, labels] is (N, N), every label's column for every row: index the rows with "
            "torch.arange(N) at the same time": _pick_all_columns,
            "returned an (N, 1) column: squeeze the gathered scores to (N,) (.squeeze(1))": _pick_no_squeeze,
        },
    ),
    Exercise(
        "linear_mse_grad", _regression,
        # degenerate sizes: one sample in one dimension; one sample, several features
        fixed=({"X": np.array([[2.0]]), "y": np.array([1.0]), "w": np.array([0.5]), "b": np.array([-0.25])},
               {"X": np.array([[1.0, -2.0, 0.5]]), "y": np.array([3.0]), "w": np.array([0.2, 0.1, -1.0]),
                "b": np.array([0.5])}),
        framework="torch",
        pure=True,  # "don't change the caller's tensors"
        mistakes={
            "the loss is summed, not averaged: the MSE is a mean over the N samples (.mean())":
                lambda X, y, w, b: _mse_grad(X, y, w, b, reduce="sum"),
            "the bias b is missing from the prediction X @ w + b":
                lambda X, y, w, b: _mse_grad(X, y, w, b, bias=False),
            "the gradients are doubled: backward() was called twice and .grad accumulates":
                lambda X, y, w, b: _mse_grad(X, y, w, b, backward_calls=2),
            "the loss has an extra 1/2: the MSE here is mean((X @ w + b - y)**2), without a 1/2":
                lambda X, y, w, b: _mse_grad(X, y, w, b, scale=0.5),
        },
    ),
    Exercise(
        "gradient_descent", _gd_inputs,
        # degenerate sizes: one step; one sample in one dimension
        fixed=({"X": np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.5]]), "y": np.array([1.0, -2.0, 0.5]),
                "w": np.array([0.1, -0.2]), "b": np.array([0.3]), "lr": 0.1, "steps": 1},
               {"X": np.array([[1.5]]), "y": np.array([-1.0]), "w": np.array([0.5]), "b": np.array([0.2]),
                "lr": 0.05, "steps": 3}),
        framework="torch",
        pure=True,  # "starting from copies of w and b"
        mistakes={
            "the gradients are never reset: .grad accumulates over the steps (w.grad.zero_() after each update)":
                lambda X, y, w, b, lr, steps: _gd(X, y, w, b, lr, steps, zero_grad=False),
            "the update goes uphill: w -= lr * w.grad (minus, not plus)":
                lambda X, y, w, b, lr, steps: _gd(X, y, w, b, lr, steps, sign=1.0),
            "only one step was taken: repeat the update `steps` times":
                lambda X, y, w, b, lr, steps: _gd(X, y, w, b, lr, steps, max_steps=1),
            "b is never updated: step the bias too (b -= lr * b.grad)":
                lambda X, y, w, b, lr, steps: _gd(X, y, w, b, lr, steps, update_b=False),
            "the loss is summed, not averaged: descend on the MSE, a mean over the N samples":
                lambda X, y, w, b, lr, steps: _gd(X, y, w, b, lr, steps, reduce="sum"),
        },
    ),
]
