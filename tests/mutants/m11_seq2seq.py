"""Plausible bugs in 11_seq2seq's exercises, written from the released text as a student might
(not copies of the mistakes catalogued in source_notebooks/11_seq2seq/cases.py).

Read by tests/course/test_mutants.py: every mutant must lose its exercise's points, and most must get a
first feedback line that names a likely mistake. The grader never reads this file. Arguments
arrive as torch tensors (float64, bool or int64) and plain ints, as the sandbox gives them.
"""
import math

import torch
import torch.nn.functional as F


# -- shared pieces a student has at hand: the notebook's given cell ------------------------------

def _causal(T):
    return ~torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)


def _self_attention(X, W_in, b_in, W_out, b_out, num_heads, mask=None):
    x = X.transpose(0, 1)
    out, w = F.multi_head_attention_forward(
        x, x, x, X.shape[-1], num_heads, W_in, b_in, None, None, False, 0.0, W_out, b_out, training=False,
        need_weights=True, attn_mask=None if mask is None else ~mask, average_attn_weights=False)
    return out.transpose(0, 1), w


def _layer_norm(x, w, b, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], w, b, eps)


# -- exercise 1: cross-attention -------------------------------------------------------------------

def _cross(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads, bug=None):
    N, T, E = X.shape
    S = memory.shape[1]
    d = E // num_heads
    Wq, Wk, Wv = W_in[:E], W_in[E:2 * E], W_in[2 * E:]
    bq, bk, bv = b_in[:E], b_in[E:2 * E], b_in[2 * E:]
    if bug == "kv_swapped":                       # the value rows read as the key rows
        Wk, Wv, bk, bv = Wv, Wk, bv, bk
    q = X @ Wq.T + bq
    k = memory @ Wk.T + (0 if bug == "no_kv_bias" else bk)
    v = memory @ Wv.T + (0 if bug == "no_kv_bias" else bv)
    if bug == "split_no_transpose":               # reshape straight to (N, h, L, d): mixes positions and heads
        q, k, v = q.reshape(N, num_heads, T, d), k.reshape(N, num_heads, S, d), v.reshape(N, num_heads, S, d)
    else:
        q = q.reshape(N, T, num_heads, d).transpose(1, 2)
        k = k.reshape(N, S, num_heads, d).transpose(1, 2)
        v = v.reshape(N, S, num_heads, d).transpose(1, 2)
    scores = q @ k.transpose(-2, -1)
    scores = scores / (d if bug == "scale_by_d" else math.sqrt(d))
    fill = 0.0 if bug == "fill_zero" else float("-inf")
    scores = scores.masked_fill(~memory_mask[:, None, None, :], fill)
    if bug == "naive_softmax":                    # exp / sum by hand: overflows on large scores
        e = torch.exp(scores)
        weights = e / e.sum(-1, keepdim=True)
    else:
        weights = torch.softmax(scores, dim=-1)
    out = weights @ v
    if bug == "merge_no_transpose":               # reshape back without undoing the transpose
        out = out.reshape(N, T, E)
    else:
        out = out.transpose(1, 2).reshape(N, T, E)
    return out @ W_out.T + b_out, weights


def _cross_bug(bug):
    return lambda *a: _cross(*a, bug=bug)


# -- exercise 2: decoder block ---------------------------------------------------------------------

