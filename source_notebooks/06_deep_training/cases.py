"""Graded exercises of 06_deep_training: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 06_deep_training.ipynb).

Inputs are chosen so that the plausible mistakes differ from the answer:
fan_in != fan_out; small batches (N = 3..8, where 1/N and 1/(N-1) differ by
12-33 %); momentum != 0.5; features with small variances and eps up to 0.1 (so
that eps outside the square root shows); gamma != 1 and beta != 0; p != 0.5 and
both train and eval mode for dropout; N, D, H all different and non-zero
biases for the residual block.
"""
import numpy as np
import torch

from autograder.authoring.exercises import Exercise


# -- inputs -------------------------------------------------------------------------------

def _fans(rng):
    k = int(rng.integers(1, 7))  # layers: one to six
    fan_in = rng.integers(1, 600, size=k)
    fan_out = fan_in + rng.integers(5, 300, size=k) * rng.choice([-1, 1], size=k)
    return {"fan_in": fan_in, "fan_out": np.maximum(fan_out, 1)}


def _bn_x(rng, N, D):
    scales = rng.choice([0.05, 0.3, 1.0, 4.0], size=D)
    return rng.normal(size=(N, D)) * scales + rng.normal(0.0, 3.0, size=D)


def _bn_train_inputs(rng, n_min=2):
    """N in n_min..12 (training mode needs N >= 2: the unbiased running variance divides by N - 1),
    D in 1..8, momentum in [0.05, 0.45]."""
    N, D = int(rng.integers(n_min, 13)), int(rng.integers(1, 9))
    return {"x": _bn_x(rng, N, D), "gamma": rng.normal(1.0, 0.5, size=D), "beta": rng.normal(size=D),
            "running_mean": rng.normal(size=D), "running_var": rng.uniform(0.5, 2.0, size=D),
            "momentum": float(rng.uniform(0.05, 0.45)), "eps": float(rng.choice([1e-5, 1e-2, 0.1]))}


def _bn_eval_inputs(rng):
    case = _bn_train_inputs(rng, n_min=1)  # eval mode: a single sample is fine
    del case["momentum"]
    return case


def _bn_backward_inputs(rng):
    N, D = int(rng.integers(2, 13)), int(rng.integers(1, 9))
    return {"dout": rng.normal(size=(N, D)), "x": _bn_x(rng, N, D), "gamma": rng.normal(1.0, 0.5, size=D),
            "eps": float(rng.choice([1e-5, 1e-2, 0.1]))}


_BN_FIXED_X = np.array([[1.0, 10.0, 0.10], [2.0, 14.0, 0.12], [4.0, 9.0, 0.05], [5.0, 11.0, 0.09]])
_BN_TRAIN_FIXED = (
    {"x": _BN_FIXED_X, "gamma": np.array([1.0, 2.0, 0.5]), "beta": np.array([0.0, -1.0, 3.0]),
     "running_mean": np.zeros(3), "running_var": np.ones(3), "momentum": 0.1, "eps": 1e-3},
)
_BN_EVAL_FIXED = (
    {"x": _BN_FIXED_X, "gamma": np.array([1.0, 2.0, 0.5]), "beta": np.array([0.0, -1.0, 3.0]),
     "running_mean": np.array([3.0, 11.0, 0.1]), "running_var": np.array([4.0, 2.0, 0.01]), "eps": 1e-3},
)
_BN_BACKWARD_FIXED = (
    {"dout": np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -0.5], [-2.0, 0.5, 1.0], [0.5, 0.0, 0.0]]),
     "x": _BN_FIXED_X, "gamma": np.array([1.0, 2.0, 0.5]), "eps": 1e-3},
)


def _dropout_inputs(rng, first="x"):
    """x: any shape (rank 1..3, axes of size 1..6), p in [0.05, 0.85] (not 0.5)."""
    shape = tuple(int(k) for k in rng.integers(1, 7, size=int(rng.integers(1, 4))))
    return {first: rng.normal(size=shape), "p": float(rng.choice([0.1, 0.25, 0.4, 0.6, 0.8, 0.85, 0.05])),
            "u": rng.random(shape), "train": bool(rng.random() < 0.6)}


