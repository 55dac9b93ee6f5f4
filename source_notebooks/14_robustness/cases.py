"""Graded exercises of 14_robustness: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected outputs come from the
reference (the solution cells of 14_robustness.ipynb). Every exercise but the class activation map is a
torch one on the notebook's ``small_classifier(W1, b1, W2, b2)``: Linear -> BatchNorm1d -> ReLU -> Linear,
built in train mode (as a model comes out of training), so that forgetting ``model.eval()`` shows: in
train mode BatchNorm normalises with the batch's own statistics.

How the cases tell the mistakes apart:
- images: pixels in [0, 1] with some exactly 0 and exactly 1 (as on digits), so that a missing clip to
  [0, 1] shows; N >= 2 in the fixed cases (train-mode BatchNorm needs two rows; N = 1 is legal in eval
  mode and drawn too); K >= 2 classes for the attacks (one class has a zero loss gradient).
- FGSM / PGD: the step's sign, the sign of the gradient rather than the gradient (its size is not eps),
  the loss rather than the true class's logit (their gradients' signs differ wherever another class has a
  non-negligible probability: weights of scale 1.5 make the softmax far from one-hot).
- PGD: x_adv drawn on and near the ball's boundary, alpha up to eps, so that a step without projection
  leaves the ball; x near 0 and 1 so that clipping only the perturbation leaves [0, 1].
- targeted: the target differs from the arg-max where it can (fixed), so ascending and descending differ.
- saliency / IG: c not the arg-max (fixed), steps = 1 (a left Riemann sum is then the gradient at the
  baseline), a non-zero baseline (fixed) so that (x - baseline) differs from x.
- CAM: K == C in a fixed case (a transposed weight matrix keeps the shape), maps with negative values.

Tolerances: the defaults (rtol 1e-4, atol 1e-6); the attacks' outputs are x +- eps or a clip, exact up
to float64 rounding; a sign of a gradient is the same in float32 and float64 unless the gradient is
within ~1e-7 of 0 relative to its scale, which the drawn weights make improbable (MANY_SEEDS checks).
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autograder.authoring.exercises import Exercise


def _model(W1, b1, W2, b2, train=False):
    """The notebook's small_classifier, in eval mode unless ``train``."""
    H, D = W1.shape
    K = W2.shape[0]
    model = nn.Sequential(nn.Linear(D, H), nn.BatchNorm1d(H), nn.ReLU(), nn.Linear(H, K)).to(W1.dtype)
    with torch.no_grad():
        model[0].weight.copy_(W1)
        model[0].bias.copy_(b1)
        model[3].weight.copy_(W2)
        model[3].bias.copy_(b2)
    return model.train(train)


def _weights(rng, D, H=None, K=None, kmin=2):
    H = H or int(rng.integers(1, 7))
    K = K or int(rng.integers(kmin, 6))
    return {"W1": rng.normal(0, 1.5, size=(H, D)), "b1": rng.normal(0, 0.5, size=H),
            "W2": rng.normal(0, 1.5, size=(K, H)), "b2": rng.normal(0, 0.5, size=K)}


def _images(rng, N, D):
    x = rng.uniform(0, 1, size=(N, D))
    edge = rng.uniform(size=(N, D))
    x[edge < 0.2] = 0.0
    x[edge > 0.85] = 1.0
    return x


def _grad(model, x, y, what="loss"):
    """d/dx of sum_n (cross-entropy(f(x_n), y_n) | f(x_n)[y_n] | softmax(f(x_n))[y_n])."""
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    if what == "loss":
        val = F.cross_entropy(out, y, reduction="sum")
    elif what == "logit":
        val = out.gather(1, y[:, None]).sum()
    else:
        val = out.softmax(1).gather(1, y[:, None]).sum()
    return torch.autograd.grad(val, x)[0]


# -- 1. FGSM ----------------------------------------------------------------------------------------