def _block(Y, memory, memory_mask, sa_W_in, sa_b_in, sa_W_out, sa_b_out, ca_W_in, ca_b_in, ca_W_out, ca_b_out,
           ln1_w, ln1_b, ln2_w, ln2_b, ln3_w, ln3_b, W1, b1, W2, b2, num_heads, bug=None):
    T = Y.shape[1]
    mask = ~_causal(T) if bug == "torch_mask_convention" else _causal(T)   # passes torch's convention by mistake
    if bug == "one_norm":                          # normalises once, feeds every branch the same LN1(Y)
        h = _layer_norm(Y, ln1_w, ln1_b)
        Y = Y + _self_attention(h, sa_W_in, sa_b_in, sa_W_out, sa_b_out, num_heads, mask)[0]
        Y = Y + _cross(h, memory, memory_mask, ca_W_in, ca_b_in, ca_W_out, ca_b_out, num_heads)[0]
        return Y + torch.relu(h @ W1.T + b1) @ W2.T + b2
    Y = Y + _self_attention(_layer_norm(Y, ln1_w, ln1_b), sa_W_in, sa_b_in, sa_W_out, sa_b_out, num_heads, mask)[0]
    mm = torch.ones_like(memory_mask) if bug == "no_memory_mask" else memory_mask
    Y = Y + _cross(_layer_norm(Y, ln2_w, ln2_b), memory, mm, ca_W_in, ca_b_in, ca_W_out, ca_b_out, num_heads)[0]
    h = Y if bug == "no_ln3" else _layer_norm(Y, ln3_w, ln3_b)
    return Y + torch.relu(h @ W1.T + b1) @ W2.T + b2


def _block_bug(bug):
    return lambda *a: _block(*a, bug=bug)


# -- exercise 3: teacher forcing -------------------------------------------------------------------

def _tf(targets, lengths, bos, eos, pad, bug=None):
    N, T = targets.shape
    if bug == "float_rows":                        # torch.zeros: float32 rows
        rows = torch.zeros(N, T + 2)
        rows[:] = pad
    else:
        rows = torch.full((N, T + 2), pad, dtype=torch.long)
    rows[:, 0] = bos
    rows[:, 1:T + 1] = targets
    col = lengths if bug == "eos_at_L" else lengths + 1          # EOS written over the last real token
    rows[torch.arange(N), col] = eos
    dec_in, dec_out = rows[:, :-1], rows[:, 1:].clone()
    pos = torch.arange(T + 1)[None, :]
    if bug == "ignore_eos_too":                    # -100 from the EOS on: the EOS target is lost
        dec_out[pos >= lengths[:, None]] = -100
    else:
        dec_out[pos > lengths[:, None]] = -100
    if bug == "input_ignored_too":                 # the decoder input's padding also set to -100
        dec_in = dec_in.clone()
        dec_in[pos > lengths[:, None]] = -100
    return dec_in, dec_out


def _tf_bug(bug):
    return lambda *a: _tf(*a, bug=bug)


def _tf_in_place(targets, lengths, bos, eos, pad):
    """Writes EOS into the caller's targets (in place) before building the rows."""
    N, T = targets.shape
    short = lengths < T
    targets[short, lengths[short]] = eos
    rows = torch.full((N, T + 2), pad, dtype=torch.long)
    rows[:, 0] = bos
    rows[:, 1:T + 1] = targets
    rows[~short, T + 1] = eos
    dec_in, dec_out = rows[:, :-1], rows[:, 1:].clone()
    dec_out[torch.arange(T + 1)[None, :] > lengths[:, None]] = -100
    return dec_in, dec_out


# -- exercise 4: greedy decoding -------------------------------------------------------------------

def _greedy(next_logits, bos, eos, pad, max_len, bug=None):
    N, V, _ = next_logits.shape
    if bug == "hand_log_softmax":                  # log(sum(exp)) without subtracting the max: overflows
        log_probs = next_logits - torch.log(torch.exp(next_logits).sum(-1, keepdim=True))
    elif bug == "softmax_dim1":                    # normalised over the previous token's axis
        log_probs = torch.log_softmax(next_logits, dim=1)
    else:
        log_probs = torch.log_softmax(next_logits, dim=-1)
    tokens = torch.zeros(N, max_len) if bug == "float_tokens" else torch.zeros(N, max_len, dtype=torch.long)
    scores = torch.zeros(N, dtype=torch.float64)
    prev = torch.full((N,), bos, dtype=torch.long)
    done = torch.zeros(N, dtype=torch.bool)
    for t in range(max_len):
        lp = log_probs[torch.arange(N), prev]
        choice = lp.argmax(-1)
        tokens[:, t] = torch.where(done, torch.full_like(choice, pad), choice)
        scores += torch.where(done, torch.zeros_like(scores), lp[torch.arange(N), choice])
        done = done | (choice == eos)
        prev = choice
    return tokens, scores


