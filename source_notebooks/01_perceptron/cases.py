"""Graded exercises of 01_perceptron: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 01_perceptron.ipynb).
"""
import numpy as np

from autograder.exercises import Exercise


def _matrix(rng, scale=3.0):
    return rng.normal(0.0, scale, size=(int(rng.integers(2, 7)), int(rng.integers(2, 6))))


def _sig(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _labels_pm(rng, n):
    return rng.integers(0, 2, size=n)


def _linear_problem(rng, n=None, d=None):
    n = n or int(rng.integers(5, 12))
    d = d or int(rng.integers(2, 5))
    X = rng.normal(size=(n, d))
    w_true = rng.normal(size=d)
    y = (X @ w_true + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def _logistic_inputs(rng):
    X, y = _linear_problem(rng)
    return {"X": X, "y": y, "w": rng.normal(size=X.shape[1]), "b": float(rng.normal())}


def _update_inputs(rng):
    d = int(rng.integers(2, 6))
    return {"w": rng.normal(size=d), "b": float(rng.normal()), "x": rng.normal(size=d),
            "y": int(rng.integers(0, 2)), "lr": float(rng.choice([0.1, 0.5, 1.0]))}


def _train_inputs(rng):
    X, y = _linear_problem(rng, n=int(rng.integers(8, 16)), d=2)
    return {"X": X, "y": y, "lr": float(rng.choice([0.1, 1.0])), "epochs": int(rng.integers(2, 5))}


# -- known mistakes (wrong versions with the reference's signature) -------------------------

def _softmax_axis0(Z):
    e = np.exp(Z - Z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _softmax_unnormalised(Z):
    return np.exp(Z - Z.max(axis=1, keepdims=True))


def _derivs(z, dsig=None, dtanh=None, drelu=None, dleaky=None, delu=None, dswish=None):
    s = _sig(z)
    out = [s * (1 - s), 1 - np.tanh(z) ** 2, (z > 0).astype(float), np.where(z > 0, 1.0, 0.01),
           np.where(z > 0, 1.0, np.exp(z)), s + z * s * (1 - s)]
    for i, v in enumerate((dsig, dtanh, drelu, dleaky, delu, dswish)):
        if v is not None:
            out[i] = v
    return tuple(out)


def _update_sign_flipped(w, b, x, y, lr):
    err = y - int(x @ w + b >= 0)
    return w - lr * err * x, b - lr * err


def _update_no_bias(w, b, x, y, lr):
    err = y - int(x @ w + b >= 0)
    return w + lr * err * x, b


def _update_always(w, b, x, y, lr):
    t = 2 * y - 1
    return w + lr * t * x, b + lr * t


def _loss_sum(X, y, w, b):
    p = _sig(X @ w + b)
    loss = -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
    return loss, X.T @ (p - y), np.sum(p - y)


def _loss_grad_sign(X, y, w, b):
    p = _sig(X @ w + b)
    n = len(y)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return loss, X.T @ (y - p) / n, np.sum(y - p) / n


def _train_zero_epochs(X, y, lr, epochs):
    return np.zeros(X.shape[1]), 0.0


EXERCISES = [
    Exercise(
        "sigmoid", lambda rng: {"z": _matrix(rng, 5.0)},
        fixed=({"z": np.array([-1000.0, -20.0, -1.0, 0.0, 1.0, 20.0, 1000.0])},),
        mistakes={"sigmoid(-z) computed: the sign inside exp is wrong (use exp(-z))": lambda z: _sig(-z),
                  "that is tanh(z), not the logistic sigmoid": np.tanh},
    ),
    Exercise(
        "softmax", lambda rng: {"Z": _matrix(rng, 4.0)},
        fixed=({"Z": np.array([[1000.0, 1000.0, 0.0], [-5.0, 0.0, 5.0]])},),
        mistakes={"softmax over the wrong axis: each ROW (one sample's scores) must sum to 1": _softmax_axis0,
                  "the exponentials are not divided by their sum": _softmax_unnormalised},
    ),
    Exercise(
        "activation_derivatives", lambda rng: {"z": _matrix(rng, 3.0)},
        fixed=({"z": np.array([-3.0, -0.5, 0.25, 2.0])},),
        mistakes={
            "d_sigmoid is sigmoid(z)(1 - sigmoid(z)), not sigmoid(z)": lambda z: _derivs(z, dsig=_sig(z)),
            "d_tanh is 1 - tanh(z)**2, not 1 - tanh(z)": lambda z: _derivs(z, dtanh=1 - np.tanh(z)),
            "d_leaky_relu is alpha = 0.01 (not 0) for z < 0": lambda z: _derivs(z, dleaky=(z > 0).astype(float)),
            "d_elu for z < 0 is alpha * exp(z) (the ELU value plus alpha)": lambda z: _derivs(z, delu=np.where(z > 0, 1.0, np.exp(z) - 1)),
            "d_swish is missing a term: product rule on z * sigmoid(z)": lambda z: _derivs(z, dswish=_sig(z)),
        },
    ),
    Exercise(
        "perceptron_predict",
        lambda rng: {"X": rng.normal(size=(int(rng.integers(3, 9)), 3)), "w": rng.normal(size=3),
                     "b": float(rng.normal())},
        mistakes={"labels must be 0 and 1 (not -1 and +1)":
                  lambda X, w, b: np.where(X @ w + b >= 0, 1, -1),
                  "the bias b is missing from w.x + b": lambda X, w, b: (X @ w >= 0).astype(int)},
    ),
    Exercise(
        "perceptron_update", _update_inputs,
        fixed=({"w": np.array([1.0, -1.0]), "b": 0.0, "x": np.array([-1.0, 2.0]), "y": 1, "lr": 0.5},
               {"w": np.array([1.0, -1.0]), "b": 0.0, "x": np.array([2.0, 1.0]), "y": 1, "lr": 0.5}),
        visible=3,
        mistakes={"the update has the wrong sign: w += lr * (y - y_hat) * x": _update_sign_flipped,
                  "the bias is not updated (b += lr * (y - y_hat))": _update_no_bias,
                  "weights change even when the prediction is right: use the error y - y_hat": _update_always},
    ),
    Exercise(
        "logistic_loss_and_grad", _logistic_inputs,
        mistakes={"a missing 1/N: the loss and gradients are means over the N samples": _loss_sum,
                  "the gradient has the wrong sign: dL/dz = p - y": _loss_grad_sign},
    ),
    Exercise(
        "train_perceptron", _train_inputs,
        mistakes={"the weights never change: loop over the epochs and the samples": _train_zero_epochs},
    ),
]
