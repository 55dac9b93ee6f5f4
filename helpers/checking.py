"""The checking API: the one call every graded test cell makes.

    check("sigmoid", sigmoid)

In a student's notebook, ``check`` runs the exercise's *visible* cases, whose
inputs and expected outputs ship as data in ``checks.json`` beside the notebook
(generated from the reference solution by ``autograder release``; never code),
and prints a short verdict that names the likely mistake.

When the trusted grader runs a submission (inside its sandbox) it sets
``AUTOGRADER_HARVEST`` to a folder holding the inputs it chose for this run.
``check`` then only *calls* the student's function on those inputs and writes
the outputs there as plain JSON numbers. The comparison with the reference
happens outside the student's process (``autograder.scoring``), with the same
``compare`` function defined here, so students and the grader judge alike.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

CHECKS_FILE = "checks.json"
HARVEST_ENV = "AUTOGRADER_HARVEST"
#: Largest array (number of elements) accepted in an encoded value.
MAX_ELEMENTS = 5_000_000

# --------------------------------------------------------------------------- #
# Plain-data encoding: the only form in which values cross the sandbox wall.
# --------------------------------------------------------------------------- #


class EncodingError(ValueError):
    """A value that is not plain numeric data (or is malformed)."""


def to_numpy(value: Any) -> np.ndarray:
    """Convert a number, numpy array or torch tensor to a plain numpy array.

    Raises EncodingError for anything that is not numeric data (None, strings,
    objects pretending to be arrays).
    """
    if value is None:
        raise EncodingError("returned None: did you forget the `return` statement?")
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        value = np.asarray(value)
    if type(value) is not np.ndarray:
        if isinstance(value, np.ndarray):  # a subclass: keep only the data
            value = np.array(value, copy=True).view(np.ndarray)
        elif isinstance(value, (list, tuple)):
            try:
                value = np.array(value, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise EncodingError(f"returned a {type(value).__name__} that is not a numeric array") from e
        else:
            raise EncodingError(f"returned a {type(value).__name__}, expected a number or an array")
    if value.dtype.kind not in "biuf":
        raise EncodingError(f"returned an array of dtype {value.dtype}, expected numbers")
    if value.size > MAX_ELEMENTS:
        raise EncodingError(f"returned {value.size} numbers, more than the {MAX_ELEMENTS} allowed")
    return value


def encode(value: Any) -> dict:
    """Encode a number/array/tensor, or a tuple of them, as JSON-safe plain data."""
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    arr = to_numpy(value)
    kind = {"b": "bool", "i": "int", "u": "int", "f": "float"}[arr.dtype.kind]
    flat = arr.reshape(-1)
    if kind == "float":
        data = [_float_to_json(float(x)) for x in flat]
    elif kind == "bool":
        data = [bool(x) for x in flat]
    else:
        data = [int(x) for x in flat]
    return {"kind": kind, "dtype": str(arr.dtype), "shape": list(arr.shape), "data": data}


def _float_to_json(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


#: Deepest nesting of tuples accepted in an encoded value.
MAX_DEPTH = 4


def decode(obj: Any, _depth: int = 0) -> np.ndarray | tuple:
    """Decode (and validate) what ``encode`` produced. Never evaluates code.

    Raises EncodingError for anything else: other types, tuples nested deeper than
    ``MAX_DEPTH``, more than ``MAX_ELEMENTS`` numbers, data that does not fit its shape."""
    if not isinstance(obj, dict):
        raise EncodingError("malformed value")
    if "tuple" in obj:
        items = obj["tuple"]
        if not isinstance(items, list) or len(items) > 64 or _depth >= MAX_DEPTH:
            raise EncodingError("malformed tuple")
        return tuple(decode(v, _depth + 1) for v in items)
    kind, shape, data = obj.get("kind"), obj.get("shape"), obj.get("data")
    if kind not in ("bool", "int", "float"):
        raise EncodingError("unknown kind")
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape) or len(shape) > 8:
        raise EncodingError("malformed shape")
    if not isinstance(data, list) or len(data) > MAX_ELEMENTS or len(data) != math.prod(shape):
        raise EncodingError("data does not match its shape")
    if kind == "float":
        special = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
        out = []
        for x in data:
            if type(x) in (int, float):
                out.append(float(x))
            elif isinstance(x, str) and x in special:
                out.append(special[x])
            else:
                raise EncodingError("non-numeric entry")
        arr = np.array(out, dtype=np.float64)
    elif kind == "int":
        if not all(type(x) is int for x in data):
            raise EncodingError("non-integer entry")
        arr = np.array(data, dtype=np.int64)
    else:
        if not all(type(x) is bool for x in data):
            raise EncodingError("non-boolean entry")
        arr = np.array(data, dtype=bool)
    return arr.reshape(shape)


# --------------------------------------------------------------------------- #
# Comparison: used in the student's notebook (visible cases) and by the trusted
# grader (all cases). It names the likely mistake where it can.
# --------------------------------------------------------------------------- #


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
            return Verdict(False, f"the returned values are in the wrong order ({moved}): "
                                  "return them in the order the docstring gives")
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

    On a tiny output a match is not claimed when it is ambiguous (two different mistakes give it)
    or trivial (every value 0 or 1, as a stub or an early return gives by chance)."""
    hits = [m for m, wrong in mistakes if _same(got, wrong, rtol, atol)]
    if not hits:
        return None
    if _tiny(got):
        values = np.asarray(got, dtype=np.float64).reshape(-1)
        trivial = bool(np.all((values == 0) | (values == 1)))
        if len(set(hits)) > 1 or trivial:
            return None
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
    both_nan = np.isnan(g) & np.isnan(e)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (np.abs(g - e) <= atol + rtol * np.abs(e)) | both_nan | ((g == e) & np.isinf(e))
    return bool(np.all(ok))


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
    wrong = ~np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if hidden:
        return f"{100 * wrong.mean():.0f} % of the values differ from the expected ones"
    return f"{int(wrong.sum())} of {g.size} values differ from the expected ones"


