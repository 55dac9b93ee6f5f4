"""Graded exercises of 09_autoencoders: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 09_autoencoders.ipynb).
All tolerances are the defaults (rtol 1e-4, atol 1e-6): every exercise is plain
numpy on float64 inputs, and a float32 answer is still far inside them.
"""
import numpy as np

from autograder.authoring.exercises import Exercise


def _sig(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _distinct_sizes(rng, n):
    """n different sizes, so that a transposed weight or a wrong axis shows up as a shape error."""
    return [int(v) for v in rng.choice(np.arange(2, 11), size=n, replace=False)]


# -- 1. autoencoder_forward ------------------------------------------------------------------

def _forward_inputs(rng, sizes=None):
    """K < H < D drawn from 1..12 (a narrow code, as in the notebook), N in 1..8; or sizes (N, K, H, D)."""
    if sizes is None:
        K, H, D = sorted(int(v) for v in rng.choice(np.arange(1, 13), size=3, replace=False))
        N = int(rng.integers(1, 9))
    else:
        N, K, H, D = sizes
    return {
        "X": rng.random((N, D)),
        "W1": rng.normal(0, 0.8, (H, D)), "b1": rng.normal(0, 0.5, H),
        "W2": rng.normal(0, 0.8, (K, H)), "b2": rng.normal(0, 0.5, K),
        "W3": rng.normal(0, 0.8, (H, K)), "b3": rng.normal(0, 0.5, H),
        "W4": rng.normal(0, 0.8, (D, H)), "b4": rng.normal(0, 0.5, D),
    }


def _forward(X, W1, b1, W2, b2, W3, b3, W4, b4, relu_code=False, sigmoid_out=True, relu_hidden=True):
    act = (lambda a: np.maximum(0, a)) if relu_hidden else (lambda a: a)
    Z = act(X @ W1.T + b1) @ W2.T + b2
    if relu_code:
        Z = np.maximum(0, Z)
    out = act(Z @ W3.T + b3) @ W4.T + b4
    return Z, (_sig(out) if sigmoid_out else out)


# -- 2. reconstruction_loss ------------------------------------------------------------------

def _loss_inputs(rng):
    n, d = int(rng.integers(1, 9)), int(rng.integers(1, 11))
    X = rng.random((n, d))
    X[rng.random((n, d)) < 0.25] = 0.0  # digits have many exact 0s and some exact 1s
    X[rng.random((n, d)) < 0.15] = 1.0
    return {"X": X, "X_hat": rng.uniform(0.02, 0.98, (n, d))}


def _bce(X, X_hat, clamp=True):
    with np.errstate(divide="ignore", invalid="ignore"):
        lp, l1p = np.log(X_hat), np.log(1.0 - X_hat)
        if clamp:
            lp, l1p = np.maximum(lp, -100.0), np.maximum(l1p, -100.0)
        return -np.mean(X * lp + (1.0 - X) * l1p)


def _loss_mse_summed(X, X_hat):
    return np.sum((X - X_hat) ** 2) / X.shape[0], _bce(X, X_hat)


def _loss_mae(X, X_hat):
    return np.mean(np.abs(X - X_hat)), _bce(X, X_hat)


def _loss_bce_swapped(X, X_hat):
    return np.mean((X - X_hat) ** 2), _bce(np.clip(X_hat, 0, 1), np.clip(X, 0, 1))


def _loss_no_clamp(X, X_hat):
    return np.mean((X - X_hat) ** 2), _bce(X, X_hat, clamp=False)


# -- 3. encoder_decoder_sizes ----------------------------------------------------------------

def _sizes_inputs(rng):
    k = int(rng.integers(1, 8))
    s = int(rng.integers(1, 4))
    p = int(rng.integers(0, (k - 1) // 2 + 1))
    return {"d": int(rng.integers(max(k - 2 * p, 1), 41)), "k": k, "s": s, "p": p,  # d + 2p = k included
            "output_padding": int(rng.integers(0, s))}  # torch needs output_padding < stride


def _sizes(d, k, s, p, op, floor=True, plus_one=True, pad_sign=-1, use_op=True, naive=False):
    enc = (d + 2 * p - k) // s if floor else (d + 2 * p - k) / s
    enc = enc + 1 if plus_one else enc
    if naive:
        return enc, enc * s
    return enc, (enc - 1) * s + pad_sign * 2 * p + k + (op if use_op else 0)


# -- 4. conv_transpose2d ---------------------------------------------------------------------

def _convt_inputs(rng):
    """H, W in 1..6, kernels 1..5, stride 1..3, padding below the kernel and small enough to leave a
    non-empty output ((H - 1) s + k - 2p >= 1 on both axes)."""
    H, W = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    kH, kW = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    stride = int(rng.integers(1, 4))
    p_max = min(kH - 1, kW - 1, ((H - 1) * stride + kH - 1) // 2, ((W - 1) * stride + kW - 1) // 2)
    padding = int(rng.integers(0, p_max + 1))
    return {"x": rng.normal(size=(H, W)), "w": rng.normal(size=(kH, kW)), "stride": stride, "padding": padding}


def _convt(x, w, stride, padding, flip=False, accumulate=True, crop="both"):
    if flip:
        w = w[::-1, ::-1]
    H, W = x.shape
    kH, kW = w.shape
    full = np.zeros(((H - 1) * stride + kH, (W - 1) * stride + kW))
    for i in range(H):
        for j in range(W):
            window = (slice(i * stride, i * stride + kH), slice(j * stride, j * stride + kW))
            full[window] = full[window] + x[i, j] * w if accumulate else x[i, j] * w
    h, v = full.shape
    if crop == "both":
        return full[padding:h - padding, padding:v - padding]
    return full[:h - 2 * padding, :v - 2 * padding]


_CONVT_FIXED = {"x": np.array([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]]),
                "w": np.array([[1.0, 2.0, 0.0], [-1.0, 0.5, 3.0], [0.0, 1.0, -2.0]]), "stride": 2, "padding": 1}


# -- 5. corrupt ------------------------------------------------------------------------------

def _corrupt_inputs(rng):
    """(N, C, H, W) with N in 1..4, C in 1..3, H and W in 1..6 (the fixed cases add a flat batch)."""
    shape = (int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(1, 7)))
    X = rng.random(shape)
    X[rng.random(shape) < 0.4] = 0.0  # background pixels, as in the digits
    return {"X": X, "gauss": rng.standard_normal(shape), "u": rng.random(shape),
            "sigma": float(rng.uniform(0.2, 0.8)), "p": float(rng.uniform(0.1, 0.5))}


def _corrupt_variance(X, gauss, u, sigma, p):
    return np.where(u < p, 0.0, np.clip(X + sigma ** 2 * gauss, 0, 1))


def _corrupt_no_clip(X, gauss, u, sigma, p):
    return np.where(u < p, 0.0, X + sigma * gauss)


def _corrupt_mask_inverted(X, gauss, u, sigma, p):
    return np.where(u > p, 0.0, np.clip(X + sigma * gauss, 0, 1))


def _corrupt_mask_at_p(X, gauss, u, sigma, p):
    return np.where(u <= p, 0.0, np.clip(X + sigma * gauss, 0, 1))


def _corrupt_mask_first(X, gauss, u, sigma, p):
    return np.clip(np.where(u < p, 0.0, X) + sigma * gauss, 0, 1)


# -- 6-8. anomaly detection ------------------------------------------------------------------

def _scores_inputs(rng):
    """(N, ...) with N in 1..6 and one to three more axes of size 1..9 ((N, D), (N, 1, H, W) ...)."""
    shape = (int(rng.integers(1, 7)),) + tuple(int(k) for k in rng.integers(1, 10, size=int(rng.integers(1, 4))))
    return {"X": rng.random(shape), "X_hat": rng.random(shape)}


def _flat(X):
    return X.reshape(len(X), -1)


def _threshold_inputs(rng):
    return {"normal_scores": rng.gamma(2.0, 0.01, size=int(rng.integers(1, 61))),  # M = 1 included
            "fpr": float(rng.uniform(0.02, 0.25))}


def _pr_inputs(rng):
    n = int(rng.integers(20, 41))
    is_anomaly = np.zeros(n, dtype=bool)
    is_anomaly[rng.choice(n, size=int(rng.integers(4, n // 2)), replace=False)] = True
    scores = rng.gamma(2.0, 0.01, n) + 0.02 * is_anomaly  # anomalies score higher, on average
    lo, hi = np.quantile(scores, [0.3, 0.85])
    return {"scores": scores, "is_anomaly": is_anomaly, "threshold": float(rng.uniform(lo, hi))}


def _pr(scores, is_anomaly, threshold, below=False):
    flagged = scores < threshold if below else scores > threshold
    tp, fp = np.sum(flagged & is_anomaly), np.sum(flagged & ~is_anomaly)
    fn, tn = np.sum(~flagged & is_anomaly), np.sum(~flagged & ~is_anomaly)
    return tp / max(tp + fp, 1), tp / (tp + fn), fp / (fp + tn)


def _pr_swapped(scores, is_anomaly, threshold):
    precision, recall, fpr = _pr(scores, is_anomaly, threshold)
    return recall, precision, fpr


def _pr_fpr_over_all(scores, is_anomaly, threshold):
    precision, recall, _ = _pr(scores, is_anomaly, threshold)
    flagged = scores > threshold
    return precision, recall, np.sum(flagged & ~is_anomaly) / len(scores)


def _pr_false_discovery(scores, is_anomaly, threshold):
    precision, recall, _ = _pr(scores, is_anomaly, threshold)
    return precision, recall, 1.0 - precision


# -- 9. interpolate_latent -------------------------------------------------------------------

def _interp_inputs(rng):
    k = int(rng.integers(1, 9))
    return {"z0": rng.normal(size=k), "z1": rng.normal(size=k), "n_steps": int(rng.integers(2, 13))}


def _interp(z0, z1, n_steps, t=None):
    t = np.linspace(0, 1, n_steps) if t is None else t
    return (1 - t)[:, None] * z0 + t[:, None] * z1


def _corrupt_in_place(X, gauss, u, sigma, p):
    noisy = np.clip(X + sigma * gauss, 0.0, 1.0)
    X[...] = np.where(u < p, 0.0, noisy)
    return X


def _pr_at_threshold(scores, is_anomaly, threshold):
    flagged = scores >= threshold
    tp, fp = np.sum(flagged & is_anomaly), np.sum(flagged & ~is_anomaly)
    fn, tn = np.sum(~flagged & is_anomaly), np.sum(~flagged & ~is_anomaly)
    return tp / max(tp + fp, 1), tp / (tp + fn), fp / (fp + tn)


EXERCISES = [
    Exercise(
        "autoencoder_forward", _forward_inputs,
        # fixed: the notebook's shape of things (N, K, H, D = 3, 2, 5, 8), and one sample with a 1-d code
        fixed=(_forward_inputs(np.random.default_rng(901), (3, 2, 5, 8)),
               _forward_inputs(np.random.default_rng(902), (1, 1, 4, 6))),
        mistakes={
            "the code Z must be linear (no ReLU on the bottleneck): codes can be negative":
                lambda *a: _forward(*a, relu_code=True),
            "the decoder's last layer needs a sigmoid, so that pixels lie in [0, 1]":
                lambda *a: _forward(*a, sigmoid_out=False),
            "a ReLU is missing after the hidden layers (X W1^T + b1 and Z W3^T + b3)":
                lambda *a: _forward(*a, relu_hidden=False),
        },
    ),
    Exercise(
        "reconstruction_loss", _loss_inputs,
        fixed=({"X": np.array([[0.0, 1.0, 1.0, 0.3], [0.0, 0.6, 1.0, 0.0]]),
                "X_hat": np.array([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.9, 0.1]])},
               # one image of three pixels (N = 1); one pixel per image (D = 1)
               {"X": np.array([[0.0, 1.0, 0.5]]), "X_hat": np.array([[0.2, 0.7, 0.5]])},
               {"X": np.array([[1.0], [0.0], [0.25]]), "X_hat": np.array([[0.9], [0.3], [0.5]])}),
        mistakes={
            "the MSE must be a mean over all N * D pixels, not a sum over the pixels of each image": _loss_mse_summed,
            "the MSE squares the differences (this is the mean absolute error)": _loss_mae,
            "the BCE's arguments are swapped: X is the target (outside the logs), X_hat the prediction (inside)": _loss_bce_swapped,
            "the BCE is inf/nan when X_hat is exactly 0 or 1: clamp each log at -100, like torch": _loss_no_clamp,
        },
    ),
    Exercise(
        "encoder_decoder_sizes", _sizes_inputs,
        fixed=({"d": 28, "k": 3, "s": 2, "p": 1, "output_padding": 1},
               {"d": 7, "k": 3, "s": 2, "p": 1, "output_padding": 0},
               {"d": 10, "k": 5, "s": 3, "p": 2, "output_padding": 2},
               # degenerate: a 1x1 kernel with stride 1; the kernel covering the padded input (one output)
               {"d": 6, "k": 1, "s": 1, "p": 0, "output_padding": 0},
               {"d": 3, "k": 5, "s": 2, "p": 1, "output_padding": 1}),
        visible=3,
        mistakes={
            "the conv size needs a floor: (d + 2p - k) // s + 1, with integer division":
                lambda d, k, s, p, op: _sizes(d, k, s, p, op, floor=False),
            "the conv size is (d + 2p - k) // s + 1: the + 1 is missing":
                lambda d, k, s, p, op: _sizes(d, k, s, p, op, plus_one=False),
            "a transposed conv's padding REMOVES 2p: (d - 1) s - 2p + k + output_padding":
                lambda d, k, s, p, op: _sizes(d, k, s, p, op, pad_sign=+1),
            "output_padding is missing: add it to the transposed conv's size":
                lambda d, k, s, p, op: _sizes(d, k, s, p, op, use_op=False),
            "a transposed conv does not just multiply the size by s: (d - 1) s - 2p + k + output_padding":
                lambda d, k, s, p, op: _sizes(d, k, s, p, op, naive=True),
        },
    ),
    Exercise(
        "conv_transpose2d", _convt_inputs,
        fixed=(_CONVT_FIXED,
               # degenerate: one input pixel (a copy of w), stride 1, padding 0; a 1x1 kernel
               {"x": np.array([[2.0]]), "w": np.array([[1.0, -1.0], [0.5, 3.0]]), "stride": 1, "padding": 0},
               {"x": np.array([[1.0, -2.0], [0.5, 4.0]]), "w": np.array([[-1.5]]), "stride": 2, "padding": 0}),
        mistakes={
            "the kernel is flipped: a transposed convolution stamps w as it is": lambda *a: _convt(*a, flip=True),
            "overlapping stamps must ADD up (+=), not overwrite each other": lambda *a: _convt(*a, accumulate=False),
            "crop `padding` rows and columns from EACH side (top and bottom, left and right)":
                lambda *a: _convt(*a, crop="end"),
        },
    ),
    Exercise(
        "corrupt", _corrupt_inputs,
        # "any shape": a flat (N, D) batch too, not only (N, 1, H, W)
        fixed=({k: (v.reshape(v.shape[0], -1) if isinstance(v, np.ndarray) else v)
                for k, v in _corrupt_inputs(np.random.default_rng(909)).items()},
               # u exactly equal to p: that pixel is kept (masked only where u < p)
               {"X": np.array([[0.5, 0.0, 1.0, 0.25]]), "gauss": np.array([[0.5, -1.0, 0.25, 1.0]]),
                "u": np.array([[0.25, 0.5, 0.25, 0.75]]), "sigma": 0.5, "p": 0.25}),
        pure=True,  # "Don't modify `X` in place."
        mistakes={
            "modified `X` in place": _corrupt_in_place,
            "sigma is the standard deviation: add sigma * gauss (not sigma**2 * gauss)": _corrupt_variance,
            "clip the noisy pixels to [0, 1]": _corrupt_no_clip,
            "pixels are masked (set to 0) where u < p, so that a fraction p of them is dropped": _corrupt_mask_inverted,
            "masked pixels must be exactly 0: apply the mask after adding the noise": _corrupt_mask_first,
            "a pixel with u equal to p was masked: mask only where u < p (strictly)": _corrupt_mask_at_p,
        },
    ),
    Exercise(
        "anomaly_scores", _scores_inputs,
        fixed=({"X": np.linspace(0.0, 1.0, 3 * 1 * 2 * 4).reshape(3, 1, 2, 4),
                "X_hat": np.linspace(1.0, 0.2, 3 * 1 * 2 * 4).reshape(3, 1, 2, 4) ** 2},
               {"X": np.array([[0.5, 0.25, 1.0]]), "X_hat": np.array([[0.0, 0.5, 0.75]])}),  # (N, D), N = 1
        mistakes={
            "the score is the MEAN squared error over each image's pixels, not the sum":
                lambda X, X_hat: np.sum(_flat(X - X_hat) ** 2, axis=1),
            "the score squares the differences (this is the mean absolute error)":
                lambda X, X_hat: np.mean(np.abs(_flat(X - X_hat)), axis=1),
            "the score is the mean squared error, without a square root":
                lambda X, X_hat: np.sqrt(np.mean(_flat(X - X_hat) ** 2, axis=1)),
        },
    ),
    Exercise(
        "choose_threshold", _threshold_inputs,
        fixed=({"normal_scores": np.arange(1.0, 21.0), "fpr": 0.05},),
        mistakes={
            "wrong tail: a fraction fpr of the normal scores must lie ABOVE t, so t is the (1 - fpr) quantile":
                lambda s, fpr: np.quantile(s, fpr),
            "np.percentile takes percents: the (1 - fpr) quantile is the 100 * (1 - fpr) percentile":
                lambda s, fpr: np.percentile(s, 1 - fpr),
            "the largest normal score gives no false alarms at all; t should let a fraction fpr through":
                lambda s, fpr: np.max(s),
        },
    ),
    Exercise(
        "precision_recall", _pr_inputs,
        fixed=({"scores": np.array([0.1, 0.4, 0.35, 0.8, 0.05, 0.6, 0.2, 0.9]),
                "is_anomaly": np.array([False, True, False, True, False, False, True, True]),
                "threshold": 0.3},
               # scores equal to the threshold: "strictly above" flags them NOT
               {"scores": np.array([0.5, 0.25, 0.5, 0.75, 0.125, 1.0]),
                "is_anomaly": np.array([True, False, False, True, False, True]), "threshold": 0.5}),
        mistakes={
            "a score equal to the threshold is not flagged: flag scores STRICTLY above it (>, not >=)":
                _pr_at_threshold,
            "flag the samples whose score is ABOVE the threshold (high error = anomaly)":
                lambda s, a, t: _pr(s, a, t, below=True),
            "precision and recall are swapped: precision = TP / (TP + FP), recall = TP / (TP + FN)": _pr_swapped,
            "the false positive rate divides by the number of normal samples (FP + TN), not by all samples": _pr_fpr_over_all,
            "that is the false discovery rate FP / (TP + FP); the false positive rate is FP / (FP + TN)": _pr_false_discovery,
        },
    ),
    Exercise(
        "interpolate_latent", _interp_inputs,
        fixed=({"z0": np.array([0.0, 1.0]), "z1": np.array([2.0, -3.0]), "n_steps": 5},
               {"z0": np.array([0.5, -1.0, 2.0]), "z1": np.array([1.5, 1.0, -2.0]), "n_steps": 2}),  # the ends only
        mistakes={
            "the last row must be z1 itself: t runs from 0 to 1 inclusive (np.linspace includes the endpoint)":
                lambda z0, z1, n: _interp(z0, z1, n, t=np.arange(n) / n),
            "the path goes the wrong way: the first row is z0 and the last is z1":
                lambda z0, z1, n: _interp(z1, z0, n),
            "the endpoints are missing: the first row is z0 and the last z1":
                lambda z0, z1, n: _interp(z0, z1, n, t=np.linspace(0, 1, n + 2)[1:-1]),
        },
    ),
]