_U = np.array([[0.05, 0.5, 0.95, 0.3], [0.7, 0.2, 0.25, 0.9], [0.1, 0.6, 0.35, 0.8]])
_X = np.array([[1.0, -2.0, 3.0, 0.5], [2.0, 1.0, -1.0, 4.0], [-3.0, 0.25, 2.0, -1.0]])
_DROPOUT_FIXED = ({"x": _X, "p": 0.3, "u": _U, "train": True}, {"x": _X, "p": 0.3, "u": _U, "train": False},
                  # p = 0: nothing is dropped, nothing rescaled; a 1-d x with a u equal to p = 0.25 (kept)
                  {"x": _X, "p": 0.0, "u": _U, "train": True},
                  {"x": np.array([1.5, -2.0, 0.5]), "p": 0.25, "u": np.array([0.25, 0.1, 0.75]), "train": True})
_DROPOUT_BWD_FIXED = tuple({"dout": c["x"], **{k: v for k, v in c.items() if k != "x"}} for c in _DROPOUT_FIXED)


def _residual_inputs(rng):
    """N, D, H in 1..9, all different."""
    N, D, H = (int(v) for v in rng.choice(np.arange(1, 10), size=3, replace=False))
    return {"x": rng.normal(size=(N, D)), "W1": rng.normal(size=(H, D)) / np.sqrt(D), "b1": rng.normal(size=H),
            "W2": rng.normal(size=(D, H)) / np.sqrt(H), "b2": rng.normal(size=D)}


# -- known mistakes -----------------------------------------------------------------------

def _scales(fan_in, fan_out, xavier_var=None, he_fan=None, he_factor=2.0, root=np.sqrt, bound=np.sqrt(3.0)):
    fi, fo = np.asarray(fan_in, float), np.asarray(fan_out, float)
    xv = 2.0 / (fi + fo) if xavier_var is None else xavier_var(fi, fo)
    hv = he_factor / (fi if he_fan is None else he_fan(fi, fo))
    return root(xv), bound * root(xv), root(hv), bound * root(hv)


def _bn_train(x, gamma, beta, rm, rv, m, eps, norm_ddof=0, run_ddof=1, keras=False, eps_out=False):
    N = x.shape[0]
    mu = x.mean(axis=0)
    var = x.var(axis=0, ddof=norm_ddof)
    denom = np.sqrt(var) + eps if eps_out else np.sqrt(var + eps)
    out = gamma * (x - mu) / denom + beta
    run_var = x.var(axis=0, ddof=run_ddof)
    if keras:
        return out, m * rm + (1 - m) * mu, m * rv + (1 - m) * run_var
    return out, (1 - m) * rm + m * mu, (1 - m) * rv + m * run_var


def _bn_eval_batch_stats(x, gamma, beta, rm, rv, eps):
    return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta


def _bn_backward(dout, x, gamma, eps, mode="right"):
    N = x.shape[0]
    mu = x.mean(axis=0)
    var = x.var(axis=0, ddof=1 if mode == "unbiased" else 0)
    s = np.sqrt(var + eps)
    x_hat = (x - mu) / s
    dbeta = dout.sum(axis=0)
    dgamma = (dout * (x if mode == "dgamma_x" else x_hat)).sum(axis=0)
    g = dout * gamma
    if mode == "constant_stats":
        dx = g / s
    elif mode == "mean_only":
        dx = (g - g.mean(axis=0)) / s
    else:
        dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / s
    return dx, dgamma, dbeta


def _drop(x, p, u, train, scale="inverted", keep_low=False, eval_mode="identity"):
    if not train:
        if eval_mode == "mask":
            return x * (u >= p) / (1 - p)
        return x * (1 - p) if eval_mode == "scale" else x
    mask = (u < p) if keep_low else (u >= p)
    if scale == "none":
        return x * mask
    if scale == "times":
        return x * mask * (1 - p)
    return x * mask / (1 - p)