# --------------------------------------------------------------------------- #
# Calling the student's function on a case.
# --------------------------------------------------------------------------- #


def prepare_inputs(inputs: list, framework: str) -> list:
    """Decode a case's inputs to fresh arguments for the student's function.

    inputs: ``[[name, encoded value], ...]`` in the order of the parameters.
    framework "numpy" gives numpy arrays (0-d arrays become Python numbers),
    "torch" gives torch tensors (float64 stays float64).
    """
    if not isinstance(inputs, list) or not all(isinstance(p, list) and len(p) == 2 for p in inputs):
        raise EncodingError("malformed inputs")
    args = []
    for _name, value in inputs:
        if value == NONE_INPUT:  # an optional argument left out (e.g. mask=None)
            args.append(None)
            continue
        arr = decode(value)
        if isinstance(arr, tuple):
            args.append(arr)
        elif arr.ndim == 0:
            args.append(arr.item())
        elif framework == "torch":
            import torch

            args.append(torch.from_numpy(arr.copy()))
        else:
            args.append(arr.copy())
    return args


#: Floats written to checks.json and given to functions as inputs keep this many significant digits,
#: so that a case does not depend on the last bits of the machine that drew it (SIMD exp/tanh differ).
SIGNIFICANT_DIGITS = 12


def rounded(obj: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """``obj`` (plain JSON data) with every float rounded to ``digits`` significant digits."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, list):
        return [rounded(v, digits) for v in obj]
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    return obj


#: How an input given as None (an optional argument left at its default) is written in a case.
NONE_INPUT = {"none": True}


def encode_inputs(inputs: dict[str, Any]) -> list:
    """A case's inputs ``{name: value}`` as ordered plain data (JSON keeps lists in order).

    Floats are rounded to ``SIGNIFICANT_DIGITS``: the reference and the student then see the
    same inputs on every machine. ``None`` (an optional argument) is written as ``NONE_INPUT``."""
    return [[name, dict(NONE_INPUT) if value is None else rounded(encode(value))] for name, value in inputs.items()]


def call_case(func: Callable, inputs: list, framework: str) -> Any:
    """Call ``func`` positionally with a case's inputs (in the order given)."""
    return func(*prepare_inputs(inputs, framework))


# --------------------------------------------------------------------------- #
# Contracts an exercise's text states: the facts are recorded here (in the
# student's process, visible checks and grading alike) by ``run_case``; they are
# judged by ``contract_problems`` (in the notebook and on the trusted side).
# --------------------------------------------------------------------------- #

#: Most warnings (distinct categories) recorded per case.
MAX_WARNINGS = 8


def _snapshot(arg: Any) -> Any:
    """A copy of one argument to compare with after the call (None for immutable values)."""
    if isinstance(arg, np.ndarray):
        return arg.copy()
    if type(arg).__module__.startswith("torch") and hasattr(arg, "detach"):
        return arg.detach().clone()
    if isinstance(arg, tuple):
        return tuple(_snapshot(a) for a in arg)
    return None


def _unchanged(before: Any, after: Any) -> bool:
    if before is None:
        return True
    if isinstance(before, tuple):
        return all(_unchanged(b, a) for b, a in zip(before, after))
    try:
        a = after.detach().numpy() if hasattr(after, "detach") else np.asarray(after)
        b = before.numpy() if hasattr(before, "numpy") and not isinstance(before, np.ndarray) else before
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))
    except Exception:  # noqa: BLE001 - an argument replaced by something odd counts as modified
        return False


