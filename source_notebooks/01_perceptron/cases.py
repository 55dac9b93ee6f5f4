"""Graded exercises of 01_perceptron: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 01_perceptron.ipynb).
"""
import numpy as np

from autograder.authoring.exercises import Exercise


def _matrix(rng, scale=3.0):
    """(N, C) with N, C in 1..8."""
    return rng.normal(0.0, scale, size=(int(rng.integers(1, 9)), int(rng.integers(1, 9))))


def _any_shape(rng, scale=3.0):
    """An array of rank 1..3, each axis of size 1..6 ("z: any shape")."""
    shape = tuple(int(k) for k in rng.integers(1, 7, size=int(rng.integers(1, 4))))
    return rng.normal(0.0, scale, size=shape)


def _sig(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _labels_pm(rng, n):
    return rng.integers(0, 2, size=n)


def _linear_problem(rng, n=None, d=None):
    """X: (N, D), y: (N,) in {0, 1}; N in 1..16, D in 1..6 unless given."""
    n = n or int(rng.integers(1, 17))
    d = d or int(rng.integers(1, 7))
    X = rng.normal(size=(n, d))
    w_true = rng.normal(size=d)
    y = (X @ w_true + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def _logistic_inputs(rng):
    X, y = _linear_problem(rng)
    return {"X": X, "y": y, "w": rng.normal(size=X.shape[1]), "b": float(rng.normal())}


def _update_inputs(rng):
    """w, x: (D,) with D in 1..8; y in {0, 1}; lr in [0.05, 1.5]."""
    d = int(rng.integers(1, 9))
    return {"w": rng.normal(size=d), "b": float(rng.normal()), "x": rng.normal(size=d),
            "y": int(rng.integers(0, 2)), "lr": float(rng.uniform(0.05, 1.5))}


def _train_inputs(rng):
    """X: (N, D) with N in 4..16 and D in 1..5, epochs in 1..4, lr in [0.05, 1.5]."""
    X, y = _linear_problem(rng, n=int(rng.integers(4, 17)), d=int(rng.integers(1, 6)))
    return {"X": X, "y": y, "lr": float(rng.uniform(0.05, 1.5)), "epochs": int(rng.integers(1, 5))}


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


def _sigmoid_naive(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def _softmax_unstable(Z):
    with np.errstate(all="ignore"):
        e = np.exp(Z)
        return e / e.sum(axis=1, keepdims=True)


def _softmax_global(Z):
    e = np.exp(Z - Z.max())
    return e / e.sum()


def _update_in_place(w, b, x, y, lr):
    err = y - int(x @ w + b >= 0)
    w += lr * err * x
    return w, b + lr * err


def _update_strict(w, b, x, y, lr):
    err = y - int(x @ w + b > 0)
    return w + lr * err * x, b + lr * err


def _train_shuffled(X, y, lr, epochs):
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        for i in range(len(y) - 1, -1, -1):
            err = y[i] - int(X[i] @ w + b >= 0)
            w, b = w + lr * err * X[i], b + lr * err
    return w, b


def _train_no_reset_per_epoch(X, y, lr, epochs):
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        err = y - (X @ w + b >= 0).astype(int)
        w, b = w + lr * X.T @ err, b + lr * err.sum()
    return w, b


def _loss_no_minus(X, y, w, b):
    p = _sig(X @ w + b)
    n = len(y)
    return np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), X.T @ (p - y) / n, np.sum(p - y) / n


def _loss_labels_swapped(X, y, w, b):
    p = _sig(X @ w + b)
    n = len(y)
    return -np.mean((1 - y) * np.log(p) + y * np.log(1 - p)), X.T @ (p - y) / n, np.sum(p - y) / n


def _train_last_epoch_only(X, y, lr, epochs):
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        w, b = np.zeros(X.shape[1]), 0.0
        for i in range(len(y)):
            err = y[i] - int(X[i] @ w + b >= 0)
            w, b = w + lr * err * X[i], b + lr * err
    return w, b


def _loss_db_sum(X, y, w, b):
    p = _sig(X @ w + b)
    n = len(y)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return loss, X.T @ (p - y) / n, np.sum(p - y)


def _predict_inputs(rng):
    d = int(rng.integers(1, 6))
    return {"X": rng.normal(size=(int(rng.integers(1, 9)), d)), "w": rng.normal(size=d),
            "b": float(rng.normal(0.0, 2.0))}


# Points ON the boundary w.x + b = 0 (exact in binary floating point): the text says >= 0 gives 1.
_PREDICT_TIE = {"X": np.array([[1.0, 2.0], [0.0, 0.0], [-1.0, 1.0], [3.0, 0.5]]), "w": np.array([1.0, -0.5]),
                "b": 0.0}
_PREDICT_BIAS = {"X": np.array([[0.5, 0.5], [-0.25, 1.0], [2.0, -1.0]]), "w": np.array([1.0, 1.0]), "b": -1.5}


EXERCISES = [
    Exercise(
        "sigmoid", lambda rng: {"z": _any_shape(rng, 5.0)},
        fixed=({"z": np.array([-1000.0, -20.0, -1.0, 0.0, 1.0, 20.0, 1000.0])},
               # "any shape": a single value, and three axes
               {"z": np.array([0.5])},
               {"z": np.array([[[-2.0, 0.0], [800.0, -3.5]], [[1.0, -900.0], [0.25, 4.0]]])}),
        silent=True,  # the text: "correct **and silent** for any float"
        mistakes={"sigmoid(-z) computed: the sign inside exp is wrong (use exp(-z))": lambda z: _sig(-z),
                  "that is tanh(z), not the logistic sigmoid": np.tanh,
                  # right values (exp overflows to inf, 1/inf = 0) but a RuntimeWarning: the contract
                  "raised RuntimeWarning": _sigmoid_naive},
    ),
    Exercise(
        "softmax", lambda rng: {"Z": _matrix(rng, 4.0)},
        fixed=({"Z": np.array([[1000.0, 1000.0, 0.0], [-5.0, 0.0, 5.0]])},
               # degenerate sizes: a single sample (N = 1); a single class (C = 1: every row is [1])
               {"Z": np.array([[2.0, -1.0, 0.5, 3.0]])},
               {"Z": np.array([[3.0], [-700.0], [0.0]])}),
        silent=True,  # "a stable softmax": no overflow warning
        mistakes={"softmax over the wrong axis: each ROW (one sample's scores) must sum to 1": _softmax_axis0,
                  "the exponentials are not divided by their sum": _softmax_unnormalised,
                  "exp overflows (nan): subtract each row's max before exp, it cancels in the ratio": _softmax_unstable,
                  "normalised over the whole matrix: each ROW must sum to 1 (sum over axis=1)": _softmax_global},
    ),
    Exercise(
        "activation_derivatives", lambda rng: {"z": _any_shape(rng, 3.0)},
        builds_on=("sigmoid",),
        # z = 0 exactly: the text fixes f'(0) = 0 for ReLU (and alpha for leaky ReLU, as torch does);
        # "any shape": one value (z = 0 alone), and a 3-d array with a zero in it
        fixed=({"z": np.array([-3.0, -0.5, 0.0, 0.25, 2.0])},
               {"z": np.array([0.0])},
               {"z": np.array([[[0.0, -1.5], [2.5, -0.25]], [[1.0, 0.0], [-4.0, 0.75]]])}),
        mistakes={
            "at z = 0 the convention is relu'(0) = 0 and leaky'(0) = alpha: test z > 0, not z >= 0":
                lambda z: _derivs(z, drelu=(z >= 0).astype(float), dleaky=np.where(z >= 0, 1.0, 0.01)),
            "the derivatives are not in the order asked: (sigmoid, tanh, relu, leaky relu, elu, swish)":
                lambda z: tuple(_derivs(z)[i] for i in (1, 0, 2, 3, 4, 5)),
            "d_sigmoid is sigmoid(z)(1 - sigmoid(z)), not sigmoid(z)": lambda z: _derivs(z, dsig=_sig(z)),
            "d_tanh is 1 - tanh(z)**2, not 1 - tanh(z)": lambda z: _derivs(z, dtanh=1 - np.tanh(z)),
            "d_leaky_relu is alpha = 0.01 (not 0) for z < 0": lambda z: _derivs(z, dleaky=(z > 0).astype(float)),
            "d_elu for z < 0 is alpha * exp(z) (the ELU value plus alpha)": lambda z: _derivs(z, delu=np.where(z > 0, 1.0, np.exp(z) - 1)),
            "d_swish is missing a term: product rule on z * sigmoid(z)": lambda z: _derivs(z, dswish=_sig(z)),
        },
    ),
    Exercise(
        "perceptron_predict",
        _predict_inputs,  # D and N vary (a single sample, a single feature included)
        fixed=(_PREDICT_TIE, _PREDICT_BIAS),
        mistakes={"labels must be 0 and 1 (not -1 and +1)":
                  lambda X, w, b: np.where(X @ w + b >= 0, 1, -1),
                  "the bias b is missing from w.x + b": lambda X, w, b: (X @ w >= 0).astype(int),
                  "a point ON the boundary (w.x + b = 0) is class 1: the step is >= 0, not > 0":
                  lambda X, w, b: (X @ w + b > 0).astype(int)},
    ),
    Exercise(
        "perceptron_update", _update_inputs,
        fixed=({"w": np.array([1.0, -1.0]), "b": 0.0, "x": np.array([-1.0, 2.0]), "y": 1, "lr": 0.5},
               {"w": np.array([1.0, -1.0]), "b": 0.0, "x": np.array([2.0, 1.0]), "y": 1, "lr": 0.5},
               # on the boundary (w.x + b = 0): y_hat = 1, so a label 0 moves the weights
               {"w": np.array([1.0, -1.0]), "b": 0.5, "x": np.array([0.5, 1.0]), "y": 0, "lr": 1.0},
               # D = 1, a wrong prediction (0 for a label 1)
               {"w": np.array([-2.0]), "b": 0.5, "x": np.array([1.5]), "y": 1, "lr": 0.25}),
        visible=3,
        pure=True,  # "Don't modify `w` in place: return a new array."
        mistakes={
                  "modified `w` in place": _update_in_place,
                  "y_hat is 1 when w.x + b >= 0 (a point on the boundary is class 1), not > 0": _update_strict,"the update has the wrong sign: w += lr * (y - y_hat) * x": _update_sign_flipped,
                  "the bias is not updated (b += lr * (y - y_hat))": _update_no_bias,
                  "weights change even when the prediction is right: use the error y - y_hat": _update_always},
    ),
    Exercise(
        "logistic_loss_and_grad", _logistic_inputs,
        builds_on=("sigmoid",),
        # degenerate sizes: a single sample (N = 1) with a single feature (D = 1)
        fixed=({"X": np.array([[1.5]]), "y": np.array([1]), "w": np.array([-0.5]), "b": 0.25},
               {"X": np.array([[0.5, -1.0, 2.0]]), "y": np.array([0]), "w": np.array([1.0, 0.5, -0.25]),
                "b": -0.5}),
        mistakes={"a missing 1/N: the loss and gradients are means over the N samples": _loss_sum,
                  "the gradient has the wrong sign: dL/dz = p - y": _loss_grad_sign,
                  "db is missing the 1/N: it is the MEAN of p - y, like the loss and dw": _loss_db_sum,
                  "the loss is missing its minus sign: L = -mean(y log p + (1 - y) log(1 - p))": _loss_no_minus,
                  "y and 1 - y are swapped in the loss: y multiplies log p, 1 - y multiplies log(1 - p)":
                      _loss_labels_swapped},
    ),
    Exercise(
        "train_perceptron", _train_inputs,
        builds_on=("perceptron_update",),
        # degenerate sizes: one sample, one epoch; one feature, a sample misclassified twice over
        fixed=({"X": np.array([[1.0, -2.0]]), "y": np.array([1]), "lr": 0.5, "epochs": 1},
               {"X": np.array([[1.0], [-2.0], [0.5], [3.0]]), "y": np.array([0, 1, 1, 0]), "lr": 1.0, "epochs": 3}),
        mistakes={"the weights never change: loop over the epochs and the samples": _train_zero_epochs,
                  "the samples are not visited in order (first to last): the result depends on the order": _train_shuffled,
                  "one batch update per epoch: Rosenblatt's rule updates after EACH sample, in order": _train_no_reset_per_epoch,
                  "w and b restart from zero every epoch: initialise them once, before the epochs loop":
                      _train_last_epoch_only},
    ),
]
