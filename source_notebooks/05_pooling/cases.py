"""Graded exercises of 05_pooling: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 05_pooling.ipynb).

Random inputs are continuous (no ties), except the fixed max-pooling case whose
integer values create ties on purpose: the documented convention is that the
first maximum (row-major) of a window receives the whole gradient. Strides
smaller than the window (overlapping windows) appear in the fixed cases and in
most random ones, so that "=" instead of "+=" in a backward pass shows.
"""
import numpy as np

from autograder.authoring.exercises import Exercise


def _windows(x, k, s):
    """(N, C, H_out, W_out, k, k) copy of every window."""
    N, C, H, W = x.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    out = np.empty((N, C, Ho, Wo, k, k))
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, i * s:i * s + k, j * s:j * s + k]
    return out


def _scatter(x, k, s, grads, overwrite=False):
    """Add (or, wrongly, assign) per-window gradients grads (N, C, Ho, Wo, k, k) back onto x's shape."""
    dx = np.zeros(x.shape)
    Ho, Wo = grads.shape[2:4]
    for i in range(Ho):
        for j in range(Wo):
            if overwrite:
                dx[:, :, i * s:i * s + k, j * s:j * s + k] = grads[:, :, i, j]
            else:
                dx[:, :, i * s:i * s + k, j * s:j * s + k] += grads[:, :, i, j]
    return dx


def _first_max_mask(win):
    N, C, Ho, Wo, k, _ = win.shape
    flat = win.reshape(N, C, Ho, Wo, k * k)
    mask = np.zeros_like(flat)
    np.put_along_axis(mask, flat.argmax(axis=-1)[..., None], 1.0, axis=-1)
    return mask.reshape(win.shape)


# -- inputs -------------------------------------------------------------------------------

def _pool_inputs(rng):
    """k in 1..4, stride in 1..k+1 (overlapping, touching and gapped windows), N and C in 1..3, and
    H, W from k (a single window) to 10."""
    k = int(rng.integers(1, 5))
    s = int(rng.integers(1, k + 2))
    N, C = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    H, W = int(rng.integers(k, 11)), int(rng.integers(k, 11))
    return {"x": rng.normal(size=(N, C, H, W)), "k": k, "stride": s}


def _with_dout(case, rng):
    x, k, s = case["x"], case["k"], case["stride"]
    Ho, Wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    return {"dout": rng.normal(size=(x.shape[0], x.shape[1], Ho, Wo)), **case}


def _backward_inputs(rng):
    return _with_dout(_pool_inputs(rng), rng)


_X_FIXED = np.linspace(-2.0, 3.0, 2 * 2 * 5 * 6).reshape(2, 2, 5, 6) ** 2 - 1.5   # no ties, not monotone
# degenerate sizes: one window covering the whole (non-square) map (k = H); k = 1 with stride 1
_X_ONE = np.array([[[[0.5, -1.0, 2.5], [1.5, 0.25, -2.0], [-0.5, 3.0, 1.0]]],
                   [[[2.0, -0.5, 1.0], [0.75, -1.5, 0.5], [1.25, 0.0, -3.0]]]])
_FWD_FIXED = ({"x": _X_FIXED, "k": 3, "stride": 2}, {"x": _X_FIXED, "k": 2, "stride": 2},
              {"x": _X_ONE, "k": 3, "stride": 1}, {"x": _X_ONE[:1], "k": 1, "stride": 1})
_BWD_FIXED = (
    {"dout": np.linspace(-1.0, 2.0, 2 * 2 * 2 * 2).reshape(2, 2, 2, 2), "x": _X_FIXED, "k": 3, "stride": 2},
    {"dout": np.linspace(-1.0, 2.0, 2 * 2 * 4 * 5).reshape(2, 2, 4, 5), "x": _X_FIXED, "k": 2, "stride": 1},
    {"dout": np.array([[[[1.5]]], [[[-0.5]]]]), "x": _X_ONE, "k": 3, "stride": 1},
)
# Ties on purpose (documented convention: the first maximum in row-major order gets the gradient).
_X_TIES = np.array([[[[1.0, 1, 0, 2, 2],
                      [1, 0, 0, 2, 2],
                      [0, 3, 3, 0, 1],
                      [0, 3, 3, 1, 1]]]])
