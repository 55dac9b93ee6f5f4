"""Graded exercises of 16_flows: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 16_flows.ipynb).
All tolerances are the defaults (rtol 1e-4, atol 1e-6): every exercise is plain
numpy on float64 inputs (a float32 answer is still far inside them), and the
masks are exact 0 / 1 values.

Every size the signatures allow is drawn: the batch from N = 1, the dimension
from D = 1 (D = 2 for the coupling layers and MADE, which need two parts), the
conditioned part from d = 1 to D - 1, one hidden unit, one channel, a 2 x 2 image.
Mistakes that only show for particular sizes have a fixed case with those sizes:
the halves of a coupling layer swapped needs d = D - d (else it raises), the base
density's constant counted once needs D > 1, the squeeze's channel order needs C > 1
and a non-square image tells rows from columns.
"""
import numpy as np

from autograder.authoring.exercises import Exercise

LOG_2PI = np.log(2.0 * np.pi)


# -- 1. flow_log_likelihood ---------------------------------------------------------------

def _loglik_inputs(rng):
    n, d = int(rng.integers(1, 7)), int(rng.integers(1, 9))  # N = 1 and D = 1 included
    return {"z": rng.normal(0.0, 1.5, (n, d)), "logdet": rng.normal(0.0, 3.0, n)}


def _loglik(z, logdet, const=True, per_dim=True, half=0.5, sign=1.0, reduce=None, sq="per_point"):
    d = z.shape[1]
    sq_norm = {"per_point": np.sum(z ** 2, axis=1), "norm": np.linalg.norm(z, axis=1), "batch": np.sum(z ** 2)}[sq]
    out = -half * sq_norm + sign * logdet
    if const:
        out = out - 0.5 * (d if per_dim else 1) * LOG_2PI
    return out if reduce is None else reduce(out)


_LOGLIK_FIXED = ({"z": np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]]), "logdet": np.array([0.0, 1.5])},  # D = 3
                 {"z": np.array([[0.5]]), "logdet": np.array([-0.25])})                                  # N = D = 1


# -- 2-3. coupling_forward / coupling_inverse ----------------------------------------------

def _coupling_params(rng, d, k):
    return {"Ws": rng.normal(0.0, 0.8, (d, k)), "bs": rng.normal(0.0, 0.5, k),
            "Wt": rng.normal(0.0, 0.8, (d, k)), "bt": rng.normal(0.0, 0.5, k)}


def _coupling_inputs(rng, name="x"):
    n, big_d = int(rng.integers(1, 6)), int(rng.integers(2, 9))  # N = 1 and D = 2 included
    d = int(rng.integers(1, big_d))                              # 1 <= d <= D - 1
    return {name: rng.normal(0.0, 1.0, (n, big_d)), **_coupling_params(rng, d, big_d - d)}


def _coupling_fixed(name, n, d, k, seed):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0.0, 1.0, (n, d + k)), **_coupling_params(rng, d, k)}


# halves of equal size (the swapped-halves mistakes run), unequal (d < D - d, d > D - d), one sample
_FORWARD_FIXED = (_coupling_fixed("x", 3, 2, 2, 1), _coupling_fixed("x", 2, 1, 3, 2),
                  _coupling_fixed("x", 1, 3, 1, 3))
_INVERSE_FIXED = (_coupling_fixed("y", 3, 2, 2, 4), _coupling_fixed("y", 2, 1, 3, 5),
                  _coupling_fixed("y", 1, 3, 1, 6))


def _conditioner(a, Ws, bs, Wt, bt, squash=True):
    raw = a @ Ws + bs
    return (np.tanh(raw) if squash else raw), a @ Wt + bt


