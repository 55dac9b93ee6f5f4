"""Graded exercises of 12_segmentation: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 12_segmentation.ipynb).
Tolerances are the defaults (rtol 1e-4, atol 1e-6) except where a comment says why.

Sizes are drawn so that the mistakes show: H != W and H-difference != W-difference for the crops,
C_in == C_out in a fixed case (a weight read as (C_out, C_in) keeps its shape), odd sizes at a
pooling (floor vs ceil), an odd crop difference (which side loses the extra row), a class absent
from both maps (IoU nan, skipped), an empty mask with zero probabilities (Dice without smoothing
is 0 / 0), inf but no nan among the gradients (an isnan-only check), logits past exp's range.
"""
import numpy as np
import torch

from autograder.authoring.exercises import Exercise
from autograder.authoring.challenges import Challenge


# -- 1. unet_sizes ---------------------------------------------------------------------------

def _sizes(size, depth, kernel, padding, convs=2, pool="floor", pad_once=False, bottleneck=True,
           skip_size=False, reverse=False, no_pad=False):
    step = (0 if no_pad else padding if pad_once else 2 * padding) - kernel + 1
    enc, s = [], int(size)
    for _ in range(depth):
        s = s + convs * step
        enc.append(s)
        s = s // 2 if pool == "floor" else -(-s // 2)
    if bottleneck:
        s = s + convs * step
    mid, dec = s, []
    for level in range(depth):
        s = 2 * s
        if skip_size:                    # the concatenated skip's size taken as the new size
            s = enc[depth - 1 - level]
        s = s + convs * step
        dec.append(s)
    if reverse:
        dec = dec[::-1]
    return np.array(enc + [mid] + dec, dtype=np.int64)


def _smallest_size(depth, kernel, padding):
    """The smallest input side for which every size of the reference stays >= 1."""
    size = 1
    while (_sizes(size, depth, kernel, padding) < 1).any():
        size += 1
    return size


