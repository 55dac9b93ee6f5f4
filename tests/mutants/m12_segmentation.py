"""Plausible bugs in 12_segmentation's exercises, written from the released text as a student might
(not copies of the mistakes catalogued in source_notebooks/12_segmentation/cases.py).

Read by tests/course/test_mutants.py: every mutant must lose its exercise's points, and most must get a
first feedback line that names a likely mistake. The grader never reads this file. Arguments
arrive as numpy arrays and plain numbers (unet_sizes, iou_from_confusion, loss_scale_step) or torch
tensors (the others), as the sandbox gives them.
"""
import numpy as np
import torch


# -- exercise 1: unet_sizes ----------------------------------------------------------------------

def _sizes(size, depth, kernel, padding, bug=None):
    out, s = [], size
    conv = (lambda s: s - kernel + 1) if bug == "no_padding" else (lambda s: s + 2 * padding - kernel + 1)
    for _ in range(depth):
        s = conv(conv(s))
        out.append(s)
        s = round(s / 2) if bug == "round" else s // 2      # Python's round: half to even
    s = conv(conv(s))
    out.append(s)
    for _ in range(depth):
        s = conv(conv(2 * s)) if bug != "up_after" else 2 * conv(conv(s))
        out.append(s)
    return np.array(out)


# -- exercise 2: crop_and_concat -----------------------------------------------------------------

def _crop(skip, up, bug=None):
    H, W = up.shape[2], up.shape[3]
    top, left = (skip.shape[2] - H) // 2, (skip.shape[3] - W) // 2
    if bug == "round_half":                       # int((d) / 2 + 0.5): rounds the odd difference up
        top, left = int((skip.shape[2] - H) / 2 + 0.5), int((skip.shape[3] - W) / 2 + 0.5)
    if bug == "same_offset":                      # one offset for both axes
        left = top
    c = skip[:, :, top:top + H, left:left + W]
    return torch.cat([up, c], 1) if bug == "order" else torch.cat([c, up], 1)


# -- exercise 3: up_conv -------------------------------------------------------------------------

def _up(x, W, b, bug=None):
    N, C_in, H, Wd = x.shape
    s = W.shape[2]
    out = torch.zeros(N, W.shape[1], s * H, s * Wd, dtype=x.dtype)
    for i in range(H):
        for j in range(Wd):
            block = torch.einsum("nc,couv->nouv", x[:, :, i, j], W)
            if bug == "transposed_block":
                block = block.transpose(2, 3)
            if bug == "stride_one":               # blocks placed one pixel apart, overlapping: summed
                out[:, :, i:i + s, j:j + s] += block
            else:
                out[:, :, s * i:s * i + s, s * j:s * j + s] = block
    return out + (0 if bug == "no_bias" else b[None, :, None, None])


# -- exercise 4: pixel_cross_entropy -------------------------------------------------------------

def _ce(logits, target, weight, ignore_index, bug=None):
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    keep = target != ignore_index
    y = target.clone()
    y[~keep] = 0
    nll = -torch.gather(log_p, 1, y.unsqueeze(1)).squeeze(1)
    w = weight[y] * keep
    if bug == "mean_of_weighted":                 # mean over kept pixels of w * nll
        return (w * nll).sum() / keep.sum()
    if bug == "sum":
        return (w * nll).sum()
    if bug == "predicted_class_weight":           # weight of the predicted class, not the true one
        wp = weight[logits.argmax(1)] * keep
        return (wp * nll).sum() / wp.sum()
    if bug == "prob_not_log":
        p = torch.gather(torch.softmax(logits, 1), 1, y.unsqueeze(1)).squeeze(1)
        return (w * (1 - p)).sum() / w.sum()
    return (w * nll).sum() / w.sum()


# -- exercise 5: soft_dice_loss ------------------------------------------------------------------

def _dice(probs, target, smooth, bug=None):
    inter = (probs * target).sum(dim=(2, 3))
    total = probs.sum(dim=(2, 3)) + target.sum(dim=(2, 3))
    if bug == "union":                            # |A| + |B| - |A n B| in the denominator (that is IoU)
        d = (inter + smooth) / (total - inter + smooth)
    else:
        d = (2 * inter + smooth) / (total + smooth)
    if bug == "no_one_minus":
        return d.mean()
    if bug == "sum_not_mean":
        return 1 - d.sum()
    return 1 - d.mean()