def _forward(x, Ws, bs, Wt, bt, logdet="sum_s", order="scale_then_shift", halves="right", squash=True,
             exp_t=False):
    d = Ws.shape[0]
    a, b = (x[:, :d], x[:, d:]) if halves == "right" else (x[:, d:], x[:, :d])
    s, t = _conditioner(a, Ws, bs, Wt, bt, squash)
    t = np.exp(t) if exp_t else t
    new_b = b * np.exp(s) + t if order == "scale_then_shift" else (b + t) * np.exp(s)
    y = np.concatenate([a, new_b], axis=1) if halves == "right" else np.concatenate([new_b, a], axis=1)
    ld = {"sum_s": s.sum(axis=1), "minus": -s.sum(axis=1), "sum_exp": np.exp(s).sum(axis=1),
          "det": np.exp(s.sum(axis=1)), "mean_s": s.mean(axis=1)}[logdet]
    return y, ld


def _inverse(y, Ws, bs, Wt, bt, how="right", halves="right", squash=True):
    d = Ws.shape[0]
    a, b = (y[:, :d], y[:, d:]) if halves == "right" else (y[:, d:], y[:, :d])
    s, t = _conditioner(a, Ws, bs, Wt, bt, squash)
    new_b = {"right": (b - t) * np.exp(-s), "unscale_first": b * np.exp(-s) - t, "times_exp": (b - t) * np.exp(s),
             "plus_t": (b + t) * np.exp(-s), "divide_s": (b - t) / s}[how]
    return np.concatenate([a, new_b], axis=1) if halves == "right" else np.concatenate([new_b, a], axis=1)


# -- 4. made_masks -------------------------------------------------------------------------

def _made_inputs(rng):
    big_d, h = int(rng.integers(2, 9)), int(rng.integers(1, 11))  # D = 2 and H = 1 included
    return {"D": big_d, "hidden_degrees": rng.integers(1, big_d, h)}


def _made(D, hidden_degrees, hidden_ge=True, out_gt=True, first=1, transpose=False, swap=False, mask_hidden=True):
    inputs = np.arange(first, D + first)
    m = hidden_degrees[:, None]
    hid = (m >= inputs[None, :]) if hidden_ge else (m > inputs[None, :])
    out = (inputs[:, None] > m.T) if out_gt else (inputs[:, None] >= m.T)
    hid, out = hid.astype(float), out.astype(float)
    if not mask_hidden:
        hid = np.ones_like(hid)
    if transpose:
        hid, out = hid.T, out.T
    return (out, hid) if swap else (hid, out)


_MADE_FIXED = ({"D": 4, "hidden_degrees": np.array([1, 2, 3, 1, 2])},   # every degree 1..D-1, H != D
               {"D": 3, "hidden_degrees": np.array([2, 1, 2])},         # H = D: transposed shapes fit
               {"D": 2, "hidden_degrees": np.array([1])})               # the smallest MADE


# -- 5. squeeze ----------------------------------------------------------------------------

def _squeeze_inputs(rng):
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = 2 * int(rng.integers(1, 4)), 2 * int(rng.integers(1, 4))  # 2 x 2 images included
    return {"x": rng.normal(size=(n, c, h, w))}


