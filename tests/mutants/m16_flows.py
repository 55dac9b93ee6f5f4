"""Plausible bugs in 16_flows's exercises, written from the released text as a student might
(not copies of the mistakes catalogued in source_notebooks/16_flows/cases.py).

Read by tests/course/test_mutants.py: every mutant must lose its exercise's points, and most must get a
first feedback line that names a likely mistake. The grader never reads this file. The exercises
are numpy ones: arguments arrive as float64 / int64 arrays and plain ints.
"""
import numpy as np


# -- 1. flow_log_likelihood -------------------------------------------------------------------------

def loglik_log_pi_only(z, logdet):
    """Writes the constant as -(D/2) log(pi): the 2 of 2 pi forgotten."""
    return -0.5 * np.sum(z ** 2, axis=1) - 0.5 * z.shape[1] * np.log(np.pi) + logdet


def loglik_norm_not_squared(z, logdet):
    """Uses the norm |z| instead of its square."""
    return -0.5 * np.linalg.norm(z, axis=1) - 0.5 * z.shape[1] * np.log(2 * np.pi) + logdet


def loglik_no_constant_minus_logdet(z, logdet):
    """Two bugs at once: the constant forgotten and the log-det subtracted."""
    return -0.5 * np.sum(z ** 2, axis=1) - logdet


def loglik_sum_over_batch(z, logdet):
    """Sums z^2 over the whole batch (axis=None) instead of per point."""
    return -0.5 * np.sum(z ** 2) - 0.5 * z.shape[1] * np.log(2 * np.pi) + logdet


# -- 2. coupling_forward ----------------------------------------------------------------------------

def forward_exp_on_t(x, Ws, bs, Wt, bt):
    """Exponentiates the shift too: x_b * exp(s) + exp(t)."""
    d = Ws.shape[0]
    s = np.tanh(x[:, :d] @ Ws + bs)
    t = x[:, :d] @ Wt + bt
    return np.concatenate([x[:, :d], x[:, d:] * np.exp(s) + np.exp(t)], axis=1), s.sum(axis=1)


def forward_logdet_over_batch(x, Ws, bs, Wt, bt):
    """Sums the log-scales over the batch axis (a (D - d,) log-det)."""
    d = Ws.shape[0]
    s = np.tanh(x[:, :d] @ Ws + bs)
    t = x[:, :d] @ Wt + bt
    return np.concatenate([x[:, :d], x[:, d:] * np.exp(s) + t], axis=1), s.sum(axis=0)


def forward_sigmoid_not_tanh(x, Ws, bs, Wt, bt):
    """Squashes the log-scale with a sigmoid instead of tanh."""
    d = Ws.shape[0]
    s = 1.0 / (1.0 + np.exp(-(x[:, :d] @ Ws + bs)))
    t = x[:, :d] @ Wt + bt
    return np.concatenate([x[:, :d], x[:, d:] * np.exp(s) + t], axis=1), s.sum(axis=1)


def forward_logdet_of_tanh_only_before(x, Ws, bs, Wt, bt):
    """Takes the log-det before the tanh (sum of the raw log-scales)."""
    d = Ws.shape[0]
    raw = x[:, :d] @ Ws + bs
    t = x[:, :d] @ Wt + bt
    return np.concatenate([x[:, :d], x[:, d:] * np.exp(np.tanh(raw)) + t], axis=1), raw.sum(axis=1)


def forward_in_place(x, Ws, bs, Wt, bt):
    """Right values, but writes y_b into the caller's x."""
    d = Ws.shape[0]
    s = np.tanh(x[:, :d] @ Ws + bs)
    t = x[:, :d] @ Wt + bt
    x[:, d:] = x[:, d:] * np.exp(s) + t
    return x, s.sum(axis=1)


# -- 3. coupling_inverse ----------------------------------------------------------------------------

def inverse_s_from_half(y, Ws, bs, Wt, bt):
    """Uses exp(-s / 2): confuses the scale with a standard deviation."""
    d = Ws.shape[0]
    s = np.tanh(y[:, :d] @ Ws + bs)
    t = y[:, :d] @ Wt + bt
    return np.concatenate([y[:, :d], (y[:, d:] - t) * np.exp(-0.5 * s)], axis=1)


def inverse_only_changed_part(y, Ws, bs, Wt, bt):
    """Returns only x_b, (N, D - d), not the whole x."""
    d = Ws.shape[0]
    s = np.tanh(y[:, :d] @ Ws + bs)
    t = y[:, :d] @ Wt + bt
    return (y[:, d:] - t) * np.exp(-s)


def inverse_no_tanh(y, Ws, bs, Wt, bt):
    """Forgets the tanh of the log-scale in the inverse."""
    d = Ws.shape[0]
    s = y[:, :d] @ Ws + bs
    t = y[:, :d] @ Wt + bt
    return np.concatenate([y[:, :d], (y[:, d:] - t) * np.exp(-s)], axis=1)


def inverse_negated_network(y, Ws, bs, Wt, bt):
    """Inverts by running the forward layer with -s and -t: y_b * exp(-s) - t."""
    d = Ws.shape[0]
    s = np.tanh(y[:, :d] @ Ws + bs)
    t = y[:, :d] @ Wt + bt
    return np.concatenate([y[:, :d], y[:, d:] * np.exp(-s) - t], axis=1)


# -- 4. made_masks ----------------------------------------------------------------------------------

def made_all_ones_hidden(D, hidden_degrees):
    """Masks only the output layer (the hidden layer sees every input)."""
    degrees = np.arange(1, D + 1)
    return np.ones((len(hidden_degrees), D)), (degrees[:, None] > hidden_degrees[None, :]).astype(float)


