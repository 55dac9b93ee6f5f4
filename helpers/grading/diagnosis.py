"""Comparing an output with the expected one, and naming the likely mistake.

``compare`` is the core of every verdict: the student's ``check`` (visible cases) and
the trusted grader (all cases) both reach it through ``helpers.grading.contract.judge``.
Messages for hidden cases give no size or value derived from the hidden inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class Verdict:
    """Outcome of comparing one output with the expected one."""

    ok: bool
    message: str = ""
    mistake: str | None = None  # the known mistake the output matched, if any


def compare(got: Any, expected: Any, rtol: float, atol: float,
            mistakes: Sequence[tuple[str, Any]] = (), *, hidden: bool = False) -> Verdict:
    """Compare a decoded output with the expected one.

    got, expected: numpy arrays (or tuples of them, compared item by item).
    rtol, atol:    |got - expected| <= atol + rtol * |expected| elementwise.
    mistakes:      (message, output of a known-wrong version) pairs; when ``got``
                   matches one of them, its message is the diagnosis.
    hidden:        the inputs are hidden: the message names the kind of failure
                   without any size or value derived from them.
    """
    if isinstance(expected, tuple):
        if not isinstance(got, tuple) or len(got) != len(expected):
            n = len(got) if isinstance(got, tuple) else 1
            return Verdict(False, f"returned {n} value(s), expected a tuple of {len(expected)}")
        if all(_same(g, e, rtol, atol) for g, e in zip(got, expected)):
            return Verdict(True)
        whole = [(m, o) for m, o in mistakes if isinstance(o, tuple) and len(o) == len(got)
                 and all(_same(g, w, rtol, atol) for g, w in zip(got, o))]
        if whole and not (len(whole) > 1 and _tiny(got)):
            return Verdict(False, whole[0][0], whole[0][0])
        order = _reordering(got, expected, rtol, atol)
        if order is not None:
            moved = ", ".join(f"item {i} holds item {j}" for i, j in enumerate(order) if i != j)
            return Verdict(False, f"the returned values are in the wrong order ({moved}): return them in "
                                  "the order the docstring gives, or, if that order is right, each is computed "
                                  "with the other's formula")
        wrong_items = []
        for i, (g, e) in enumerate(zip(got, expected)):
            v = compare(g, e, rtol, atol, [(m, o[i]) for m, o in mistakes
                                           if isinstance(o, tuple) and len(o) == len(expected)
                                           and not _same(o[i], e, rtol, atol)], hidden=hidden)
            if not v.ok:
                wrong_items.append((i, v))
        if not wrong_items:
            return Verdict(True)
        named = [v.mistake for _, v in wrong_items if v.mistake]
        text = "; ".join(f"item {i} of the returned tuple: {v.message}" for i, v in wrong_items)
        return Verdict(False, text, named[0] if named else None)
    if isinstance(got, tuple):
        return Verdict(False, f"returned a tuple of {len(got)} values, expected a single array")
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        match = _known_mistake(got, mistakes, rtol, atol)
        if match:
            return Verdict(False, match, match)
        return Verdict(False, _shape_message(got.shape, expected.shape, hidden))
    g = got.astype(np.float64)  # float32 answers and integer answers given as floats are fine
    e = expected.astype(np.float64)
    if _close(g, e, rtol, atol):
        return Verdict(True)
    match = _known_mistake(g, mistakes, rtol, atol)
    if match:
        return Verdict(False, match, match)
    return Verdict(False, _value_message(g, e, rtol, atol, hidden))


#: Outputs with at most this many numbers are "tiny": a match with a known mistake there may be chance.
TINY = 3


def _tiny(value: Any) -> bool:
    """Whether an output (array or tuple) holds at most ``TINY`` numbers in all."""
    if isinstance(value, tuple):
        return sum(np.size(v) for v in value) <= TINY
    return np.size(value) <= TINY


def _known_mistake(got: np.ndarray, mistakes: Sequence[tuple[str, Any]], rtol: float, atol: float) -> str | None:
    """The message of the known mistake ``got`` matches, if the match means something.

    A match is not claimed when it is ambiguous (two different mistakes give this output) or
    trivial (a tiny output of zeros and ones, as a stub or an early return gives by chance).
    ``judge`` also unnames a mistake that another case of the exercise contradicts (a constant
    output that matched by chance)."""
    hits = [m for m, wrong in mistakes if _same(got, wrong, rtol, atol)]
    if not hits:
        return None
    if len(set(hits)) > 1:  # two different mistakes give this output: naming one would be a guess
        return None
    values = np.asarray(got, dtype=np.float64).reshape(-1)
    if _tiny(got) and bool(np.all((values == 0) | (values == 1))):
        return None  # a tiny output of zeros and ones: what a stub or an early return gives by chance
    return hits[0]


def _reordering(got: tuple, expected: tuple, rtol: float, atol: float) -> tuple[int, ...] | None:
    """``order`` such that ``got[i]`` equals ``expected[order[i]]`` for all i, if the returned items
    are the expected ones in another order (none of them in its place twice over); else None."""
    n = len(expected)
    if n < 2 or n > 6:
        return None
    import itertools

    for order in itertools.permutations(range(n)):
        if order == tuple(range(n)):
            continue
        if all(_same(got[i], expected[j], rtol, atol) for i, j in enumerate(order)) and \
                not all(_same(got[i], expected[i], rtol, atol) for i in range(n)):
            return order
    return None


def _same(got: Any, wrong: Any, rtol: float, atol: float) -> bool:
    """Whether an output equals a known-wrong version's output (same shape, close values)."""
    if isinstance(got, tuple) or isinstance(wrong, tuple) or np.shape(wrong) != np.shape(got):
        return False
    return _close(np.asarray(got, dtype=np.float64), np.asarray(wrong, dtype=np.float64), rtol, atol)