def _squeeze(x, order="c_i_j"):
    n, c, h, w = x.shape
    if order == "plain_reshape":
        return x.reshape(n, 4 * c, h // 2, w // 2)
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)  # (n, c, h', i, w', j)
    axes = {"c_i_j": (0, 1, 3, 5, 2, 4), "i_j_c": (0, 3, 5, 1, 2, 4), "c_j_i": (0, 1, 5, 3, 2, 4)}[order]
    return blocks.transpose(axes).reshape(n, 4 * c, h // 2, w // 2)


_SQUEEZE_FIXED = ({"x": np.arange(2 * 2 * 4 * 6, dtype=float).reshape(2, 2, 4, 6)},  # C > 1, H != W
                  {"x": np.arange(4, dtype=float).reshape(1, 1, 2, 2)})              # one 2 x 2 block


# -- 6. bits_per_dim -----------------------------------------------------------------------

def _bpd_inputs(rng):
    n, big_d = int(rng.integers(1, 6)), int(rng.integers(1, 800))
    levels = int(rng.choice([2, 16, 256, int(rng.integers(2, 1025))]))
    # a log-density per image around what a flow reaches: a few bits per dimension below log(levels)
    return {"log_density": big_d * rng.uniform(-1.0, 4.0, n), "D": big_d, "levels": levels}


def _bpd(log_density, D, levels, correction=1.0, offset=0, base=np.log(2.0), per="D", fixed_levels=None):
    levels = fixed_levels or levels
    bits = (correction * D * np.log(levels + offset) - log_density) / base
    return bits / D if per == "D" else bits


_BPD_FIXED = ({"log_density": np.array([0.0, 784.0, -100.0]), "D": 784, "levels": 256},
              {"log_density": np.array([1.5]), "D": 1, "levels": 2})   # one binary pixel


EXERCISES = [
    Exercise(
        "flow_log_likelihood", _loglik_inputs,
        fixed=_LOGLIK_FIXED,
        mistakes={
            "the base density's constant is missing: log N(z; 0, I) = -1/2 |z|^2 - (D/2) log(2 pi)":
                lambda z, ld: _loglik(z, ld, const=False),
            "the constant -1/2 log(2 pi) comes once PER DIMENSION: -(D/2) log(2 pi) for D dimensions":
                lambda z, ld: _loglik(z, ld, per_dim=False),
            "the log-determinant is ADDED: log p(x) = log p_Z(f(x)) + log |det df/dx|":
                lambda z, ld: _loglik(z, ld, sign=-1.0),
            "the 1/2 in front of |z|^2 is missing: log N(z; 0, I) = -1/2 |z|^2 - (D/2) log(2 pi)":
                lambda z, ld: _loglik(z, ld, half=1.0),
            "the log-determinant is left out: without it a flow's density does not integrate to 1":
                lambda z, ld: _loglik(z, ld, sign=0.0),
            "return one log-likelihood PER SAMPLE (N,), not their mean over the batch":
                lambda z, ld: _loglik(z, ld, reduce=np.mean),
            "|z|^2 is the SQUARED norm of each point, np.sum(z ** 2, axis=1), not the norm":
                lambda z, ld: _loglik(z, ld, sq="norm"),
            "sum z^2 over each point's own D coordinates (axis=1), not over the whole batch":
                lambda z, ld: _loglik(z, ld, sq="batch"),
        },
        pure=True,
    ),
    Exercise(
        "coupling_forward", _coupling_inputs,
        fixed=_FORWARD_FIXED,
        mistakes={
            "the log-det has the wrong sign: x_b * exp(s) stretches by exp(s), so log |det| = +sum(s)":
                lambda *a: _forward(*a, logdet="minus"),
            "the log-det sums the scales exp(s); it is the sum of their logs, sum(s)":
                lambda *a: _forward(*a, logdet="sum_exp"),
            "that is the determinant exp(sum(s)); return its log, sum(s)":
                lambda *a: _forward(*a, logdet="det"),
            "the log-det SUMS s over the transformed dimensions (a mean is not a log-determinant)":
                lambda *a: _forward(*a, logdet="mean_s"),
            "the scale is applied to the wrong half: x_a = x[:, :d] passes unchanged and conditions the "
            "scale and shift of x_b = x[:, d:]":
                lambda *a: _forward(*a, halves="swapped"),
            "the shift is added before the scale: y_b = x_b * exp(s) + t, not (x_b + t) * exp(s)":
                lambda *a: _forward(*a, order="shift_then_scale"),
            "s is tanh(x_a @ Ws + bs): the tanh is missing":
                lambda *a: _forward(*a, squash=False),
            "only the scale is exponentiated: y_b = x_b * exp(s) + t, the shift t is added as it is":
                lambda *a: _forward(*a, exp_t=True),
        },
        pure=True,
    ),
    Exercise(
        "coupling_inverse", lambda rng: _coupling_inputs(rng, "y"),
        fixed=_INVERSE_FIXED,
        mistakes={
            "undo the steps in reverse order: subtract t first, then divide by exp(s): x_b = (y_b - t) * exp(-s)":
                lambda *a: _inverse(*a, how="unscale_first"),
            "the inverse DIVIDES by exp(s) (multiplies by exp(-s)); multiplying by exp(s) again is not an inverse":
                lambda *a: _inverse(*a, how="times_exp"),
            "the shift t is SUBTRACTED in the inverse: x_b = (y_b - t) * exp(-s)":
                lambda *a: _inverse(*a, how="plus_t"),
            "the scale is exp(s), not s: x_b = (y_b - t) * exp(-s)":
                lambda *a: _inverse(*a, how="divide_s"),
            "the wrong half: y_a = y[:, :d] passed unchanged, so it (not y_b) gives s and t, and y_b is undone":
                lambda *a: _inverse(*a, halves="swapped"),
            "s is tanh(y_a @ Ws + bs), exactly as in the forward pass: the tanh is missing":
                lambda *a: _inverse(*a, squash=False),
        },
        pure=True,
    ),
    Exercise(
        "made_masks", _made_inputs,
        fixed=_MADE_FIXED,
        mistakes={
            "off by one in the output mask: output i may only see hidden units of degree < i (strictly), "
            "else it depends on x_i itself":
                lambda D, m: _made(D, m, out_gt=False),
            "off by one in the hidden mask: a hidden unit of degree m sees inputs 1..m (degree <= m)":
                lambda D, m: _made(D, m, hidden_ge=False),
            "the inputs are numbered 1..D (degree of x_i is i), not 0..D-1":
                lambda D, m: _made(D, m, first=0),
            "masks have nn.Linear's weight layout (out_features, in_features): (H, D) then (D, H)":
                lambda D, m: _made(D, m, transpose=True),
            "return (mask_hidden, mask_out) in that order":
                lambda D, m: _made(D, m, swap=True),
            "the hidden layer needs its mask too: unmasked, every hidden unit (so every output) sees every input":
                lambda D, m: _made(D, m, mask_hidden=False),
        },
        pure=True,
    ),
    Exercise(
        "squeeze", _squeeze_inputs,
        fixed=_SQUEEZE_FIXED,
        mistakes={
            "a plain reshape mixes pixels from different rows: cut the image into 2 x 2 blocks "
            "(reshape to (N, C, H/2, 2, W/2, 2)), then move the block axes next to the channel":
                lambda x: _squeeze(x, "plain_reshape"),
            "the channel order is c first: output channel 4c + 2i + j holds x[:, c, 2h + i, 2w + j]":
                lambda x: _squeeze(x, "i_j_c"),
            "the row offset i and column offset j are swapped: channel 4c + 2i + j (i the row)":
                lambda x: _squeeze(x, "c_j_i"),
        },
        pure=True,
    ),
    Exercise(
        "bits_per_dim", _bpd_inputs,
        fixed=_BPD_FIXED,
        mistakes={
            "the dequantisation correction is missing: log P(x) >= log p(y) - D log(levels), "
            "so bits/dim = (D log(levels) - log p(y)) / (D log 2)":
                lambda lp, D, L: _bpd(lp, D, L, correction=0.0),
            "the correction has the wrong sign: a bin of width 1/levels holds probability p(y) / levels per pixel":
                lambda lp, D, L: _bpd(lp, D, L, correction=-1.0),
            "that is nats per dimension: divide by log 2 for bits":
                lambda lp, D, L: _bpd(lp, D, L, base=1.0),
            "the bin width is 1/levels (y = (x + u) / levels), so the correction is log(levels), not log(levels - 1)":
                lambda lp, D, L: _bpd(lp, D, L, offset=-1),
            "that is bits per image: divide by the D dimensions":
                lambda lp, D, L: _bpd(lp, D, L, per="image"),
            "use the `levels` argument: the correction is log(levels), 256 only for 8-bit images":
                lambda lp, D, L: _bpd(lp, D, L, fixed_levels=256),
        },
        pure=True,
    ),
]
