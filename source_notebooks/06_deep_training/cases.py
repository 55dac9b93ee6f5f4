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

from autograder.exercises import Exercise


# -- inputs -------------------------------------------------------------------------------

def _fans(rng):
    k = int(rng.integers(2, 6))
    fan_in = rng.integers(3, 600, size=k)
    fan_out = fan_in + rng.integers(5, 300, size=k) * rng.choice([-1, 1], size=k)
    return {"fan_in": fan_in, "fan_out": np.maximum(fan_out, 1)}


def _bn_x(rng, N, D):
    scales = rng.choice([0.05, 0.3, 1.0, 4.0], size=D)
    return rng.normal(size=(N, D)) * scales + rng.normal(0.0, 3.0, size=D)


def _bn_train_inputs(rng):
    N, D = int(rng.integers(3, 9)), int(rng.integers(2, 6))
    return {"x": _bn_x(rng, N, D), "gamma": rng.normal(1.0, 0.5, size=D), "beta": rng.normal(size=D),
            "running_mean": rng.normal(size=D), "running_var": rng.uniform(0.5, 2.0, size=D),
            "momentum": float(rng.choice([0.1, 0.2, 0.3])), "eps": float(rng.choice([1e-5, 1e-2, 0.1]))}


def _bn_eval_inputs(rng):
    case = _bn_train_inputs(rng)
    del case["momentum"]
    return case


def _bn_backward_inputs(rng):
    N, D = int(rng.integers(3, 9)), int(rng.integers(2, 6))
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
    shape = (int(rng.integers(2, 6)), int(rng.integers(2, 7)))
    return {first: rng.normal(size=shape), "p": float(rng.choice([0.1, 0.25, 0.4, 0.6, 0.8])),
            "u": rng.random(shape), "train": bool(rng.random() < 0.6)}


_U = np.array([[0.05, 0.5, 0.95, 0.3], [0.7, 0.2, 0.25, 0.9], [0.1, 0.6, 0.35, 0.8]])
_X = np.array([[1.0, -2.0, 3.0, 0.5], [2.0, 1.0, -1.0, 4.0], [-3.0, 0.25, 2.0, -1.0]])
_DROPOUT_FIXED = ({"x": _X, "p": 0.3, "u": _U, "train": True}, {"x": _X, "p": 0.3, "u": _U, "train": False})
_DROPOUT_BWD_FIXED = tuple({"dout": c["x"], **{k: v for k, v in c.items() if k != "x"}} for c in _DROPOUT_FIXED)


def _residual_inputs(rng):
    N, D, H = (int(v) for v in rng.choice(np.arange(2, 9), size=3, replace=False))
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
