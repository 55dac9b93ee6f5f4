"""Graded exercises of 17_language_models: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected outputs come from
the reference (the solution cells of 17_language_models.ipynb).

The BPE exercises are framework="numpy" on int64 arrays; the others framework="torch" (float64,
bool or int64 tensors; plain ints, floats and bools for sizes and options). Every exercise is pure
(the text says not to modify the arguments), and the outputs the text calls tokens, ids, counts or
a mask are graded with their kind of number (dtype).

Fixed cases hold each convention the text fixes: overlapping pairs counted but merged left to
right without overlap, ties broken towards the smallest (a, b) where the first pair met is not the
smallest, rows of single tokens where counting across rows or with the padding would change the
winner, merges whose order matters and a merge that does not occur before one that does,
select_u exactly equal to mask_prob and action_u exactly 0.8 and 0.9, padded positions with a
small select_u, logits past exp's float64 range (~709), rows with different numbers of targets,
padding in the middle of a row, B = 0 (the zero-initialised adapter), r != d_out, and a square
case (r = d_in = d_out) where swapped or untransposed factors keep the shape.
"""
import numpy as np
import torch

from autograder.authoring.exercises import Exercise

IGNORE = -100


# -- 1. bpe_merge_step -----------------------------------------------------------------------------

def _table(rows, L=None):
    L = L or max(len(r) for r in rows)
    out = np.full((len(rows), L), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _merge_inputs(rng):
    """W in 1..6 rows of 1..L tokens (L in 2..7) from a small alphabet (pairs repeat, ties happen),
    one full row, freqs in 1..5, new_id above every token."""
    W, L = int(rng.integers(1, 7)), int(rng.integers(2, 8))
    alphabet = int(rng.integers(2, 5))
    offset = int(rng.choice([0, 97, 256]))
    rows = [list(offset + rng.integers(0, alphabet, size=int(rng.integers(1, L + 1)))) for _ in range(W)]
    rows[0] = list(offset + rng.integers(0, alphabet, size=L))
    return {"words": _table(rows, L), "freqs": rng.integers(1, 6, size=W).astype(np.int64),
            "new_id": offset + alphabet + int(rng.integers(0, 3))}


_MERGE_FIXED = (
    # overlap: (7, 7) counts 2 x 2 = 4 > (5, 6) = 3, and [7, 7, 7] becomes [9, 7]
    {"words": _table([[7, 7, 7], [5, 6]]), "freqs": np.array([2, 3]), "new_id": 9},
    # a tie between (3, 1) (met first) and (1, 2): the smallest, (1, 2), wins
    {"words": _table([[3, 1, 4], [1, 2]]), "freqs": np.array([1, 1]), "new_id": 10},
    {"words": _table([[1, 2], [5, 0]]), "freqs": np.array([2, 2]), "new_id": 6},     # a tie, the largest met last
    # weights: (4, 4) occurs in three rows once each (3), (2, 5) in one row of frequency 5
    {"words": _table([[4, 4], [4, 4, 0], [0, 4, 4], [2, 5]]), "freqs": np.array([1, 1, 1, 5]), "new_id": 6},
    # rows of one token: across rows (3, 1) would count 2, with the padding (3, -1) 2; inside rows only (1, 2)
    {"words": _table([[1, 2], [3], [1], [3], [1]]), "freqs": np.array([1, 1, 1, 1, 1]), "new_id": 4},
    # a merge in the middle and at the end of a row: re-packed to the left; two occurrences in one row
    {"words": _table([[1, 2, 3, 1, 2], [0, 1, 2, 0]]), "freqs": np.array([2, 1]), "new_id": 300},
    {"words": np.array([[0, 1]]), "freqs": np.array([1]), "new_id": 2},     # W = 1, L = 2
)


def _merge(words, freqs, new_id, weighted=True, tie="smallest", overlap_count=True, direction="ltr",
           first_only=False, repack=True, across_rows=False, count_padding=False, count_weighted=True):
    counts, order = {}, []

    def add(pair, w):
        if pair not in counts:
            counts[pair] = 0
            order.append(pair)
        counts[pair] += w

    if across_rows:
        flat = [(int(t), int(f)) for row, f in zip(words, freqs) for t in row if t >= 0]
        for (a, f), (b, _) in zip(flat, flat[1:]):
            add((a, b), f if weighted else 1)
    else:
        for row, f in zip(words, freqs):
            toks = [int(t) for t in row] if count_padding else [int(t) for t in row if t >= 0]
            i = 0
            while i < len(toks) - 1:
                add((toks[i], toks[i + 1]), int(f) if weighted else 1)
                if not overlap_count and toks[i] == toks[i + 1] and i + 2 < len(toks) and toks[i + 2] == toks[i]:
                    i += 2                   # str.count-like: the next, overlapping occurrence is skipped
                else:
                    i += 1
    best = max(counts.values())
    tied = [p for p in order if counts[p] == best]
    pair = {"smallest": min(tied), "largest": max(tied), "first": tied[0]}[tie]
    a, b = pair
    count = counts[pair]
    if not count_weighted:
        count = sum(1 for row in words for i in range(len(row) - 1) if row[i] == a and row[i + 1] == b)
    merged = np.full_like(words, -1)
    for w, row in enumerate(words):
        toks = [int(t) for t in row if t >= 0]
        if direction == "rtl":
            toks = toks[::-1]
            x, y = b, a
        else:
            x, y = a, b
        out, i, done = [], 0, False
        while i < len(toks):
            if i + 1 < len(toks) and toks[i] == x and toks[i + 1] == y and not (first_only and done):
                out.append(new_id)
                if not repack:
                    out.append(-1)
                i += 2
                done = True
            else:
                out.append(toks[i])
                i += 1
        if direction == "rtl":
            out = out[::-1]
        merged[w, :len(out)] = out[:words.shape[1]]
    return np.array(pair, dtype=np.int64), int(count), merged


def _merge_with(**kw):
    return lambda *args: _merge(*args, **kw)


# -- 2. bpe_encode ---------------------------------------------------------------------------------

def _apply(seq, a, b, new):
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


def _encode_inputs(rng):
    """T in 1..12 tokens of a small alphabet, first_id above it, M in 0..6 merges: most pick a pair present
    at that point (so merges apply, some on earlier merges' tokens), some a pair that is absent."""
    alphabet = int(rng.integers(2, 5))
    first_id = alphabet + int(rng.integers(0, 4))
    seq = [int(t) for t in rng.integers(0, alphabet, size=int(rng.integers(1, 13)))]
    ids = list(seq)
    merges = []
    for k in range(int(rng.integers(0, 7))):
        if len(seq) >= 2 and rng.random() < 0.8:
            i = int(rng.integers(0, len(seq) - 1))
            pair = (seq[i], seq[i + 1])
        else:
            pair = (int(rng.integers(0, alphabet)), int(rng.integers(0, alphabet)))
        merges.append(pair)
        seq = _apply(seq, *pair, first_id + k)
    return {"ids": np.array(ids, dtype=np.int64), "merges": np.array(merges, dtype=np.int64).reshape(-1, 2),
            "first_id": first_id}


_ENCODE_FIXED = (
    {"ids": np.array([1, 2, 3]), "merges": np.array([[1, 2], [2, 3]]), "first_id": 10},   # order matters
    {"ids": np.array([1, 2, 3, 1, 2]), "merges": np.array([[1, 2], [10, 3]]), "first_id": 10},  # uses merge 0's token
    {"ids": np.array([1, 2, 1, 2]), "merges": np.array([[5, 5], [1, 2]]), "first_id": 10},  # absent, then present
    {"ids": np.array([7, 7, 7]), "merges": np.array([[7, 7]]), "first_id": 256},           # overlap: [256, 7]
    {"ids": np.array([4]), "merges": np.array([[4, 4]]), "first_id": 5},                   # T = 1
    {"ids": np.array([0, 1, 0]), "merges": np.zeros((0, 2), dtype=np.int64), "first_id": 2},   # M = 0
    {"ids": np.array([11, 2, 1, 23]), "merges": np.array([[1, 2], [2, 1]]), "first_id": 30},  # ids of two digits
)


def _encode(ids, merges, first_id, order="forward", offset=0, first_only=False, direction="ltr",
            stop_at_absent=False):
    seq = [int(t) for t in ids]
    ks = list(range(len(merges)))
    if order == "reverse":
        ks = ks[::-1]
    for k in ks:
        a, b = (int(v) for v in merges[k])
        new = first_id + k + offset
        present = any(seq[i] == a and seq[i + 1] == b for i in range(len(seq) - 1))
        if stop_at_absent and not present:
            break
        if direction == "rtl":
            seq = _apply(seq[::-1], b, a, new)[::-1]
        elif first_only:
            for i in range(len(seq) - 1):
                if seq[i] == a and seq[i + 1] == b:
                    seq = seq[:i] + [new] + seq[i + 2:]
                    break
        else:
            seq = _apply(seq, a, b, new)
    return np.array(seq, dtype=np.int64)


def _encode_with(**kw):
    return lambda *args: _encode(*args, **kw)


# -- 3. attention_mask -----------------------------------------------------------------------------

def _amask_inputs(rng):
    """N in 1..4, T in 1..7, any pattern of real tokens (most real), causal or not."""
    N, T = int(rng.integers(1, 5)), int(rng.integers(1, 8))
    return {"key_padding": rng.random((N, T)) < 0.75, "causal": bool(rng.random() < 0.5)}


_AMASK_FIXED = (
    {"key_padding": np.array([[True, True, True, False], [True, True, False, False]]), "causal": True},
    {"key_padding": np.array([[True, True, True, False], [True, True, False, False]]), "causal": False},
    {"key_padding": np.array([[True, False, True, True, True]]), "causal": True},       # padding in the middle
    {"key_padding": np.array([[True, False, True]]), "causal": False},
    {"key_padding": np.array([[True], [True]]), "causal": True},                        # T = 1
)


def _amask(key_padding, causal, pad_on="keys", tri="lower", invert=False, use_causal="given"):
    N, T = key_padding.shape
    keys = key_padding[:, None, :].expand(N, T, T)
    queries = key_padding[:, :, None].expand(N, T, T)
    allowed = {"keys": keys, "queries": queries, "both": keys & queries,
               "none": torch.ones(N, T, T, dtype=torch.bool)}[pad_on]
    apply = {"given": causal, "always": True, "never": False}[use_causal]
    if apply:
        ones = torch.ones(T, T, dtype=torch.bool)
        part = {"lower": ones.tril(), "upper": ones.triu(), "strict": ones.tril(-1)}[tri]
        allowed = allowed & part
    return ~allowed if invert else allowed.clone()


def _amask_with(**kw):
    return lambda *args: _amask(*args, **kw)


# -- 4. mlm_mask -----------------------------------------------------------------------------------

def _mlm_inputs(rng):
    """N in 1..4, T in 1..10, V in 2..30 (tokens 0..V-1, pad V, mask V + 1), rows padded at the end,
    mask_prob among 0.15, 0.3, 0.5 and 1."""
    N, T, V = int(rng.integers(1, 5)), int(rng.integers(1, 11)), int(rng.integers(2, 31))
    tokens = rng.integers(0, V, size=(N, T))
    for n in range(N):
        tokens[n, int(rng.integers(1, T + 1)):] = V
    return {"tokens": tokens, "select_u": rng.random((N, T)), "action_u": rng.random((N, T)),
            "random_tokens": rng.integers(0, V, size=(N, T)), "mask_id": V + 1, "pad_id": V,
            "mask_prob": float(rng.choice([0.15, 0.3, 0.5, 1.0]))}


_MLM_FIXED = (
    # every action, both boundaries: action_u exactly 0.8 is "random", exactly 0.9 "unchanged";
    # select_u exactly mask_prob (0.5) is not chosen; the padded positions have a small select_u
    {"tokens": np.array([[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9, 7, 10, 10]]),
     "select_u": np.array([[0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.05, 0.25], [0.9, 0.01, 0.02, 0.49, 0.5, 0.3, 0.1, 0.2]]),
     "action_u": np.array([[0.0, 0.5, 0.8, 0.85, 0.9, 0.3, 0.95, 0.79], [0.3, 0.9, 0.8, 0.1, 0.2, 0.99, 0.5, 0.85]]),
     "random_tokens": np.array([[7, 7, 0, 2, 7, 7, 7, 7], [1, 1, 6, 1, 1, 1, 1, 1]]),
     "mask_id": 11, "pad_id": 10, "mask_prob": 0.5},
    {"tokens": np.array([[2]]), "select_u": np.array([[0.0]]), "action_u": np.array([[0.95]]),
     "random_tokens": np.array([[0]]), "mask_id": 4, "pad_id": 3, "mask_prob": 0.15},      # one kept token
)


def _mlm(tokens, select_u, action_u, random_tokens, mask_id, pad_id, mask_prob, targets="ok", split="ok",
         pads=False, select="lt", boundary="ok", ignore=IGNORE):
    ignore = pad_id if ignore == "pad" else ignore
    eligible = torch.ones_like(tokens, dtype=torch.bool) if pads else tokens != pad_id
    picked = {"lt": select_u < mask_prob, "le": select_u <= mask_prob, "complement": select_u >= mask_prob}[select]
    chosen = eligible & picked
    lo = action_u <= 0.8 if boundary == "le" else action_u < 0.8
    hi = action_u <= 0.9 if boundary == "le" else action_u < 0.9
    if split == "all_mask":
        to_mask, to_random = chosen, chosen & False
    elif split == "swap_random_keep":            # unchanged for 0.8 <= u < 0.9, random for u >= 0.9
        to_mask, to_random = chosen & lo, chosen & ~hi
    elif split == "no_keep":                     # the last 20 % all random
        to_mask, to_random = chosen & lo, chosen & ~lo
    elif split == "random_first":                # u < 0.1 random, u < 0.2 unchanged, else mask
        to_random, to_mask = chosen & (action_u < 0.1), chosen & (action_u >= 0.2)
    else:
        to_mask, to_random = chosen & lo, chosen & ~lo & hi
    inputs = torch.where(to_mask, torch.full_like(tokens, mask_id), tokens)
    inputs = torch.where(to_random, random_tokens, inputs)
    if targets == "everywhere":
        tgt = tokens.clone()
    elif targets == "corrupted":
        tgt = torch.where(chosen, inputs, torch.full_like(tokens, ignore))
    elif targets == "changed_only":
        tgt = torch.where(to_mask | to_random, tokens, torch.full_like(tokens, ignore))
    else:
        tgt = torch.where(chosen, tokens, torch.full_like(tokens, ignore))
    return inputs, tgt


def _mlm_with(**kw):
    return lambda *args: _mlm(*args, **kw)


# -- 5. mlm_loss -----------------------------------------------------------------------------------

def _loss_inputs(rng):
    """N in 1..3, T in 1..6, V in 2..8; about half the targets -100 (at least one kept)."""
    N, T, V = int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(2, 9))
    targets = rng.integers(0, V, size=(N, T))
    targets[rng.random((N, T)) < 0.5] = IGNORE
    n, t = int(rng.integers(0, N)), int(rng.integers(0, T))
    targets[n, t] = int(rng.integers(0, V))
    return {"logits": rng.normal(0, 2.0, size=(N, T, V)), "targets": targets}


