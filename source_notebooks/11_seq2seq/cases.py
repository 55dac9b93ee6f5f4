"""Graded exercises of 11_seq2seq: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 11_seq2seq.ipynb).
Every exercise is framework="torch": arrays arrive as float64, bool or int64 tensors,
sizes and special tokens as Python ints.

Shapes are chosen so that plausible mistakes give outputs of the right shape but wrong
values: T (decoder) != S (source) in the generated cases, d_head != E, padded sources, biases
and layer-norm parameters away from their defaults. A fixed case with T == S lets the
"keys/values from the decoder" and "queries from the encoder" mistakes run (with T != S they
crash or change the shape). Degenerate sizes (T = 1, S = 1, N = 1, one head, k = 1, beam
width 1, an empty target) are fixed cases, as are the tie conventions the text fixes (beam ties
across and within beams, which torch.topk orders differently, and a u exactly on a cumulative
probability) and inputs past exp's float64 range (~709: scores, logits), where a softmax or
log-softmax written without the max shift overflows.

Every exercise is pure (the text says not to modify the arguments: they are a model's parameters
or the caller's data), and the outputs the text calls indices are graded as integers (dtype).
"""
import math

import numpy as np
import torch

from autograder.authoring.exercises import Exercise

IGNORE = -100


# -- shared pieces (the wrong versions are written out in full, not taken from the notebook) -----

def _attn(Q, K, V, mask, scale=True, dim=-1, mask_after=False, fill=float("-inf"), naive=False):
    scores = Q @ K.transpose(-2, -1)
    if scale == "d":                     # divided by d_head, not its square root
        scores = scores / Q.shape[-1]
    elif scale:
        scores = scores / math.sqrt(Q.shape[-1])
    if mask is not None and not mask_after:
        scores = scores.masked_fill(~mask, fill)
    if naive:                            # exp / sum without the max shift: overflows past ~709
        e = torch.exp(scores)
        w = e / e.sum(dim, keepdim=True)
    else:
        w = torch.softmax(scores, dim=dim)
    if mask is not None and mask_after:
        w = w * mask
    return w @ V, w


