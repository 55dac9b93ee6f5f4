"""Graded exercises of 02_backprop: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 02_backprop.ipynb).
All exercises are framework="numpy" with the default tolerances (rtol 1e-4,
atol 1e-6): every computation is a handful of float64 operations, so a correct
answer in float32 or in another order passes, and each mistake below is off by
far more. Random inputs are continuous, so no ReLU input is ever exactly 0.
"""
import numpy as np

from autograder.authoring.exercises import Exercise


def _sig(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _shape(rng):
    """Any shape ("arrays of the same shape"): rank 1..3, each axis of size 1..7."""
    return tuple(int(k) for k in rng.integers(1, 8, size=int(rng.integers(1, 4))))


# -- inputs ----------------------------------------------------------------------------------

def _graph_inputs(rng):
    shape = _shape(rng)
    return {"x": rng.normal(0.0, 1.2, size=shape), "y": rng.normal(0.0, 1.2, size=shape),
            "z": rng.normal(0.0, 1.2, size=shape)}


def _dims(rng):
    """N, D, M in 1..8, all different, so that a transposed or mis-summed result has the wrong shape
    (equal sizes are the fixed square cases' job)."""
    n, d, m = (int(v) for v in rng.choice(np.arange(1, 9), size=3, replace=False))
    return n, d, m


def _linear_forward_inputs(rng):
    n, d, m = _dims(rng)
    return {"X": rng.normal(size=(n, d)), "W": rng.normal(size=(d, m)), "b": rng.normal(size=m)}


def _linear_backward_inputs(rng):
    n, d, m = _dims(rng)
    return {"dout": rng.normal(size=(n, m)), "X": rng.normal(size=(n, d)), "W": rng.normal(size=(d, m))}


def _act_inputs(rng, scale=2.0):
    shape = _shape(rng)
    return {"dout": rng.normal(size=shape), "x": rng.normal(0.0, scale, size=shape)}


def _mse_inputs(rng):
    n = int(rng.integers(1, 9))
    k = int(rng.integers(1, 7))
    return {"pred": rng.normal(size=(n, k)), "target": rng.normal(size=(n, k))}


def _ce_inputs(rng):
    """scores: (N, C) with C in 1..8 and N in 1..10, N != C; y: (N,) in 0..C-1."""
    c = int(rng.integers(1, 9))
    n = int(rng.integers(1, 11))
    while n == c:
        n = int(rng.integers(1, 11))
    return {"scores": rng.normal(0.0, 3.0, size=(n, c)), "y": rng.integers(0, c, size=n)}


def _train_step_inputs(rng, sizes=None):
    """N, D, H in 2..9, all different; C in 2..6; lr in [0.05, 1]. ``sizes``: (N, D, H, C) instead."""
    if sizes is None:
        n, d, h = (int(v) for v in rng.choice(np.arange(2, 10), size=3, replace=False))
        c = int(rng.integers(2, 7))
    else:
        n, d, h, c = sizes
    return {"X": rng.normal(size=(n, d)), "y": rng.integers(0, c, size=n),
            "W1": rng.normal(0.0, 0.8, size=(d, h)), "b1": rng.normal(0.0, 0.5, size=h),
            "W2": rng.normal(0.0, 0.8, size=(h, c)), "b2": rng.normal(0.0, 0.5, size=c),
            "lr": float(rng.uniform(0.05, 1.0))}


# Fixed train_step cases (deterministic draws): ordinary sizes, and a single sample with D = 1
_STEP_CASES = (_train_step_inputs(np.random.default_rng(20), (5, 3, 4, 3)),
               _train_step_inputs(np.random.default_rng(21), (1, 1, 3, 2)))


# Square cases (N = D = M): there a transposed weight or a sum over the wrong axis has the right
# shape, so those mistakes are caught by their values and named.
_SQ = np.array([[1.0, -2.0, 0.5], [0.3, 1.5, -1.0], [-0.7, 0.2, 2.0]])
_SQ2 = np.array([[0.5, 1.0, -1.5], [2.0, -0.4, 0.1], [-1.2, 0.9, 0.6]])
_SQ3 = np.array([[-1.0, 0.4, 0.8], [0.6, -0.3, 1.1], [1.7, 0.5, -0.2]])


# -- known mistakes (wrong versions with the reference's signature) --------------------------

def _graph(x, y, z, direct=True, via_q=True, tanh_prime=None, dq_dy=None):
    s = np.tanh(x * y + z)
    dr = x * ((1 - s ** 2) if tanh_prime is None else tanh_prime(s))
    dx = (s if direct else 0.0) + (dr * y if via_q else 0.0)
    dy = dr * (x if dq_dy is None else dq_dy)
    return x * s, dx, dy, dr


def _lin_back(dout, X, W, dX=None, dW=None, db=None):
    return (dout @ W.T if dX is None else dX, X.T @ dout if dW is None else dW,
            dout.sum(axis=0) if db is None else db)


def _ce(scores, y, stable=True, one_hot=True, per_n=True, axis=1, loss_mean=True):
    n = scores.shape[0]
    with np.errstate(all="ignore"):
        s = scores - scores.max(axis=axis, keepdims=True) if stable else scores
        e = np.exp(s)
        p = e / e.sum(axis=axis, keepdims=True)
        losses = -np.log(p[np.arange(n), y])
    loss = losses.mean() if loss_mean else losses.sum()
    d = p.copy()
    if one_hot:
        d[np.arange(n), y] -= 1
    return float(loss), d / n if per_n else d


def _step(X, y, W1, b1, W2, b2, lr, relu_back=True, sign=-1.0, update_bias=True, new_W2_in_backprop=False):
    n = X.shape[0]
    z1 = X @ W1 + b1
    h = np.maximum(0, z1)
    scores = h @ W2 + b2
    loss, ds = _ce(scores, y)
    dW2, db2 = h.T @ ds, ds.sum(axis=0)
    W2_new = W2 + sign * lr * dW2
    dh = ds @ (W2_new if new_W2_in_backprop else W2).T
    dz1 = dh * (z1 > 0) if relu_back else dh
    dW1, db1 = X.T @ dz1, dz1.sum(axis=0)
    b_scale = 1.0 if update_bias else 0.0
    return (loss, W1 + sign * lr * dW1, b1 + b_scale * sign * lr * db1, W2_new, b2 + b_scale * sign * lr * db2)


def _step_in_place(X, y, W1, b1, W2, b2, lr):
    loss, W1n, b1n, W2n, b2n = _step(X, y, W1, b1, W2, b2, lr)
    W1[...], b1[...], W2[...], b2[...] = W1n, b1n, W2n, b2n
    return loss, W1, b1, W2, b2


def _ce_log_of_softmax(scores, y):
    n = scores.shape[0]
    with np.errstate(all="ignore"):
        s = scores - scores.max(axis=1, keepdims=True)
        p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), y]).mean()
    d = p.copy()
    d[np.arange(n), y] -= 1
    return float(loss), d / n