_MAX_BWD_FIXED = _BWD_FIXED + (
    {"dout": np.array([[[[1.0, -2.0], [0.5, 3.0]]]]), "x": _X_TIES, "k": 2, "stride": 2},
)


def _l2_inputs(rng):
    case = _pool_inputs(rng)
    case["x"] = case["x"] + 0.5 * np.sign(case["x"])          # no window close to all-zero
    return case


def _l2_backward_inputs(rng):
    return _with_dout(_l2_inputs(rng), rng)


def _rf_inputs(rng):
    """L in 1..8 layers, kernels in 1..7, strides in 1..4."""
    L = int(rng.integers(1, 9))
    return {"kernels": rng.integers(1, 8, size=L), "strides": rng.integers(1, 5, size=L)}


# -- known mistakes -----------------------------------------------------------------------

def _pool_window_short(x, k, s, reduce):
    """Windows of k - 1 cells (an off-by-one slice end), output positions as the reference."""
    N, C, H, W = x.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    out = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = reduce(x[:, :, i * s:i * s + max(k - 1, 1), j * s:j * s + max(k - 1, 1)], axis=(2, 3))
    return out


def _pool_no_last(x, k, s, reduce):
    """The + 1 of the output size missing: (H - k) // s positions."""
    full = _windows(x, k, s)
    return reduce(full[:, :, :-1, :-1], axis=(-2, -1))


def _pool_no_stride(x, k, s, reduce):
    N, C, H, W = x.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    out = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = reduce(x[:, :, i:i + k, j:j + k], axis=(2, 3))
    return out


def _max_bwd(dout, x, k, s, how="first", overwrite=False):
    win = _windows(x, k, s)
    if how == "first":
        mask = _first_max_mask(win)
    elif how == "all_ties":
        mask = (win == win.max(axis=(-2, -1), keepdims=True)).astype(float)
    elif how == "last":
        mask = _first_max_mask(win[..., ::-1, ::-1])[..., ::-1, ::-1]
    else:  # "spread"
        mask = np.full(win.shape, 1.0 / (k * k))
    return _scatter(x, k, s, mask * dout[..., None, None], overwrite)


def _max_bwd_no_dout(dout, x, k, s):
    return _scatter(x, k, s, _first_max_mask(_windows(x, k, s)))


def _mean_bwd(dout, x, k, s, scale, overwrite=False):
    win = _windows(x, k, s)
    return _scatter(x, k, s, np.broadcast_to(scale * dout[..., None, None], win.shape), overwrite)


def _l2_bwd(dout, x, k, s, factor=1.0, no_out=False, overwrite=False):
    win = _windows(x, k, s)
    out = np.sqrt((win ** 2).sum(axis=(-2, -1)))
    scale = dout if no_out else dout / out
    return _scatter(x, k, s, factor * win * scale[..., None, None], overwrite)


def _rf(kernels, strides, mode="right"):
    r, jump, sizes = (0 if mode == "start0" else 1), 1, []
    for k, s in zip(kernels, strides):
        if mode == "jump_after":
            jump = jump * s
            r = r + (k - 1) * jump
        else:
            r = r + ((k if mode == "k" else k - 1) * (1 if mode == "no_stride" else jump))
            jump = jump * s
        sizes.append(r)
    return np.array(sizes)


OVERLAP = "overlapping windows overwrite each other: a cell in several windows must receive the SUM of their gradients (use +=)"