def _greedy_bug(bug):
    return lambda *a: _greedy(*a, bug=bug)


def _greedy_pad_start(next_logits, bos, eos, pad, max_len):
    """Pads only the sequences still running at the end: a finished sequence keeps generating tokens."""
    N = next_logits.shape[0]
    lp_all = torch.log_softmax(next_logits, -1)
    tokens = torch.full((N, max_len), pad, dtype=torch.long)
    scores = torch.zeros(N, dtype=torch.float64)
    for n in range(N):
        prev = bos
        for t in range(max_len):
            lp = lp_all[n, prev]
            choice = int(lp.argmax())
            tokens[n, t] = choice
            scores[n] += lp[choice]
            prev = choice
            if choice == eos and t + 1 < max_len:
                tokens[n, t + 1] = pad          # one pad, then the loop goes on writing
    return tokens, scores


# -- exercise 5: beam search step ------------------------------------------------------------------

def _beam(scores, log_probs, finished, eos, beam_width, bug=None):
    N, B, V = log_probs.shape
    cand = scores[:, :, None] + log_probs
    carried = torch.full_like(cand, float("-inf"))
    carried[:, :, eos] = 0.0 if bug == "finished_reset" else scores        # score reset to 0 when finished
    cand = torch.where(finished[:, :, None], carried, cand)
    flat = cand.reshape(N, B * V)
    if bug == "topk":                              # torch.topk: no promised order among ties
        best, index = torch.topk(flat, beam_width, dim=1)
    else:
        best, index = torch.sort(flat, dim=1, descending=True, stable=True)
        best, index = best[:, :beam_width], index[:, :beam_width]
    if bug == "float_div":                         # true division then floor: float parents and tokens
        return best, torch.floor(index / V), index - torch.floor(index / V) * V
    if bug == "transposed_flatten":                # flattened (N, V, B): index = v * B + b
        flat = cand.transpose(1, 2).reshape(N, V * B)
        best, index = torch.sort(flat, dim=1, descending=True, stable=True)
        best, index = best[:, :beam_width], index[:, :beam_width]
        return best, index % B, index // B
    return best, index // V, index % V


def _beam_bug(bug):
    return lambda *a: _beam(*a, bug=bug)


def _beam_in_place(scores, log_probs, finished, eos, beam_width):
    """Freezes the finished beams by writing into the caller's log_probs."""
    N, B, V = log_probs.shape
    log_probs[finished] = float("-inf")
    lp = log_probs.clone()
    lp[..., eos] = torch.where(finished, torch.zeros_like(scores), log_probs[..., eos])
    flat = (scores[:, :, None] + lp).reshape(N, B * V)
    best, index = torch.sort(flat, dim=1, descending=True, stable=True)
    index = index[:, :beam_width]
    return best[:, :beam_width], index // V, index % V


# -- exercise 6: top-k sampling --------------------------------------------------------------------

def _topk(logits, k, temperature, u, bug=None):
    V = logits.shape[-1]
    if bug == "in_place":                          # divides the caller's logits by the temperature
        logits /= temperature
        z = logits
    else:
        z = logits / temperature
    kth = torch.topk(z, k, dim=-1).values[:, -1:]
    z = z.masked_fill(z < kth, float("-inf"))
    if bug == "naive_softmax":
        e = torch.exp(z)
        probs = e / e.sum(-1, keepdim=True)
    else:
        probs = torch.softmax(z, dim=-1)
    cdf = torch.cumsum(probs, dim=-1)
    if bug == "searchsorted":                      # first j with cdf >= u (the text: cdf > u)
        idx = torch.searchsorted(cdf, u[:, None].to(cdf.dtype)).squeeze(1)
    elif bug == "float_idx":                       # a count of booleans as float
        idx = (cdf <= u[:, None]).to(probs.dtype).sum(-1)
    elif bug == "argmax_u":                        # the closest cdf to u instead of the first above it
        idx = (cdf - u[:, None]).abs().argmin(-1)
    else:
        idx = (cdf <= u[:, None]).sum(-1)
    return probs, idx.clamp(max=V - 1)