# x exactly 0 in some entries: the text fixes relu'(0) = 0 (as PyTorch)
_RELU_ZERO = {"dout": np.array([[1.5, -2.0, 0.5], [0.25, 3.0, -1.0]]), "x": np.array([[0.0, -1.0, 2.0], [0.0, 0.5, 0.0]])}
# an ordinary 2-d case for the element-wise backwards (generated ones may be a single value)
_ACT_2D = {"dout": np.array([[1.5, -2.0, 0.5], [0.25, 3.0, -1.0]]),
           "x": np.array([[-1.5, 0.3, 2.0], [0.8, -0.6, 1.2]])}
# one sample (N = 1): the batch axis must survive
_ONE_SAMPLE = {"X": np.array([[0.5, -1.0, 2.0]]), "W": _SQ2[:, :2].copy(), "b": np.array([0.5, -1.0])}

EXERCISES = [
    Exercise(
        "graph_forward_backward", _graph_inputs,
        fixed=({"x": np.array([1.0]), "y": np.array([-2.0]), "z": np.array([3.0])},  # the worked example
               {"x": np.array([[0.5, -1.0], [2.0, 0.0]]), "y": np.array([[1.5, 0.25], [-0.5, 1.0]]),
                "z": np.array([[-0.5, 1.0], [0.0, 2.0]])}),
        mistakes={
            "df_dx misses the direct path: x is used twice (in x*y and in x*s) and the gradients of both uses add up":
                lambda x, y, z: _graph(x, y, z, direct=False),
            "df_dx misses the path through q = x*y: x is used twice and the gradients of both uses add up":
                lambda x, y, z: _graph(x, y, z, via_q=False),
            "tanh'(r) is 1 - tanh(r)**2 (= 1 - s**2), not 1 - tanh(r)":
                lambda x, y, z: _graph(x, y, z, tanh_prime=lambda s: 1 - s),
            "a multiply node sends each input the upstream gradient times the OTHER input: dq/dy = x":
                lambda x, y, z: _graph(x, y, z, dq_dy=y),
        },
    ),
    Exercise(
        "linear_forward", _linear_forward_inputs,
        fixed=({"X": _SQ, "W": _SQ2, "b": np.array([0.5, -1.0, 2.0])}, _ONE_SAMPLE),
        mistakes={
            "the bias b is missing: out = X @ W + b": lambda X, W, b: X @ W,
            "the weight is transposed: W has shape (D, M), so out = X @ W + b": lambda X, W, b: X @ W.T + b,
        },
    ),
    Exercise(
        "linear_backward", _linear_backward_inputs,
        fixed=({"dout": _SQ3, "X": _SQ, "W": _SQ2},
               {"dout": np.array([[1.0, -0.5]]), "X": _ONE_SAMPLE["X"], "W": _ONE_SAMPLE["W"]}),
        mistakes={
            "db must have shape (M,): sum over the batch without keepdims":
                lambda dout, X, W: _lin_back(dout, X, W, db=dout.sum(axis=0, keepdims=True)),
            "dW is transposed: it has W's shape (D, M), so dW = X.T @ dout":
                lambda dout, X, W: _lin_back(dout, X, W, dW=dout.T @ X),
            "db is the SUM of dout over the batch (every sample adds its gradient), not the mean":
                lambda dout, X, W: _lin_back(dout, X, W, db=dout.mean(axis=0)),
            "dX needs the transposed weight: dX = dout @ W.T":
                lambda dout, X, W: _lin_back(dout, X, W, dX=dout @ W),
            "db is summed over the wrong axis: sum over the batch (axis 0), one entry per output":
                lambda dout, X, W: _lin_back(dout, X, W, db=dout.sum(axis=1)),
        },
    ),
    Exercise(
        "relu_backward", _act_inputs,
        fixed=(_RELU_ZERO,),
        mistakes={
            "at x = 0 the gradient is 0 (the convention, as PyTorch): the mask is x > 0, not x >= 0":
                lambda dout, x: dout * (x >= 0),
            "the upstream gradient is missing: dx = dout * relu'(x) (chain rule)":
                lambda dout, x: (x > 0).astype(float),
            "the mask must come from the forward input x (x > 0), not from dout":
                lambda dout, x: dout * (dout > 0),
        },
    ),
    Exercise(
        "sigmoid_backward", lambda rng: _act_inputs(rng, scale=3.0),
        fixed=(_ACT_2D,),
        mistakes={
            "the upstream gradient is missing: dx = dout * sigmoid'(x) (chain rule)":
                lambda dout, x: _sig(x) * (1 - _sig(x)),
            "sigmoid'(x) is s * (1 - s) with s = sigmoid(x), not s":
                lambda dout, x: dout * _sig(x),
            "sigmoid'(x) = s * (1 - s) needs s = sigmoid(x) first, not the input x itself":
                lambda dout, x: dout * x * (1 - x),
        },
    ),
    Exercise(
        "tanh_backward", _act_inputs,
        fixed=(_ACT_2D,),
        mistakes={
            "the upstream gradient is missing: dx = dout * tanh'(x) (chain rule)":
                lambda dout, x: 1 - np.tanh(x) ** 2,
            "tanh'(x) is 1 - tanh(x)**2, not 1 - tanh(x)":
                lambda dout, x: dout * (1 - np.tanh(x)),
            "tanh'(x) = 1 - t**2 needs t = tanh(x) first, not the input x itself":
                lambda dout, x: dout * (1 - x ** 2),
        },
    ),
    Exercise(
        "mse_loss", _mse_inputs,
        # N != K (dividing by N alone is then visible); a single entry (N = K = 1)
        fixed=({"pred": np.array([[0.5, -1.0], [2.0, 0.0], [1.5, 1.0]]),
                "target": np.array([[0.0, 1.0], [1.0, -0.5], [1.5, 3.0]])},
               {"pred": np.array([[2.0]]), "target": np.array([[-0.5]])}),
        mistakes={
            "the gradient of (p - t)**2 is 2 * (p - t): the factor 2 is missing":
                lambda p, t: (float(np.mean((p - t) ** 2)), (p - t) / p.size),
            "divide by the number of ENTRIES N*K (a mean over all of them), not by N":
                lambda p, t: (float(np.sum((p - t) ** 2) / len(p)), 2 * (p - t) / len(p)),
            "the gradient has the wrong sign: d/dp (p - t)**2 = +2 (p - t)":
                lambda p, t: (float(np.mean((p - t) ** 2)), -2 * (p - t) / p.size),
        },
    ),
    Exercise(
        "softmax_cross_entropy", _ce_inputs,
        fixed=({"scores": np.array([[1000.0, 0.0, -1000.0], [3.0, 1002.0, 1001.0]]), "y": np.array([0, 2])},
               {"scores": np.array([[1.0, 2.0, 0.5, -1.0], [0.0, -2.0, 3.0, 1.0], [2.5, 0.5, 0.0, 1.5]]),
                "y": np.array([1, 2, 0])},
               # a very unlikely true class: its probability underflows to 0, its log-probability is -800
               {"scores": np.array([[0.0, 800.0, 0.0], [1.0, 0.0, 2.0]]), "y": np.array([0, 2])}),
        silent=True,  # "softmax cross-entropy, stable": no overflow, no log(0)
        mistakes={
            "log(softmax) underflows: a tiny probability becomes 0 and its log -inf; take log-probabilities "
            "directly, shifted - log(sum(exp(shifted)))": _ce_log_of_softmax,
            "overflow: exp of a large score is inf (nan loss); subtract each row's max first (log-sum-exp)":
                lambda s, y: _ce(s, y, stable=False),
            "dscores is missing the 1/N: the loss is a mean over the N samples":
                lambda s, y: _ce(s, y, per_n=False),
            "dscores = (softmax - one_hot) / N: the one-hot of the true class was not subtracted":
                lambda s, y: _ce(s, y, one_hot=False),
            "softmax over the wrong axis: each ROW (one sample's scores) must sum to 1":
                lambda s, y: _ce(s, y, axis=0),
            "the loss is a sum over the batch: average it (and its gradient) over the N samples":
                lambda s, y: _ce(s, y, loss_mean=False, per_n=False),
        },
    ),
    Exercise(
        "train_step", _train_step_inputs,
        fixed=_STEP_CASES,
        pure=True,  # "new arrays; don't modify the inputs in place"
        builds_on=("linear_forward", "softmax_cross_entropy", "linear_backward", "relu_backward"),
        mistakes={
            "modified `W1`": _step_in_place,
            "the backward pass used the UPDATED W2: compute every gradient first, then update":
                lambda *a: _step(*a, new_W2_in_backprop=True),
            "the ReLU backward is missing between the layers: dz1 = relu_backward(dh, z1)":
                lambda *a: _step(*a, relu_back=False),
            "the update goes uphill: W_new = W - lr * dW":
                lambda *a: _step(*a, sign=1.0),
            "the biases are not updated: b_new = b - lr * db for b1 and b2":
                lambda *a: _step(*a, update_bias=False),
        },
    ),
]