def _split(t, h):
    N, T, E = t.shape
    return t.reshape(N, T, h, E // h).transpose(1, 2)


def _merge(t):
    N, h, T, d = t.shape
    return t.transpose(1, 2).reshape(N, T, h * d)


def _ln(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def _random_lengths(rng, N, S):
    lengths = rng.integers(1, S + 1, size=N)
    lengths[0] = S                       # one full row
    if N > 1 and S > 1:
        lengths[-1] = min(lengths[-1], S - 1)   # and one padded row
    return lengths


def _length_mask(lengths, S):
    return np.arange(S)[None, :] < np.asarray(lengths)[:, None]


# -- cross-attention ---------------------------------------------------------------------------

def _mha_weights(rng, E):
    return {"W_in": rng.normal(0, 0.7, size=(3 * E, E)), "b_in": rng.normal(0, 0.3, size=3 * E),
            "W_out": rng.normal(0, 0.5, size=(E, E)), "b_out": rng.normal(0, 0.3, size=E)}


def _cross_inputs(rng, N=None, T=None, S=None, heads=None, d_head=None):
    heads = heads or int(rng.choice([1, 2, 3]))
    d_head = d_head or int(rng.integers(1, 5))
    E = heads * d_head
    N = N or int(rng.integers(1, 4))
    T = T or int(rng.integers(1, 6))
    S = S or int(rng.choice([s for s in range(1, 8) if s != T]))
    return {"X": rng.normal(size=(N, T, E)), "memory": rng.normal(size=(N, S, E)),
            "memory_mask": _length_mask(_random_lengths(rng, N, S), S), **_mha_weights(rng, E),
            "num_heads": heads}


def _cross(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads, causal=False, kv="memory", q="X",
           scale=True, dim=-1, mask_after=False, use_mask=True, invert=False, transpose_w=False, out_proj=True,
           swap_kv=False, kv_bias=True, split="ok", merge="ok", fill=float("-inf"), naive=False):
    E = X.shape[-1]
    src = {"X": X, "memory": memory}
    proj = (lambda x, W, b: x @ W + b) if transpose_w else (lambda x, W, b: x @ W.T + b)
    k_rows, v_rows = (slice(2 * E, None), slice(E, 2 * E)) if swap_kv else (slice(E, 2 * E), slice(2 * E, None))
    Q = proj(src[q], W_in[:E], b_in[:E])
    K = proj(src[kv], W_in[k_rows], b_in[k_rows] if kv_bias else 0.0)
    V = proj(src[kv], W_in[v_rows], b_in[v_rows] if kv_bias else 0.0)
    mask = None
    if use_mask:
        m = ~memory_mask if invert else memory_mask
        mask = m[:, None, None, :]
        if causal:                       # the decoder's causal mask, wrongly applied to the source
            mask = mask & torch.tril(torch.ones(Q.shape[1], K.shape[1], dtype=torch.bool))
    heads = _split if split == "ok" else (lambda t, h: t.reshape(t.shape[0], h, t.shape[1], t.shape[2] // h))
    out, w = _attn(heads(Q, num_heads), heads(K, num_heads), heads(V, num_heads), mask, scale, dim, mask_after,
                   fill, naive)
    out = _merge(out) if merge == "ok" else out.reshape(out.shape[0], out.shape[2], -1)
    return (out @ W_out.T + b_out if out_proj else out), w


def _cross_with(**kw):
    return lambda *args: _cross(*args, **kw)


def _cross_scale_E(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads):
    # scores / sqrt(E) instead of sqrt(d_head): rescale Q so that _attn's sqrt(d_head) becomes sqrt(E)
    E = X.shape[-1]
    f = math.sqrt((E // num_heads) / E)
    W_in, b_in = W_in.clone(), b_in.clone()
    W_in[:E] *= f
    b_in[:E] *= f
    return _cross(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads)


def _large(case, keys, factor):
    """The case with the arrays ``keys`` scaled by ``factor``: scores far past exp's float64 range (~709)."""
    return {**case, **{k: case[k] * factor for k in keys}}


_rng = np.random.default_rng(2026)
_CROSS_FIXED = (
    _cross_inputs(_rng, N=2, T=4, S=4, heads=2, d_head=3),   # T == S: keys/values from the decoder stay the same shape
    _cross_inputs(_rng, N=1, T=1, S=5, heads=1, d_head=4),   # one query, one head, one sample
    {**_cross_inputs(_rng, N=2, T=3, S=1, heads=2, d_head=2), "memory_mask": np.ones((2, 1), dtype=bool)},  # S = 1
    _large(_cross_inputs(_rng, N=2, T=3, S=5, heads=2, d_head=3), ("X", "memory"), 30.0),  # scores in the thousands
)


# -- decoder block -----------------------------------------------------------------------------

def _block_inputs(rng, N=None, T=None, S=None, heads=None, d_head=None):
    heads = heads or int(rng.choice([1, 2, 3]))
    d_head = d_head or int(rng.integers(1 if heads > 1 else 2, 4))  # E >= 2: layer norm over one feature is constant
    E = heads * d_head
    F_ = int(rng.choice([f for f in range(1, 11) if f != E]))
    N = N or int(rng.integers(1, 3))
    T = T or int(rng.integers(1, 6))
    S = S or int(rng.choice([s for s in range(1, 7) if s != T]))
    g = lambda *s, scale=0.5: rng.normal(0, scale, size=s)
    sa, ca = _mha_weights(rng, E), _mha_weights(rng, E)
    return {"Y": rng.normal(size=(N, T, E)), "memory": rng.normal(size=(N, S, E)),
            "memory_mask": _length_mask(_random_lengths(rng, N, S), S),
            "sa_W_in": sa["W_in"], "sa_b_in": sa["b_in"], "sa_W_out": sa["W_out"], "sa_b_out": sa["b_out"],
            "ca_W_in": ca["W_in"], "ca_b_in": ca["b_in"], "ca_W_out": ca["W_out"], "ca_b_out": ca["b_out"],
            "ln1_w": 1.0 + g(E, scale=0.3), "ln1_b": g(E, scale=0.3),
            "ln2_w": 1.0 + g(E, scale=0.3), "ln2_b": g(E, scale=0.3),
            "ln3_w": 1.0 + g(E, scale=0.3), "ln3_b": g(E, scale=0.3),
            "W1": g(F_, E), "b1": g(F_, scale=0.3), "W2": g(E, F_), "b2": g(E, scale=0.3), "num_heads": heads}


def _block(Y, memory, memory_mask, sa_W_in, sa_b_in, sa_W_out, sa_b_out, ca_W_in, ca_b_in, ca_W_out, ca_b_out,
           ln1_w, ln1_b, ln2_w, ln2_b, ln3_w, ln3_b, W1, b1, W2, b2, num_heads, post_norm=False, causal=True,
           cross_causal=False, res=(True, True, True), norm_memory=False, cross_first=False, act=torch.relu,
           cross_mask=True, norms=(True, True, True), one_norm=False):
    T = Y.shape[1]

    def self_attn(h):
        q, k, v = (h @ sa_W_in.T + sa_b_in).chunk(3, dim=-1)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool)) if causal else None
        if causal == "inverted":         # True = masked (PyTorch's attn_mask) passed where True = may attend
            mask = ~mask
        out, _ = _attn(_split(q, num_heads), _split(k, num_heads), _split(v, num_heads), mask)
        return _merge(out) @ sa_W_out.T + sa_b_out

    def cross_attn(h):
        mem = _ln(memory, ln2_w, ln2_b) if norm_memory else memory
        mm = memory_mask if cross_mask else torch.ones_like(memory_mask)
        return _cross(h, mem, mm, ca_W_in, ca_b_in, ca_W_out, ca_b_out, num_heads, causal=cross_causal)[0]

    def mlp(h):
        return act(h @ W1.T + b1) @ W2.T + b2

    subs = [(self_attn, ln1_w, ln1_b), (cross_attn, ln2_w, ln2_b), (mlp, ln3_w, ln3_b)]
    if cross_first:
        subs[0], subs[1] = (cross_attn, ln1_w, ln1_b), (self_attn, ln2_w, ln2_b)
    shared = _ln(Y, ln1_w, ln1_b)
    for (f, w, b), keep, norm in zip(subs, res, norms):
        if post_norm:
            Y = _ln(Y + f(Y), w, b)
        else:
            out = f(shared if one_norm else (_ln(Y, w, b) if norm else Y))
            Y = Y + out if keep else out
    return Y


def _block_with(**kw):
    return lambda *args: _block(*args, **kw)


_rng = np.random.default_rng(2027)
_BLOCK_FIXED = (
    _block_inputs(_rng, N=1, T=1, S=3, heads=2, d_head=2),   # T = 1, one sample
    _block_inputs(_rng, N=2, T=4, S=6, heads=1, d_head=3),   # one head
)


# -- teacher forcing ---------------------------------------------------------------------------

def _tf_inputs(rng):
    """T in 1..8, N in 1..6 (N != T + 1), V in 1..12, lengths in 0..T (an empty target included);
    with N >= 2, one full row and one shorter row."""
    T = int(rng.integers(1, 9))
    N = int(rng.choice([n for n in range(1, 7) if n != T + 1]))
    V = int(rng.integers(1, 13))
    bos, eos, pad = (int(t) for t in rng.choice(np.arange(V, V + 4), size=3, replace=False))
    lengths = rng.integers(0, T + 1, size=N)
    if N >= 2:
        lengths[0] = T                   # one full row, one shorter row at least
        lengths[-1] = min(lengths[-1], T - 1)
    targets = np.full((N, T), pad, dtype=np.int64)
    for n, L in enumerate(lengths):
        targets[n, :L] = rng.integers(0, V, size=L)
    return {"targets": targets, "lengths": lengths.astype(np.int64), "bos": bos, "eos": eos, "pad": pad}


def _tf(targets, lengths, bos, eos, pad, kind="ok"):
    N, T = targets.shape
    pos = torch.arange(T + 2)[None, :]
    end = (torch.full_like(lengths, T) if kind == "ignore_lengths" else lengths)[:, None] + 1
    first, last = (eos, bos) if kind == "swap_bos_eos" else (bos, eos)
    rows = torch.full((N, T + 2), pad, dtype=torch.long)
    rows[:, 0] = first
    rows[:, 1:T + 1] = targets
    rows[pos == end] = last
    rows[pos > end] = pad
    if kind == "no_eos":
        rows[pos == end] = pad
    if kind == "eos_over_last":          # EOS at column L: over the last real token (over BOS when L = 0)
        rows[pos == end] = pad
        rows[pos == end - 1] = last
    dec_in, dec_out = rows[:, :-1], rows[:, 1:].clone()
    fill = pad if kind == "pad_not_ignored" else IGNORE
    dec_out[pos[:, 1:] > (end if kind != "no_eos" else end - 1)] = fill
    if kind == "input_ignored":          # the targets' -100 copied into the decoder input
        dec_in = dec_in.masked_fill(dec_out == IGNORE, IGNORE)
    if kind == "not_shifted":            # the decoder reads the token it must predict
        dec_in = torch.where(dec_out == IGNORE, pad, dec_out)
    if kind == "wrong_way":              # input = row without its first entry, target = without its last
        dec_in, dec_out = rows[:, 1:], rows[:, :-1].clone()
        dec_out[pos[:, :-1] > end] = IGNORE
    return dec_in, dec_out


def _tf_with(kind):
    return lambda *args: _tf(*args, kind=kind)


_TF_FIXED = (
    {"targets": np.array([[3, 1, 4, 1], [5, 9, 0, 0], [2, 6, 5, 0]]), "lengths": np.array([4, 2, 3]),
     "bos": 7, "eos": 8, "pad": 0},
    {"targets": np.array([[4], [0]]), "lengths": np.array([1, 0]), "bos": 1, "eos": 2, "pad": 0},  # T = 1, an empty target
)


# -- greedy decoding ---------------------------------------------------------------------------

def _greedy_inputs(rng):
    V = int(rng.integers(3, 11))        # bos, eos and pad are three different tokens
    N = int(rng.integers(1, 5))
    max_len = int(rng.choice([m for m in range(1, 11) if m not in (V, N)]))  # max_len = 1 included
    bos, eos, pad = (int(t) for t in rng.choice(V, size=3, replace=False))
    logits = rng.normal(0, 1.5, size=(N, V, V))
    logits[:, :, eos] += rng.normal(0.5, 1.0, size=(N, 1))     # some sequences stop early, some never
    return {"next_logits": logits, "bos": bos, "eos": eos, "pad": pad, "max_len": max_len}


def _greedy(next_logits, bos, eos, pad, max_len, stop=True, keep_eos=True, feed=True, score="log_softmax",
            score_after_eos=False, score_eos=True, axis="row", tie="first", with_bos=False):
    N, V, _ = next_logits.shape
    table = next_logits if axis == "row" else next_logits.transpose(1, 2)
    if score == "log_softmax":
        lp = torch.log_softmax(table, dim=-1)
    elif score == "axis1":               # normalised over the previous token's axis
        lp = torch.log_softmax(table, dim=1)
    elif score == "naive":               # log(sum(exp(z))) without the max shift: inf past ~709
        lp = table - torch.log(torch.exp(table).sum(-1, keepdim=True))
    else:
        lp = table
    rows = torch.arange(N)
    prev = torch.full((N,), bos, dtype=torch.long)
    tokens = torch.full((N, max_len), pad, dtype=torch.long)
    scores = torch.zeros(N, dtype=torch.float64)
    done = torch.zeros(N, dtype=torch.bool)
    steps = []
    for t in range(max_len):
        step = lp[rows, prev]
        choice = step.argmax(-1) if tie == "first" else (V - 1 - step.flip(-1).argmax(-1))
        new_eos = (choice == eos) & ~done
        out = choice.clone()
        if stop:
            out = torch.where(done, pad, out)
        if not keep_eos:
            out = torch.where(new_eos, pad, out)
        steps.append(out)
        add = step[rows, choice]
        counted = torch.ones(N, dtype=torch.bool) if score_after_eos else ~done
        if not score_eos:
            counted = counted & ~new_eos
        scores = scores + torch.where(counted, add, 0.0)
        done = done | (choice == eos)
        prev = choice if feed else prev
    tokens = torch.stack(steps, dim=1)
    if with_bos:
        tokens = torch.cat([torch.full((N, 1), bos), tokens[:, :-1]], dim=1)
    return tokens, scores


def _greedy_with(**kw):
    return lambda *args: _greedy(*args, **kw)


_GREEDY_FIXED = (
    # ties: after bos (0) tokens 1 and 2 both score 2 -> 1 (the lower index); after 1, tokens 2 and 3 tie -> 2;
    # after 2, EOS (3) wins; row 1 ends at once; N = 2, V = 5
    {"next_logits": np.array([[[0, 2, 2, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 3, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
                              [[0, 0, 0, 4, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 4], [0, 0, 0, 0, 0]]],
                             dtype=np.float64),
     "bos": 0, "eos": 3, "pad": 4, "max_len": 5},
    # bos = eos = pad (the names' '.'), one sequence, max_len = 1
    {"next_logits": np.array([[[0.0, 1.0, 2.0], [3.0, 0.0, 0.0], [0.0, 2.0, 0.0]]]), "bos": 0, "eos": 0, "pad": 0,
     "max_len": 1},
    # ordinary logits shifted by 1000 (softmax ignores a shift): exp overflows float64 past ~709, so a
    # log-softmax without the max shift gives inf
    {"next_logits": 1000.0 + np.random.default_rng(2028).normal(0, 2.0, size=(2, 4, 4)), "bos": 0, "eos": 1, "pad": 3,
     "max_len": 4},
)


# -- beam search step --------------------------------------------------------------------------

def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _beam_inputs(rng):
    N = int(rng.integers(1, 4))
    B = int(rng.integers(1, 6))          # a single beam included
    V = int(rng.choice([v for v in range(2, 8) if v != B]))
    W = int(rng.integers(1, min(B + 1, V) + 1))  # at most V: beam 0 is live, so >= V finite candidates
    finished = rng.uniform(size=(N, B)) < 0.35
    finished[:, 0] = False               # at least one live beam: always >= V >= W finite candidates
    return {"scores": -np.sort(rng.uniform(0.5, 6.0, size=(N, B)), axis=1),
            "log_probs": _log_softmax(rng.normal(0, 1.5, size=(N, B, V))), "finished": finished,
            "eos": int(rng.integers(V)), "beam_width": W}


def _beam(scores, log_probs, finished, eos, beam_width, accumulate="log", frozen="ok", decode="ok", tie="stable"):
    N, B, V = log_probs.shape
    if accumulate == "log":
        cand = scores[:, :, None] + log_probs
    elif accumulate == "none":
        cand = log_probs.clone()
    elif accumulate == "probs":           # probabilities added to log-probabilities
        cand = scores[:, :, None] + log_probs.exp()
    else:                                 # log-probabilities multiplied
        cand = scores[:, :, None] * log_probs
    if frozen != "extend":
        carried = torch.full_like(cand, float("-inf"))
        if frozen == "ok":
            carried[:, :, eos] = scores
        elif frozen == "reset":
            carried[:, :, eos] = 0.0
        elif frozen == "pay_eos":
            carried[:, :, eos] = scores + log_probs[:, :, eos]
        cand = torch.where(finished[:, :, None], carried, cand)
    if decode == "vb":                    # flattened (N, V, B): index = v * B + b
        cand = cand.transpose(1, 2)
    flat = cand.reshape(N, B * V)
    if tie == "topk":
        best, index = torch.topk(flat, beam_width, dim=1)
    elif tie == "stable":
        best, index = torch.sort(flat, dim=1, descending=True, stable=True)
    else:                                 # ties: the larger flat index first
        best, index = torch.sort(flat.flip(1), dim=1, descending=True, stable=True)
        index = flat.shape[1] - 1 - index
    best, index = best[:, :beam_width], index[:, :beam_width]
    if decode == "div_by_B":
        return best, index // B, index % B
    if decode == "vb":
        return best, index % B, index // B
    return best, index // V, index % V


def _beam_with(**kw):
    return lambda *args: _beam(*args, **kw)


_NEG = -np.inf
_BEAM_FIXED = (
    # the first step: one real beam, the others -inf; W = 3 > B = 1 is not needed, B = 3 here
    {"scores": np.array([[0.0, _NEG, _NEG]]), "log_probs": _log_softmax(np.array([[[2.0, 1.0, 0.5, -1.0]] * 3])),
     "finished": np.zeros((1, 3), dtype=bool), "eos": 3, "beam_width": 3},
    # ties: beams 0 and 1 have equal scores and equal log-probs, so candidates tie across beams;
    # beam 2 is finished and is carried over (with the best score, it comes first)
    {"scores": np.array([[-2.0, -2.0, -1.0]]), "log_probs": np.log(np.array([[[0.5, 0.25, 0.25]] * 3])),
     "finished": np.array([[False, False, True]]), "eos": 0, "beam_width": 4},
    # beam width 1 (greedy), one beam, two sequences
    {"scores": np.array([[-1.0], [-0.5]]), "log_probs": _log_softmax(np.array([[[0.3, 1.2, -0.4, 2.0, 0.1]],
                                                                               [[1.0, -1.0, 0.0, 0.5, 0.2]]])),
     "finished": np.array([[False], [False]]), "eos": 1, "beam_width": 1},
    # a finished beam with a score above every live candidate, and one below
    {"scores": np.array([[-0.2, -1.0, -3.0]]), "log_probs": _log_softmax(np.array([[[0.0, 1.0, 2.0, 0.5]] * 3])),
     "finished": np.array([[False, True, True]]), "eos": 2, "beam_width": 3},
    # five identical live beams: the best five candidates tie, so only the order the text fixes (smaller
    # flat index first: 0, 6, 12, 18, 24) is right; torch.topk returns them in another order
    {"scores": np.full((1, 5), -1.0), "log_probs": np.log(np.array([[[0.4] + [0.12] * 5] * 5])),
     "finished": np.zeros((1, 5), dtype=bool), "eos": 5, "beam_width": 5},
    # ties across beams: beam 1 is ln 2 behind beam 0, so (beam 0, token 1), (0, 2) and (1, 0) all score
    # -2 ln 2 (exact: log(1/4) = 2 log(1/2) in floating point); by flat index b * V + v: (0, 1), (0, 2), (1, 0)
    {"scores": np.array([[0.0, np.log(0.5)]]), "log_probs": np.log(np.array([[[0.5, 0.25, 0.25]] * 2])),
     "finished": np.zeros((1, 2), dtype=bool), "eos": 2, "beam_width": 4},
)


# -- top-k sampling ----------------------------------------------------------------------------

def _topk_inputs(rng):
    N = int(rng.integers(1, 9))
    V = int(rng.choice([v for v in range(2, 13) if v != N]))
    k = int(rng.integers(1, V + 1))      # k = 1 (greedy) and k = V (no filtering) included
    return {"logits": rng.normal(0, 2.0, size=(N, V)), "k": k, "temperature": float(rng.uniform(0.3, 3.0)),
            "u": rng.uniform(0.0, 1.0, size=N)}


def _softmax(z):
    return torch.softmax(z, dim=-1)


def _inverse_cdf(p, u, rule="ok"):
    cdf = torch.cumsum(p, dim=-1)
    if rule == "geq":                     # the first j with cdf >= u (the text: cdf > u)
        idx = (cdf < u[:, None]).sum(-1)
    elif rule == "nearest":               # the j whose cdf is nearest to u
        idx = (cdf - u[:, None]).abs().argmin(-1)
    else:
        idx = (cdf <= u[:, None]).sum(-1)
    return idx.clamp(max=p.shape[-1] - 1)


def _topk(logits, k, temperature, u, keep="ok", temp="divide", order="mask_then_softmax", sample_from="filtered",
          dim=-1, off_by_one=False, rule="ok", naive=False):
    z = {"divide": logits / temperature, "multiply": logits * temperature, "ignore": logits}[temp]
    V = z.shape[-1]
    kk = {"ok": k, "k+1": min(k + 1, V), "strict": k}.get(keep, k)
    kth = torch.topk(z, kk, dim=-1).values[:, -1:]
    if keep == "strict":                  # z > kth: the k-th token itself is dropped
        drop = z <= kth
    elif keep == "exactly_k":             # exactly k by position (ties at the boundary: lowest index)
        order_ = torch.sort(z, dim=-1, descending=True, stable=True).indices[:, :k]
        drop = torch.ones_like(z, dtype=torch.bool).scatter(1, order_, False)
    elif keep == "topk_indices":          # exactly k, the ones torch.topk's indices name (ties: its own choice)
        drop = torch.ones_like(z, dtype=torch.bool).scatter(1, torch.topk(z, k, dim=-1).indices, False)
    elif keep == "smallest":
        drop = z > torch.topk(z, k, dim=-1, largest=False).values[:, -1:]
    else:
        drop = z < kth
    full = torch.softmax(z, dim=dim)
    if order == "mask_then_softmax" and naive:
        e = torch.exp(z.masked_fill(drop, float("-inf")))
        probs = e / e.sum(dim, keepdim=True)
    elif order == "mask_then_softmax":
        probs = torch.softmax(z.masked_fill(drop, float("-inf")), dim=dim)
    else:                                 # filtered after the softmax and not renormalised
        probs = full.masked_fill(drop, 0.0)
    idx = _inverse_cdf(full if sample_from == "full" else probs, u, rule)
    if off_by_one:
        idx = (idx - 1).clamp(min=0)
    return probs, idx


def _topk_with(**kw):
    return lambda *args: _topk(*args, **kw)


_TOPK_FIXED = (
    # ties at the k-th largest logit: both 2.0 are kept with k = 2 (3 tokens kept in row 0);
    # row 1 has no tie; row 2 is all equal (everything kept)
    {"logits": np.array([[3.0, 2.0, 0.0, 2.0, -1.0], [0.5, 1.5, -2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]]),
     "k": 2, "temperature": 1.0, "u": np.array([0.62, 0.3, 0.55])},
    # k = 1 (greedy whatever u is), one sample
    {"logits": np.array([[0.1, -0.3, 1.7, 0.9]]), "k": 1, "temperature": 0.7, "u": np.array([0.9])},
    # k = V: plain temperature sampling
    {"logits": np.array([[1.0, 0.0, -1.0], [2.0, 2.5, 0.0]]), "k": 3, "temperature": 2.0, "u": np.array([0.8, 0.1])},
    # u exactly on a cumulative probability (0.25 steps are exact in binary): the index is the first j whose
    # cdf is GREATER than u, so u = 0.5 gives 2 and u = 0.25 gives 1 (and u = 0.6, off the steps, 2)
    {"logits": np.zeros((3, 4)), "k": 4, "temperature": 1.0, "u": np.array([0.5, 0.25, 0.6])},
    # logits / temperature in the thousands: exp overflows float64 past ~709 (a softmax without the max shift)
    {"logits": np.array([[800.0, 799.0, 0.0, -800.0], [1000.0, 1000.5, 990.0, 0.0]]), "k": 3, "temperature": 0.5,
     "u": np.array([0.5, 0.3])},
)


EXERCISES = [
    Exercise(
        "cross_attention", _cross_inputs, fixed=_CROSS_FIXED, pure=True,
        # atol 1e-5: a correct float32 answer (e.g. nn.MultiheadAttention) is off by up to ~5e-7 on O(1)
        # outputs near 0; every mistake below is off by O(0.1) or more.
        atol=1e-5,
        framework="torch",
        mistakes={
            "a causal mask in cross-attention: the whole source is known, so every output position may attend to "
            "every real source position (mask only the padding)": _cross_with(causal=True),
            "keys and values come from the decoder: in cross-attention they are projected from the memory "
            "(the encoder's outputs), the queries from X": _cross_with(kv="X"),
            "queries and keys/values swapped: queries from the decoder states X, keys and values from the memory":
                _cross_with(q="memory", kv="X"),
            "the scores are not scaled: divide Q K^T by sqrt(d_head)": _cross_with(scale=False),
            "scale by sqrt(d_head) = sqrt(E / num_heads), not sqrt(E)": _cross_scale_E,
            "softmax over the wrong axis: each query's weights over the source positions (the last axis) must sum to 1":
                _cross_with(dim=-2),
            "the mask is applied after the softmax: set the padded scores to -inf BEFORE it, so the weights still sum to 1":
                _cross_with(mask_after=True),
            "the memory mask is ignored: padded source positions must get weight 0": _cross_with(use_mask=False),
            "the memory mask is inverted: True marks the real source positions (those that may be attended to)":
                _cross_with(invert=True),
            "the projection weights are used untransposed: q = X @ W_q.T + b_q (PyTorch's Linear layout)":
                _cross_with(transpose_w=True),
            "the output projection is missing: finish with out @ W_out.T + b_out": _cross_with(out_proj=False),
            "the key and value projections are swapped: W_in[E:2E] (and b_in[E:2E]) project the keys, W_in[2E:] the "
            "values": _cross_with(swap_kv=True),
            "the keys and values are projected without their biases: K = memory @ W_k.T + b_k, the same for V":
                _cross_with(kv_bias=False),
            "the heads are split by a reshape straight to (N, h, L, d_head): that mixes positions and heads; "
            "reshape to (N, L, h, d_head), then transpose(1, 2)": _cross_with(split="reshape"),
            "the heads are merged by a reshape straight to (N, T, E): transpose (N, h, T, d_head) back to "
            "(N, T, h, d_head) first": _cross_with(merge="reshape"),
            "the scores are divided by d_head: divide by its square root, sqrt(d_head)": _cross_with(scale="d"),
            "the padded scores are set to 0, which still gets weight after the softmax: set them to -inf":
                _cross_with(fill=0.0),
            "exp overflows on large scores (inf / inf = nan): use torch.softmax, or subtract each row's maximum "
            "before exp": _cross_with(naive=True),
        },
    ),
    Exercise(
        "decoder_block", _block_inputs, fixed=_BLOCK_FIXED, pure=True,
        builds_on=("cross_attention",),
        # atol 1e-5: float32 through three attention/MLP branches and three layer norms (e.g. a float32
        # nn.TransformerDecoderLayer) is off by ~1e-6 near 0; the mistakes are off by O(0.1).
        atol=1e-5,
        framework="torch",
        mistakes={
            "that is the post-norm block: here the layer norm comes first inside each branch, Y + SelfAttn(LN1(Y)), "
            "Y + CrossAttn(LN2(Y), memory), Y + MLP(LN3(Y))": _block_with(post_norm=True),
            "the self-attention has no causal mask: position t must not see the decoder tokens after it":
                _block_with(causal=False),
            "a causal mask in the cross-attention: the decoder may read the whole (real) source":
                _block_with(cross_causal=True),
            "the residual connection around the self-attention is missing: Y = Y + SelfAttn(LN1(Y))":
                _block_with(res=(False, True, True)),
            "the residual connection around the cross-attention is missing: Y = Y + CrossAttn(LN2(Y), memory)":
                _block_with(res=(True, False, True)),
            "the residual connection around the MLP is missing: Y + MLP(LN3(Y))": _block_with(res=(True, True, False)),
            "the memory is normalised too: LN2 is applied to the decoder states (the queries) only":
                _block_with(norm_memory=True),
            "the sub-layers are in the wrong order: causal self-attention first, then cross-attention, then the MLP":
                _block_with(cross_first=True),
            "GELU in the MLP: this block uses ReLU (nn.TransformerDecoderLayer's default)":
                _block_with(act=torch.nn.functional.gelu),
            "the causal mask is inverted: pass causal_mask(T) itself (True = may attend); self_attention turns it "
            "into PyTorch's convention": _block_with(causal="inverted"),
            "one layer norm feeds all three branches: each branch normalises the current Y with its own norm "
            "(LN1, then LN2 after the self-attention's residual, then LN3)": _block_with(one_norm=True),
            "the memory mask is not passed to the cross-attention: padded source positions must get weight 0":
                _block_with(cross_mask=False),
            "the MLP branch has no layer norm: Y + MLP(LN3(Y))": _block_with(norms=(True, True, False)),
        },
    ),
    Exercise(
        "teacher_forcing", _tf_inputs, fixed=_TF_FIXED, pure=True, dtype=("int", "int"),
        framework="torch",
        mistakes={
            "not shifted: the decoder input must start with BOS and lag the targets by one position, "
            "otherwise the model just copies the token it has to predict": _tf_with("not_shifted"),
            "shifted the wrong way: the decoder input is the row WITHOUT its last entry ([BOS, y...]), "
            "the targets the row without its first entry ([y..., EOS])": _tf_with("wrong_way"),
            "BOS and EOS swapped: the decoder input starts with BOS, the targets end with EOS": _tf_with("swap_bos_eos"),
            "EOS is missing from the targets: after the last real token the model must learn to predict EOS":
                _tf_with("no_eos"),
            "the lengths are ignored: EOS goes right after each row's L real tokens (column L + 1 of the row), "
            "not after the padding": _tf_with("ignore_lengths"),
            "the target padding is not ignored: positions after EOS must be -100, so that cross_entropy skips them":
                _tf_with("pad_not_ignored"),
            "EOS overwrites the last real token: it goes at column L + 1 of the row [BOS, y_0 .. y_(L-1), EOS, ...]":
                _tf_with("eos_over_last"),
            "the decoder input has -100 where the targets have it: only the targets use -100; the decoder input "
            "keeps its EOS and pad (it is embedded, and -100 is no token)": _tf_with("input_ignored"),
        },
    ),
    Exercise(
        "greedy_decode", _greedy_inputs, fixed=_GREEDY_FIXED, pure=True, dtype=("int", None),
        # atol 1e-5 on the scores: a float32 log_softmax summed over up to 8 steps
        atol=1e-5,
        framework="torch",
        mistakes={
            "decoding goes on after EOS: once a sequence has produced EOS, every later token is pad":
                _greedy_with(stop=False),
            "EOS is dropped: the token that ends a sequence is kept in the output, pad only after it":
                _greedy_with(keep_eos=False),
            "the output starts with BOS: return the generated tokens only (token 0 is the one chosen after BOS)":
                _greedy_with(with_bos=True),
            "the chosen token is not fed back: step t looks at the row of the token chosen at step t - 1 "
            "(BOS only at step 0)": _greedy_with(feed=False),
            "the table is read the wrong way round: next_logits[n, a, b] is the score of b AFTER a, "
            "so the distribution after a is next_logits[n, a, :]": _greedy_with(axis="column"),
            "the scores add raw logits: use log-probabilities, log_softmax of each row": _greedy_with(score="logits"),
            "the score keeps adding after EOS: count the tokens up to and including EOS only":
                _greedy_with(score_after_eos=True),
            "the score leaves out the EOS: its log-probability counts too (choosing to stop is a choice)":
                _greedy_with(score_eos=False),
            "ties are broken towards the highest index: the lowest index wins (torch.argmax)":
                _greedy_with(tie="last"),
            "log-probabilities over the wrong axis: next_logits[n, a, :] is the distribution after a, so "
            "log_softmax over the last axis": _greedy_with(score="axis1"),
            "exp overflows on large logits (log of inf): use torch.log_softmax, or subtract each row's maximum "
            "before exp": _greedy_with(score="naive"),
            "a finished sequence goes on: after its EOS every token is pad and the score stops growing":
                _greedy_with(stop=False, score_after_eos=True),
        },
    ),
    Exercise(
        "beam_search_step", _beam_inputs, fixed=_BEAM_FIXED, pure=True, dtype=(None, "int", "int"),
        framework="torch",
        mistakes={
            "the scores are not accumulated: a candidate's score is the beam's score PLUS the token's log-probability":
                _beam_with(accumulate="none"),
            "probabilities added to log-probabilities: accumulate in log space, score + log_probs":
                _beam_with(accumulate="probs"),
            "log-probabilities multiplied: in log space, probabilities multiply by adding their logs":
                _beam_with(accumulate="multiply"),
            "finished beams are extended like live ones: a finished beam is carried over unchanged "
            "(candidate EOS at its own score, -inf for every other token)": _beam_with(frozen="extend"),
            "a finished beam pays for its EOS again: it is carried over at no cost, with its score unchanged":
                _beam_with(frozen="pay_eos"),
            "finished beams are dropped: keep each one as the single candidate (beam, EOS) with its score":
                _beam_with(frozen="drop"),
            "beam and token decoded with B instead of V: beam = index // V, token = index % V":
                _beam_with(decode="div_by_B"),
            "ties are broken towards the larger flat index: equal scores keep the smaller b * V + v first "
            "(a stable sort)": _beam_with(tie="reverse"),
            "equal scores are not in the order the text fixes (torch.topk promises none): sort with "
            "torch.sort(flat, descending=True, stable=True), so the smaller flat index b * V + v comes first":
                _beam_with(tie="topk"),
            "a finished beam's score is reset to 0: it is carried over with its own score, unchanged":
                _beam_with(frozen="reset"),
            "the candidates are flattened in (V, B) order: flatten (N, B, V) as it is, so flat index i is "
            "beam i // V, token i % V": _beam_with(decode="vb"),
        },
    ),
    Exercise(
        "top_k_sample", _topk_inputs, fixed=_TOPK_FIXED, pure=True, dtype=(None, "int"),
        # atol 1e-5: float32 softmax; every mistake below is off by O(0.01) or more on the probabilities
        atol=1e-5,
        framework="torch",
        mistakes={
            "k + 1 tokens are kept: keep the tokens whose logit is at least the k-th largest":
                _topk_with(keep="k+1"),
            "the k-th token itself is dropped (z > kth keeps k - 1): keep z >= kth, i.e. drop only z < kth":
                _topk_with(keep="strict"),
            "ties at the k-th largest logit must all be kept (z < kth is dropped, so a tie keeps more than k)":
                _topk_with(keep="exactly_k"),
            "ties at the k-th largest logit must all be kept: keeping exactly the k that torch.topk's indices name "
            "drops the others (drop only z < kth)": _topk_with(keep="topk_indices"),
            "the k SMALLEST logits are kept: keep the k largest": _topk_with(keep="smallest"),
            "the probabilities are filtered after the softmax and not renormalised: set the logits outside the "
            "top-k to -inf BEFORE the softmax, so the kept ones sum to 1": _topk_with(order="filter_after"),
            "the logits are multiplied by the temperature: divide them (z / tau)": _topk_with(temp="multiply"),
            "the temperature is ignored: use softmax(logits / temperature)": _topk_with(temp="ignore"),
            "softmax over the wrong axis: each ROW must sum to 1": _topk_with(dim=0),
            "the index is drawn from the full distribution: sample from the top-k probabilities":
                _topk_with(sample_from="full"),
            "off by one: pick the FIRST index whose cumulative probability exceeds u": _topk_with(off_by_one=True),
            "u equal to a cumulative probability: the index is the first j whose cdf is strictly GREATER than u "
            "(the number of entries with cdf <= u), not cdf >= u": _topk_with(rule="geq"),
            "the index is the cdf nearest to u: take the first j whose cumulative probability exceeds u":
                _topk_with(rule="nearest"),
            "exp overflows on large logits (inf / inf = nan): use torch.softmax, or subtract each row's maximum "
            "before exp": _topk_with(naive=True),
        },
    ),
]
