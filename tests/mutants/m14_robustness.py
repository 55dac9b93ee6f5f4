"""Plausible bugs in 14_robustness's exercises, written from the released text as a student might
(not copies of the mistakes catalogued in source_notebooks/14_robustness/cases.py).

Read by tests/course/test_mutants.py: every mutant must lose its exercise's points, and most must get a
first feedback line that names a likely mistake. Every exercise but class_activation_map gets torch tensors
(float64, int64); class_activation_map gets numpy arrays. ``_net`` is the notebook's small_classifier.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _net(W1, b1, W2, b2):
    model = nn.Sequential(nn.Linear(W1.shape[1], W1.shape[0]), nn.BatchNorm1d(W1.shape[0]), nn.ReLU(),
                          nn.Linear(W1.shape[0], W2.shape[0])).to(W1.dtype)
    with torch.no_grad():
        model[0].weight.copy_(W1)
        model[0].bias.copy_(b1)
        model[3].weight.copy_(W2)
        model[3].bias.copy_(b2)
    return model


def _input_grad(model, x, labels, of="loss"):
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    val = F.cross_entropy(out, labels, reduction="sum") if of == "loss" else out.gather(1, labels[:, None]).sum()
    return torch.autograd.grad(val, x)[0]


# -- fgsm ------------------------------------------------------------------------------------------

def fgsm_no_eval(x, y, eps, W1, b1, W2, b2):
    """Uses the model as small_classifier returns it (train mode)."""
    g = _input_grad(_net(W1, b1, W2, b2), x, y)
    return (x + eps * g.sign()).clamp(0, 1)


def fgsm_logit(x, y, eps, W1, b1, W2, b2):
    """Lowers the true class's logit (x - eps sign(grad f_y)): a different direction from the loss's."""
    g = _input_grad(_net(W1, b1, W2, b2).eval(), x, y, of="logit")
    return (x - eps * g.sign()).clamp(0, 1)


def fgsm_no_clip(x, y, eps, W1, b1, W2, b2):
    g = _input_grad(_net(W1, b1, W2, b2).eval(), x, y)
    return x + eps * g.sign()


def fgsm_in_place(x, y, eps, W1, b1, W2, b2):
    """Right values, but writes them into the caller's x."""
    g = _input_grad(_net(W1, b1, W2, b2).eval(), x, y)
    with torch.no_grad():
        x.add_(eps * g.sign()).clamp_(0, 1)
    return x.clone()


# -- pgd_step --------------------------------------------------------------------------------------

def pgd_project_around_adv(x_adv, x, y, eps, alpha, W1, b1, W2, b2):
    """Projects onto the ball around x_adv (always satisfied) instead of around the clean x."""
    g = _input_grad(_net(W1, b1, W2, b2).eval(), x_adv, y)
    new = x_adv + alpha * g.sign()
    return torch.min(torch.max(new, x_adv - eps), x_adv + eps).clamp(0, 1)


def pgd_clip_delta_only(x_adv, x, y, eps, alpha, W1, b1, W2, b2):
    g = _input_grad(_net(W1, b1, W2, b2).eval(), x_adv, y)
    delta = (x_adv + alpha * g.sign() - x).clamp(-eps, eps)
    return x + delta


def pgd_no_projection(x_adv, x, y, eps, alpha, W1, b1, W2, b2):
    g = _input_grad(_net(W1, b1, W2, b2).eval(), x_adv, y)
    return (x_adv + alpha * g.sign()).clamp(0, 1)


def pgd_grad_at_x(x_adv, x, y, eps, alpha, W1, b1, W2, b2):
    g = _input_grad(_net(W1, b1, W2, b2).eval(), x, y)
    new = x_adv + alpha * g.sign()
    return torch.min(torch.max(new, x - eps), x + eps).clamp(0, 1)


# -- targeted_fgsm ---------------------------------------------------------------------------------

def targeted_ascends(x, target, eps, W1, b1, W2, b2):
    """The untargeted formula with the target as the label."""
    g = _input_grad(_net(W1, b1, W2, b2).eval(), x, target)
    return (x + eps * g.sign()).clamp(0, 1)


