"""Graded exercises of 08_attention: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 08_attention.ipynb).
Every exercise is framework="torch": arrays arrive as float64 (or bool / int64) tensors.

Shapes are chosen so that plausible mistakes give outputs of the right shape but
wrong values: Tq != Tk and d != dv (a wrong axis or a wrong sqrt shows), d_head != E
(sqrt(E) vs sqrt(d_head) shows), non-square images with C > 1 (patch order shows),
biases and layer-norm parameters away from their defaults.
"""
import math

import numpy as np
import torch

from autograder.authoring.exercises import Exercise


# -- attention ------------------------------------------------------------------------------

def _random_mask(rng, shape):
    mask = rng.uniform(size=shape) > 0.35
    rows = mask.reshape(-1, shape[-1])
    for r in rows:                       # every query keeps at least one key
        if not r.any():
            r[rng.integers(shape[-1])] = True
    return rows.reshape(shape)


def _attention_inputs(rng):
    """What the docstring allows: any leading axes (none, (N,), (N, heads)), a single query (Tq = 1),
    and a mask that is None, full (..., Tq, Tk) or broadcastable ((..., 1, Tk): the same for every query)."""
    lead = [(), (int(rng.integers(1, 4)),), (int(rng.integers(1, 3)), int(rng.integers(2, 4)))][int(rng.integers(3))]
    Tq = int(rng.integers(1, 6))
    Tk = int(rng.integers(1, 8))       # a single key (Tk = 1) included
    d = int(rng.integers(1, 10))
    dv = int(rng.choice([v for v in range(1, 7) if v != d]))
    kind = rng.choice(["none", "full", "full", "broadcast"])
    mask = None if kind == "none" else _random_mask(rng, (*lead, Tq if kind == "full" else 1, Tk))
    return {"Q": rng.normal(size=(*lead, Tq, d)), "K": rng.normal(size=(*lead, Tk, d)),
            "V": rng.normal(size=(*lead, Tk, dv)), "mask": mask}


# The docstring's optional and broadcast forms, always shown: no mask, extra leading axes, a mask
# broadcast over the queries.
_ATTENTION_FORMS = (
    {"Q": np.array([[1.0, 0.5, -1.0, 0.0], [0.0, 2.0, 0.0, 1.0]]),
     "K": np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [2.0, -1.0, 0.0, 0.5]]),
     "V": np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]), "mask": None},
    {"Q": np.linspace(-1.0, 1.0, 2 * 2 * 2 * 4).reshape(2, 2, 2, 4),
     "K": np.linspace(1.0, -2.0, 2 * 2 * 3 * 4).reshape(2, 2, 3, 4),
     "V": np.linspace(-3.0, 3.0, 2 * 2 * 3 * 2).reshape(2, 2, 3, 2),
     "mask": np.array([[[[True, False, True]]], [[[False, True, True]]]])},
)


def _attn(Q, K, V, mask=None, scale="sqrt_d", softmax_dim=-1, mask_after=False, invert=False):
    d, dv = Q.shape[-1], V.shape[-1]
    scale_by = {"sqrt_d": math.sqrt(d), "none": 1.0, "d": float(d), "sqrt_dv": math.sqrt(dv)}[scale]
    scores = Q @ K.transpose(-2, -1) / scale_by
    if mask is not None and invert:
        scores = scores.masked_fill(mask, -1e9)
    elif mask is not None and not mask_after:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, dim=softmax_dim)
    if mask is not None and mask_after:
        w = w * mask
    return w @ V, w


# -- masks ----------------------------------------------------------------------------------

def _padding_inputs(rng):
    """T in 1..10, N in 1..7 (N != T), lengths in 1..T; with N >= 2, one full and one short row."""
    T = int(rng.integers(1, 11))
    N = int(rng.choice([n for n in range(1, 8) if n != T]))
    lengths = rng.integers(1, T + 1, size=N)
    if N >= 2:
        lengths[0] = T                   # one full-length row, one short row at least (where T > 1)
        lengths[-1] = max(min(lengths[-1], T - 1), 1)
    return {"lengths": lengths.astype(np.int64), "T": T}