def _res(x, W1, b1, W2, b2, mode="right"):
    h = torch.relu(x @ W1.T + b1)
    f = h @ W2.T + b2
    if mode == "no_skip":
        return torch.relu(f)
    if mode == "relu_then_add":
        return torch.relu(f) + x
    if mode == "no_final_relu":
        return x + f
    return torch.relu(x + f)


DROP_EVAL = ("at test time (train=False) inverted dropout does nothing: return x unchanged")

def _bn_train_in_place(x, gamma, beta, rm, rv, m, eps):
    out, new_rm, new_rv = _bn_train(x, gamma, beta, rm, rv, m, eps)
    rm[...], rv[...] = new_rm, new_rv
    return out, rm, rv


def _drop_strict(x, p, u, train):
    return x * (u > p) / (1 - p) if train else x


EXERCISES = [
    Exercise(
        "init_scales", _fans,
        fixed=({"fan_in": np.array([784, 256, 100]), "fan_out": np.array([256, 256, 10])},),
        mistakes={
            "those are variances: return standard deviations (the square roots)":
                lambda fi, fo: _scales(fi, fo, root=lambda v: v),
            "He initialisation uses fan_in only (the forward pass): Var(W) = 2 / fan_in":
                lambda fi, fo: _scales(fi, fo, he_fan=lambda a, b: b),
            "He initialisation has a factor 2 (ReLU halves the second moment): Var(W) = 2 / fan_in":
                lambda fi, fo: _scales(fi, fo, he_factor=1.0),
            "Xavier averages fan_in and fan_out: Var(W) = 2 / (fan_in + fan_out)":
                lambda fi, fo: _scales(fi, fo, xavier_var=lambda a, b: 1.0 / a),
            "the uniform bound is sqrt(3) times the standard deviation (U(-a, a) has variance a^2 / 3)":
                lambda fi, fo: _scales(fi, fo, bound=1.0),
        },
    ),
    Exercise(
        "batchnorm_forward_train", _bn_train_inputs, fixed=_BN_TRAIN_FIXED,
        pure=True,  # "Don't modify the inputs in place."
        forbidden=("torch.nn.functional.batch_norm", "torch.nn.BatchNorm1d"),
        mistakes={
            "modified `running_mean`": _bn_train_in_place,
            "the batch was normalised with the unbiased variance (divisor N - 1): batch norm uses the "
            "biased batch variance (divisor N), x.var(axis=0)":
                lambda *a: _bn_train(*a, norm_ddof=1),
            "running_var was updated with the biased variance: PyTorch stores the unbiased estimate "
            "N / (N - 1) * var (x.var(axis=0, ddof=1))":
                lambda *a: _bn_train(*a, run_ddof=0),
            "the momentum weights the old value: new = (1 - momentum) * running + momentum * batch statistic":
                lambda *a: _bn_train(*a, keras=True),
            "eps is added outside the square root: divide by sqrt(var + eps)":
                lambda *a: _bn_train(*a, eps_out=True),
        },
    ),
    Exercise(
        "batchnorm_forward_eval", _bn_eval_inputs, fixed=_BN_EVAL_FIXED,
        mistakes={
            "the batch's own statistics were used in eval mode: normalise with running_mean and running_var":
                _bn_eval_batch_stats,
            "divided by the variance: divide by the standard deviation sqrt(running_var + eps)":
                lambda x, g, b, rm, rv, eps: g * (x - rm) / (rv + eps) + b,
            "gamma and beta are not applied: out = gamma * x_hat + beta":
                lambda x, g, b, rm, rv, eps: (x - rm) / np.sqrt(rv + eps),
        },
    ),
    Exercise(
        "batchnorm_backward", _bn_backward_inputs, fixed=_BN_BACKWARD_FIXED,
        mistakes={
            "dx treats the batch mean and variance as constants: they depend on every sample, so dx "
            "needs the paths through mu and sigma^2 too":
                lambda *a: _bn_backward(*a, mode="constant_stats"),
            "dx misses the path through the variance (the term with x_hat * mean(dx_hat * x_hat))":
                lambda *a: _bn_backward(*a, mode="mean_only"),
            "dgamma is the sum of dout * x_hat (the normalised input), not dout * x":
                lambda *a: _bn_backward(*a, mode="dgamma_x"),
            "the unbiased variance (N - 1) was used: the forward normalises with the biased one (divisor N)":
                lambda *a: _bn_backward(*a, mode="unbiased"),
        },
    ),
    Exercise(
        "dropout_forward", _dropout_inputs, fixed=_DROPOUT_FIXED,
        mistakes={
            "a unit with u exactly equal to p is kept: the mask is u >= p, not u > p": _drop_strict,
            "dropout not rescaled: inverted dropout divides the kept units by (1 - p) so that the mean is unchanged":
                lambda x, p, u, t: _drop(x, p, u, t, scale="none"),
            "the kept units were multiplied by (1 - p): inverted dropout DIVIDES them by (1 - p)":
                lambda x, p, u, t: _drop(x, p, u, t, scale="times"),
            "p is the probability of DROPPING a unit: keep the units where u >= p":
                lambda x, p, u, t: _drop(x, p, u, t, keep_low=True),
            DROP_EVAL + " (the mask must not be applied)":
                lambda x, p, u, t: _drop(x, p, u, t, eval_mode="mask"),
            DROP_EVAL + " (scaling by 1 - p at test time belongs to the old, non-inverted dropout)":
                lambda x, p, u, t: _drop(x, p, u, t, eval_mode="scale"),
        },
    ),
    Exercise(
        "dropout_backward", lambda rng: _dropout_inputs(rng, first="dout"), fixed=_DROPOUT_BWD_FIXED,
        mistakes={
            "the gradient is not rescaled: it goes through the same mask AND the same 1 / (1 - p) as the forward":
                lambda d, p, u, t: _drop(d, p, u, t, scale="none"),
            "p is the probability of DROPPING a unit: the gradient flows where u >= p":
                lambda d, p, u, t: _drop(d, p, u, t, keep_low=True),
            "at test time (train=False) dropout is the identity, so its gradient is dout unchanged":
                lambda d, p, u, t: _drop(d, p, u, t, eval_mode="mask"),
        },
    ),
    Exercise(
        "residual_block_forward", _residual_inputs, framework="torch",
        # fixed: ordinary sizes (N, D, H = 3, 2, 4), and one sample with D = 1
        fixed=({"x": np.array([[1.0, -2.0], [0.5, 0.25], [-1.5, 1.0]]),
                "W1": np.array([[0.5, -1.0], [1.0, 0.25], [-0.5, 0.5], [0.75, 1.0]]),
                "b1": np.array([0.1, -0.2, 0.3, 0.0]),
                "W2": np.array([[1.0, -0.5, 0.25, 0.5], [-1.0, 0.5, 1.0, -0.25]]), "b2": np.array([-0.5, 0.25])},
               {"x": np.array([[-0.5]]), "W1": np.array([[1.0], [-2.0]]), "b1": np.array([0.5, 0.25]),
                "W2": np.array([[1.5, -0.5]]), "b2": np.array([0.75])}),
        forbidden=("torch.nn.functional.linear", "torch.nn.Linear"),  # "Tensor operations only"
        mistakes={
            "the skip connection is missing: add x to the branch's output before the final ReLU":
                lambda *a: _res(*a, mode="no_skip"),
            "the final ReLU was applied before adding x: the block is relu(x + F(x)), not relu(F(x)) + x":
                lambda *a: _res(*a, mode="relu_then_add"),
            "the final ReLU is missing: the block is relu(x + F(x))":
                lambda *a: _res(*a, mode="no_final_relu"),
        },
    ),
]