EXERCISES = [
    Exercise(
        "maxpool_forward", _pool_inputs, fixed=_FWD_FIXED,
        mistakes={
            "the stride is not used when reading the windows: window (i, j) starts at (i*stride, j*stride)":
                lambda x, k, s: _pool_no_stride(x, k, s, np.max),
            "that is the average of each window, not its maximum":
                lambda x, k, s: _windows(x, k, s).mean(axis=(-2, -1)),
            "the windows are one cell short: window (i, j) is x[..., i*stride : i*stride + k, ...] (k cells, "
            "the slice end is excluded)": lambda x, k, s: _pool_window_short(x, k, s, np.max),
            "the last window row and column are missing: H_out = (H - k) // stride + 1 (the + 1)":
                lambda x, k, s: _pool_no_last(x, k, s, np.max),
        },
    ),
    Exercise(
        "maxpool_backward", _backward_inputs, fixed=_MAX_BWD_FIXED,
        mistakes={
            "the gradient is spread over the whole window (dout / k^2 everywhere): that is average pooling's; "
            "max pooling sends all of it to the window's maximum":
                lambda d, x, k, s: _max_bwd(d, x, k, s, how="spread"),
            "with ties, every cell equal to the maximum received the gradient: only the FIRST maximum "
            "(row-major, as np.argmax picks it) gets it":
                lambda d, x, k, s: _max_bwd(d, x, k, s, how="all_ties"),
            OVERLAP: lambda d, x, k, s: _max_bwd(d, x, k, s, overwrite=True),
            "dout is missing: the maximum's cell receives dout[n, c, i, j], not 1": _max_bwd_no_dout,
            "with ties the LAST maximum got the gradient (a >= comparison in a loop?): the FIRST maximum "
            "(row-major, as np.argmax picks it) gets it": lambda d, x, k, s: _max_bwd(d, x, k, s, how="last"),
        },
    ),
    Exercise(
        "avgpool_forward", _pool_inputs, fixed=_FWD_FIXED,
        mistakes={
            "that is the sum of each window: divide by k * k for the average":
                lambda x, k, s: _windows(x, k, s).sum(axis=(-2, -1)),
            "the stride is not used when reading the windows: window (i, j) starts at (i*stride, j*stride)":
                lambda x, k, s: _pool_no_stride(x, k, s, np.mean),
            "divided by k, not by k * k: a k x k window holds k * k cells":
                lambda x, k, s: _windows(x, k, s).sum(axis=(-2, -1)) / k,
            "the last window row and column are missing: H_out = (H - k) // stride + 1 (the + 1)":
                lambda x, k, s: _pool_no_last(x, k, s, np.mean),
        },
    ),
    Exercise(
        "avgpool_backward", _backward_inputs, fixed=_BWD_FIXED,
        mistakes={
            "the gradient is not divided by k * k: each cell contributed 1/k^2 of the average":
                lambda d, x, k, s: _mean_bwd(d, x, k, s, 1.0),
            OVERLAP: lambda d, x, k, s: _mean_bwd(d, x, k, s, 1.0 / (k * k), overwrite=True),
            "the gradient went to the maximum only: average pooling spreads it evenly over the window":
                _max_bwd,
            "divided by k, not by k * k: each of the k * k cells of a window gets dout / k^2":
                lambda d, x, k, s: _mean_bwd(d, x, k, s, 1.0 / k),
        },
    ),
    Exercise(
        "sumpool_forward", _pool_inputs, fixed=_FWD_FIXED,
        mistakes={
            "that is the average of each window: sum pooling does not divide by k * k":
                lambda x, k, s: _windows(x, k, s).mean(axis=(-2, -1)),
            "the stride is not used when reading the windows: window (i, j) starts at (i*stride, j*stride)":
                lambda x, k, s: _pool_no_stride(x, k, s, np.sum),
            "the windows are one cell short: window (i, j) is x[..., i*stride : i*stride + k, ...] (k cells, "
            "the slice end is excluded)": lambda x, k, s: _pool_window_short(x, k, s, np.sum),
        },
    ),
    Exercise(
        "sumpool_backward", _backward_inputs, fixed=_BWD_FIXED,
        mistakes={
            "the gradient was divided by k * k: that is average pooling's; d(sum)/dx = 1 for every cell":
                lambda d, x, k, s: _mean_bwd(d, x, k, s, 1.0 / (k * k)),
            OVERLAP: lambda d, x, k, s: _mean_bwd(d, x, k, s, 1.0, overwrite=True),
            "dout is missing: each cell of window (i, j) receives dout[n, c, i, j], not 1":
                lambda d, x, k, s: _mean_bwd(np.ones_like(d), x, k, s, 1.0),
        },
    ),
    Exercise(
        "l2pool_forward", _l2_inputs, fixed=_FWD_FIXED,
        mistakes={
            "the square root is missing: L2 pooling is sqrt(sum of x^2)":
                lambda x, k, s: (_windows(x, k, s) ** 2).sum(axis=(-2, -1)),
            "that is the root of the MEAN of squares: L2 pooling takes the square root of the sum":
                lambda x, k, s: np.sqrt((_windows(x, k, s) ** 2).mean(axis=(-2, -1))),
            "that is the sum of |x| (L1), not the square root of the sum of squares":
                lambda x, k, s: np.abs(_windows(x, k, s)).sum(axis=(-2, -1)),
        },
    ),
    Exercise(
        "l2pool_backward", _l2_backward_inputs, fixed=_BWD_FIXED,
        mistakes={
            "the division by out is missing: d sqrt(S)/dx = x / sqrt(S) = x / out":
                lambda d, x, k, s: _l2_bwd(d, x, k, s, no_out=True),
            "an extra factor 1/2: the 2 of d(x^2)/dx = 2x cancels the 1/2 of the square root's derivative":
                lambda d, x, k, s: _l2_bwd(d, x, k, s, factor=0.5),
            "an extra factor 2: the 2 of d(x^2)/dx = 2x cancels the 1/2 of the square root's derivative":
                lambda d, x, k, s: _l2_bwd(d, x, k, s, factor=2.0),
            OVERLAP: lambda d, x, k, s: _l2_bwd(d, x, k, s, overwrite=True),
        },
    ),
    Exercise(
        "receptive_field", _rf_inputs,
        fixed=({"kernels": np.array([5, 2, 5, 2]), "strides": np.array([1, 2, 1, 2])},
               {"kernels": np.array([3, 3, 3, 3]), "strides": np.array([2, 1, 2, 1])},
               # a single layer (L = 1); a 1x1 layer after a stride (it widens nothing)
               {"kernels": np.array([4]), "strides": np.array([3])},
               {"kernels": np.array([3, 1, 3]), "strides": np.array([2, 1, 1])}),
        mistakes={
            "a layer's own stride was applied to its kernel: layer l widens the field by (k_l - 1) times the "
            "jump of the layer BELOW it (J_{l-1}), then the jump becomes J_{l-1} * s_l":
                lambda k, s: _rf(k, s, mode="jump_after"),
            "the strides are ignored: every stride multiplies the spacing (jump) of all later layers":
                lambda k, s: _rf(k, s, mode="no_stride"),
            "off by one per layer: a k x k layer widens the field by k - 1 (times the jump), not by k":
                lambda k, s: _rf(k, s, mode="k"),
            "the field starts at 0: before any layer one output sees one input pixel (r_0 = 1)":
                lambda k, s: _rf(k, s, mode="start0"),
        },
    ),
]


