"""Graded exercises of 07_rnn: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 07_rnn.ipynb).

Shapes are chosen so that plausible mistakes give outputs of the right shape but
wrong values: D != H (a transposed weight fails loudly instead of silently), biases
non-zero (a forgotten bias shows), T >= 3 (a state not carried shows).
"""
import numpy as np

from autograder.authoring.exercises import Exercise


def _sig(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _dims(rng):
    """N, D, H in 1..9, all different (axis mix-ups change shapes or values)."""
    N, D, H = (int(v) for v in rng.choice(np.arange(1, 10), size=3, replace=False))
    return N, D, H


# -- vanilla RNN ----------------------------------------------------------------------------

def _step_inputs(rng):
    N, D, H = _dims(rng)
    return {"x": rng.normal(size=(N, D)), "h_prev": rng.normal(size=(N, H)),
            "Wx": rng.normal(0, 0.6, size=(D, H)), "Wh": rng.normal(0, 0.4, size=(H, H)),
            "b": rng.normal(0, 0.5, size=H)}


def _seq_inputs(rng):
    N, D, H = _dims(rng)
    T = int(rng.choice([t for t in range(1, 13) if t not in (N, D, H)]))  # T in 1..12, T = 1 included
    return {"x": rng.normal(size=(N, T, D)), "h0": rng.normal(size=(N, H)),
            "Wx": rng.normal(0, 0.6, size=(D, H)), "Wh": rng.normal(0, 0.5, size=(H, H)),
            "b": rng.normal(0, 0.5, size=H)}


def _one_step_sequence():
    """A sequence of length T = 1 (degenerate, shown to students): one step from h0."""
    case = _seq_inputs(np.random.default_rng(1601))
    case["x"] = case["x"][:, :1].copy()
    return case


def _bwd_inputs(rng):
    case = _seq_inputs(rng)
    N, T, _ = case["x"].shape
    return {"dh": rng.normal(size=(N, T, case["h0"].shape[1])), **case}


def _forward(x, h0, Wx, Wh, b, carry=True, store_before=False, reverse=False):
    N, T, _ = x.shape
    h = np.zeros((N, T, h0.shape[1]))
    state = h0
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        new = np.tanh(x[:, t] @ Wx + (state if carry else h0) @ Wh + b)
        h[:, t] = state if store_before else new
        state = new
    return h


def _backward(dh, x, h0, Wx, Wh, b, carry=True, tanh_grad=True, dwh_uses_ht=False, accumulate=True):
    h = _forward(x, h0, Wx, Wh, b)
    T = x.shape[1]
    dx = np.zeros_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = h[:, t - 1] if t > 0 else h0
        g = dh[:, t] + (dh_next if carry else 0.0)
        da = g * (1 - h[:, t] ** 2) if tanh_grad else g
        dx[:, t] = da @ Wx.T
        if not accumulate:  # "=" instead of "+=": only the first step's (t = 0) contribution survives
            dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
        dWx += x[:, t].T @ da
        dWh += (h[:, t] if dwh_uses_ht else h_prev).T @ da
        db += da.sum(axis=0)
        dh_next = da @ Wh.T
    return dx, dh_next, dWx, dWh, db


# -- LSTM and GRU (PyTorch layout) ----------------------------------------------------------

def _lstm_inputs(rng):
    N, D, H = _dims(rng)
    return {"x": rng.normal(size=(N, D)), "h_prev": rng.normal(size=(N, H)), "c_prev": rng.normal(size=(N, H)),
            "W_ih": rng.normal(0, 0.6, size=(4 * H, D)), "W_hh": rng.normal(0, 0.4, size=(4 * H, H)),
            "b_ih": rng.normal(0, 0.5, size=4 * H), "b_hh": rng.normal(0, 0.5, size=4 * H)}


def _lstm(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, order="ifgo", g_act=np.tanh, tanh_c=True,
          keep_c=True, use_bhh=True):
    H = h_prev.shape[1]
    a = x @ W_ih.T + b_ih + h_prev @ W_hh.T + (b_hh if use_bhh else 0.0)
    blocks = {name: a[:, k * H:(k + 1) * H] for k, name in enumerate(order)}
    i, f, g, o = _sig(blocks["i"]), _sig(blocks["f"]), g_act(blocks["g"]), _sig(blocks["o"])
    c = (f * c_prev if keep_c else 0.0) + i * g
    h = o * (np.tanh(c) if tanh_c else c)
    return h, c


def _gru_inputs(rng):
    N, D, H = _dims(rng)
    return {"x": rng.normal(size=(N, D)), "h_prev": rng.normal(size=(N, H)),
            "W_ih": rng.normal(0, 0.6, size=(3 * H, D)), "W_hh": rng.normal(0, 0.6, size=(3 * H, H)),
            "b_ih": rng.normal(0, 0.5, size=3 * H), "b_hh": rng.normal(0, 0.8, size=3 * H)}


def _gru(x, h_prev, W_ih, W_hh, b_ih, b_hh, order="rzn", swap_z=False, reset="torch"):
    H = h_prev.shape[1]
    gi = x @ W_ih.T + b_ih
    gh = h_prev @ W_hh.T + b_hh
    blk = {name: k for k, name in enumerate(order)}
    sl = lambda a, name: a[:, blk[name] * H:(blk[name] + 1) * H]
    r = _sig(sl(gi, "r") + sl(gh, "r"))
    z = _sig(sl(gi, "z") + sl(gh, "z"))
    W_hn, b_hn = W_hh[blk["n"] * H:(blk["n"] + 1) * H], b_hh[blk["n"] * H:(blk["n"] + 1) * H]
    if reset == "torch":
        hn = r * sl(gh, "n")
    elif reset == "paper":          # Cho et al. 2014: r applied to h before the product
        hn = (r * h_prev) @ W_hn.T + b_hn
    elif reset == "outside_bias":   # r * (W_hn h) + b_hn
        hn = r * (h_prev @ W_hn.T) + b_hn
    else:                           # no reset gate at all
        hn = sl(gh, "n")
    n = np.tanh(sl(gi, "n") + hn)
    return z * n + (1 - z) * h_prev if swap_z else (1 - z) * n + z * h_prev


# -- sampling -------------------------------------------------------------------------------

def _sample_inputs(rng):
    """N in 1..10, V in 1..12 (V != N: a softmax over the wrong axis keeps the shape but not the sums),
    temperature in [0.3, 3]."""
    N = int(rng.integers(1, 11))
    V = int(rng.choice([v for v in range(1, 13) if v != N]))
    return {"logits": rng.normal(0, 2.0, size=(N, V)), "temperature": float(rng.uniform(0.3, 3.0)),
            "u": rng.uniform(0.0, 1.0, size=N)}


def _fixed(inputs_fn, seed, shapes):
    """A deterministic case of ``inputs_fn`` with the sizes (N, D, H) given (fixed cases)."""
    class _Sizes:  # an rng whose first draw is the sizes, then a real generator
        def __init__(self):
            self.rng = np.random.default_rng(seed)

        def choice(self, a, size=None, replace=True):
            return np.array(shapes) if size == 3 else self.rng.choice(a, size=size, replace=replace)

        def __getattr__(self, name):
            return getattr(self.rng, name)

    return inputs_fn(_Sizes())


def _softmax(z, axis=1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _inverse_cdf(p, u):
    idx = (np.cumsum(p, axis=1) <= u[:, None]).sum(axis=1)
    return np.minimum(idx, p.shape[1] - 1)


def _sample(probs_fn):
    def wrong(logits, temperature, u):
        p = probs_fn(logits, temperature)
        return p, _inverse_cdf(p, u)
    return wrong


def _sample_greedy(logits, temperature, u):
    p = _softmax(logits / temperature)
    return p, p.argmax(axis=1)


def _sample_last_below(logits, temperature, u):
    p = _softmax(logits / temperature)
    return p, np.maximum(_inverse_cdf(p, u) - 1, 0)


def _sample_searchsorted_left(logits, temperature, u):
    p = _softmax(logits / temperature)
    cdf = np.cumsum(p, axis=1)
    idx = np.array([np.searchsorted(row, ui) for row, ui in zip(cdf, u)], dtype=np.int64)
    return p, np.minimum(idx, p.shape[1] - 1)


def _sample_unstable(logits, temperature, u):
    with np.errstate(all="ignore"):
        e = np.exp(logits / temperature)
        p = e / e.sum(axis=1, keepdims=True)
    return p, _inverse_cdf(p, u)


def _sample_power_unnormalised(logits, temperature, u):
    p = _softmax(logits) ** (1.0 / temperature)
    return p, _inverse_cdf(p, u)


EXERCISES = [
    Exercise(
        "rnn_step", _step_inputs,
        fixed=({"x": np.array([[1.0, 0.0], [0.0, 2.0], [0.5, -1.0]]), "h_prev": np.array([[0.5, -0.5, 0.0]] * 3),
                "Wx": np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]]),
                "Wh": np.array([[0.9, 0.4, -0.3], [0.1, 0.8, 0.5], [-0.2, 0.2, 0.7]]),  # not symmetric
                "b": np.array([0.1, -0.2, 0.3])},),
        mistakes={
            "the tanh is missing: h = tanh(x Wx + h_prev Wh + b)":
                lambda x, h_prev, Wx, Wh, b: x @ Wx + h_prev @ Wh + b,
            "h_prev is ignored: the previous state enters through h_prev @ Wh":
                lambda x, h_prev, Wx, Wh, b: np.tanh(x @ Wx + b),
            "the bias b is missing": lambda x, h_prev, Wx, Wh, b: np.tanh(x @ Wx + h_prev @ Wh),
            "a sigmoid was used where the vanilla RNN uses tanh":
                lambda x, h_prev, Wx, Wh, b: _sig(x @ Wx + h_prev @ Wh + b),
            "Wh is used transposed: the new state is h_prev @ Wh (Wh is (H, H), rows index the old state)":
                lambda x, h_prev, Wx, Wh, b: np.tanh(x @ Wx + h_prev @ Wh.T + b),
        },
    ),
    Exercise(
        "rnn_forward", _seq_inputs,
        fixed=(_one_step_sequence(), _fixed(_seq_inputs, 1602, (3, 2, 4))),
        mistakes={
            "the hidden state is not carried: each step must start from the previous step's h, not from h0":
                lambda x, h0, Wx, Wh, b: _forward(x, h0, Wx, Wh, b, carry=False),
            "off by one: h[:, t] must be the state AFTER reading x[:, t] (h0 is not part of the output)":
                lambda x, h0, Wx, Wh, b: _forward(x, h0, Wx, Wh, b, store_before=True),
            "time runs backwards: read x[:, 0] first, then x[:, 1], ...":
                lambda x, h0, Wx, Wh, b: _forward(x, h0, Wx, Wh, b, reverse=True),
            "only the last state was returned: return every state, h of shape (N, T, H)":
                lambda x, h0, Wx, Wh, b: _forward(x, h0, Wx, Wh, b)[:, -1],
            "h0 is part of the output (T + 1 states): h[:, t] is the state AFTER reading x[:, t], T of them":
                lambda x, h0, Wx, Wh, b: np.concatenate([h0[:, None], _forward(x, h0, Wx, Wh, b)], axis=1),
        },
    ),
    Exercise(
        "rnn_backward", _bwd_inputs,
        # fixed: an ordinary sequence (N, D, H = 3, 2, 4; T = 5), and T = 1 (one step from h0)
        fixed=(_fixed(_bwd_inputs, 1603, (3, 2, 4)),
               {"dh": np.random.default_rng(1604).normal(size=_one_step_sequence()["x"].shape[:2]
                                                         + _one_step_sequence()["h0"].shape[1:]),
                **_one_step_sequence()}),
        mistakes={
            "the gradient from later steps is not carried back: add dh_next (= da_{t+1} @ Wh.T) to dh[:, t]":
                lambda *a: _backward(*a, carry=False),
            "the tanh derivative is missing: da = (dh[:, t] + dh_next) * (1 - h_t**2)":
                lambda *a: _backward(*a, tanh_grad=False),
            "dWh must accumulate h_{t-1}.T @ da (the state that entered step t), not h_t":
                lambda *a: _backward(*a, dwh_uses_ht=True),
            "the weight gradients are overwritten at every step: dWx, dWh and db SUM the contributions "
            "of all T steps (+=)": lambda *a: _backward(*a, accumulate=False),
        },
    ),
    Exercise(
        "lstm_cell", _lstm_inputs,
        # fixed: ordinary sizes (N, D, H = 3, 2, 4), and a single unit (H = 1) for a single sample
        fixed=(_fixed(_lstm_inputs, 1605, (3, 2, 4)), _fixed(_lstm_inputs, 1606, (1, 3, 1))),
        forbidden=("torch.nn.LSTMCell", "torch.nn.LSTM", "torch.lstm_cell"),
        mistakes={
            "gates in the wrong order: PyTorch stacks them as (i, f, g, o); g and o are swapped":
                lambda *a: _lstm(*a, order="ifog"),
            "gates in the wrong order: PyTorch stacks them as (i, f, g, o); i and f are swapped":
                lambda *a: _lstm(*a, order="figo"),
            "the candidate g uses tanh, not sigmoid": lambda *a: _lstm(*a, g_act=_sig),
            "h = o * tanh(c): the tanh on the new cell state is missing": lambda *a: _lstm(*a, tanh_c=False),
            "the old cell state is dropped: c = f * c_prev + i * g": lambda *a: _lstm(*a, keep_c=False),
            "b_hh is missing: both biases b_ih and b_hh are added": lambda *a: _lstm(*a, use_bhh=False),
        },
    ),
    Exercise(
        "gru_cell", _gru_inputs,
        fixed=(_fixed(_gru_inputs, 1607, (3, 2, 4)), _fixed(_gru_inputs, 1608, (1, 3, 1))),
        forbidden=("torch.nn.GRUCell", "torch.nn.GRU", "torch.gru_cell"),
        mistakes={
            "z and 1 - z are swapped: h = (1 - z) * n + z * h_prev": lambda *a: _gru(*a, swap_z=True),
            "gates in the wrong order: PyTorch stacks them as (r, z, n); r and z are swapped":
                lambda *a: _gru(*a, order="zrn"),
            "the reset gate multiplies (h_prev @ W_hn.T + b_hn), bias included, as in PyTorch":
                lambda *a: _gru(*a, reset="outside_bias"),
            "that is the original paper's GRU (r * h_prev before W_hn); PyTorch uses r * (h_prev @ W_hn.T + b_hn)":
                lambda *a: _gru(*a, reset="paper"),
            "the reset gate r is not applied to the hidden part of n": lambda *a: _gru(*a, reset="none"),
        },
    ),
    Exercise(
        "sample_with_temperature", _sample_inputs,
        fixed=({"logits": np.array([[1000.0, 999.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, 2.0]]),
                "temperature": 0.5, "u": np.array([0.5, 0.3, 0.7, 0.99])},
               # u exactly equal to a cumulative probability (the text: the first k whose cumulative
               # probability is GREATER than u): cdf [0.25, 0.5, 0.75, 1] (exact) with u = 0.5 picks
               # index 2, u = 0.25 index 1, u = 0.75 index 3, u = 0 index 0 (and two u between the steps,
               # where only the ties move); a single token (V = 1)
               {"logits": np.zeros((6, 4)), "temperature": 1.0, "u": np.array([0.5, 0.25, 0.75, 0.0, 0.6, 0.9])},
               {"logits": np.array([[2.0], [-1.0]]), "temperature": 0.7, "u": np.array([0.4, 0.9])}),
        mistakes={
            "the logits are multiplied by the temperature: divide them (z / tau)":
                _sample(lambda z, t: _softmax(z * t)),
            "softmax over the wrong axis: each ROW (one sequence's logits) must sum to 1":
                _sample(lambda z, t: _softmax(z / t, axis=0)),
            "the temperature is ignored: softmax(logits / temperature)": _sample(lambda z, t: _softmax(z)),
            "this is greedy (argmax) decoding: use u to draw an index from the distribution": _sample_greedy,
            "off by one: pick the FIRST k whose cumulative probability exceeds u": _sample_last_below,
            "softmax(z) ** (1 / tau) is not renormalised: rows must sum to 1": _sample_power_unnormalised,
            "a u equal to a cumulative probability picked that index: take the first k whose cumulative "
            "probability is GREATER than u (np.searchsorted(cdf, u, side='right'))": _sample_searchsorted_left,
            "exp overflows (nan) for large logits / temperature: subtract each row's max before np.exp":
                _sample_unstable,
        },
    ),
]