def resolve_callables(names: Sequence[str]) -> list[Any]:
    """The objects named by dotted paths ("torch.nn.functional.conv2d"); None where one is missing.

    Only modules already imported are looked in (code that never imported a library cannot
    call it, and watching must not import anything)."""
    import sys

    found = []
    for dotted in names:
        parts, obj = dotted.split("."), None
        for i in range(len(parts), 0, -1):
            module = sys.modules.get(".".join(parts[:i]))
            if module is None:
                continue
            obj = module
            for attr in parts[i:]:
                obj = getattr(obj, attr, None)
            break
        found.append(obj)
    return found


class _CallWatch:
    """Notes which of some library callables are called (directly or not) while it is active.

    Python functions are recognised by their code object (a class by its ``__init__`` and
    ``forward``), built-ins by identity; an alias (``from torch.nn.functional import conv2d``)
    is caught too."""

    def __init__(self, targets: Sequence[Any]):
        self.codes: dict[Any, int] = {}
        self.builtins: dict[int, int] = {}
        for j, t in enumerate(targets):
            if t is None:
                continue
            funcs = [getattr(t, "__init__", None), getattr(t, "forward", None)] if isinstance(t, type) else [t]
            for f in funcs:
                code = getattr(getattr(f, "__func__", f), "__code__", None)
                if code is not None:
                    self.codes[code] = j
                elif f is not None and not isinstance(t, type):
                    self.builtins[id(f)] = j
        self.used: set[int] = set()

    def __enter__(self) -> "_CallWatch":
        import sys
        import threading

        self._previous = sys.getprofile()
        if self.codes or self.builtins:
            sys.setprofile(self._profile)
            threading.setprofile(self._profile)
        return self

    def __exit__(self, *exc: Any) -> None:
        import sys
        import threading

        if self.codes or self.builtins:
            sys.setprofile(self._previous)
            threading.setprofile(None)

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            j = self.codes.get(frame.f_code)
            if j is not None:
                self.used.add(j)
        elif event == "c_call":
            j = self.builtins.get(id(arg))
            if j is not None:
                self.used.add(j)


def run_case(func: Callable, inputs: list, framework: str, watch: Sequence[Any] = ()) -> dict:
    """Call ``func`` on one case and record what happened, as plain data.

    Returns ``{"output": encoded}`` or ``{"error": "Type: text"}`` (``{"error": "not implemented"}``
    for NotImplementedError), plus the facts the contracts are judged on:
    ``"mutated"``: indices of the arguments that differ after the call (changed in place);
    ``"warnings"``: ``[[category, text], ...]`` raised during the call;
    ``"used"``: indices into ``watch`` (resolved library callables) that were called.
    KeyboardInterrupt is recorded as an interruption, then raised again."""
    import warnings

    args = prepare_inputs(inputs, framework)
    before = [_snapshot(a) for a in args]
    entry: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught, _CallWatch(watch) as calls:
        warnings.simplefilter("always")
        try:
            entry["output"] = encode(func(*args))
        except NotImplementedError:
            entry["error"] = "not implemented"
        except KeyboardInterrupt:
            entry["error"] = "interrupted (time limit)"
            raise
        except BaseException as e:  # noqa: BLE001 - SystemExit & co. are this case's error
            entry["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    mutated = [i for i, (b, a) in enumerate(zip(before, args)) if not _unchanged(b, a)]
    if mutated:
        entry["mutated"] = mutated
    seen: dict[str, str] = {}
    for w in caught:
        seen.setdefault(getattr(w.category, "__name__", "Warning"), str(w.message)[:200])
    if seen:
        entry["warnings"] = [[k, v] for k, v in list(seen.items())[:MAX_WARNINGS]]
    if calls.used:
        entry["used"] = sorted(calls.used)
    return entry


@dataclass(frozen=True)
class Contract:
    """What an exercise's text promises beyond its outputs (see ``autograder.exercises.Exercise``).

    pure:      the inputs must not be modified in place.
    silent:    no warning may be raised (numerically stable code raises none).
    forbidden: dotted names of library calls the exercise asks students to write by hand.
    """

    pure: bool = False
    silent: bool = False
    forbidden: tuple[str, ...] = ()

    def as_data(self) -> dict:
        return {"pure": self.pure, "silent": self.silent, "forbidden": list(self.forbidden)}

    @classmethod
    def from_data(cls, data: Any) -> "Contract":
        data = data if isinstance(data, dict) else {}
        forbidden = data.get("forbidden") or []
        return cls(bool(data.get("pure")), bool(data.get("silent")),
                   tuple(f for f in forbidden if isinstance(f, str))[:16])


_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,80}$")