_r = np.random.default_rng(1717)
_LOSS_FIXED = (
    # rows with 3 and 1 targets: the mean over positions is not the mean of the rows' means
    {"logits": _r.normal(0, 2.0, size=(2, 4, 5)), "targets": np.array([[1, -100, 4, 0], [-100, -100, 2, -100]])},
    {"logits": 1000.0 * _r.normal(size=(2, 3, 4)), "targets": np.array([[0, -100, 3], [2, 1, -100]])},   # huge
    {"logits": _r.normal(size=(1, 1, 3)), "targets": np.array([[2]])},                                   # one
)


def _loss(logits, targets, kind="ok"):
    keep = targets != IGNORE
    if kind == "clamp_all":                  # -100 turned into token 0 and every position scored
        t = targets.clamp(min=0)
        lp = torch.log_softmax(logits, -1).gather(-1, t[..., None])[..., 0]
        return -lp.mean()
    if kind == "axis1":
        lp = torch.log_softmax(logits, dim=1)
    elif kind == "naive":
        lp = logits - torch.log(torch.exp(logits).sum(-1, keepdim=True))
    elif kind == "prob":
        lp = torch.softmax(logits, -1)
    elif kind == "raw":
        lp = logits
    else:
        lp = torch.log_softmax(logits, -1)
    picked = lp.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * keep
    if kind == "all_positions":
        return -picked.sum() / targets.numel()
    if kind == "sum":
        return -picked.sum()
    if kind == "row_means":
        per_row = picked.sum(1) / keep.sum(1).clamp(min=1)
        return -per_row[keep.any(1)].mean()
    if kind == "sign":
        return picked.sum() / keep.sum()
    return -picked.sum() / keep.sum()


