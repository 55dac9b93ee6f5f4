"""Plausible bugs in 15_few_labels's exercises, written from the released text as a student might
(not copies of the mistakes catalogued in source_notebooks/15_few_labels/cases.py).

Read by tests/course/test_mutants.py: every mutant must lose its exercise's points, and most must get a
first feedback line that names a likely mistake. The grader never reads this file. adapt_step,
probe_features and knn_predict get float64 / int64 / bool arrays and plain numbers; nt_xent gets a float64
torch tensor and a float.
"""
import numpy as np
import torch
import torch.nn.functional as F


# -- 1. adapt_step ----------------------------------------------------------------------------------

def adapt_frozen_by_zero_grad(w, g, layer, lr, frozen, weight_decay):
    """Freezes by zeroing the gradient; the decay still applies to frozen layers."""
    g = np.where(frozen[layer], 0.0, g)
    return w - lr[layer] * (g + weight_decay * w)


def adapt_frozen_inverted(w, g, layer, lr, frozen, weight_decay):
    """Updates the frozen layers and keeps the trainable ones."""
    return np.where(frozen[layer], w - lr[layer] * (g + weight_decay * w), w)


def adapt_lr_by_position(w, g, layer, lr, frozen, weight_decay):
    """Indexes the rates by parameter position (cycled) instead of by layer."""
    rate = np.resize(lr, w.shape)
    return np.where(frozen[layer], w, w - rate * (g + weight_decay * w))


def adapt_decoupled_decay(w, g, layer, lr, frozen, weight_decay):
    """AdamW-style decay: w * (1 - wd) - lr * g (the decay not scaled by the rate)."""
    return np.where(frozen[layer], w, w * (1 - weight_decay) - lr[layer] * g)


def adapt_in_place(w, g, layer, lr, frozen, weight_decay):
    """Right values, but writes into the caller's w."""
    move = ~frozen[layer]
    w[move] -= lr[layer][move] * (g[move] + weight_decay * w[move])
    return w


def adapt_mean_lr(w, g, layer, lr, frozen, weight_decay):
    """One rate for all: the mean of the groups' rates."""
    return np.where(frozen[layer], w, w - lr.mean() * (g + weight_decay * w))


# -- 2. probe_features ------------------------------------------------------------------------------

def probe_train_mode(X, W, b, running_mean, running_var, gamma, beta):
    """Normalises with the batch's own statistics (train mode)."""
    a = X @ W.T + b
    return np.maximum(gamma * (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5) + beta, 0)


def probe_relu_before_bn(X, W, b, running_mean, running_var, gamma, beta):
    """ReLU applied before the batch norm."""
    a = np.maximum(X @ W.T + b, 0)
    return gamma * (a - running_mean) / np.sqrt(running_var + 1e-5) + beta


def probe_no_transpose_bias_only(X, W, b, running_mean, running_var, gamma, beta):
    """Forgets gamma and beta (the affine part of batch norm)."""
    a = X @ W.T + b
    return np.maximum((a - running_mean) / np.sqrt(running_var + 1e-5), 0)


def probe_eps_outside(X, W, b, running_mean, running_var, gamma, beta):
    """Adds eps to the standard deviation, and a large one: sqrt(var) + 1e-3."""
    a = X @ W.T + b
    return np.maximum(gamma * (a - running_mean) / (np.sqrt(running_var) + 1e-3) + beta, 0)


# -- 3. nt_xent ------------------------------------------------------------------------------------