# -- multi-head attention -------------------------------------------------------------------

def _mha_inputs(rng, sizes=None):
    """heads in 1..4, d_head in 1..4, T in 1..8 (T not E nor heads), N in 1..3; or sizes (N, T, heads, d_head)."""
    if sizes is None:
        heads = int(rng.integers(1, 5))
        d_head = int(rng.integers(1, 5))
        T = int(rng.choice([t for t in range(1, 9) if t not in (heads * d_head, heads)]))
        N = int(rng.integers(1, 4))
    else:
        N, T, heads, d_head = sizes
    E = heads * d_head
    return {"X": rng.normal(size=(N, T, E)), "W_in": rng.normal(0, 0.7, size=(3 * E, E)),
            "b_in": rng.normal(0, 0.3, size=3 * E), "W_out": rng.normal(0, 0.5, size=(E, E)),
            "b_out": rng.normal(0, 0.3, size=E), "num_heads": heads}


def _mha(X, W_in, b_in, W_out, b_out, num_heads, split="ok", scale="head", transpose_w=False,
         order="qkv", out_proj=True, merge="ok"):
    N, T, E = X.shape
    dh = E // num_heads
    Wq, Wk, Wv = W_in.chunk(3, dim=0)
    bq, bk, bv = b_in.chunk(3)
    proj = (lambda W, b: X @ W + b) if transpose_w else (lambda W, b: X @ W.T + b)
    qkv = {"q": proj(Wq, bq), "k": proj(Wk, bk), "v": proj(Wv, bv)}
    q, k, v = (qkv[c] for c in order)
    if split == "ok":
        sp = lambda t: t.reshape(N, T, num_heads, dh).transpose(1, 2)
    else:                                # reshape straight to (N, h, T, dh): mixes tokens and features
        sp = lambda t: t.reshape(N, num_heads, T, dh)
    q, k, v = sp(q), sp(k), sp(v)
    s = math.sqrt(dh) if scale == "head" else math.sqrt(E)
    w = torch.softmax(q @ k.transpose(-2, -1) / s, dim=-1)
    out = w @ v                          # (N, h, T, dh)
    out = out.transpose(1, 2).reshape(N, T, E) if merge == "ok" else out.reshape(N, T, E)
    if out_proj:
        out = out @ W_out.T + b_out
    return out, w


# -- positional encoding --------------------------------------------------------------------

def _pe_inputs(rng):
    """T in 1..24, d even in 2..16."""
    return {"T": int(rng.integers(1, 25)), "d": 2 * int(rng.integers(1, 9))}