def _loss_with(kind):
    return lambda *args: _loss(*args, kind=kind)


# -- 6. lora_linear --------------------------------------------------------------------------------

def _lora_inputs(rng, lead=None, sizes=None, zero_B=False):
    """x with 0 to 2 leading axes, d_in, d_out in 1..6, r in 1..4 (r != d_out where possible), alpha in
    0.5..16; B random (it has trained) or zero."""
    d_in, d_out, r = sizes or (int(rng.integers(1, 7)), int(rng.integers(1, 7)), int(rng.integers(1, 5)))
    lead = lead if lead is not None else tuple(int(s) for s in rng.integers(1, 4, size=int(rng.integers(0, 3))))
    return {"x": rng.normal(size=(*lead, d_in)), "W": rng.normal(0, 0.5, (d_out, d_in)), "b": rng.normal(0, 0.5, d_out),
            "A": rng.normal(0, 0.5, (r, d_in)), "B": np.zeros((d_out, r)) if zero_B else rng.normal(0, 0.5, (d_out, r)),
            "alpha": float(rng.choice([0.5, 1.0, 2.0, 8.0, 16.0]))}


_r = np.random.default_rng(1718)
_LORA_FIXED = (
    _lora_inputs(_r, lead=(3,), sizes=(4, 5, 2), zero_B=True),       # the zero-initialised update: the base layer
    _lora_inputs(_r, lead=(2, 3), sizes=(5, 3, 2)),                  # two leading axes, r != d_out
    _lora_inputs(_r, lead=(4,), sizes=(3, 3, 3)),                    # square: swapped factors keep the shape
    _lora_inputs(_r, lead=(), sizes=(4, 2, 1)),                      # x of one sample (d_in,), rank 1
)