def made_output_lower_triangle_of_size(D, hidden_degrees):
    """Uses a fixed strictly lower-triangular D x D pattern for the output, cut to H columns."""
    degrees = np.arange(1, D + 1)
    hidden = (hidden_degrees[:, None] >= degrees[None, :]).astype(float)
    H = len(hidden_degrees)
    out = np.tril(np.ones((D, max(D, H))), k=-1)[:, :H]
    return hidden, out


def made_reversed_comparisons(D, hidden_degrees):
    """Flips both comparisons (hidden sees j >= m, output sees m >= i)."""
    degrees = np.arange(1, D + 1)
    hidden = (degrees[None, :] >= hidden_degrees[:, None]).astype(float)
    out = (hidden_degrees[None, :] >= degrees[:, None]).astype(float)
    return hidden, out


def made_int_degrees_minus_one(D, hidden_degrees):
    """Subtracts 1 from the hidden degrees ('0-based') but keeps inputs 1..D."""
    degrees = np.arange(1, D + 1)
    m = hidden_degrees - 1
    return (m[:, None] >= degrees[None, :]).astype(float), (degrees[:, None] > m[None, :]).astype(float)


# -- 5. squeeze -------------------------------------------------------------------------------------

def squeeze_strided_concat(x):
    """Concatenates the four strided sub-images, in the order (0,0), (1,0), (0,1), (1,1), for all channels."""
    parts = [x[:, :, i::2, j::2] for j in (0, 1) for i in (0, 1)]
    return np.concatenate(parts, axis=1)


def squeeze_strided_concat_offsets_outer(x):
    """Concatenates x[:, :, i::2, j::2] over (i, j) with the offsets outside the channels."""
    parts = [x[:, :, i::2, j::2] for i in (0, 1) for j in (0, 1)]
    return np.concatenate(parts, axis=1)


def squeeze_wrong_transpose(x):
    """Moves the axes in the order (n, c, j, i, h, w)."""
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).transpose(0, 1, 5, 3, 2, 4).reshape(N, 4 * C, H // 2, W // 2)


def squeeze_swapped_spatial(x):
    """Outputs (N, 4C, W/2, H/2): the spatial axes come out transposed."""
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).transpose(0, 1, 3, 5, 4, 2).reshape(N, 4 * C, W // 2, H // 2)


# -- 6. bits_per_dim --------------------------------------------------------------------------------

def bpd_log2_of_levels_missing(log_density, D, levels=256):
    """Adds log2(levels) to the nats per dimension (mixes the units)."""
    return -log_density / D + np.log2(levels)


def bpd_mean_over_batch(log_density, D, levels=256):
    """Returns one number: the batch mean."""
    return float(np.mean((D * np.log(levels) - log_density) / (D * np.log(2.0))))


def bpd_log10(log_density, D, levels=256):
    """Divides by log 10 instead of log 2."""
    return (D * np.log(levels) - log_density) / (D * np.log(10.0))


def bpd_fixed_256(log_density, D, levels=256):
    """Ignores the levels argument: always log 256."""
    return (D * np.log(256) - log_density) / (D * np.log(2.0))


MUTANTS = [
    ("flow_log_likelihood", "the constant with log(pi) instead of log(2 pi)", loglik_log_pi_only),
    ("flow_log_likelihood", "the norm of z instead of its square", loglik_norm_not_squared),
    ("flow_log_likelihood", "no constant and the log-det subtracted", loglik_no_constant_minus_logdet),
    ("flow_log_likelihood", "z^2 summed over the whole batch", loglik_sum_over_batch),
    ("coupling_forward", "exp of the shift too", forward_exp_on_t),
    ("coupling_forward", "log-det summed over the batch axis", forward_logdet_over_batch),
    ("coupling_forward", "sigmoid instead of tanh", forward_sigmoid_not_tanh),
    ("coupling_forward", "log-det from the raw scales, before the tanh", forward_logdet_of_tanh_only_before),
    ("coupling_forward", "writes into the caller's x", forward_in_place),
    ("coupling_inverse", "exp(-s / 2) instead of exp(-s)", inverse_s_from_half),
    ("coupling_inverse", "returns only x_b", inverse_only_changed_part),
    ("coupling_inverse", "forgets the tanh", inverse_no_tanh),
    ("coupling_inverse", "y_b * exp(-s) - t", inverse_negated_network),
    ("made_masks", "the hidden layer is not masked", made_all_ones_hidden),
    ("made_masks", "a fixed lower-triangular output pattern", made_output_lower_triangle_of_size),
    ("made_masks", "both comparisons reversed", made_reversed_comparisons),
    ("made_masks", "hidden degrees shifted down by one", made_int_degrees_minus_one),
    ("squeeze", "strided sub-images, column offset outer", squeeze_strided_concat),
    ("squeeze", "strided sub-images, offsets outside the channels", squeeze_strided_concat_offsets_outer),
    ("squeeze", "axes moved as (n, c, j, i, h, w)", squeeze_wrong_transpose),
    ("squeeze", "spatial axes transposed", squeeze_swapped_spatial),
    ("bits_per_dim", "adds log2(levels) to nats per dimension", bpd_log2_of_levels_missing),
    ("bits_per_dim", "one number for the batch", bpd_mean_over_batch),
    ("bits_per_dim", "log 10 instead of log 2", bpd_log10),
    ("bits_per_dim", "ignores levels", bpd_fixed_256),
]