def _topk_bug(bug):
    return lambda *a: _topk(*a, bug=bug)


MUTANTS = [
    ("cross_attention", "key and value projections swapped (W_in[E:2E] used for the values)", _cross_bug("kv_swapped")),
    ("cross_attention", "keys and values projected without their biases", _cross_bug("no_kv_bias")),
    ("cross_attention", "heads split by a plain reshape to (N, h, L, d), no transpose", _cross_bug("split_no_transpose")),
    ("cross_attention", "heads merged by a plain reshape to (N, T, E), no transpose back", _cross_bug("merge_no_transpose")),
    ("cross_attention", "scores divided by d_head instead of sqrt(d_head)", _cross_bug("scale_by_d")),
    ("cross_attention", "padded scores set to 0 instead of -inf", _cross_bug("fill_zero")),
    ("cross_attention", "softmax written as exp / sum without subtracting the max (overflow)", _cross_bug("naive_softmax")),
    ("decoder_block", "causal mask passed in torch's convention (~causal_mask(T))", _block_bug("torch_mask_convention")),
    ("decoder_block", "LN1(Y) computed once and fed to all three branches", _block_bug("one_norm")),
    ("decoder_block", "memory mask replaced by all True", _block_bug("no_memory_mask")),
    ("decoder_block", "the MLP branch without its layer norm LN3", _block_bug("no_ln3")),
    ("teacher_forcing", "rows built as float tensors (torch.zeros)", _tf_bug("float_rows")),
    ("teacher_forcing", "EOS written at column L, over the last real token", _tf_bug("eos_at_L")),
    ("teacher_forcing", "-100 from the EOS on: the EOS target is ignored too", _tf_bug("ignore_eos_too")),
    ("teacher_forcing", "the decoder input's padding set to -100 as well", _tf_bug("input_ignored_too")),
    ("teacher_forcing", "EOS written into the caller's targets in place", _tf_in_place),
    ("greedy_decode", "log-softmax by hand without the max shift (overflows)", _greedy_bug("hand_log_softmax")),
    ("greedy_decode", "log_softmax over axis 1 (the previous token)", _greedy_bug("softmax_dim1")),
    ("greedy_decode", "tokens stored in a float tensor", _greedy_bug("float_tokens")),
    ("greedy_decode", "a finished sequence keeps generating after one pad", _greedy_pad_start),
    ("beam_search_step", "a finished beam's score reset to 0", _beam_bug("finished_reset")),
    ("beam_search_step", "torch.topk instead of the stable sort (tie order)", _beam_bug("topk")),
    ("beam_search_step", "parents and tokens computed with true division: floats", _beam_bug("float_div")),
    ("beam_search_step", "candidates flattened as (V, B): index = v * B + b", _beam_bug("transposed_flatten")),
    ("beam_search_step", "finished beams frozen by writing into log_probs in place", _beam_in_place),
    ("top_k_sample", "logits divided by the temperature in place", _topk_bug("in_place")),
    ("top_k_sample", "softmax as exp / sum without the max shift (overflow)", _topk_bug("naive_softmax")),
    ("top_k_sample", "torch.searchsorted: first j with cdf >= u instead of cdf > u", _topk_bug("searchsorted")),
    ("top_k_sample", "the index counted as a float", _topk_bug("float_idx")),
    ("top_k_sample", "the index of the cdf closest to u", _topk_bug("argmax_u")),
]