def _sizes_inputs(rng):
    depth = int(rng.integers(0, 5))
    kernel = int(rng.choice([1, 3, 5]))
    padding = int(rng.integers(0, (kernel - 1) // 2 + 1))
    size = _smallest_size(depth, kernel, padding) + int(rng.integers(0, 60))
    return {"size": size, "depth": depth, "kernel": kernel, "padding": padding}


_SIZES_FIXED = (
    {"size": 572, "depth": 4, "kernel": 3, "padding": 0},   # the U-Net paper: 572 -> 388
    {"size": 45, "depth": 2, "kernel": 3, "padding": 1},    # 'same' convolutions, odd sizes at the poolings
    {"size": 37, "depth": 1, "kernel": 3, "padding": 0},    # 33 before the pooling: floor 16, ceil 17
    {"size": 7, "depth": 0, "kernel": 5, "padding": 1},     # no pooling at all: the bottleneck only
    {"size": 20, "depth": 2, "kernel": 1, "padding": 0},    # 1x1 convolutions keep the size
)


def _sizes_with(**kw):
    return lambda size, depth, kernel, padding: _sizes(size, depth, kernel, padding, **kw)


# -- 2. crop_and_concat ----------------------------------------------------------------------

def _crop_inputs(rng, N=None, dh=None, dw=None):
    N = N or int(rng.integers(1, 4))
    Cs, Cu = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    Hu, Wu = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    dh = int(rng.integers(0, 6)) if dh is None else dh
    dw = int(rng.choice([d for d in range(0, 6) if d != dh])) if dw is None else dw
    return {"skip": rng.normal(size=(N, Cs, Hu + dh, Wu + dw)), "up": rng.normal(size=(N, Cu, Hu, Wu))}


_rng = np.random.default_rng(1201)
_CROP_FIXED = (
    _crop_inputs(_rng, N=2, dh=3, dw=1),     # odd differences, not equal
    _crop_inputs(_rng, N=1, dh=4, dw=2),     # even differences, not equal
    _crop_inputs(_rng, N=1, dh=0, dw=0),     # nothing to crop
)


def _crop(skip, up, where="centre", order="skip_first", swap=False):
    dh, dw = skip.shape[2] - up.shape[2], skip.shape[3] - up.shape[3]
    if swap:
        dh, dw = dw, dh
    top, left = {"centre": (dh // 2, dw // 2), "ceil": ((dh + 1) // 2, (dw + 1) // 2),
                 "corner": (0, 0), "end": (dh, dw)}[where]
    top, left = min(top, skip.shape[2] - up.shape[2]), min(left, skip.shape[3] - up.shape[3])
    cropped = skip[:, :, top:top + up.shape[2], left:left + up.shape[3]]
    return torch.cat([cropped, up] if order == "skip_first" else [up, cropped], dim=1)


def _crop_with(**kw):
    return lambda skip, up: _crop(skip, up, **kw)


# -- 3. up_conv ------------------------------------------------------------------------------

def _up_inputs(rng, N=None, C_in=None, C_out=None, s=None, H=None, W=None):
    N = N or int(rng.integers(1, 3))
    C_in, C_out = C_in or int(rng.integers(1, 4)), C_out or int(rng.integers(1, 4))
    s = s or int(rng.integers(1, 4))
    H, W = H or int(rng.integers(1, 5)), W or int(rng.integers(1, 5))
    return {"x": rng.normal(size=(N, C_in, H, W)), "W": rng.normal(size=(C_in, C_out, s, s)),
            "b": rng.normal(size=C_out)}


_rng = np.random.default_rng(1202)
_UP_FIXED = (
    _up_inputs(_rng, N=2, C_in=2, C_out=2, s=2, H=3, W=2),   # C_in == C_out: a transposed weight keeps its shape
    _up_inputs(_rng, N=1, C_in=3, C_out=1, s=3, H=2, W=3),   # s = 3, H != W
    _up_inputs(_rng, N=1, C_in=1, C_out=2, s=1, H=2, W=2),   # s = 1: a 1x1 transposed convolution
)


def _up(x, W, b, kind="ok"):
    N, _, H, W_ = x.shape
    s = W.shape[2]
    if kind == "out_in":                 # the weight read as (C_out, C_in, s, s)
        W = W.transpose(0, 1)
    if kind == "flipped":
        W = torch.flip(W, dims=(2, 3))
    if kind == "uv_swapped":
        W = W.transpose(2, 3)
    C_out = W.shape[1]
    blocks = torch.einsum("ncij,couv->noiujv", x, W)
    if kind == "blocks_outside":         # block index outermost: out[u*H + i, v*W + j]
        blocks = blocks.permute(0, 1, 3, 2, 5, 4)
    out = blocks.reshape(N, C_out, H * s, W_ * s)
    return out if kind == "no_bias" else out + b[None, :, None, None]


def _up_with(kind):
    return lambda x, W, b: _up(x, W, b, kind)


# -- 4. pixel_cross_entropy ------------------------------------------------------------------

def _ce_inputs(rng, N=None, C=None, H=None, W=None, ignored=0.2, scale=2.0):
    N, C = N or int(rng.integers(1, 3)), C or int(rng.integers(2, 6))
    H, W = H or int(rng.integers(1, 5)), W or int(rng.integers(1, 5))
    ignore_index = int(rng.choice([-1, 255, C]))
    target = rng.integers(0, C, size=(N, H, W))
    target[rng.random(size=target.shape) < ignored] = ignore_index
    target.flat[0] = 0                   # at least one kept pixel
    return {"logits": rng.normal(0.0, scale, size=(N, C, H, W)), "target": target.astype(np.int64),
            "weight": rng.uniform(0.2, 3.0, size=C), "ignore_index": ignore_index}


_rng = np.random.default_rng(1203)
_CE_FIXED = (
    _ce_inputs(_rng, N=2, C=3, H=3, W=4, ignored=0.4),
    _ce_inputs(_rng, N=1, C=4, H=2, W=3, scale=800.0),          # logits past exp's range (~709)
    {**_ce_inputs(_rng, N=1, C=1, H=2, W=2), "ignore_index": 5},  # one class: every loss is 0
)
_CE_ALL_IGNORED = _ce_inputs(np.random.default_rng(7), N=1, C=3, H=2, W=2)
_CE_ALL_IGNORED["target"][:] = _CE_ALL_IGNORED["ignore_index"]   # 0 / 0: nan, as PyTorch
_CE_FIXED += (_CE_ALL_IGNORED,)


def _ce(logits, target, weight, ignore_index, norm="weights", use_weight=True, count_ignored=False,
        dim=1, naive=False):
    if naive:
        e = torch.exp(logits)
        log_p = torch.log(e / e.sum(dim, keepdim=True))
    else:
        log_p = torch.log_softmax(logits, dim=dim)
    keep = target != ignore_index
    y = torch.where(keep, target, torch.zeros_like(target))
    nll = -log_p.gather(1, y[:, None]).squeeze(1)
    w = (weight[y] if use_weight else torch.ones_like(nll)) * keep
    num = (w * nll).sum()
    if count_ignored:                    # ignored pixels counted in the denominator (with weight 1)
        return num / (w.sum() + (~keep).sum())
    if norm == "pixels":
        return num / keep.sum()
    if norm == "sum":
        return num
    return num / w.sum()


def _ce_with(**kw):
    return lambda logits, target, weight, ignore_index: _ce(logits, target, weight, ignore_index, **kw)


# -- 5. soft_dice_loss -----------------------------------------------------------------------

def _dice_inputs(rng, N=None, C=None, H=None, W=None, smooth=None, empty=False):
    N, C = N or int(rng.integers(1, 4)), C or int(rng.integers(1, 5))
    H, W = H or int(rng.integers(1, 6)), W or int(rng.integers(1, 6))
    logits = rng.normal(0.0, 2.0, size=(N, C, H, W))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, C, size=(N, H, W))
    target = (labels[:, None] == np.arange(C)[None, :, None, None]).astype(np.float64)
    if empty and C > 1:                  # the last class absent from the first sample, and predicted nowhere
        target[0, :, :, :] = 0.0
        target[0, 0] = 1.0
        probs[0, C - 1] = 0.0
        probs[0] /= probs[0].sum(axis=0, keepdims=True)
    smooth = float(rng.choice([0.5, 1.0, 2.0])) if smooth is None else smooth
    return {"probs": probs, "target": target, "smooth": smooth}


_rng = np.random.default_rng(1204)
_DICE_FIXED = (
    _dice_inputs(_rng, N=2, C=3, H=3, W=4, smooth=1.0, empty=True),   # an empty class with p = 0: 0 / 0 unsmoothed
    _dice_inputs(_rng, N=3, C=2, H=2, W=5, smooth=1.0),
    _dice_inputs(_rng, N=1, C=1, H=1, W=1, smooth=0.5),               # one pixel, one class
)


def _dice(probs, target, smooth, kind="ok"):
    dims = {"batch": (0, 2, 3), "global": (0, 1, 2, 3)}.get(kind, (2, 3))
    p2 = probs ** 2 if kind == "squared" else probs
    t2 = target ** 2 if kind == "squared" else target
    inter = (probs * target).sum(dim=dims)
    total = p2.sum(dim=dims) + t2.sum(dim=dims)
    two = 1.0 if kind == "no_two" else 2.0
    if kind == "no_smooth":
        dice = two * inter / total
    elif kind == "jaccard":              # |A| + |B| - |A n B| in the denominator: the IoU, not Dice
        dice = (inter + smooth) / (total - inter + smooth)
    elif kind == "smooth_denominator":
        dice = two * inter / (total + smooth)
    else:
        dice = (two * inter + smooth) / (total + smooth)
    return dice.mean() if kind == "no_one_minus" else 1 - dice.mean()


def _dice_with(kind):
    return lambda probs, target, smooth: _dice(probs, target, smooth, kind)


# -- 6. iou_from_confusion -------------------------------------------------------------------

def _iou_inputs(rng):
    C = int(rng.integers(2, 7))
    rank = int(rng.integers(1, 4))
    shape = tuple(int(d) for d in rng.integers(1, 6, size=rank))
    shape = shape[:-1] + (shape[-1] + 3,)                       # at least 4 pixels per row
    target = rng.integers(0, C, size=shape)
    pred = np.where(rng.random(size=shape) < 0.6, target, rng.integers(0, C, size=shape))
    if C > 2 and rng.random() < 0.5:     # a digit class absent from both maps: IoU nan, skipped
        gone = int(rng.integers(1, C))
        target[target == gone] = 0
        pred[pred == gone] = 0
    target.flat[0], pred.flat[0] = 1, 0  # the maps are never identical
    return {"pred": pred.astype(np.int64), "target": target.astype(np.int64), "num_classes": C}


_IOU_FIXED = (
    # class 3 never true nor predicted (nan, skipped); class 2 predicted, never true (IoU 0); not symmetric
    {"pred": np.array([[0, 1, 1, 2], [0, 0, 1, 1], [2, 0, 0, 1]]),
     "target": np.array([[0, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 0]]), "num_classes": 4},
    # background mostly right, the digits poorly: background IoU far above the digits'
    {"pred": np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 0]),
     "target": np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2]), "num_classes": 3},
    # only background anywhere: no digit class to average (nan)
    {"pred": np.zeros((2, 3), dtype=np.int64), "target": np.zeros((2, 3), dtype=np.int64), "num_classes": 2},
)