def _close(g: np.ndarray, e: np.ndarray, rtol: float, atol: float) -> bool:
    """|g - e| <= atol + rtol * |e| where ``e`` is finite (and ``g`` must be finite there); where ``e``
    is inf, -inf or NaN, ``g`` must be exactly that. (With an infinite ``e`` the tolerance itself
    would be infinite and accept any number: a masked score of -1e9 is not -inf.)"""
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(e)
        near = np.abs(g - e) <= atol + rtol * np.abs(np.where(finite, e, 0.0))
        ok = np.where(finite, np.isfinite(g) & near, (g == e) | (np.isnan(g) & np.isnan(e)))
    return bool(np.all(ok))


def same_values(got: Any, other: Any, rtol: float, atol: float) -> bool:
    """Whether two arrays have the same shape and close values (non-finite values exactly equal)."""
    return _same(got, other, rtol, atol)


def _shape_message(got: tuple, expected: tuple, hidden: bool = False) -> str:
    msg = "output has the wrong shape" if hidden else f"output has shape {got}, expected {expected}"
    if len(got) == len(expected) >= 2 and tuple(reversed(got)) == tuple(expected):
        return msg + ": transposed?"
    if math.prod(got) == math.prod(expected):
        if len(got) == len(expected) - 1 or len(got) == len(expected) + 1:
            return msg + ": a dimension of size 1 lost or added (keepdims=True? reshape?)"
        return msg + ": the right number of values in the wrong shape (reshape or axis order?)"
    if len(got) == len(expected) - 1:
        return msg + ": one axis summed away (wrong axis, or keepdims missing?)"
    if len(got) < len(expected):
        return msg + ": reduced over too many axes?"
    if len(got) > len(expected):
        return msg + ": a reduction (sum/mean/max) missing?"
    axes = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    return msg + f": axis {axes[0]} has the wrong size"  # an axis number, not a size: safe for hidden cases


def _simple_factor(ratio: float) -> str | None:
    """"2x", "1/3x" ... when ``ratio`` is (within 1e-6) k or 1/k for an integer 2 <= k <= 64."""
    if not math.isfinite(ratio) or ratio <= 0:
        return None
    for k in range(2, 65):
        if math.isclose(ratio, k, rel_tol=1e-6):
            return f"{k}x"
        if math.isclose(ratio, 1 / k, rel_tol=1e-6):
            return f"1/{k}x"
    return None