# -- section 8: evaluation (issue 19) ------------------------------------------------------
#
# Early stopping: losses and min_delta are multiples of 1/32, so that every comparison
# `loss < best - min_delta` is exact in float64 (ties and the min_delta boundary are decided
# by the rule, never by rounding). The fixed cases sit at the convention points: a tie with
# the best loss, `patience` epochs exactly, one fewer, and an improvement smaller than min_delta.
# Confusion matrix: n_classes is often larger than any label present (a class never occurring
# or never predicted) and pairs repeat (N > K). Precision/recall: a never-predicted class (a
# zero column: precision 0/0, defined as 0) and an absent class (a zero row: recall 0/0 = 0).

_STEP = 1 / 32


def _es_inputs(rng):
    T = int(rng.integers(1, 16))
    steps = rng.choice([-4, -2, -1, -1, 0, 0, 1, 2], size=T)
    steps[0] = 0
    losses = (64 + np.cumsum(steps)) * _STEP                       # in [0.125, 2.5], exact multiples of 1/32
    return {"val_losses": losses, "patience": int(rng.integers(1, 5)),
            "min_delta": float(rng.choice([0.0, 0.0, _STEP, 2 * _STEP]))}


_ES_FIXED = (
    # a tie with the best (epoch 2 equals epoch 1): the checkpoint stays at epoch 1; 2 epochs since -> stop
    {"val_losses": np.array([1.0, 0.75, 0.75, 0.875]), "patience": 2, "min_delta": 0.0},
    # one epoch short of the patience: do not stop yet
    {"val_losses": np.array([1.0, 0.5, 0.75, 0.875]), "patience": 3, "min_delta": 0.0},
    # exactly `patience` epochs without improving on the best (the last one beats the previous epoch only)
    {"val_losses": np.array([1.0, 0.5, 0.75, 0.875, 0.625]), "patience": 3, "min_delta": 0.0},
    # improvements smaller than min_delta do not count: the first epoch stays the best
    {"val_losses": np.array([1.0, 0.9375, 0.9375, 0.9375]), "patience": 3, "min_delta": 0.125},
    # a single epoch: it is the best, nothing to stop yet
    {"val_losses": np.array([0.5]), "patience": 1, "min_delta": 0.0},
)