def _fgsm_inputs(rng, N=None, D=None):
    N = N or int(rng.integers(1, 6))
    D = D or int(rng.integers(1, 11))
    w = _weights(rng, D)
    return {"x": _images(rng, N, D), "y": rng.integers(0, w["W2"].shape[0], size=N),
            "eps": float(rng.uniform(0.05, 0.3)), **w}


def _fixed_fgsm():
    rng = np.random.default_rng(1401)
    cases = [_fgsm_inputs(rng, N=4, D=6), _fgsm_inputs(rng, N=3, D=9), _fgsm_inputs(rng, N=2, D=1)]
    zero = _fgsm_inputs(rng, N=3, D=5)
    zero["eps"] = 0.0                       # eps = 0: the image itself
    return tuple(cases) + (zero,)


def _fgsm(x, y, eps, W1, b1, W2, b2, what="loss", sign=1.0, clip=True, train=False, use_sign=True):
    g = _grad(_model(W1, b1, W2, b2, train=train), x, y, what)
    out = x + sign * eps * (g.sign() if use_sign else g)
    return out.clamp(0, 1) if clip else out


# -- 2. a PGD step ----------------------------------------------------------------------------------

def _pgd_inputs(rng, N=None, D=None):
    N = N or int(rng.integers(1, 6))
    D = D or int(rng.integers(1, 11))
    w = _weights(rng, D)
    x = _images(rng, N, D)
    eps = float(rng.uniform(0.05, 0.3))
    # on the boundary (+-eps) or inside the ball, then clipped: a step of alpha leaves the ball somewhere
    offset = eps * rng.choice([-1.0, 1.0, 0.0], size=(N, D)) + rng.uniform(-eps, eps, size=(N, D)) * (rng.uniform(size=(N, D)) < 0.3)
    x_adv = np.clip(x + np.clip(offset, -eps, eps), 0, 1)
    return {"x_adv": x_adv, "x": x, "y": rng.integers(0, w["W2"].shape[0], size=N), "eps": eps,
            "alpha": float(rng.uniform(0.3, 1.0) * eps), **w}


def _fixed_pgd():
    rng = np.random.default_rng(1402)
    # seed 1406: x_adv far enough from x that the gradient's sign differs at x and at x_adv (5 entries)
    return (_pgd_inputs(rng, N=4, D=7), _pgd_inputs(rng, N=3, D=4), _pgd_inputs(rng, N=2, D=10),
            _pgd_inputs(np.random.default_rng(1406), N=4, D=7))


def _pgd(x_adv, x, y, eps, alpha, W1, b1, W2, b2, project=True, clip_image=True, step=None, at_clean=False,
         train=False, sign=1.0):
    model = _model(W1, b1, W2, b2, train=train)
    g = _grad(model, x if at_clean else x_adv, y)
    out = x_adv + sign * (alpha if step is None else step) * g.sign()
    if project:
        out = torch.min(torch.max(out, x - eps), x + eps)
    return out.clamp(0, 1) if clip_image else out


# -- 3. targeted FGSM -------------------------------------------------------------------------------

def _targeted_inputs(rng, N=None, D=None):
    d = _fgsm_inputs(rng, N, D)
    d["target"] = d.pop("y")
    return {"x": d["x"], "target": d["target"], "eps": d["eps"], "W1": d["W1"], "b1": d["b1"],
            "W2": d["W2"], "b2": d["b2"]}


def _np_logits(d):
    """The eval-mode model's logits in numpy (the fixed cases are made at import: no torch work there, so
    that a process that loads this file and then forks never holds torch's thread pool)."""
    h = (d["x"] @ d["W1"].T + d["b1"]) / np.sqrt(1.0 + 1e-5)     # BatchNorm1d, eval: running mean 0, var 1
    return np.maximum(h, 0.0) @ d["W2"].T + d["b2"]


def _fixed_targeted():
    rng = np.random.default_rng(1403)
    out = []
    for N, D in ((4, 6), (3, 8), (2, 3)):
        d = _targeted_inputs(rng, N, D)
        d["target"] = (_np_logits(d).argmax(1) + 1) % d["W2"].shape[0]   # never the class the model already picks
        out.append(d)
    return tuple(out)


