"""Held-out plausible bugs for 11_seq2seq, written from the released text only (the author never read cases.py).
Read by tests/course/test_mutants.py; the grader never reads this folder."""
import math

import torch
import torch.nn.functional as F


# --- The given cell of the notebook (given_attention), as the student has it ---------------------------------

def causal_mask(T):
    return ~torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)


def self_attention(X, W_in, b_in, W_out, b_out, num_heads, mask=None):
    x = X.transpose(0, 1)
    out, weights = F.multi_head_attention_forward(
        x, x, x, X.shape[-1], num_heads, W_in, b_in, None, None, False, 0.0, W_out, b_out, training=False,
        need_weights=True, attn_mask=None if mask is None else ~mask, average_attn_weights=False)
    return out.transpose(0, 1), weights


def layer_norm(x, weight, bias, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps)


# --- Exercise 1: cross_attention -------------------------------------------------------------------------------

def _split(z, h):
    N, L, E = z.shape
    return z.reshape(N, L, h, E // h).transpose(1, 2)


def _cross(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads, scale=None, use_mask=True, merge=None):
    """A student's cross-attention, correct unless one of the switches says otherwise."""
    N, T, E = X.shape
    d = E // num_heads
    W_q, W_k, W_v = W_in[:E], W_in[E:2 * E], W_in[2 * E:]
    b_q, b_k, b_v = b_in[:E], b_in[E:2 * E], b_in[2 * E:]
    q = _split(X @ W_q.T + b_q, num_heads)
    k = _split(memory @ W_k.T + b_k, num_heads)
    v = _split(memory @ W_v.T + b_v, num_heads)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d if scale is None else scale)
    if use_mask:
        scores = scores.masked_fill(~memory_mask[:, None, None, :], float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    out = weights @ v                                                   # (N, h, T, d)
    out = out.transpose(1, 2).reshape(N, T, E) if merge is None else merge(out, N, T, E)
    return out @ W_out.T + b_out, weights


def cross_attention(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads):
    return _cross(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads)


def cross_scaled_by_E(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads):
    return _cross(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads, scale=X.shape[-1])


def cross_no_padding_mask(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads):
    return _cross(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads, use_mask=False)


def cross_merge_without_transpose(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads):
    return _cross(X, memory, memory_mask, W_in, b_in, W_out, b_out, num_heads,
                  merge=lambda out, N, T, E: out.reshape(N, T, E))


# --- Exercise 2: decoder_block ---------------------------------------------------------------------------------

def block_post_norm(Y, memory, memory_mask, sa_W_in, sa_b_in, sa_W_out, sa_b_out, ca_W_in, ca_b_in, ca_W_out,
                    ca_b_out, ln1_w, ln1_b, ln2_w, ln2_b, ln3_w, ln3_b, W1, b1, W2, b2, num_heads):
    T = Y.shape[1]
    Y = layer_norm(Y + self_attention(Y, sa_W_in, sa_b_in, sa_W_out, sa_b_out, num_heads,
                                      mask=causal_mask(T))[0], ln1_w, ln1_b)
    Y = layer_norm(Y + cross_attention(Y, memory, memory_mask, ca_W_in, ca_b_in, ca_W_out, ca_b_out,
                                       num_heads)[0], ln2_w, ln2_b)
    return layer_norm(Y + torch.relu(Y @ W1.T + b1) @ W2.T + b2, ln3_w, ln3_b)


def block_memory_normalised(Y, memory, memory_mask, sa_W_in, sa_b_in, sa_W_out, sa_b_out, ca_W_in, ca_b_in,
                            ca_W_out, ca_b_out, ln1_w, ln1_b, ln2_w, ln2_b, ln3_w, ln3_b, W1, b1, W2, b2, num_heads):
    T = Y.shape[1]
    Y = Y + self_attention(layer_norm(Y, ln1_w, ln1_b), sa_W_in, sa_b_in, sa_W_out, sa_b_out, num_heads,
                           mask=causal_mask(T))[0]
    Y = Y + cross_attention(layer_norm(Y, ln2_w, ln2_b), layer_norm(memory, ln2_w, ln2_b), memory_mask,
                            ca_W_in, ca_b_in, ca_W_out, ca_b_out, num_heads)[0]
    return Y + torch.relu(layer_norm(Y, ln3_w, ln3_b) @ W1.T + b1) @ W2.T + b2


def block_no_causal_mask(Y, memory, memory_mask, sa_W_in, sa_b_in, sa_W_out, sa_b_out, ca_W_in, ca_b_in, ca_W_out,
                         ca_b_out, ln1_w, ln1_b, ln2_w, ln2_b, ln3_w, ln3_b, W1, b1, W2, b2, num_heads):
    Y = Y + self_attention(layer_norm(Y, ln1_w, ln1_b), sa_W_in, sa_b_in, sa_W_out, sa_b_out, num_heads)[0]
    Y = Y + cross_attention(layer_norm(Y, ln2_w, ln2_b), memory, memory_mask,
                            ca_W_in, ca_b_in, ca_W_out, ca_b_out, num_heads)[0]
    return Y + torch.relu(layer_norm(Y, ln3_w, ln3_b) @ W1.T + b1) @ W2.T + b2


# --- Exercise 3: teacher_forcing -------------------------------------------------------------------------------

def _rows(targets, lengths, bos, eos, pad, eos_offset=1):
    N, T = targets.shape
    positions = torch.arange(T + 2)[None, :]
    end = lengths[:, None] + eos_offset
    rows = torch.full((N, T + 2), pad, dtype=torch.long)
    rows[:, 0] = bos
    rows[:, 1:T + 1] = targets
    rows[positions == end] = eos
    rows[positions > end] = pad
    return rows, positions, end


def tf_eos_at_length(targets, lengths, bos, eos, pad):
    rows, positions, end = _rows(targets, lengths, bos, eos, pad, eos_offset=0)   # EOS at column L, not L + 1
    dec_in, dec_out = rows[:, :-1], rows[:, 1:].clone()
    dec_out[positions[:, 1:] > end] = -100
    return dec_in, dec_out


def tf_pad_not_ignored(targets, lengths, bos, eos, pad):
    rows, _, _ = _rows(targets, lengths, bos, eos, pad)
    return rows[:, :-1], rows[:, 1:]                                                # padding left as pad, not -100


# --- Exercise 4: greedy_decode ---------------------------------------------------------------------------------

def _greedy(next_logits, bos, eos, pad, max_len, mask_scores=True, pad_after=True, dtype=torch.long):
    N = next_logits.shape[0]
    log_probs = torch.log_softmax(next_logits, dim=-1)
    rows = torch.arange(N)
    prev = torch.full((N,), bos, dtype=torch.long)
    tokens = torch.zeros((N, max_len), dtype=dtype)
    scores = torch.zeros(N, dtype=log_probs.dtype)
    done = torch.zeros(N, dtype=torch.bool)
    for t in range(max_len):
        step = log_probs[rows, prev]
        choice = step.argmax(dim=-1)
        tokens[:, t] = torch.where(done, pad, choice) if pad_after else choice
        scores = scores + (torch.where(done, 0.0, step[rows, choice]) if mask_scores else step[rows, choice])
        done = done | (choice == eos)
        prev = choice
    return tokens, scores


def greedy_scores_after_eos(next_logits, bos, eos, pad, max_len):
    return _greedy(next_logits, bos, eos, pad, max_len, mask_scores=False)


def greedy_no_pad_after_eos(next_logits, bos, eos, pad, max_len):
    return _greedy(next_logits, bos, eos, pad, max_len, pad_after=False)


def greedy_float_tokens(next_logits, bos, eos, pad, max_len):
    return _greedy(next_logits, bos, eos, pad, max_len, dtype=next_logits.dtype)   # torch.zeros: float buffer


# --- Exercise 5: beam_search_step ------------------------------------------------------------------------------

def beam_finished_ignored(scores, log_probs, finished, eos, beam_width):
    N, B, V = log_probs.shape
    flat = (scores[:, :, None] + log_probs).reshape(N, B * V)
    best, index = torch.sort(flat, dim=1, descending=True, stable=True)
    index = index[:, :beam_width]
    return best[:, :beam_width], index // V, index % V


def beam_topk(scores, log_probs, finished, eos, beam_width):
    N, B, V = log_probs.shape
    candidates = scores[:, :, None] + log_probs
    carried = torch.full_like(candidates, float("-inf"))
    carried[:, :, eos] = scores
    flat = torch.where(finished[:, :, None], carried, candidates).reshape(N, B * V)
    best, index = torch.topk(flat, beam_width, dim=1)                 # no promised order among ties
    return best, index // V, index % V


def beam_divided_by_B(scores, log_probs, finished, eos, beam_width):
    N, B, V = log_probs.shape
    candidates = scores[:, :, None] + log_probs
    carried = torch.full_like(candidates, float("-inf"))
    carried[:, :, eos] = scores
    flat = torch.where(finished[:, :, None], carried, candidates).reshape(N, B * V)
    best, index = torch.sort(flat, dim=1, descending=True, stable=True)
    index = index[:, :beam_width]
    return best[:, :beam_width], index % B, index // B               # beam and token from B instead of V


# --- Exercise 6: top_k_sample ----------------------------------------------------------------------------------

def topk_not_renormalised(logits, k, temperature, u):
    probs = torch.softmax(logits / temperature, dim=-1)               # softmax over all, then zero the rest
    kth = torch.topk(probs, k, dim=-1).values[:, -1:]
    probs = probs.masked_fill(probs < kth, 0.0)
    cdf = torch.cumsum(probs, dim=-1)
    return probs, (cdf <= u[:, None]).sum(dim=-1).clamp(max=logits.shape[-1] - 1)


def topk_exactly_k(logits, k, temperature, u):
    z = logits / temperature
    keep = torch.zeros_like(z, dtype=torch.bool)
    keep.scatter_(1, torch.topk(z, k, dim=-1).indices, True)         # exactly k kept: ties with the k-th dropped
    probs = torch.softmax(z.masked_fill(~keep, float("-inf")), dim=-1)
    cdf = torch.cumsum(probs, dim=-1)
    return probs, (cdf <= u[:, None]).sum(dim=-1).clamp(max=logits.shape[-1] - 1)


MUTANTS = [
    ("cross_attention", "scores scaled by sqrt(E) instead of sqrt(d_head)", cross_scaled_by_E),
    ("cross_attention", "the memory padding mask forgotten", cross_no_padding_mask),
    ("cross_attention", "heads merged by reshape without transposing back (N, h, T, d) -> (N, T, E)",
     cross_merge_without_transpose),
    ("decoder_block", "post-norm LN(Y + sublayer(Y)) instead of pre-norm", block_post_norm),
    ("decoder_block", "the memory normalised with LN_2 too", block_memory_normalised),
    ("decoder_block", "self-attention without the causal mask", block_no_causal_mask),
    ("teacher_forcing", "EOS put at column L_n (overwriting the last target token) instead of L_n + 1",
     tf_eos_at_length),
    ("teacher_forcing", "padding of dec_out left as pad instead of -100", tf_pad_not_ignored),
    ("greedy_decode", "log-probabilities after EOS still added to the score", greedy_scores_after_eos),
    ("greedy_decode", "tokens after EOS not replaced by pad", greedy_no_pad_after_eos),
    ("greedy_decode", "tokens returned as floats (buffer made with the logits' dtype)", greedy_float_tokens),
    ("beam_search_step", "finished beams extended like the others (no carry-over)", beam_finished_ignored),
    ("beam_search_step", "torch.topk instead of a stable sort (ties not ordered by flat index)", beam_topk),
    ("beam_search_step", "flat index split with B instead of V (parent = i % B, token = i // B)", beam_divided_by_B),
    ("top_k_sample", "softmax over all tokens, then the others zeroed without renormalising", topk_not_renormalised),
    ("top_k_sample", "exactly k tokens kept (topk indices): ties with the k-th dropped", topk_exactly_k),
]