def _es(val_losses, patience, min_delta, improve="strict", count="right", versus="best", use_delta=True):
    best = 0
    delta = min_delta if use_delta else 0.0
    for t in range(1, len(val_losses)):
        ref = val_losses[best] if versus == "best" else val_losses[t - 1]
        better = val_losses[t] <= ref - delta if improve == "tie" else val_losses[t] < ref - delta
        if better:
            best = t
    waited = len(val_losses) - 1 - best
    if count == "late":
        return best, bool(waited > patience)
    if count == "early":
        return best, bool(waited + 1 >= patience)
    return best, bool(waited >= patience)


def _cm_inputs(rng):
    K = int(rng.integers(2, 7))
    N = int(rng.integers(2 * K, 6 * K))
    top = K if rng.random() < 0.5 else K - 1                        # half the cases: the last class never occurs
    y_true = rng.integers(0, top, size=N)
    y_pred = np.where(rng.random(N) < 0.6, y_true, rng.integers(0, top, size=N))
    return {"y_true": y_true, "y_pred": y_pred, "n_classes": K}


_CM_FIXED = (
    # class 3 never occurs and is never predicted; pairs repeat; the matrix is not symmetric
    {"y_true": np.array([0, 1, 2, 2, 1, 0, 2, 2]), "y_pred": np.array([0, 2, 2, 2, 1, 0, 1, 2]), "n_classes": 4},
    # class 1 is never predicted
    {"y_true": np.array([0, 1, 1, 2, 2, 2]), "y_pred": np.array([0, 0, 0, 2, 2, 2]), "n_classes": 3},
)


def _cm(y_true, y_pred, n_classes, mode="right"):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    K = int(max(y_true.max(), y_pred.max())) + 1 if mode == "k_from_data" else n_classes
    C = np.zeros((K, K), dtype=np.int64)
    if mode == "fancy":
        C[y_true, y_pred] += 1
        return C
    np.add.at(C, (y_true, y_pred), 1)
    if mode == "transposed":
        return C.T
    if mode == "fractions":
        return C / np.maximum(C.sum(axis=1, keepdims=True), 1)
    return C


