"""Plausible bugs in 17_language_models' exercises, written from the released text as a student might
(not copies of the mistakes catalogued in source_notebooks/17_language_models/cases.py).

Read by tests/course/test_mutants.py: every mutant must lose its exercise's points, and most must get a
first feedback line that names a likely mistake. The grader never reads this file. Arguments
arrive as the sandbox gives them: numpy int64 arrays for the BPE exercises, torch tensors
(float64, bool or int64) and plain numbers for the others.
"""
from collections import Counter

import numpy as np
import torch


# -- exercise 1: bpe_merge_step ------------------------------------------------------------------------

def _scan(tokens, a, b, new_id):
    out, i = [], 0
    while i < len(tokens):
        if i + 1 < len(tokens) and tokens[i] == a and tokens[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def _merge_step(words, freqs, new_id, bug=None):
    counts = Counter()
    for row, f in zip(words, freqs):
        toks = [int(t) for t in row if t >= 0]
        pairs = list(zip(toks, toks[1:]))
        if bug == "set_of_pairs":                 # each distinct pair once per word
            pairs = set(pairs)
        for p in pairs:
            counts[p] += int(f)
    if bug == "most_common":                      # first of the tied pairs in insertion order
        pair, count = counts.most_common(1)[0]
    else:
        count = max(counts.values())
        pair = min(p for p, c in counts.items() if c == count)
    a, b = pair
    fill = 0 if bug == "pad_zero" else -1
    merged = np.full_like(words, fill)
    for w, row in enumerate(words):
        toks = _scan([int(t) for t in row if t >= 0], a, b, new_id)
        merged[w, :len(toks)] = toks
    if bug == "float_count":
        count = float(count) * np.ones(1)[0] + 0.0
        return np.array(pair), np.float64(count), merged.astype(np.float64)
    if bug == "in_place":
        words[...] = merged
        return np.array(pair), count, words
    return np.array(pair), count, merged


def _merge_bug(bug):
    return lambda *a: _merge_step(*a, bug=bug)


# -- exercise 2: bpe_encode -----------------------------------------------------------------------------

def _encode(ids, merges, first_id, bug=None):
    seq = [int(t) for t in ids]
    for k, (a, b) in enumerate(merges):
        new = 256 + k if bug == "fixed_256" else first_id + k
        if bug == "string_replace":               # on the ids written as text: "1 2" also matches inside "11 2"
            text = " ".join(map(str, seq)).replace(f"{a} {b}", str(new))
            seq = [int(t) for t in text.split()]
            continue
        seq = _scan(seq, a, b, new)
    if bug == "float":
        return np.array(seq, dtype=np.float64)
    return np.array(seq, dtype=np.int64)


def _encode_bug(bug):
    return lambda *a: _encode(*a, bug=bug)


def _encode_while(ids, merges, first_id):
    """Re-trains instead of replaying: merges the most frequent listed pair present, until none is."""
    seq = [int(t) for t in ids]
    rank = {(int(a), int(b)): k for k, (a, b) in enumerate(merges)}
    while len(seq) > 1:
        counts = Counter(p for p in zip(seq, seq[1:]) if p in rank)
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], -rank[p]))
        seq = _scan(seq, *pair, first_id + rank[pair])
    return np.array(seq, dtype=np.int64)


# -- exercise 3: attention_mask -------------------------------------------------------------------------

def _amask(key_padding, causal, bug=None):
    N, T = key_padding.shape
    allowed = key_padding[:, None, :].repeat(1, T, 1)
    if bug == "outer":                            # query and key both real
        allowed = key_padding[:, :, None] & key_padding[:, None, :]
    if causal or bug == "always_causal":
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        allowed = allowed & (future if bug == "forgot_not" else ~future)
    if bug == "as_int":
        return allowed.long()
    return allowed


def _amask_bug(bug):
    return lambda *a: _amask(*a, bug=bug)


# -- exercise 4: mlm_mask -------------------------------------------------------------------------------

def _mlm(tokens, select_u, action_u, random_tokens, mask_id, pad_id, mask_prob, bug=None):
    chosen = select_u < mask_prob
    if bug != "pads_chosen":
        chosen = chosen & (tokens != pad_id)
    to_mask = chosen & (action_u < 0.8)
    to_random = chosen & (action_u >= 0.8) & (action_u < 0.9)
    if bug == "keep_strict":                      # unchanged only above 0.9: exactly 0.9 gets the random token
        to_random = chosen & (action_u >= 0.8) & (action_u <= 0.9)
    if bug == "in_place":
        targets = torch.where(chosen, tokens, torch.full_like(tokens, -100))
        tokens[to_mask] = mask_id
        tokens[to_random] = random_tokens[to_random]
        return tokens, targets
    inputs = tokens.clone()
    inputs[to_mask] = mask_id
    inputs[to_random] = random_tokens[to_random]
    if bug == "targets_from_inputs":              # targets read after the corruption
        return inputs, torch.where(chosen, inputs, torch.full_like(tokens, -100))
    if bug == "float_targets":
        return inputs, torch.where(chosen, tokens.double(), torch.full_like(tokens, -100).double())
    return inputs, torch.where(chosen, tokens, torch.full_like(tokens, -100))