def xent_no_mask(z, temperature):
    """Leaves the self-similarity in the denominator."""
    u = F.normalize(z, dim=1)
    n2 = len(z)
    return F.cross_entropy(u @ u.T / temperature, (torch.arange(n2) + n2 // 2) % n2)


def xent_mask_with_zero(z, temperature):
    """'Removes' the diagonal by setting it to 0 (exp(0) = 1 still in the sum)."""
    u = F.normalize(z, dim=1)
    n2 = len(z)
    logits = (u @ u.T / temperature) * (1 - torch.eye(n2, dtype=z.dtype))
    return F.cross_entropy(logits, (torch.arange(n2) + n2 // 2) % n2)


def xent_one_direction(z, temperature):
    """Only the first half as anchors, against the second half only (a N x N cross-entropy)."""
    n = len(z) // 2
    u = F.normalize(z, dim=1)
    return F.cross_entropy(u[:n] @ u[n:].T / temperature, torch.arange(n))


def xent_dot_products(z, temperature):
    """Forgets to normalise: raw dot products."""
    n2 = len(z)
    logits = (z @ z.T / temperature).masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(logits, (torch.arange(n2) + n2 // 2) % n2)


def xent_sqrt_temperature(z, temperature):
    """Divides by sqrt(tau), mixing it up with attention's sqrt(d)."""
    u = F.normalize(z, dim=1)
    n2 = len(z)
    logits = (u @ u.T / temperature ** 0.5).masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(logits, (torch.arange(n2) + n2 // 2) % n2)


def xent_pairs_adjacent(z, temperature):
    """Assumes the views are interleaved (0 with 1, 2 with 3, ...)."""
    u = F.normalize(z, dim=1)
    n2 = len(z)
    logits = (u @ u.T / temperature).masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(logits, torch.arange(n2) ^ 1)


# -- 4. knn_predict --------------------------------------------------------------------------------

def _votes(labels, n_classes):
    return np.bincount(labels, minlength=n_classes)


def knn_query_not_normalised(train_z, train_y, query_z, k, n_classes):
    """Normalises the stored embeddings but not the queries (harmless for the ranking: a real solution)."""
    a = train_z / np.linalg.norm(train_z, axis=1, keepdims=True)
    near = np.argsort(-(query_z @ a.T), axis=1)[:, :k]
    return np.array([np.argmax(_votes(train_y[r], n_classes)) for r in near]) + 0 * 0


def knn_train_not_normalised(train_z, train_y, query_z, k, n_classes):
    """Normalises the queries only: long stored vectors win."""
    q = query_z / np.linalg.norm(query_z, axis=1, keepdims=True)
    near = np.argsort(-(q @ train_z.T), axis=1)[:, :k]
    return np.array([np.argmax(_votes(train_y[r], n_classes)) for r in near])


def knn_ascending(train_z, train_y, query_z, k, n_classes):
    """Sorts the similarities in increasing order, as if they were distances."""
    a = train_z / np.linalg.norm(train_z, axis=1, keepdims=True)
    q = query_z / np.linalg.norm(query_z, axis=1, keepdims=True)
    near = np.argsort(q @ a.T, axis=1)[:, :k]
    return np.array([np.argmax(_votes(train_y[r], n_classes)) for r in near])


def knn_k_plus_one(train_z, train_y, query_z, k, n_classes):
    """Off by one: the k + 1 nearest vote."""
    a = train_z / np.linalg.norm(train_z, axis=1, keepdims=True)
    q = query_z / np.linalg.norm(query_z, axis=1, keepdims=True)
    near = np.argsort(-(q @ a.T), axis=1)[:, :k + 1]
    return np.array([np.argmax(_votes(train_y[r], n_classes)) for r in near])


def knn_ties_max_label(train_z, train_y, query_z, k, n_classes):
    """np.unique + the last maximum: ties go to the largest label."""
    a = train_z / np.linalg.norm(train_z, axis=1, keepdims=True)
    q = query_z / np.linalg.norm(query_z, axis=1, keepdims=True)
    near = np.argsort(-(q @ a.T), axis=1)[:, :k]
    out = []
    for r in near:
        v = _votes(train_y[r], n_classes)
        out.append(int(np.flatnonzero(v == v.max())[-1]))
    return np.array(out)


def knn_float_labels(train_z, train_y, query_z, k, n_classes):
    """Returns the mean label of the neighbours (a regression), rounded."""
    a = train_z / np.linalg.norm(train_z, axis=1, keepdims=True)
    q = query_z / np.linalg.norm(query_z, axis=1, keepdims=True)
    near = np.argsort(-(q @ a.T), axis=1)[:, :k]
    return np.array([np.round(train_y[r].mean()) for r in near])


MUTANTS = [
    ("adapt_step", "frozen by zeroing the gradient: decay still moves them", adapt_frozen_by_zero_grad),
    ("adapt_step", "the frozen mask inverted", adapt_frozen_inverted),
    ("adapt_step", "rates indexed by position, not layer", adapt_lr_by_position),
    ("adapt_step", "decoupled (AdamW) weight decay", adapt_decoupled_decay),
    ("adapt_step", "writes into the caller's w", adapt_in_place),
    ("adapt_step", "the mean of the rates for every layer", adapt_mean_lr),
    ("probe_features", "batch statistics (train mode)", probe_train_mode),
    ("probe_features", "ReLU before batch norm", probe_relu_before_bn),
    ("probe_features", "gamma and beta forgotten", probe_no_transpose_bias_only),
    ("probe_features", "eps added to the standard deviation", probe_eps_outside),
    ("nt_xent", "self-similarity left in", xent_no_mask),
    ("nt_xent", "diagonal set to 0 instead of -inf", xent_mask_with_zero),
    ("nt_xent", "one direction only, N x N", xent_one_direction),
    ("nt_xent", "raw dot products", xent_dot_products),
    ("nt_xent", "divided by sqrt(tau)", xent_sqrt_temperature),
    ("nt_xent", "views assumed interleaved", xent_pairs_adjacent),
    ("knn_predict", "stored embeddings not normalised", knn_train_not_normalised),
    ("knn_predict", "similarities sorted increasing", knn_ascending),
    ("knn_predict", "k + 1 neighbours vote", knn_k_plus_one),
    ("knn_predict", "ties to the largest label", knn_ties_max_label),
    ("knn_predict", "mean label, rounded", knn_float_labels),
]
