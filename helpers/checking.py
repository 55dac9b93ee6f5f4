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
        if whole:
            return Verdict(False, whole[0][0], whole[0][0])
        for i, (g, e) in enumerate(zip(got, expected)):
            v = compare(g, e, rtol, atol, [(m, o[i]) for m, o in mistakes
                                           if isinstance(o, tuple) and len(o) == len(expected)], hidden=hidden)
            if not v.ok:
                return Verdict(False, f"item {i} of the returned tuple: {v.message}", v.mistake)
        return Verdict(True)
    if isinstance(got, tuple):
        return Verdict(False, f"returned a tuple of {len(got)} values, expected a single array")
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        for message, wrong in mistakes:
            if _same(got, wrong, rtol, atol):
                return Verdict(False, message, message)
        return Verdict(False, _shape_message(got.shape, expected.shape, hidden))
    g = got.astype(np.float64)  # float32 answers and integer answers given as floats are fine
    e = expected.astype(np.float64)
    if _close(g, e, rtol, atol):
        return Verdict(True)
    for message, wrong in mistakes:
        if _same(g, wrong, rtol, atol):
            return Verdict(False, message, message)
    return Verdict(False, _value_message(g, e, rtol, atol, hidden))


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


def _value_message(g: np.ndarray, e: np.ndarray, rtol: float, atol: float, hidden: bool = False) -> str:
    if np.any(~np.isfinite(g)) and np.all(np.isfinite(e)):
        return "output contains NaN or inf where the answer is finite: overflow in exp? use a numerically stable form"
    if g.size and _close(-g, e, rtol, atol):
        return "the values have the wrong sign"
    finite = np.isfinite(g) & np.isfinite(e) & (np.abs(e) > 1e-12)
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


def encode_inputs(inputs: dict[str, Any]) -> list:
    """A case's inputs ``{name: value}`` as ordered plain data (JSON keeps lists in order).

    Floats are rounded to ``SIGNIFICANT_DIGITS``: the reference and the student then see the
    same inputs on every machine."""
    return [[name, rounded(encode(value))] for name, value in inputs.items()]


def call_case(func: Callable, inputs: list, framework: str) -> Any:
    """Call ``func`` positionally with a case's inputs (in the order given)."""
    return func(*prepare_inputs(inputs, framework))


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

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total and not self.problems

    def summary(self) -> str:
        if self.not_implemented:
            return (f"{self.name}: not implemented yet. Replace `raise NotImplementedError()` "
                    "with your code, run that cell, then run this check again.")
        if self.ok:
            return f"{self.name}: all {self.total} visible checks passed."
        lines = [f"{self.name}: {self.passed} of {self.total} visible checks passed."]
        lines += [f"  - {p}" for p in self.problems[:3]]
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


def run_visible_checks(name: str, func: Callable, *, path: str | os.PathLike | None = None) -> CheckReport:
    """Run the visible cases of ``name`` on ``func`` and return what was found."""
    spec = load_checks(path)["exercises"].get(name)
    if spec is None:
        raise KeyError(f"no checks named {name!r} in {CHECKS_FILE}")
    report = CheckReport(name)
    for i, case in enumerate(spec["cases"], 1):
        report.total += 1
        try:
            got = call_case(func, case["inputs"], spec["framework"])
        except NotImplementedError:
            report.not_implemented = True
            break
        except Exception as e:  # the student's code raised: report it, don't hide it
            report.problems.append(f"case {i}: your function raised {type(e).__name__}: {e}")
            continue
        try:
            got = _decoded(got)
        except EncodingError as e:
            report.problems.append(f"case {i}: {e}")
            continue
        mistakes = [(m["message"], decode(m["output"])) for m in case.get("mistakes", [])]
        verdict = compare(got, decode(case["expected"]), spec["rtol"], spec["atol"], mistakes)
        if verdict.ok:
            report.passed += 1
        else:
            report.problems.append(f"case {i}: {verdict.message}")
    return report


def _decoded(value: Any) -> Any:
    """Round-trip through the plain-data encoding, as the grader does."""
    return decode(encode(value))


def _harvest(name: str, func: Callable, root: Path) -> None:
    """Grader mode: call ``func`` on the grader's inputs and write the outputs."""
    src = root / "inputs" / f"{name}.json"
    if not src.exists():
        print(f"{name}: not graded in this run")
        return None
    spec = json.loads(src.read_text())
    results: list[dict] = []
    out = root / "outputs" / f"{name}.json"
    for case in spec["cases"]:
        try:
            results.append({"output": encode(call_case(func, case["inputs"], spec["framework"]))})
        except NotImplementedError:
            results.append({"error": "not implemented"})
        except KeyboardInterrupt:
            results.append({"error": "interrupted (time limit)"})
            break
        except BaseException as e:  # noqa: BLE001 - record SystemExit & co. as this case's error
            results.append({"error": f"{type(e).__name__}: {str(e)[:300]}"})
        out.write_text(json.dumps({"exercise": name, "results": results}))  # a pre-made file: no rename
    print(f"{name}: {len(results)} outputs recorded for grading")
    return None
