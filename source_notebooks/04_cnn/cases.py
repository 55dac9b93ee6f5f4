"""Graded exercises of 04_cnn: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 04_cnn.ipynb).

Inputs are chosen so that the plausible mistakes differ from the answer:
non-square images and kernels, N != C != F, non-zero biases, strides that do
not divide (d + 2p - k) (so floor/ceil and one-sided padding show), padding > 0.
"""
import math

import numpy as np

from autograder.authoring.exercises import Exercise


def _out(d, k, p, s):
    return (d + 2 * p - k) // s + 1


def _pad(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


def _conv(x, w, b, stride, padding, flip=False, use_stride=True, bias_times=1):
    """A loop-free cross-correlation with switchable mistakes (im2col with einsum)."""
    if flip:
        w = w[:, :, ::-1, ::-1]
    N, C, H, W = x.shape
    F, _, kH, kW = w.shape
    Ho, Wo = _out(H, kH, padding, stride), _out(W, kW, padding, stride)
    xp = _pad(x, padding)
    out = np.zeros((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            hs, ws = (i * stride, j * stride) if use_stride else (i, j)
            out[:, :, i, j] = np.einsum("ncuv,fcuv->nf", xp[:, :, hs:hs + kH, ws:ws + kW], w)
    return out + bias_times * b.reshape(1, F, 1, 1)


# -- inputs -------------------------------------------------------------------------------

def _size_inputs(rng):
    """s in 1..4, k in 1..7, p in 0..3, d from the smallest legal size (d + 2p = k: one output) to 40."""
    s = int(rng.integers(1, 5))
    k = int(rng.integers(1, 8))
    p = int(rng.integers(0, 4))
    d = int(rng.integers(max(k - 2 * p, 1), 41))
    return {"d": d, "k": k, "p": p, "s": s}


def _conv_inputs(rng):
    """N in 1..3, C and F in 1..5, kernels 1..4 (non-square), stride 1..3, padding 0..2, and H, W from
    the smallest size the kernel fits in (H + 2p = kH: one output row) to 9."""
    N = int(rng.integers(1, 4))
    C, F = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    kH, kW = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride, padding = int(rng.integers(1, 4)), int(rng.integers(0, 3))
    H = int(rng.integers(max(kH - 2 * padding, 1), 10))
    W = int(rng.integers(max(kW - 2 * padding, 1), 10))
    return {"x": rng.normal(size=(N, C, H, W)), "w": rng.normal(size=(F, C, kH, kW)),
            "b": rng.normal(size=F), "stride": stride, "padding": padding}


_CONV_FIXED = (
    {"x": np.arange(2 * 3 * 5 * 7, dtype=float).reshape(2, 3, 5, 7) / 50 - 2,
     "w": np.linspace(-1, 1, 4 * 3 * 3 * 2).reshape(4, 3, 3, 2),
     "b": np.array([0.5, -1.0, 2.0, 0.0]), "stride": 2, "padding": 1},
    # degenerate sizes: a 1x1 kernel, stride 1, padding 0, one sample, one channel in, one filter
    {"x": np.array([[[[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]]]]), "w": np.array([[[[1.5]]]]),
     "b": np.array([-0.5]), "stride": 1, "padding": 0},
    # the kernel covers the whole padded image: a single output pixel per filter
    {"x": np.linspace(-1, 1, 2 * 2 * 3 * 2).reshape(2, 2, 3, 2), "w": np.linspace(1, -1, 3 * 2 * 5 * 4).reshape(3, 2, 5, 4),
     "b": np.array([0.25, 0.0, -1.0]), "stride": 2, "padding": 1},
)


def _backward_inputs(rng):
    case = _conv_inputs(rng)  # N = 1 included: the fixed cases have N = 2, where "mean over the batch" shows
    N, F = case["x"].shape[0], case["w"].shape[0]
    Ho = _out(case["x"].shape[2], case["w"].shape[2], case["padding"], case["stride"])
    Wo = _out(case["x"].shape[3], case["w"].shape[3], case["padding"], case["stride"])
    return {"dout": rng.normal(size=(N, F, Ho, Wo)), "x": case["x"], "w": case["w"],
            "stride": case["stride"], "padding": case["padding"]}


_BACKWARD_FIXED = (
    {"dout": np.linspace(-2, 2, 2 * 4 * 3 * 4).reshape(2, 4, 3, 4), "x": _CONV_FIXED[0]["x"],
     "w": _CONV_FIXED[0]["w"], "stride": 2, "padding": 1},
    # degenerate sizes: a 1x1 kernel, stride 1, padding 0, N = C = F = 1
    {"dout": np.array([[[[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]]]]), "x": _CONV_FIXED[1]["x"], "w": _CONV_FIXED[1]["w"],
     "stride": 1, "padding": 0},
    # the kernel covers the whole padded image (one output pixel)
    {"dout": np.array([[[[1.0]], [[-0.5]], [[2.0]]], [[[0.25]], [[1.5]], [[-1.0]]]]), "x": _CONV_FIXED[2]["x"],
     "w": _CONV_FIXED[2]["w"], "stride": 2, "padding": 1},
)


def _lenet_inputs(rng):
    """k in 1..7 and H, W from 3k + 1 (the least where pool 2 keeps a pixel) to 48; every width from 1."""
    k = int(rng.integers(1, 8))
    return {"C": int(rng.integers(1, 4)), "H": int(rng.integers(3 * k + 1, 49)),
            "W": int(rng.integers(3 * k + 1, 49)), "k": k, "c1": int(rng.integers(1, 17)),
            "c2": int(rng.integers(1, 33)), "hidden": int(rng.integers(1, 129)), "n_classes": int(rng.integers(1, 12))}


# -- known mistakes -----------------------------------------------------------------------

def _size_no_floor(d, k, p, s):
    return (d + 2 * p - k) / s + 1


def _size_ceil(d, k, p, s):
    return math.ceil((d + 2 * p - k) / s) + 1


def _size_one_side(d, k, p, s):
    return (d + p - k) // s + 1


def _size_no_plus_one(d, k, p, s):
    return (d + 2 * p - k) // s


def _size_no_stride(d, k, p, s):
    return d + 2 * p - k + 1


def _conv_cols_wrong_order(x, w, b, stride, padding):
    N, C, H, W = x.shape
    F, _, kH, kW = w.shape
    Ho, Wo = _out(H, kH, padding, stride), _out(W, kW, padding, stride)
    xp = _pad(x, padding)
    cols = np.empty((N, kH, kW, C, Ho, Wo))
    for u in range(kH):
        for v in range(kW):
            cols[:, u, v] = xp[:, :, u:u + stride * Ho:stride, v:v + stride * Wo:stride]
    out = w.reshape(F, -1) @ cols.reshape(N, -1, Ho * Wo)
    return out.reshape(N, F, Ho, Wo) + b.reshape(1, F, 1, 1)


def _conv_bad_reshape(x, w, b, stride, padding):
    N, C, H, W = x.shape
    F, _, kH, kW = w.shape
    Ho, Wo = _out(H, kH, padding, stride), _out(W, kW, padding, stride)
    xp = _pad(x, padding)
    cols = np.empty((C, kH, kW, N, Ho, Wo))
    for u in range(kH):
        for v in range(kW):
            cols[:, u, v] = xp[:, :, u:u + stride * Ho:stride, v:v + stride * Wo:stride].transpose(1, 0, 2, 3)
    out = w.reshape(F, -1) @ cols.reshape(C * kH * kW, N * Ho * Wo)   # (F, N*Ho*Wo)
    return out.reshape(N, F, Ho, Wo) + b.reshape(1, F, 1, 1)          # should be (F, N, ...) then transpose


def _backward(dout, x, w, stride, padding, batch_mean=False, flip_dx=False, crop_origin=False, use_stride=True):
    N, C, H, W = x.shape
    F, _, kH, kW = w.shape
    Ho, Wo = dout.shape[2:]
    xp = _pad(x, padding)
    dxp, dw = np.zeros(xp.shape), np.zeros(w.shape)
    w_dx = w[:, :, ::-1, ::-1] if flip_dx else w
    for i in range(Ho):
        for j in range(Wo):
            hs, ws = (i * stride, j * stride) if use_stride else (i, j)
            g = dout[:, :, i, j]
            dw += np.einsum("nf,ncuv->fcuv", g, xp[:, :, hs:hs + kH, ws:ws + kW])
            dxp[:, :, hs:hs + kH, ws:ws + kW] += np.einsum("nf,fcuv->ncuv", g, w_dx)
    db = dout.sum(axis=(0, 2, 3))
    if batch_mean:
        dw, db = dw / N, db / N
    dx = dxp[:, :, :H, :W] if crop_origin else dxp[:, :, padding:padding + H, padding:padding + W]
    return dx, dw, db


def _lenet(C, H, W, k, c1, c2, hidden, n_classes, pool=None, pad=0, bias=1, conv_in=True, flat_before_pool=False):
    pool = pool or (lambda d: d // 2)
    h1, w1 = H + 2 * pad - k + 1, W + 2 * pad - k + 1
    h2, w2 = pool(h1), pool(w1)
    h3, w3 = h2 + 2 * pad - k + 1, w2 + 2 * pad - k + 1
    h4, w4 = pool(h3), pool(w3)
    flat = c2 * (h3 * w3 if flat_before_pool else h4 * w4)
    cin1, cin2 = (C, c1) if conv_in else (1, 1)
    n = (c1 * (cin1 * k * k + bias) + c2 * (cin2 * k * k + bias)
         + hidden * (flat + bias) + n_classes * (hidden + bias))
    return np.array([[c1, h1, w1], [c1, h2, w2], [c2, h3, w3], [c2, h4, w4]]), n


#: Library convolutions: the exercises ask for them by hand (use is named; points per the course's policy).
_CONV_LIBRARY = ("torch.nn.functional.conv2d", "torch.nn.Conv2d", "torch.nn.grad.conv2d_weight",
                 "torch.nn.grad.conv2d_input", "scipy.signal.correlate", "scipy.signal.correlate2d",
                 "scipy.signal.convolve2d", "scipy.ndimage.correlate")

EXERCISES = [
    Exercise(
        "conv_output_size", _size_inputs,
        fixed=({"d": 28, "k": 5, "p": 0, "s": 2}, {"d": 7, "k": 3, "p": 1, "s": 1},
               {"d": 10, "k": 4, "p": 2, "s": 3},
               # one-sided padding gives a value no other mistake gives (scalars: a match must be unique)
               {"d": 8, "k": 4, "p": 3, "s": 2}),
        hidden=8,
        mistakes={
            "the division is not floored: the kernel only fits floor((d + 2p - k) / s) + 1 times (use //)": _size_no_floor,
            "rounded up: a last, incomplete window does not count, use floor division //": _size_ceil,
            "padding counted on one side only: p zeros are added on EACH side, so the padded size is d + 2p": _size_one_side,
            "the + 1 is missing: the kernel also fits at position 0": _size_no_plus_one,
            "the stride is ignored: divide (d + 2p - k) by s": _size_no_stride,
        },
    ),
    Exercise(
        "conv2d_naive", _conv_inputs, fixed=_CONV_FIXED,
        forbidden=_CONV_LIBRARY, builds_on=("conv_output_size",),
        mistakes={
            "the padding is missing: pad x with p zeros on each side of H and W before sliding the kernel":
                lambda x, w, b, s, p: _conv(x, w, b, s, 0),
            "the kernel is flipped: that is the textbook convolution; conv2d layers compute the "
            "cross-correlation sum w[f, c, u, v] * x_pad[n, c, i*s + u, j*s + v], w not flipped":
                lambda x, w, b, s, p: _conv(x, w, b, s, p, flip=True),
            "the bias is missing: add b[f] to every output of filter f":
                lambda x, w, b, s, p: _conv(x, w, b, s, p, bias_times=0),
            "the bias is added once per input channel: add b[f] once, after summing over the channels":
                lambda x, w, b, s, p: _conv(x, w, b, s, p, bias_times=x.shape[1]),
            "the stride is not used when reading the window: output (i, j) reads x_pad[..., i*stride:i*stride+kH, j*stride:j*stride+kW]":
                lambda x, w, b, s, p: _conv(x, w, b, s, p, use_stride=False),
        },
    ),
    Exercise(
        "conv2d_im2col", _conv_inputs, fixed=_CONV_FIXED,
        forbidden=_CONV_LIBRARY, builds_on=("conv_output_size",),
        mistakes={
            "the columns are not in the (C, kH, kW) order of w.reshape(F, -1): build cols as "
            "(N, C, kH, kW, H_out, W_out) before flattening": _conv_cols_wrong_order,
            "the product (F, N*H_out*W_out) was reshaped straight to (N, F, H_out, W_out): reshape it to "
            "(F, N, H_out, W_out) and swap the first two axes": _conv_bad_reshape,
            "the kernel is flipped: conv2d layers compute the cross-correlation, w not flipped":
                lambda x, w, b, s, p: _conv(x, w, b, s, p, flip=True),
            "the stride is not used when reading the windows: keep every stride-th window (x_pad[..., u:u+stride*H_out:stride, ...])":
                lambda x, w, b, s, p: _conv(x, w, b, s, p, use_stride=False),
        },
    ),
    Exercise(
        "conv2d_backward", _backward_inputs, fixed=_BACKWARD_FIXED,
        forbidden=_CONV_LIBRARY,
        mistakes={
            "dw and db are averaged over the batch: the loss adds up every sample's contribution, so sum over n":
                lambda d, x, w, s, p: _backward(d, x, w, s, p, batch_mean=True),
            "dx uses the flipped kernel: each window sends dout[n, f, i, j] * w[f] (not flipped) back onto the pixels it read":
                lambda d, x, w, s, p: _backward(d, x, w, s, p, flip_dx=True),
            "dx is cropped at the wrong place: the padding is on both sides, take dx_pad[:, :, p:p+H, p:p+W]":
                lambda d, x, w, s, p: _backward(d, x, w, s, p, crop_origin=True),
            "the stride is not used: window (i, j) starts at (i*stride, j*stride) in the backward pass too":
                lambda d, x, w, s, p: _backward(d, x, w, s, p, use_stride=False),
        },
    ),
    Exercise(
        "lenet_shapes", _lenet_inputs, builds_on=("conv_output_size",),
        fixed=({"C": 1, "H": 28, "W": 28, "k": 5, "c1": 16, "c2": 32, "hidden": 128, "n_classes": 10},
               {"C": 3, "H": 33, "W": 29, "k": 3, "c1": 6, "c2": 16, "hidden": 84, "n_classes": 10}),
        mistakes={
            "the pooling rounds up: 2x2 max pooling with stride 2 gives floor(d / 2) (a last odd row is dropped)":
                lambda *a: _lenet(*a, pool=lambda d: -(-d // 2)),
            "the convolutions were given 'same' padding: here they have none, so each one shrinks the map by k - 1":
                lambda *a: _lenet(*a, pad=a[3] // 2),
            "the biases are not counted: each conv filter and each linear unit has one":
                lambda *a: _lenet(*a, bias=0),
            "a convolution has c_out x c_in x k x k weights (+ c_out biases): the input channels are missing":
                lambda *a: _lenet(*a, conv_in=False),
            "the first linear layer's input is the flattened output of the SECOND pooling: c2 x h x w after pool 2":
                lambda *a: _lenet(*a, flat_before_pool=True),
        },
    ),
]