def _iou(pred, target, num_classes, kind="ok"):
    t, p = np.asarray(target).ravel(), np.asarray(pred).ravel()
    cm = np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    if kind == "transposed":
        cm = cm.T
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    if kind == "recall":
        union = cm.sum(axis=1).astype(np.float64)
    if kind == "no_minus_tp":
        union = (cm.sum(axis=0) + cm.sum(axis=1)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)
    if kind == "absent_zero":
        iou = np.where(np.isnan(iou), 0.0, iou)
    first = 0 if kind == "background" else 1
    part = iou[first:]
    miou = float(np.mean(part[~np.isnan(part)])) if np.any(~np.isnan(part)) else float("nan")
    if kind == "pooled":                 # IoU of all digit pixels pooled: sum tp / sum union
        u = union[1:]
        miou = float(tp[1:].sum() / u.sum()) if u.sum() > 0 else float("nan")
    if kind == "pixel_accuracy":
        miou = float(tp.sum() / cm.sum())
    return cm, iou, miou


def _iou_with(kind):
    return lambda pred, target, num_classes: _iou(pred, target, num_classes, kind)


# -- 7. loss_scale_step ----------------------------------------------------------------------

def _scale_inputs(rng):
    P = int(rng.integers(1, 7))
    scale = float(2.0 ** int(rng.integers(0, 17)))
    interval = int(rng.integers(1, 6))
    good = int(rng.integers(0, interval))
    grads = rng.normal(0.0, 1.0, size=P) * scale
    r = rng.random()
    if r < 0.3:
        grads[int(rng.integers(P))] = np.inf
    elif r < 0.45:
        grads[int(rng.integers(P))] = np.nan
    return {"grads": grads, "scale": scale, "good_steps": good, "growth_interval": interval}