def contract_problems(entry: dict, contract: Contract, input_names: Sequence[str],
                      hidden: bool = False) -> list[tuple[str, str]]:
    """``[(kind, message), ...]``: how one recorded case (``run_case``'s entry) breaks the contract.

    kind: "mutated_input" (pure exercise, an argument changed), "warning" (silent exercise),
    "shortcut" (a forbidden library call was used). Only names the grader chose appear in
    hidden verdicts (argument names, the forbidden names); a warning's category is shown only
    when it is a plain identifier, its text only for visible cases."""
    problems: list[tuple[str, str]] = []
    mutated = entry.get("mutated")
    if contract.pure and isinstance(mutated, list):
        names = [input_names[i] for i in mutated if type(i) is int and 0 <= i < len(input_names)]
        if names:
            which = ", ".join(f"`{n}`" for n in names)
            problems.append(("mutated_input", f"modified {which} in place: the inputs must stay unchanged "
                                              "(work on a copy, e.g. x = x.copy() or x = x + ...)"))
    warned = entry.get("warnings")
    if contract.silent and isinstance(warned, list) and warned:
        first = warned[0] if isinstance(warned[0], list) and len(warned[0]) == 2 else ["Warning", ""]
        category = first[0] if isinstance(first[0], str) and _SAFE_NAME.match(first[0]) else "a warning"
        text = "" if hidden or not isinstance(first[1], str) else f" ({first[1][:120]})"
        problems.append(("warning", f"raised {category}{text}: the exercise asks for a silent, numerically "
                                    "stable computation (no overflow, no division by zero)"))
    used = entry.get("used")
    if contract.forbidden and isinstance(used, list):
        names = [contract.forbidden[j] for j in used if type(j) is int and 0 <= j < len(contract.forbidden)]
        if names:
            problems.append(("shortcut", f"calls {', '.join(f'`{n}`' for n in names)}, which this exercise "
                                         "asks you to write by hand"))
    return problems


# --------------------------------------------------------------------------- #
# The student-facing check.
# --------------------------------------------------------------------------- #


class CheckFailed(AssertionError):
    """A visible check failed. Rendered by IPython without a traceback wall."""

    def __init__(self, report: "CheckReport"):
        super().__init__(report.summary())
        self.report = report

    def _render_traceback_(self) -> list[str]:  # IPython hook: show the verdict, not a stack
        return ["\x1b[0;31mCheckFailed\x1b[0m: " + self.report.summary()]


@dataclass
class CheckReport:
    """What ``check`` found for one exercise."""

    name: str
    passed: int = 0
    total: int = 0
    problems: list[str] = field(default_factory=list)
    not_implemented: bool = False
    notes: list[str] = field(default_factory=list)  # shown whether or not the checks pass (shortcuts)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total and not self.problems

    def summary(self) -> str:
        if self.not_implemented:
            return (f"{self.name}: not implemented yet. Replace `raise NotImplementedError()` "
                    "with your code, run that cell, then run this check again.")
        notes = [f"  - note: {n} (the grader may not give it the points)" for n in self.notes]
        if self.ok:
            return "\n".join([f"{self.name}: all {self.total} visible checks passed."] + notes)
        lines = [f"{self.name}: {self.passed} of {self.total} visible checks passed."]
        lines += [f"  - {p}" for p in self.problems[:3]] + notes
        return "\n".join(lines)


def load_checks(path: str | os.PathLike | None = None) -> dict:
    """Read ``checks.json`` (the visible cases) from beside the notebook."""
    p = Path(path) if path is not None else Path.cwd() / CHECKS_FILE
    if not p.exists():
        raise FileNotFoundError(
            f"{p} is missing: it holds this notebook's visible checks. Open the notebook from its "
            "own folder in release/ (or ask your instructor for the file).")
    return json.loads(p.read_text())