def _targeted(x, target, eps, W1, b1, W2, b2, sign=-1.0, what="loss", clip=True, train=False):
    g = _grad(_model(W1, b1, W2, b2, train=train), x, target, what)
    out = x + sign * eps * g.sign()
    return out.clamp(0, 1) if clip else out


# -- 4. saliency ------------------------------------------------------------------------------------

def _saliency_inputs(rng, N=None, D=None):
    N = N or int(rng.integers(1, 6))
    D = D or int(rng.integers(1, 11))
    w = _weights(rng, D, kmin=1)
    return {"x": _images(rng, N, D), "c": rng.integers(0, w["W2"].shape[0], size=N), **w}


def _not_argmax(d, key="c"):
    d[key] = (_np_logits(d).argmax(1) + 1) % d["W2"].shape[0]
    return d


def _fixed_saliency():
    rng = np.random.default_rng(1404)
    return tuple(_not_argmax(_saliency_inputs(rng, N, D)) for N, D in ((4, 6), (3, 9), (2, 2)))


def _saliency(x, c, W1, b1, W2, b2, what="logit", absolute=True, train=False, argmax=False):
    model = _model(W1, b1, W2, b2, train=train)
    if argmax:
        c = model(x).argmax(1)
    g = _grad(model, x, c, what)
    return g.abs() if absolute else g


# -- 5. integrated gradients ------------------------------------------------------------------------

def _ig_inputs(rng, N=None, D=None, steps=None):
    d = _saliency_inputs(rng, N, D)
    N, D = d["x"].shape
    baseline = np.zeros((N, D)) if rng.uniform() < 0.4 else rng.uniform(0, 0.5, size=(N, D))
    return {"x": d["x"], "baseline": baseline, "c": d["c"], "steps": steps or int(rng.integers(1, 9)),
            "W1": d["W1"], "b1": d["b1"], "W2": d["W2"], "b2": d["b2"]}


def _fixed_ig():
    rng = np.random.default_rng(1405)
    cases = [_not_argmax(_ig_inputs(rng, 3, 6, steps=5)), _not_argmax(_ig_inputs(rng, 2, 4, steps=1)),
             _not_argmax(_ig_inputs(rng, 4, 8, steps=12))]
    for d in cases:
        d["baseline"] = np.full_like(d["x"], 0.25)   # a non-zero baseline: (x - baseline) differs from x
    return tuple(cases)


def _ig(x, baseline, c, steps, W1, b1, W2, b2, factor=True, ks=None, what="logit", divide=True):
    model = _model(W1, b1, W2, b2)
    ks = range(1, steps + 1) if ks is None else ks(steps)
    total = torch.zeros_like(x)
    for k in ks:
        total = total + _grad(model, baseline + (k / steps) * (x - baseline), c, what)
    if divide:
        total = total / steps
    return (x - baseline) * total if factor else total


# -- 6. class activation map ------------------------------------------------------------------------

def _cam_inputs(rng, N=None, C=None, H=None, W=None, K=None):
    N = N or int(rng.integers(1, 5))
    C = C or int(rng.integers(1, 7))
    H = H or int(rng.integers(1, 6))
    W = W or int(rng.integers(1, 6))
    K = K or int(rng.integers(1, 6))
    return {"features": np.maximum(rng.normal(size=(N, C, H, W)), 0) * rng.uniform(0.5, 2.0),
            "weights": rng.normal(size=(K, C)), "c": rng.integers(0, K, size=N)}


def _fixed_cam():
    rng = np.random.default_rng(1406)
    square = _cam_inputs(rng, N=3, C=4, H=3, W=5, K=4)    # K == C: a transposed weight matrix keeps the shape
    other = _cam_inputs(rng, N=2, C=3, H=4, W=4, K=5)
    one = _cam_inputs(rng, N=1, C=1, H=1, W=1, K=1)
    for d in (square, other):                             # c not the class the pooled features score best
        scores = d["features"].mean(axis=(2, 3)) @ d["weights"].T
        d["c"] = (scores.argmax(1) + 1) % d["weights"].shape[0]
    return (square, other, one)