def _lora(x, W, b, A, B, alpha, scale="alpha/r", bias=True, swap=False, transpose_w=False, scale_all=False):
    r = A.shape[0]
    s = {"alpha/r": alpha / r, "alpha": alpha, "r/alpha": r / alpha, "none": 1.0, "alpha/d_out": alpha / B.shape[0]}[scale]
    base = x @ (W if transpose_w else W.T) + (b if bias else 0.0)
    update = (x @ B @ A) if swap else (x @ A.T @ B.T)
    if scale_all:
        return s * (base + update)
    return base + s * update


def _lora_with(**kw):
    return lambda *args: _lora(*args, **kw)


EXERCISES = [
    Exercise(
        "bpe_merge_step", _merge_inputs, fixed=_MERGE_FIXED, pure=True, dtype=("int", "int", "int"),
        mistakes={
            "the pairs are not weighted by the words' frequencies: a pair inside a word that occurs f times counts f":
                _merge_with(weighted=False),
            "on a tie the smallest pair (a, b) wins, not the first pair met (Counter.most_common keeps insertion order)":
                _merge_with(tie="first"),
            "on a tie the SMALLEST pair (a, b) wins": _merge_with(tie="largest"),
            "overlapping pairs count too: [7, 7, 7] holds the pair (7, 7) twice": _merge_with(overlap_count=False),
            "the merge goes right to left: scan left to right, so [7, 7, 7] becomes [new_id, 7]":
                _merge_with(direction="rtl"),
            "only the first occurrence in each row is merged: merge every occurrence (left to right)":
                _merge_with(first_only=True),
            "the rows are not re-packed: the merged pair's second slot must not stay as -1 inside the row; "
            "shift the rest left and pad at the end": _merge_with(repack=False),
            "pairs are counted across rows (the end of one word and the start of the next): count inside each row only":
                _merge_with(across_rows=True),
            "the padding is counted as a token: a pair with -1 is no pair": _merge_with(count_padding=True),
        },
    ),
    Exercise(
        "bpe_encode", _encode_inputs, fixed=_ENCODE_FIXED, pure=True, dtype="int",
        mistakes={
            "the merges are applied in reverse: apply them in the order they were learnt (row 0 first)":
                _encode_with(order="reverse"),
            "off by one in the new ids: merge k makes token first_id + k (the first merge makes first_id)":
                _encode_with(offset=1),
            "only the first occurrence is merged: each merge applies to every occurrence in the sequence":
                _encode_with(first_only=True),
            "the merge goes right to left: scan left to right, so [7, 7, 7] with (7, 7) becomes [new, 7]":
                _encode_with(direction="rtl"),
            "the loop stops at a merge whose pair is absent: skip it, the later merges may still apply":
                _encode_with(stop_at_absent=True),
        },
    ),
    Exercise(
        "attention_mask", _amask_inputs, fixed=_AMASK_FIXED, pure=True, dtype="bool", framework="torch",
        mistakes={
            "the padding is applied to the queries (rows): it is the KEYS (columns j) at padded positions that no "
            "query may attend to": _amask_with(pad_on="queries"),
            "the padded queries' rows are masked too: only the keys are masked (a padded query keeps its row)":
                _amask_with(pad_on="both"),
            "the causal part is the upper triangle: query i may attend to keys j <= i (torch.tril)":
                _amask_with(tri="upper"),
            "the diagonal is masked: a token may attend to itself (j <= i, not j < i)": _amask_with(tri="strict"),
            "the mask is inverted: True means MAY attend here (PyTorch's attn_mask uses the opposite)":
                _amask_with(invert=True),
            "the padding is ignored: keys at padded positions must be False": _amask_with(pad_on="none"),
            "causal=True is ignored: the decoder's query i must not see keys after it": _amask_with(use_causal="never"),
            "the mask is causal even when causal=False: a bidirectional encoder sees both sides":
                _amask_with(use_causal="always"),
        },
    ),
    Exercise(
        "mlm_mask", _mlm_inputs, fixed=_MLM_FIXED, pure=True, dtype=("int", "int"), framework="torch",
        mistakes={
            "targets everywhere: only the chosen positions get a target, every other one is -100":
                _mlm_with(targets="everywhere"),
            "the targets are the corrupted inputs: the target is the ORIGINAL token (what the model must recover)":
                _mlm_with(targets="corrupted"),
            "every chosen position becomes mask_id: 80 % mask, 10 % random token, 10 % unchanged (by action_u)":
                _mlm_with(split="all_mask"),
            "random and unchanged are swapped: 0.8 <= action_u < 0.9 gives the random token, action_u >= 0.9 keeps "
            "the token": _mlm_with(split="swap_random_keep"),
            "no position stays unchanged: only 0.8 <= action_u < 0.9 gives a random token, action_u >= 0.9 keeps it":
                _mlm_with(split="no_keep"),
            "the actions are in the wrong order: action_u < 0.8 -> mask_id, then random, then unchanged":
                _mlm_with(split="random_first"),
            "padding positions are chosen: only real tokens (tokens != pad_id) may be chosen": _mlm_with(pads=True),
            "select_u equal to mask_prob is chosen: a position is chosen when select_u < mask_prob (strictly)":
                _mlm_with(select="le"),
            "the complement is chosen: a position is chosen when select_u < mask_prob, about 15 % of them":
                _mlm_with(select="complement"),
            "the action boundaries are off: action_u exactly 0.8 gives the random token and exactly 0.9 leaves the "
            "token unchanged (action_u < 0.8, then < 0.9)": _mlm_with(boundary="le"),
            "the unchanged positions have no target: every chosen position is predicted, the unchanged ones too":
                _mlm_with(targets="changed_only"),
            "the ignore index is -100 (what F.cross_entropy skips), not -1": _mlm_with(ignore=-1),
            "the positions that are not chosen must be -100, not pad_id": _mlm_with(ignore="pad"),
        },
    ),
    Exercise(
        "mlm_loss", _loss_inputs, fixed=_LOSS_FIXED, pure=True, framework="torch",
        forbidden=("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss"),
        mistakes={
            "the mean is taken over every position: divide by the number of positions whose target is not -100":
                _loss_with("all_positions"),
            "the loss is summed: take the mean over the kept positions": _loss_with("sum"),
            "a mean of each sequence's mean: every kept position weighs the same, whichever sequence it is in":
                _loss_with("row_means"),
            "log_softmax over the wrong axis: normalise over the vocabulary (the last axis)": _loss_with("axis1"),
            "exp overflows on large logits (log of inf): use torch.log_softmax": _loss_with("naive"),
            "probabilities instead of log-probabilities: the loss is -log softmax(z)[target]": _loss_with("prob"),
            "raw logits instead of log-probabilities: apply log_softmax first": _loss_with("raw"),
            "-100 is not skipped (it became token 0 and every position counts): keep only targets != -100":
                _loss_with("clamp_all"),
            "the sign is wrong: the loss is MINUS the mean log-probability (a positive number)": _loss_with("sign"),
        },
    ),
    Exercise(
        "lora_linear", _lora_inputs, fixed=_LORA_FIXED, pure=True, framework="torch",
        mistakes={
            "the update is scaled by alpha: the scale is alpha / r, with r = A.shape[0]": _lora_with(scale="alpha"),
            "the scale is upside down: alpha / r, not r / alpha": _lora_with(scale="r/alpha"),
            "the update is not scaled: multiply (x A^T) B^T by alpha / r": _lora_with(scale="none"),
            "r is the rank, A.shape[0] (or B.shape[1]), not B.shape[0] (that is d_out)": _lora_with(scale="alpha/d_out"),
            "the whole output is scaled: only the low-rank update is multiplied by alpha / r": _lora_with(scale_all=True),
            "the frozen layer's bias b is missing": _lora_with(bias=False),
            "A and B are swapped: the update is x A^T (r features) then B^T (d_out features)": _lora_with(swap=True),
            "W is not transposed: the frozen layer computes x W^T + b, W being (d_out, d_in)": _lora_with(transpose_w=True),
        },
    ),
]