# -- exercise 6: iou_from_confusion --------------------------------------------------------------

def _iou(pred, target, num_classes, bug=None):
    C = num_classes
    cm = np.zeros((C, C), dtype=np.int64)
    for t, p in zip(np.ravel(target), np.ravel(pred)):
        cm[t, p] += 1
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    if bug == "precision":
        union = cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / union
    if bug == "nan_to_one":                       # an absent class counted as perfect
        iou = np.where(np.isnan(iou), 1.0, iou)
    digits = iou if bug == "with_background" else iou[1:]
    miou = np.nanmean(digits) if np.any(~np.isnan(digits)) else np.nan
    if bug == "float_cm":
        cm = cm / cm.sum()
    return cm, iou, float(miou)


# -- exercise 7: loss_scale_step -----------------------------------------------------------------

def _scale(grads, scale, good_steps, growth_interval, bug=None):
    if np.isinf(grads).any() or np.isnan(grads).any():
        if bug == "divide_by_two_grads":          # halves the gradients instead of the scale
            return grads / 2, False, scale, 0
        return np.zeros_like(grads), False, (scale / 4 if bug == "quarter" else scale / 2), 0
    good_steps += 1
    g = grads * scale if bug == "multiply" else grads / scale
    if good_steps >= growth_interval:
        new = scale * 2
        if bug == "unscale_new":                  # unscaled by the new scale
            g = grads / new
        return g, True, new, 0
    return g, True, scale, good_steps


def _bug(f, bug):
    return lambda *args: f(*args, bug=bug)


MUTANTS = [
    ("unet_sizes", "convolutions without their padding", _bug(_sizes, "no_padding")),
    ("unet_sizes", "pooling with Python's round", _bug(_sizes, "round")),
    ("unet_sizes", "decoder doubles after its convolutions", _bug(_sizes, "up_after")),
    ("crop_and_concat", "odd difference rounded up", _bug(_crop, "round_half")),
    ("crop_and_concat", "the row offset used for the columns too", _bug(_crop, "same_offset")),
    ("crop_and_concat", "up first", _bug(_crop, "order")),
    ("up_conv", "each block transposed", _bug(_up, "transposed_block")),
    ("up_conv", "blocks placed with stride 1", _bug(_up, "stride_one")),
    ("up_conv", "bias forgotten", _bug(_up, "no_bias")),
    ("pixel_cross_entropy", "weighted losses averaged over the kept pixels", _bug(_ce, "mean_of_weighted")),
    ("pixel_cross_entropy", "summed, not averaged", _bug(_ce, "sum")),
    ("pixel_cross_entropy", "weights of the predicted class", _bug(_ce, "predicted_class_weight")),
    ("pixel_cross_entropy", "1 - p instead of -log p", _bug(_ce, "prob_not_log")),
    ("soft_dice_loss", "IoU's denominator", _bug(_dice, "union")),
    ("soft_dice_loss", "returns the Dice, not the loss", _bug(_dice, "no_one_minus")),
    ("soft_dice_loss", "sums the Dice over samples and classes", _bug(_dice, "sum_not_mean")),
    ("iou_from_confusion", "precision instead of IoU", _bug(_iou, "precision")),
    ("iou_from_confusion", "absent classes counted as IoU 1", _bug(_iou, "nan_to_one")),
    ("iou_from_confusion", "background in the mean", _bug(_iou, "with_background")),
    ("iou_from_confusion", "confusion matrix as fractions", _bug(_iou, "float_cm")),
    ("loss_scale_step", "gradients halved on overflow", _bug(_scale, "divide_by_two_grads")),
    ("loss_scale_step", "scale quartered on overflow", _bug(_scale, "quarter")),
    ("loss_scale_step", "gradients multiplied by the scale", _bug(_scale, "multiply")),
    ("loss_scale_step", "unscaled by the new scale when it grows", _bug(_scale, "unscale_new")),
]