def _cam(features, weights, c, mode="ok"):
    if mode == "transposed":
        w = weights.T[c]
    elif mode == "argmax":
        w = weights[(features.mean(axis=(2, 3)) @ weights.T).argmax(1)]
    else:
        w = weights[c]
    m = np.einsum("nchw,nc->nhw", features, w)
    if mode == "mean":
        m = m / features.shape[1]
    elif mode == "relu":
        m = np.maximum(m, 0)
    elif mode == "normalised":
        lo = m.min(axis=(1, 2), keepdims=True)
        hi = m.max(axis=(1, 2), keepdims=True)
        m = (m - lo) / np.where(hi > lo, hi - lo, 1.0)
    return m


_EVAL = ("model.eval() forgotten: small_classifier returns the model in train mode, where BatchNorm "
         "normalises with the batch's own statistics; call .eval() before attacking or explaining it")

EXERCISES = [
    Exercise(
        "fgsm", _fgsm_inputs, fixed=_fixed_fgsm(), visible=2, hidden=6, framework="torch", pure=True,
        mistakes={
            "the gradient of the true class's logit instead of the loss: FGSM ascends the cross-entropy "
            "loss(f(x), y)": lambda *a: _fgsm(*a, what="logit"),
            "the true class's logit descended instead of the loss ascended (x - eps sign(grad f_y)): close, "
            "but the cross-entropy also counts the other classes; ascend loss(f(x), y)":
                lambda *a: _fgsm(*a, what="logit", sign=-1.0),
            _EVAL: lambda *a: _fgsm(*a, train=True),
            "not clipped to [0, 1]: an attacked image must stay a valid image (clamp after the step)":
                lambda *a: _fgsm(*a, clip=False),
            "the step goes down the loss (x - eps sign(grad)): an untargeted attack ASCENDS the loss of "
            "the true label": lambda *a: _fgsm(*a, sign=-1.0),
            "the gradient itself instead of its sign: FGSM moves every pixel by exactly eps, x + eps sign(grad)":
                lambda *a: _fgsm(*a, use_sign=False),
        },
    ),
    Exercise(
        "pgd_step", _pgd_inputs, fixed=_fixed_pgd(), visible=2, hidden=6, framework="torch", pure=True,
        builds_on=(),
        mistakes={
            "no projection after the step (or one around x_adv, which changes nothing): clip x_adv into "
            "[x - eps, x + eps], the L-infinity ball around the CLEAN image": lambda *a: _pgd(*a, project=False),
            "the perturbation clipped to [-eps, eps] but not the image: clip the result to [0, 1] too":
                lambda *a: _pgd(*a, clip_image=False),
            "a step of eps instead of alpha: PGD takes small steps of alpha and projects":
                lambda *a: _pgd(*a, step=a[3]),
            "the gradient taken at the clean x: each PGD step uses the gradient at the current x_adv":
                lambda *a: _pgd(*a, at_clean=True),
            "the step goes down the loss: PGD ascends the loss of the true label":
                lambda *a: _pgd(*a, sign=-1.0),
            _EVAL: lambda *a: _pgd(*a, train=True),
        },
    ),
    Exercise(
        "targeted_fgsm", _targeted_inputs, fixed=_fixed_targeted(), visible=2, hidden=6, framework="torch",
        pure=True,
        mistakes={
            "the sign of a targeted step: move TOWARD the target by DESCENDING the target's loss "
            "(x - eps sign(grad)); ascending it pushes away from the target": lambda *a: _targeted(*a, sign=1.0),
            "the gradient of the target's logit instead of its loss: descend cross-entropy(f(x), target)":
                lambda *a: _targeted(*a, what="logit", sign=1.0),
            "not clipped to [0, 1]: an attacked image must stay a valid image": lambda *a: _targeted(*a, clip=False),
            _EVAL: lambda *a: _targeted(*a, train=True),
        },
    ),
    Exercise(
        "saliency", _saliency_inputs, fixed=_fixed_saliency(), visible=2, hidden=6, framework="torch", pure=True,
        mistakes={
            "the gradient of the loss instead of the class's logit: saliency is |d f_c(x) / dx|, the "
            "class score before the softmax": lambda *a: _saliency(*a, what="loss"),
            "the gradient of the softmax probability instead of the logit f_c": lambda *a: _saliency(*a, what="prob"),
            "no absolute value: the saliency map is |gradient|": lambda *a: _saliency(*a, absolute=False),
            "the predicted class (arg-max) instead of the given class c": lambda *a: _saliency(*a, argmax=True),
            _EVAL: lambda *a: _saliency(*a, train=True),
        },
    ),
    Exercise(
        "integrated_gradients", _ig_inputs, fixed=_fixed_ig(), visible=2, hidden=6, framework="torch", pure=True,
        mistakes={
            "attributions without the (x - baseline) factor: IG multiplies the average gradient by "
            "(x - baseline)": lambda *a: _ig(*a, factor=False),
            "a left Riemann sum (k = 0 .. steps - 1): the text's sum runs over k = 1 .. steps":
                lambda *a: _ig(*a, ks=lambda m: range(0, m)),
            "the gradients summed, not averaged: divide their sum by steps": lambda *a: _ig(*a, divide=False),
            "the gradient of the loss instead of the class's logit f_c": lambda *a: _ig(*a, what="loss"),
        },
    ),
    Exercise(
        "class_activation_map", _cam_inputs, fixed=_fixed_cam(), visible=2, hidden=6, pure=True,
        mistakes={
            "weights transposed: weights has shape (K, C), its row c holds class c's weight of each channel":
                lambda f, w, c: _cam(f, w, c, mode="transposed"),
            "the channels averaged: the map is the weighted SUM over channels, sum_k w[c, k] F[k]":
                lambda f, w, c: _cam(f, w, c, mode="mean"),
            "a ReLU on the map: return the raw map (its negative values are evidence against the class)":
                lambda f, w, c: _cam(f, w, c, mode="relu"),
            "the map rescaled to [0, 1]: return the raw map (rescale only to display it)":
                lambda f, w, c: _cam(f, w, c, mode="normalised"),
            "the class the network predicts instead of the given class c":
                lambda f, w, c: _cam(f, w, c, mode="argmax"),
        },
    ),
]