def _mlm_bug(bug):
    return lambda *a: _mlm(*a, bug=bug)


# -- exercise 5: mlm_loss -------------------------------------------------------------------------------

def _loss(logits, targets, bug=None):
    keep = targets != -100
    if bug == "log_of_softmax":                   # log(softmax): -inf where the softmax underflows
        lp = torch.log(torch.softmax(logits, dim=-1))
    else:
        lp = torch.log_softmax(logits, dim=-1)
    picked = lp[keep].gather(1, targets[keep][:, None])[:, 0]
    if bug == "per_row":
        rows = [-(lp[n][keep[n]].gather(1, targets[n][keep[n]][:, None])).mean() for n in range(len(targets))
                if keep[n].any()]
        return torch.stack(rows).mean()
    if bug == "divide_by_T":
        return -picked.sum() / targets.shape[1]
    return -picked.mean()


def _loss_bug(bug):
    return lambda *a: _loss(*a, bug=bug)


# -- exercise 6: lora_linear ----------------------------------------------------------------------------

def _lora(x, W, b, A, B, alpha, bug=None):
    r = A.shape[1] if bug == "r_from_d_in" else A.shape[0]
    update = (x @ A.T) @ B.T
    if bug == "no_scale_when_zero":
        return x @ W.T + b + update
    if bug == "bias_in_update":                   # the bias scaled with the update
        return x @ W.T + (alpha / r) * (update + b)
    return x @ W.T + b + (alpha / r) * update


def _lora_bug(bug):
    return lambda *a: _lora(*a, bug=bug)


MUTANTS = [
    ("bpe_merge_step", "ties broken by Counter.most_common (insertion order)", _merge_bug("most_common")),
    ("bpe_merge_step", "each distinct pair counted once per word (a set of pairs)", _merge_bug("set_of_pairs")),
    ("bpe_merge_step", "merged rows padded with 0 instead of -1", _merge_bug("pad_zero")),
    ("bpe_merge_step", "count and table returned as floats", _merge_bug("float_count")),
    ("bpe_merge_step", "the merged table written into words in place", _merge_bug("in_place")),
    ("bpe_encode", "merge k gets token 256 + k whatever first_id is", _encode_bug("fixed_256")),
    ("bpe_encode", "tokens returned as floats", _encode_bug("float")),
    ("bpe_encode", "re-trains on the sequence (most frequent listed pair first) instead of replaying in order",
     _encode_while),
    ("bpe_encode", "merges done by str.replace on the ids written as text", _encode_bug("string_replace")),
    ("attention_mask", "query and key both required real (outer product of the padding)", _amask_bug("outer")),
    ("attention_mask", "torch.triu(diagonal=1) used as the allowed set (negation forgotten)", _amask_bug("forgot_not")),
    ("attention_mask", "causal whatever the flag", _amask_bug("always_causal")),
    ("attention_mask", "mask returned as 0/1 integers", _amask_bug("as_int")),
    ("mlm_mask", "padding positions may be chosen", _mlm_bug("pads_chosen")),
    ("mlm_mask", "unchanged only for action_u > 0.9 (0.9 itself gets the random token)", _mlm_bug("keep_strict")),
    ("mlm_mask", "the tokens tensor corrupted in place", _mlm_bug("in_place")),
    ("mlm_mask", "targets read from the corrupted inputs", _mlm_bug("targets_from_inputs")),
    ("mlm_mask", "targets as float64", _mlm_bug("float_targets")),
    ("mlm_loss", "log(softmax) instead of log_softmax (underflow on large logits)", _loss_bug("log_of_softmax")),
    ("mlm_loss", "a mean of the sequences' means", _loss_bug("per_row")),
    ("mlm_loss", "the sum divided by the sequence length T", _loss_bug("divide_by_T")),
    ("lora_linear", "r taken as A.shape[1] (d_in)", _lora_bug("r_from_d_in")),
    ("lora_linear", "the update left unscaled", _lora_bug("no_scale_when_zero")),
    ("lora_linear", "the bias inside the scaled update", _lora_bug("bias_in_update")),
]