def _pe(T, d, kind="ok"):
    t = np.arange(T, dtype=np.float64)[:, None]
    i2 = np.arange(0, d, 2, dtype=np.float64)
    freq = 10000.0 ** (-i2 / d)
    if kind == "i_over_d":               # 10000^(i/d) with i = 0, 1, 2, ... (the pair index)
        freq = 10000.0 ** (-(i2 / 2) / d)
    if kind == "times":                  # t * 10000^(2i/d)
        freq = 10000.0 ** (i2 / d)
    pe = np.zeros((T, d))
    if kind == "swap":
        pe[:, 0::2], pe[:, 1::2] = np.cos(t * freq), np.sin(t * freq)
    elif kind == "concat":
        pe[:, : d // 2], pe[:, d // 2:] = np.sin(t * freq), np.cos(t * freq)
    elif kind == "column_freq":          # column j uses 10000^(j/d): odd columns get their own frequency
        j = np.arange(d, dtype=np.float64)
        ang = t * 10000.0 ** (-j / d)
        pe[:, 0::2], pe[:, 1::2] = np.sin(ang[:, 0::2]), np.cos(ang[:, 1::2])
    else:
        pe[:, 0::2], pe[:, 1::2] = np.sin(t * freq), np.cos(t * freq)
    return torch.from_numpy(pe)


# -- patchify -------------------------------------------------------------------------------

def _patch_inputs(rng):
    """p in 1..4, C in 1..3, a grid of 1..3 x 1..4 patches (square or not), N in 1..2."""
    p = int(rng.integers(1, 5))
    C = int(rng.integers(1, 4))
    gh = int(rng.integers(1, 4))
    gw = int(rng.integers(1, 5))
    N = int(rng.integers(1, 3))
    return {"images": rng.normal(size=(N, C, gh * p, gw * p)), "p": p}


def _patchify(images, p, perm=(0, 2, 4, 1, 3, 5), plain=False):
    N, C, H, W = images.shape
    if plain:
        return images.reshape(N, (H // p) * (W // p), C * p * p)
    x = images.reshape(N, C, H // p, p, W // p, p).permute(*perm)
    return x.reshape(N, (H // p) * (W // p), C * p * p)


# -- encoder block --------------------------------------------------------------------------

def _block_inputs(rng, sizes=None):
    """heads in 1..3, d_head in 2..3 (E >= 2: layer norm over one feature is constant), the MLP width
    F in 1..10 (not E), T in 1..6 (not E), N in 1..2; or sizes (N, T, heads, d_head, F)."""
    if sizes is None:
        heads = int(rng.integers(1, 4))
        d_head = int(rng.integers(2, 4))
        E = heads * d_head
        F_ = int(rng.choice([f for f in range(1, 11) if f != E]))
        T = int(rng.choice([t for t in range(1, 7) if t != E]))
        N = int(rng.integers(1, 3))
    else:
        N, T, heads, d_head, F_ = sizes
        E = heads * d_head
    g = lambda *s, scale=0.5: rng.normal(0, scale, size=s)
    return {"X": rng.normal(size=(N, T, E)), "W_in": g(3 * E, E, scale=0.6), "b_in": g(3 * E, scale=0.3),
            "W_out": g(E, E), "b_out": g(E, scale=0.3),
            "ln1_w": 1.0 + g(E, scale=0.3), "ln1_b": g(E, scale=0.3),
            "W1": g(F_, E), "b1": g(F_, scale=0.3), "W2": g(E, F_), "b2": g(E, scale=0.3),
            "ln2_w": 1.0 + g(E, scale=0.3), "ln2_b": g(E, scale=0.3), "num_heads": heads}


def _ln(x, w, b, unbiased=False, dim=-1):
    mu = x.mean(dim, keepdim=True)
    var = x.var(dim, unbiased=unbiased, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def _block(X, W_in, b_in, W_out, b_out, ln1_w, ln1_b, W1, b1, W2, b2, ln2_w, ln2_b, num_heads,
           post_norm=False, res_attn=True, res_mlp=True, unbiased=False, ln_dim=-1, act=torch.relu):
    ln = lambda x, w, b: (_ln(x, w, b, unbiased) if ln_dim == -1
                          else ((x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5)) * w + b)
    mha = lambda h: _mha(h, W_in, b_in, W_out, b_out, num_heads)[0]
    mlp = lambda h: act(h @ W1.T + b1) @ W2.T + b2
    if post_norm:
        X = ln(X + mha(X), ln1_w, ln1_b)
        return ln(X + mlp(X), ln2_w, ln2_b)
    a = mha(ln(X, ln1_w, ln1_b))
    X = X + a if res_attn else a
    m = mlp(ln(X, ln2_w, ln2_b))
    return X + m if res_mlp else m


def _with(**kw):
    return lambda *args: _block(*args, **kw)


EXERCISES = [
    Exercise(
        "attention", _attention_inputs,
        fixed=({"Q": np.array([[[1.0, 0.0, 2.0, 0.0], [0.0, 3.0, 0.0, 1.0]]]),
                "K": np.array([[[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [2.0, 2.0, 0.0, 0.0]]]),
                "V": np.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]]),
                "mask": np.array([[[True, True, False], [True, True, True]]])},) + _ATTENTION_FORMS,
        framework="torch",
        forbidden=("torch.nn.functional.scaled_dot_product_attention",),
        mistakes={
            "the mask is ignored: set the scores of masked keys (mask False) to -inf before the softmax":
                lambda Q, K, V, mask: _attn(Q, K, V, None),
            "the scores are not scaled: divide QK^T by sqrt(d)": lambda *a: _attn(*a, scale="none"),
            "scale by 1/sqrt(d), not 1/d": lambda *a: _attn(*a, scale="d"),
            "scale by sqrt of the query/key size d = Q.shape[-1], not of the value size":
                lambda *a: _attn(*a, scale="sqrt_dv"),
            "softmax over the wrong axis: each query's weights (over the keys, the last axis) must sum to 1":
                lambda *a: _attn(*a, softmax_dim=-2),
            "the mask is applied after the softmax: set masked scores to -inf BEFORE it, so the weights still sum to 1":
                lambda *a: _attn(*a, mask_after=True),
            "the mask is inverted: True means 'may attend' (mask out where mask is False)":
                lambda *a: _attn(*a, invert=True),
        },
    ),
    Exercise(
        "causal_mask", lambda rng: {"T": int(rng.integers(1, 13))},
        fixed=({"T": 4}, {"T": 1}),  # T = 1: a single position sees itself
        framework="torch",
        mistakes={
            "each position sees the future instead of the past: keep the LOWER triangle (torch.tril)":
                lambda T: torch.triu(torch.ones(T, T, dtype=torch.bool)),
            "the diagonal is missing: a position may attend to itself (j <= i)":
                lambda T: torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1),
            "the mask is inverted: True marks the allowed keys (j <= i)":
                lambda T: ~torch.tril(torch.ones(T, T, dtype=torch.bool)),
        },
    ),
    Exercise(
        "padding_mask", _padding_inputs,
        fixed=({"lengths": np.array([3, 1, 5]), "T": 5},
               # degenerate: one sequence of length 1 in T = 1; one sequence shorter than T
               {"lengths": np.array([1]), "T": 1}, {"lengths": np.array([2]), "T": 4}),
        framework="torch",
        mistakes={
            "the mask is (T, N), transposed: one ROW per sequence, (N, T) (lengths[:, None] against arange(T)[None, :])":
                lambda lengths, T: torch.arange(T)[:, None] < lengths[None, :],
            "off by one: the real positions are 0 .. length-1 (use <, not <=)":
                lambda lengths, T: torch.arange(T)[None, :] <= lengths[:, None],
            "the mask is inverted: True marks the real tokens (those that may be attended to)":
                lambda lengths, T: torch.arange(T)[None, :] >= lengths[:, None],
        },
    ),
    Exercise(
        "multi_head_attention", _mha_inputs,
        # fixed: ordinary sizes (N, T, heads, d_head = 2, 3, 2, 2), and one head with one token
        fixed=(_mha_inputs(np.random.default_rng(801), (2, 3, 2, 2)),
               _mha_inputs(np.random.default_rng(802), (1, 1, 1, 3))),
        # atol 1e-5: a correct float32 answer (e.g. nn.MultiheadAttention) is off by up to ~4e-7 on
        # O(1) outputs near 0; every mistake below is off by O(0.1) or more.
        atol=1e-5,
        framework="torch",
        builds_on=("attention",),
        forbidden=("torch.nn.MultiheadAttention", "torch.nn.functional.multi_head_attention_forward"),
        mistakes={
            "heads split along the wrong axis: reshape to (N, T, heads, d_head), THEN transpose to (N, heads, T, d_head)":
                lambda *a: _mha(*a, split="wrong"),
            "heads merged in the wrong order: transpose (N, heads, T, d_head) back to (N, T, heads, d_head) before reshaping to (N, T, E)":
                lambda *a: _mha(*a, merge="wrong"),
            "scale by sqrt(d_head) = sqrt(E / num_heads), not sqrt(E)": lambda *a: _mha(*a, scale="E"),
            "the projection weights are used untransposed: q = X @ W_q.T + b_q (PyTorch's Linear layout)":
                lambda *a: _mha(*a, transpose_w=True),
            "queries and keys swapped: in_proj_weight stacks [W_q; W_k; W_v] in that order":
                lambda *a: _mha(*a, order="kqv"),
            "the output projection is missing: finish with out @ W_out.T + b_out":
                lambda *a: _mha(*a, out_proj=False),
        },
    ),
    Exercise(
        "positional_encoding", _pe_inputs,
        fixed=({"T": 4, "d": 6}, {"T": 1, "d": 2}, {"T": 7, "d": 2}),  # one position; one frequency
        # atol 1e-5: a correct float32 answer loses ~1e-6 in sin/cos of arguments up to T ~ 20;
        # every mistake below is off by O(1).
        atol=1e-5,
        framework="torch",
        mistakes={
            "sin and cos swapped: even columns (0, 2, ...) hold the sines": lambda T, d: _pe(T, d, "swap"),
            "the frequency exponent is 2i/d (i = the pair index, so 0, 2, 4, ... over d), not i/d":
                lambda T, d: _pe(T, d, "i_over_d"),
            "divide the position by 10000^(2i/d); don't multiply": lambda T, d: _pe(T, d, "times"),
            "interleave: columns 2i (sin) and 2i+1 (cos) share a frequency; not all sines then all cosines":
                lambda T, d: _pe(T, d, "concat"),
            "columns 2i and 2i+1 share the frequency 10000^(2i/d): the cosine column must not use its own index":
                lambda T, d: _pe(T, d, "column_freq"),
        },
    ),
    Exercise(
        "patchify", _patch_inputs,
        fixed=({"images": np.arange(2 * 4 * 6, dtype=np.float64).reshape(1, 2, 4, 6), "p": 2},
               # degenerate: p = 1 (every pixel a patch); one patch covering the whole image
               {"images": np.arange(2 * 2 * 3, dtype=np.float64).reshape(1, 2, 2, 3) - 5.0, "p": 1},
               {"images": np.linspace(-1.0, 1.0, 2 * 3 * 3 * 3).reshape(2, 3, 3, 3), "p": 3}),
        framework="torch",
        mistakes={
            "a plain reshape gives strips of pixels: reshape to (N, C, H/p, p, W/p, p) and permute before flattening":
                lambda images, p: _patchify(images, p, plain=True),
            "patches must be numbered row by row (left to right, then top to bottom), not column by column":
                lambda images, p: _patchify(images, p, perm=(0, 4, 2, 1, 3, 5)),
            "each patch is flattened in (C, p, p) order (channel first, like a Conv2d weight), not (p, p, C)":
                lambda images, p: _patchify(images, p, perm=(0, 2, 4, 3, 5, 1)),
            "within a patch, pixels go row by row: (C, row, column), not (C, column, row)":
                lambda images, p: _patchify(images, p, perm=(0, 2, 4, 1, 5, 3)),
        },
    ),
    Exercise(
        "encoder_block", _block_inputs,
        # fixed: ordinary sizes (N, T, heads, d_head, F = 2, 3, 2, 2, 5), and one token with one head
        fixed=(_block_inputs(np.random.default_rng(803), (2, 3, 2, 2, 5)),
               _block_inputs(np.random.default_rng(804), (1, 1, 1, 3, 4))),
        # atol 1e-5: float32 through two matmul chains and two layer norms (e.g. a float32
        # nn.TransformerEncoderLayer) is off by up to ~1e-6 near 0; the mistakes are off by O(0.1).
        atol=1e-5,
        framework="torch",
        builds_on=("multi_head_attention",),
        forbidden=("torch.nn.TransformerEncoderLayer", "torch.nn.MultiheadAttention"),
        mistakes={
            "that is the post-norm block: here the layer norm comes first in each branch, X + MHA(LN1(X)), then X + MLP(LN2(X))":
                _with(post_norm=True),
            "the residual connection around attention is missing: X = X + MHA(LN1(X))": _with(res_attn=False),
            "the residual connection around the MLP is missing: X + MLP(LN2(X))": _with(res_mlp=False),
            "layer norm uses the biased variance (x.var(unbiased=False)); torch.var is unbiased by default":
                _with(unbiased=True),
            "layer norm normalises each token over its E features (the last axis), not over the tokens":
                _with(ln_dim=1),
            "the MLP uses ReLU (nn.TransformerEncoderLayer's default), not GELU": _with(act=torch.nn.functional.gelu),
        },
    ),
]