def _value_message(g: np.ndarray, e: np.ndarray, rtol: float, atol: float, hidden: bool = False) -> str:
    if np.any(~np.isfinite(g)) and np.all(np.isfinite(e)):
        return "output contains NaN or inf where the answer is finite: overflow in exp? use a numerically stable form"
    if np.all(np.isfinite(g)) and np.any(np.isinf(e)):
        return ("the answer is infinite at some entries where yours is finite: a masked score or the log of 0 "
                "must be exactly -inf (float('-inf')), not a large finite number")
    if g.size and _close(-g, e, rtol, atol):
        return "the values have the wrong sign"
    finite = np.isfinite(g) & np.isfinite(e) & (np.abs(e) > 1e-12)
    if g.size == 1 and finite.all():
        factor = _simple_factor(float(g.reshape(-1)[0]) / float(e.reshape(-1)[0]))
        if factor is not None:
            shown = "" if hidden else f" ({factor})"
            return f"the value is off by a simple factor{shown}: a missing or extra scale such as 1/N, 2 or 1/2?"
        return "the value differs from the expected one" if hidden else \
            f"the value is {float(g.reshape(-1)[0]):.6g}, expected {float(e.reshape(-1)[0]):.6g}"
    if g.size > 1 and finite.sum() >= 2:
        ratio = g[finite] / e[finite]
        r0 = float(np.median(ratio))
        if abs(r0) > 1e-12 and not math.isclose(r0, 1.0, rel_tol=1e-3) and np.allclose(ratio, r0, rtol=1e-4):
            factor = "" if hidden else f" ({r0:.4g}x)"
            return f"every value is off by the same factor{factor}: a missing or extra scale such as 1/N or 2?"
        diff = g - e
        d0 = float(np.median(diff))
        if abs(d0) > atol and np.allclose(diff, d0, rtol=1e-6, atol=max(atol, 1e-9)):
            offset = "" if hidden else f" ({d0:+.4g})"
            return f"every value is off by the same constant{offset}: a missing or extra bias/offset?"
    where = _rearranged(g, e, rtol, atol)
    if where:
        return where
    wrong = ~np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    edge = _wrong_only_at_an_edge(wrong)
    if edge:
        return edge
    if hidden:
        return f"{100 * wrong.mean():.0f} % of the values differ from the expected ones"
    return f"{int(wrong.sum())} of {g.size} values differ from the expected ones"


_COMPLEMENT = "every value is 1 minus the expected one: a mask, a probability or a comparison inverted?"


def _rearranged(g: np.ndarray, e: np.ndarray, rtol: float, atol: float) -> str | None:
    """A message when ``g`` is ``e`` rearranged in a recognisable way (each test is exact, so the
    message is never a guess): transposed, reversed or shifted by one along an axis, the right values
    in other places, or every value 1 - expected. Axis numbers only: safe for hidden cases."""
    if g.size < 2 or not np.all(np.isfinite(e)):
        return None
    flat = e.reshape(-1)
    if np.all(flat == flat[0]):
        return None  # a constant answer: every rearrangement of it is itself
    if len(np.unique(flat)) < flat.size:
        # repeated values (indices, labels, masks): a reversal or a shift can match by chance, and
        # naming it would send the student after the wrong bug
        return _COMPLEMENT if np.all((flat >= 0) & (flat <= 1)) and _close(1.0 - g, e, rtol, atol) else None
    if g.ndim >= 2 and g.shape[-1] == g.shape[-2] and _close(np.swapaxes(g, -1, -2), e, rtol, atol):
        return "the values are transposed, the last two axes swapped: a transposed weight or x.T?"
    for axis in range(g.ndim):
        n = g.shape[axis]
        if n > 1 and _close(np.flip(g, axis), e, rtol, atol):
            return (f"the values are in reverse order along axis {axis}: ascending instead of descending, "
                    "or a sequence reversed?")
    for axis in range(g.ndim):
        n = g.shape[axis]
        if n < 3:
            continue
        g_lo, e_lo = (np.take(x, range(0, n - 1), axis) for x in (g, e))
        g_hi, e_hi = (np.take(x, range(1, n), axis) for x in (g, e))
        if _close(e_hi, e_lo, rtol, atol):
            continue  # e is constant along this axis: a shift along it is not visible
        if _close(g_hi, e_lo, rtol, atol) or _close(g_lo, e_hi, rtol, atol):
            return (f"the values are shifted by one position along axis {axis}: an off-by-one index "
                    "(t vs t - 1, a missing or extra first element)?")
    if len(np.unique(flat)) == flat.size and _close(np.sort(g.reshape(-1)), np.sort(flat), rtol, atol):
        return "the right values in the wrong places: an axis order, an index or a sort order?"
    if np.all((flat >= 0) & (flat <= 1)) and _close(1.0 - g, e, rtol, atol):
        return _COMPLEMENT
    return None


def _wrong_only_at_an_edge(wrong: np.ndarray) -> str | None:
    """A message when the wrong values all sit at the first or the last index of one axis (of at
    least 4), and not everywhere there: a boundary case. Axis numbers only: safe for hidden cases."""
    if not wrong.any() or wrong.all():
        return None
    for axis in range(wrong.ndim):
        n = wrong.shape[axis]
        if n < 4:  # along 2 or 3 positions every value is near an edge: no evidence of a boundary case
            continue
        for index, name in ((0, "first"), (n - 1, "last")):
            inside = np.take(wrong, [i for i in range(n) if i != index], axis)
            if not inside.any():
                return (f"the values are right except at the {name} position along axis {axis}: a boundary "
                        "case (an index range off by one, or the edge handled differently)?")
    return None