_SCALE_FIXED = (
    {"grads": np.array([3.0, -np.inf, 1.0]), "scale": 1024.0, "good_steps": 2, "growth_interval": 4},  # inf, no nan
    {"grads": np.array([512.0, -256.0]), "scale": 256.0, "good_steps": 2, "growth_interval": 3},       # grows now
    {"grads": np.array([512.0, -256.0, 64.0]), "scale": 256.0, "good_steps": 0, "growth_interval": 3},
    {"grads": np.array([1.0]), "scale": 8.0, "good_steps": 0, "growth_interval": 1},                   # every step grows
    {"grads": np.array([np.nan, 2.0]), "scale": 4.0, "good_steps": 1, "growth_interval": 5},
)


def _scale(grads, scale, good_steps, growth_interval, kind="ok"):
    bad = np.isnan(grads).any() if kind == "nan_only" else not np.all(np.isfinite(grads))
    if bad:
        new = scale * 2.0 if kind == "grow_on_overflow" else scale * 0.5
        applied = grads / scale if kind == "apply_anyway" else np.zeros_like(grads)
        return applied, kind == "apply_anyway", new, (good_steps if kind == "keep_count" else 0)
    applied = grads if kind == "not_unscaled" else grads / scale
    if kind == "late" and good_steps == growth_interval:   # compared before counting this step
        return applied, True, scale * 2.0, 0
    good = good_steps + 1
    if good == growth_interval and kind != "late":
        return applied, True, scale * 2.0, (good if kind == "no_reset" else 0)
    return applied, True, scale, good