def check(name: str, func: Callable, *, path: str | os.PathLike | None = None) -> None:
    """Check the exercise ``name`` implemented by ``func``.

    Prints a verdict and raises ``CheckFailed`` when a visible check fails.
    Under the trusted grader, records ``func``'s outputs for grading instead.
    """
    harvest = os.environ.get(HARVEST_ENV)
    if harvest:
        _harvest(name, func, Path(harvest))
        return
    report = run_visible_checks(name, func, path=path)
    if not report.ok:
        raise CheckFailed(report)
    print("\u2714 " + report.summary())


def run_visible_checks(name: str, func: Callable, *, path: str | os.PathLike | None = None,
                       _depth: int = 0) -> CheckReport:
    """Run the visible cases of ``name`` on ``func`` and return what was found.

    Besides the outputs, the exercise's stated contract is judged (``contract_problems``), and
    when it fails and builds on earlier exercises (``builds_on`` in checks.json), those of the
    student's functions (looked up where ``func`` was defined) are checked too, and named if
    they fail."""
    checks = load_checks(path)
    spec = checks["exercises"].get(name)
    if spec is None:
        raise KeyError(f"no checks named {name!r} in {CHECKS_FILE}")
    contract = Contract.from_data(spec.get("contract"))
    watch = resolve_callables(contract.forbidden)
    report = CheckReport(name)
    for i, case in enumerate(spec["cases"], 1):
        report.total += 1
        entry = run_case(func, case["inputs"], spec["framework"], watch)
        if entry.get("error") == "not implemented":
            report.not_implemented = True
            break
        if "error" in entry:  # the student's code raised: report it, don't hide it
            report.problems.append(f"case {i}: your function raised {entry['error']}")
            continue
        try:
            got = decode(entry["output"])
        except EncodingError as e:
            report.problems.append(f"case {i}: {e}")
            continue
        mistakes = [(m["message"], decode(m["output"])) for m in case.get("mistakes", [])]
        verdict = compare(got, decode(case["expected"]), spec["rtol"], spec["atol"], mistakes)
        if not verdict.ok:  # a wrong output first (the more specific diagnosis), then the contract
            report.problems.append(f"case {i}: {verdict.message}")
            continue
        problems = contract_problems(entry, contract, [n for n, _ in case["inputs"]])
        for kind, message in problems:
            if kind == "shortcut" and message not in report.notes:
                report.notes.append(message)
        problems = [m for k, m in problems if k != "shortcut"]
        if problems:
            report.problems.append(f"case {i}: {problems[0]}")
        else:
            report.passed += 1
    if not report.ok and not report.not_implemented and _depth < 4:
        namespace = getattr(func, "__globals__", {})
        for dep in spec.get("builds_on", []):
            dep_func = namespace.get(dep) if isinstance(namespace, dict) else None
            if dep in checks["exercises"] and callable(dep_func):
                dep_report = run_visible_checks(dep, dep_func, path=path, _depth=_depth + 1)
                if not dep_report.ok:
                    report.problems.insert(0, cascade_message(dep))
    return report


def cascade_message(dependency: str) -> str:
    """The verdict's first line when an exercise uses an earlier one that fails its checks."""
    return f"uses your `{dependency}`, which fails its checks: fix that first"


def _decoded(value: Any) -> Any:
    """Round-trip through the plain-data encoding, as the grader does."""
    return decode(encode(value))


def _harvest(name: str, func: Callable, root: Path) -> None:
    """Grader mode: call ``func`` on the grader's inputs and write what ``run_case`` records."""
    src = root / "inputs" / f"{name}.json"
    if not src.exists():
        print(f"{name}: not graded in this run")
        return None
    spec = json.loads(src.read_text())
    watch = resolve_callables(Contract.from_data(spec.get("contract")).forbidden)
    results: list[dict] = []
    out = root / "outputs" / f"{name}.json"
    for case in spec["cases"]:
        try:
            results.append(run_case(func, case["inputs"], spec["framework"], watch))
        except KeyboardInterrupt:
            results.append({"error": "interrupted (time limit)"})
            break
        except Exception as e:  # noqa: BLE001 - malformed inputs: this case's error
            results.append({"error": f"{type(e).__name__}: {str(e)[:300]}"})
        out.write_text(json.dumps({"exercise": name, "results": results}))  # a pre-made file: no rename
    print(f"{name}: {len(results)} outputs recorded for grading")
    return None