def _pr_inputs(rng):
    K = int(rng.integers(2, 7))
    C = rng.integers(0, 9, size=(K, K))
    if rng.random() < 0.6:
        C[:, int(rng.integers(K))] = 0                             # a class never predicted
    if rng.random() < 0.3:
        C[int(rng.integers(K)), :] = 0                             # a class absent from the data
    return {"C": C}


_PR_FIXED = (
    # class 1 never predicted (precision 0/0 -> 0), class 3 absent and never predicted (both 0/0 -> 0)
    {"C": np.array([[3, 0, 1, 0], [2, 0, 1, 0], [0, 0, 4, 0], [0, 0, 0, 0]])},
    # no empty row or column, not symmetric
    {"C": np.array([[5, 1, 0], [2, 3, 1], [0, 4, 6]])},
)


def _pr(C, zero="zero", swap=False):
    C = np.asarray(C, dtype=np.float64)
    d, predicted, actual = np.diag(C), C.sum(axis=0), C.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p, r = d / predicted, d / actual
    fill = {"zero": 0.0, "nan": np.nan, "one": 1.0}[zero]
    p, r = np.where(predicted > 0, p, fill), np.where(actual > 0, r, 0.0 if zero == "one" else fill)
    return (r, p) if swap else (p, r)


EXERCISES += [
    Exercise(
        "early_stopping", _es_inputs, fixed=_ES_FIXED, visible=3, hidden=8,
        mistakes={
            "a loss that only equals the best (or improves on it by exactly min_delta) is not an improvement: "
            "the checkpoint stays at the EARLIER epoch (compare with <, not <=)":
                lambda v, p, d: _es(v, p, d, improve="tie"),
            "stopped one epoch late: stop as soon as `patience` epochs in a row have not improved on the best "
            "(epochs since the best >= patience, not > patience)":
                lambda v, p, d: _es(v, p, d, count="late"),
            "stopped one epoch early: the epoch of the best loss itself does not count towards the patience":
                lambda v, p, d: _es(v, p, d, count="early"),
            "an improvement must beat the BEST loss so far (minus min_delta), not the previous epoch's loss":
                lambda v, p, d: _es(v, p, d, versus="previous"),
            "min_delta is ignored: an epoch improves only if its loss is below the best by MORE than min_delta":
                lambda v, p, d: _es(v, p, d, use_delta=False),
        },
    ),
    Exercise(
        "confusion_matrix", _cm_inputs, fixed=_CM_FIXED,
        mistakes={
            "the matrix is transposed: rows are the TRUE classes, columns the predicted ones (C[y_true, y_pred])":
                lambda t, p, k: _cm(t, p, k, mode="transposed"),
            "the size was taken from the labels present: the matrix is n_classes x n_classes even when a class "
            "never occurs or is never predicted":
                lambda t, p, k: _cm(t, p, k, mode="k_from_data"),
            "`C[y_true, y_pred] += 1` counts a repeated (true, predicted) pair only once (fancy-index assignment "
            "does not accumulate): use np.add.at(C, (y_true, y_pred), 1) or np.bincount":
                lambda t, p, k: _cm(t, p, k, mode="fancy"),
            "those are fractions of each row: return the counts":
                lambda t, p, k: _cm(t, p, k, mode="fractions"),
        },
    ),
    Exercise(
        "precision_recall", _pr_inputs, fixed=_PR_FIXED,
        mistakes={
            "precision and recall are swapped: precision divides by the COLUMN sums (all samples predicted as the "
            "class), recall by the ROW sums (all samples of the class)":
                lambda C: _pr(C, swap=True),
            "0/0 gave NaN: a class never predicted (or absent) gets 0 by this notebook's convention "
            "(np.divide(..., out=np.zeros(K), where=denominator > 0))":
                lambda C: _pr(C, zero="nan"),
            "a class that is never predicted got precision 1: by this notebook's convention 0/0 counts as 0":
                lambda C: _pr(C, zero="one"),
        },
    ),
]