# --------------------------------------------------------------------------- #
# Issue 19: the model-design challenge of section 7 (autograder/authoring/challenges.py). The grader
# retrains the student's fit_digits in the sandbox; the 1,000 held-out test digits' labels stay outside.
# Thresholds: the reference uses only what 04-05 teach (three conv 3x3 + max-pool blocks and a dense
# head, 29,066 parameters, Adam one-cycle, 8 epochs, about 15 CPU s here): 98.3 % on validation.
# The held-out digits are secret perturbations of public MNIST digits (issue 27, autograder/authoring/heldout.py:
# rotated up to 10 degrees, rescaled, elastically distorted, shifted up to 1 px): harder than
# validation, more so for models that are not shift-tolerant. Measured (H10): the reference 97.1 %
# held-out (99.2 % on the unperturbed digits); a 3,106-parameter two-conv CNN, 3 epochs: 92.5 %
# (validation 95.6 %); a dense 784-32-10 network, 5 epochs: 81.2 % (validation 90.5 %); a
# nearest-neighbour lookup of the 10,000 public digits (sources included): 93.3 %.
# Sampling error: an accuracy p on n = 1,000 digits has a standard error sqrt(p (1 - p) / n), 0.53
# points at 97.1 %. full = 96.0 % lies 2.1 standard errors below the reference's held-out figure, so
# a model of the reference's quality gets full marks without luck (it was 97.5 % before the digits
# were perturbed); one standard error is worth 0.44 points between the lines (5 points over 6 %).
# --------------------------------------------------------------------------- #
from autograder.authoring.challenges import Challenge  # noqa: E402

CHALLENGES = [
    Challenge("digits_cnn", task="digits_classifier", heldout="digits_test.npz", metric="accuracy",
              full=0.96, zero=0.90, max_parameters=50_000, cpu_seconds=40,
              allowance_seconds=10),  # the solution's graded run: 17.6 CPU s, its fit 15.7 s: 1.9 s besides
]