# --------------------------------------------------------------------------- #
# The challenge (helpers/grading/tasks/robustness.py): a digit classifier scored on the 1,000 held-out
# digits clean and attacked (transfer PGD, eps = 0.2, against a secret surrogate), by the mean of the two
# accuracies. Measured through the CLI (tests/course/test_robustness_challenge.py): the reference (fast
# adversarial training, 4 epochs) 87.1 % (clean 96.4 %, attacked 77.7 %), a plain CNN of 05's kind (3 epochs,
# no attack) 66.1 % (clean 94.1 %, attacked 38.1 %): 1.22 points; a blank model is near 10 %. full = 85 %
# leaves the reference 2.1 points of score (about 3 standard errors of the mean of two accuracies over
# 1,000 digits each) above the line; zero = 60 % is below the plain CNN, so that it gets partial credit.
# --------------------------------------------------------------------------- #
from autograder.authoring.challenges import Challenge  # noqa: E402

CHALLENGES = [
    Challenge("robust_digits", task="attacked_digits", heldout="attacked_digits_test.npz",
              metric="mean of clean and attacked accuracy", full=0.85, zero=0.60, max_parameters=50_000,
              cpu_seconds=40,
              allowance_seconds=10),  # the solution's graded run: 16.7 CPU s, its fit 15.1 s: 1.6 s besides
]