# --------------------------------------------------------------------------- #
# Issue 19: the model-design challenge of section 9 (autograder/authoring/challenges.py). The grader
# retrains the student's fit_forecaster in the sandbox and gives it the 800 held-out test windows
# (course/heldout/series_test.npz, series drawn from the 256-bit secret course/heldout/SECRET);
# their futures stay outside.
# Thresholds: the reference (a 3,690-parameter GRU trained 6 epochs on the given windows plus 2,000
# more series drawn with seed 2, about 9 CPU s) reaches an MSE of 0.0181 on the held-out set
# and 0.0176 on validation (it was 0.022 with 30 epochs on the given 1,600 windows only); the best linear map 0.13, repeating the last value 0.78, noise 0.01.
# Sampling error, measured on the instructor side from the reference's 800 per-window errors
# (std / sqrt(800)): 0.0005 (0.0181 +- 0.0005). full = 0.03 lies over 20 standard errors above it,
# zero = 0.14 at the linear map: a model of the reference's quality is never graded by luck, and
# one standard error is worth 0.02 points between the lines.
# --------------------------------------------------------------------------- #
from autograder.authoring.challenges import Challenge  # noqa: E402

CHALLENGES = [
    Challenge("sine_forecast", task="sine_forecaster", heldout="series_test.npz", metric="mse",
              full=0.03, zero=0.14, max_parameters=20_000, cpu_seconds=40,
              allowance_seconds=10),  # the solution's graded run: 10.2 CPU s, its fit 8.6 s: 1.6 s besides
]