def targeted_no_eval(x, target, eps, W1, b1, W2, b2):
    g = _input_grad(_net(W1, b1, W2, b2), x, target)
    return (x - eps * g.sign()).clamp(0, 1)


# -- saliency --------------------------------------------------------------------------------------

def saliency_of_loss(x, c, W1, b1, W2, b2):
    return _input_grad(_net(W1, b1, W2, b2).eval(), x, c).abs()


def saliency_signed(x, c, W1, b1, W2, b2):
    return _input_grad(_net(W1, b1, W2, b2).eval(), x, c, of="logit")


def saliency_squared(x, c, W1, b1, W2, b2):
    return _input_grad(_net(W1, b1, W2, b2).eval(), x, c, of="logit") ** 2


# -- integrated_gradients --------------------------------------------------------------------------

def ig_no_factor(x, baseline, c, steps, W1, b1, W2, b2):
    model = _net(W1, b1, W2, b2).eval()
    return sum(_input_grad(model, baseline + k / steps * (x - baseline), c, of="logit")
               for k in range(1, steps + 1)) / steps


def ig_times_x(x, baseline, c, steps, W1, b1, W2, b2):
    """Multiplies by x instead of (x - baseline)."""
    model = _net(W1, b1, W2, b2).eval()
    return x * sum(_input_grad(model, baseline + k / steps * (x - baseline), c, of="logit")
                   for k in range(1, steps + 1)) / steps


def ig_linspace(x, baseline, c, steps, W1, b1, W2, b2):
    """torch.linspace(0, 1, steps): the points 0 .. 1 in steps - 1 intervals, not k / m for k = 1..m."""
    model = _net(W1, b1, W2, b2).eval()
    total = torch.zeros_like(x)
    for s in torch.linspace(0, 1, steps):
        total = total + _input_grad(model, baseline + s * (x - baseline), c, of="logit")
    return (x - baseline) * total / steps


def ig_path_from_x(x, baseline, c, steps, W1, b1, W2, b2):
    """Walks from x toward the baseline (x + k/m (baseline - x))."""
    model = _net(W1, b1, W2, b2).eval()
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):
        total = total + _input_grad(model, x + k / steps * (baseline - x), c, of="logit")
    return (x - baseline) * total / steps


# -- class_activation_map --------------------------------------------------------------------------

def cam_mean(features, weights, c):
    return np.einsum("nchw,nc->nhw", features, weights[c]) / features.shape[1]


def cam_all_classes_summed(features, weights, c):
    """Sums the maps of every class."""
    return np.einsum("nchw,kc->nhw", features, weights)


def cam_relu(features, weights, c):
    return np.maximum(np.einsum("nchw,nc->nhw", features, weights[c]), 0)


def cam_first_image_class(features, weights, c):
    """Uses c[0] for every image."""
    return np.einsum("nchw,c->nhw", features, weights[c[0]])


MUTANTS = [
    ("fgsm", "train mode", fgsm_no_eval),
    ("fgsm", "descends the true logit", fgsm_logit),
    ("fgsm", "not clipped", fgsm_no_clip),
    ("fgsm", "in place on the caller's x", fgsm_in_place),
    ("pgd_step", "projects around x_adv", pgd_project_around_adv),
    ("pgd_step", "clips the perturbation only", pgd_clip_delta_only),
    ("pgd_step", "no projection", pgd_no_projection),
    ("pgd_step", "gradient at the clean x", pgd_grad_at_x),
    ("targeted_fgsm", "ascends the target's loss", targeted_ascends),
    ("targeted_fgsm", "train mode", targeted_no_eval),
    ("saliency", "gradient of the loss", saliency_of_loss),
    ("saliency", "signed gradient", saliency_signed),
    ("saliency", "squared gradient", saliency_squared),
    ("integrated_gradients", "no (x - baseline)", ig_no_factor),
    ("integrated_gradients", "times x", ig_times_x),
    ("integrated_gradients", "linspace points", ig_linspace),
    ("integrated_gradients", "path from x", ig_path_from_x),
    ("class_activation_map", "channels averaged", cam_mean),
    ("class_activation_map", "every class summed", cam_all_classes_summed),
    ("class_activation_map", "ReLU", cam_relu),
    ("class_activation_map", "c[0] for every image", cam_first_image_class),
]