def _scale_with(kind):
    return lambda grads, scale, good_steps, growth_interval: _scale(grads, scale, good_steps, growth_interval, kind)


EXERCISES = [
    Exercise(
        "unet_sizes", _sizes_inputs, fixed=_SIZES_FIXED, visible=2, hidden=8, dtype="int",
        mistakes={
            "one convolution per level: each U-Net level (and the bottleneck) has TWO convolutions, each "
            "changing the side by 2p - k + 1": _sizes_with(convs=1),
            "max pooling rounds down: floor(s / 2) for an odd side (PyTorch's MaxPool2d default)":
                _sizes_with(pool="ceil"),
            "the padding counted on one side only: a convolution with padding p pads both sides, s + 2p - k + 1":
                _sizes_with(pad_once=True),
            "the padding is ignored: a convolution with padding p maps a side s to s + 2p - k + 1":
                _sizes_with(no_pad=True),
            "the bottleneck's two convolutions are missing: after the last pooling they change the side too":
                _sizes_with(bottleneck=False),
            "the decoder starts from the skip's side: the skip is CROPPED to the up-convolution's side "
            "(2 x the level below), so concatenating does not change the side":
                _sizes_with(skip_size=True),
            "the decoder sizes are in the wrong order: list them as the data meets them, deepest level first, "
            "the output last": _sizes_with(reverse=True),
        },
    ),
    Exercise(
        "crop_and_concat", _crop_inputs, fixed=_CROP_FIXED, pure=True, framework="torch",
        mistakes={
            "cropped from the top-left corner: crop the CENTRE, top = (H_s - H_u) // 2, left = (W_s - W_u) // 2":
                _crop_with(where="corner"),
            "on an odd difference the extra row (column) is dropped at the bottom (right): top = (H_s - H_u) // 2, "
            "rounded down": _crop_with(where="ceil"),
            "cropped from the bottom-right corner: crop the centre": _crop_with(where="end"),
            "the up-sampled map comes first: the text asks for the cropped skip's channels first, then up's":
                _crop_with(order="up_first"),
            "rows and columns mixed up: the vertical offset comes from the heights (axis 2), the horizontal one "
            "from the widths (axis 3)": _crop_with(swap=True),
        },
    ),
    Exercise(
        "up_conv", _up_inputs, fixed=_UP_FIXED, pure=True, framework="torch",
        forbidden=("torch.nn.functional.conv_transpose2d", "torch.nn.ConvTranspose2d"),
        mistakes={
            "the weight read as (C_out, C_in, s, s): transposed convolutions in PyTorch store (C_in, C_out, s, s)":
                _up_with("out_in"),
            "the kernel is flipped: output block (i, j) is x[:, :, i, j] times W[c, o] as it is, no flip":
                _up_with("flipped"),
            "the kernel's rows and columns swapped: out[.., s*i + u, s*j + v] uses W[c, o, u, v] (u the row)":
                _up_with("uv_swapped"),
            "the blocks are laid out wrong: the s x s block of input pixel (i, j) is out[s*i : s*i + s, "
            "s*j : s*j + s] (reshape (N, C_out, H, s, W, s), not (N, C_out, s, H, s, W))": _up_with("blocks_outside"),
            "the bias is missing: add b[o] to every output pixel of channel o": _up_with("no_bias"),
        },
    ),
    Exercise(
        "pixel_cross_entropy", _ce_inputs, fixed=_CE_FIXED, pure=True, framework="torch",
        forbidden=("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss",
                   "torch.nn.CrossEntropyLoss", "torch.nn.NLLLoss"),
        mistakes={
            "divided by the number of kept pixels: with class weights the mean divides by the SUM OF THE WEIGHTS "
            "of the kept pixels' true classes": _ce_with(norm="pixels"),
            "summed, not averaged: divide by the sum of the weights of the kept pixels' true classes":
                _ce_with(norm="sum"),
            "the class weights are not used: each kept pixel's loss is multiplied by weight[its true class]":
                _ce_with(use_weight=False),
            "ignored pixels counted in the denominator: they drop out of the sum and of the normaliser":
                _ce_with(count_ignored=True),
            "softmax over the wrong axis: the classes are axis 1 of (N, C, H, W)": _ce_with(dim=2),
            "exp overflows for large logits: use log_softmax (or subtract the maximum over the classes first)":
                _ce_with(naive=True),
        },
    ),
    Exercise(
        "soft_dice_loss", _dice_inputs, fixed=_DICE_FIXED, pure=True, framework="torch",
        mistakes={
            "no smoothing: a class absent from a sample and predicted nowhere gives 0 / 0; add `smooth` to the "
            "numerator and to the denominator": _dice_with("no_smooth"),
            "smooth only in the denominator: add it to the numerator too, so that an empty mask predicted empty "
            "scores Dice 1": _dice_with("smooth_denominator"),
            "the factor 2 is missing: Dice = 2|A ∩ B| / (|A| + |B|)": _dice_with("no_two"),
            "one Dice per class over the whole batch: sum over H and W only, one Dice per sample and class":
                _dice_with("batch"),
            "one Dice for everything: sum over H and W only, one Dice per sample and class, then the mean":
                _dice_with("global"),
            "that is the (soft) IoU: Dice's denominator is sum p + sum t, without subtracting the intersection, "
            "and its numerator has the factor 2": _dice_with("jaccard"),
            "that is the mean Dice coefficient, not the loss: return 1 - mean Dice (minimising it must "
            "increase the overlap)": _dice_with("no_one_minus"),
            "squared terms in the denominator (the V-Net variant): the text asks for sum p + sum t":
                _dice_with("squared"),
        },
    ),
    Exercise(
        "iou_from_confusion", _iou_inputs, fixed=_IOU_FIXED, pure=True, dtype=("int", "float", "float"),
        mistakes={
            "the confusion matrix is transposed: rows are the TRUE classes, columns the predicted ones":
                _iou_with("transposed"),
            "that is the recall, tp / (pixels of the true class): IoU divides by the union, true + predicted - tp":
                _iou_with("recall"),
            "the intersection is counted twice in the union: union = true + predicted - tp":
                _iou_with("no_minus_tp"),
            "a class that is neither true nor predicted has no IoU (nan): skip it, don't count it as 0":
                _iou_with("absent_zero"),
            "the background is counted in the mean: average over the digit classes 1..C-1 only":
                _iou_with("background"),
            "IoU averaged over pixels (all digit pixels pooled, sum tp / sum union): the mean IoU averages the "
            "per-class IoUs, each class counting once": _iou_with("pooled"),
            "that is the pixel accuracy (diagonal / all pixels): the mean IoU averages per-class IoUs":
                _iou_with("pixel_accuracy"),
        },
    ),
    Exercise(
        "loss_scale_step", _scale_inputs, fixed=_SCALE_FIXED, pure=True, dtype=("float", "bool", "float", "int"),
        mistakes={
            "the gradients are not unscaled: they are gradients of scale * loss, divide them by scale":
                _scale_with("not_unscaled"),
            "only nan is checked: an inf gradient (an overflow) must skip the step too (np.isfinite)":
                _scale_with("nan_only"),
            "the scale grows on an overflow: it is HALVED when a gradient is inf or nan": _scale_with("grow_on_overflow"),
            "the step is taken despite inf/nan gradients: skip it (return zeros and stepped False)":
                _scale_with("apply_anyway"),
            "the count of good steps is not reset after an overflow: it restarts at 0": _scale_with("keep_count"),
            "the count is not reset when the scale grows: after doubling it restarts at 0": _scale_with("no_reset"),
            "the scale grows one step late: count this step first (good_steps + 1), then compare with "
            "growth_interval": _scale_with("late"),
        },
    ),
]

CHALLENGES = [
    # the reference (the solution's fit_scenes, 4 epochs of a 29,571-parameter U-Net, ~11 CPU s): mean IoU 0.413 on
    # the validation scenes, 0.378 on the held-out scenes; predicting background everywhere scores 0.
    Challenge("scenes_unet", task="scenes_segmenter", heldout="scenes_test.npz", metric="mean IoU",
              full=0.35, zero=0.15, max_parameters=100_000, cpu_seconds=40, allowance_seconds=10),
]
