"""The grading contract: what crosses the sandbox wall, and how one exercise is judged.

Both sides use this one module. The student's ``check`` (``helpers.grading.checking``) judges the
visible cases of ``checks.json`` in the notebook; the trusted grader (``autograder.pipeline.scoring``)
judges every case of a grading plan from what the sandbox wrote. Both call ``judge``.

- **Layout** (``Harvest``): the folder the grader gives the sandbox: ``inputs/<exercise>.json``
  (read-only: the cases' inputs) and ``outputs/<exercise>.json`` (one pre-made file per exercise,
  the only thing the kernel may write for the grader).
- **Encoding** (``encode``/``decode``): values cross the wall as plain JSON numbers, never code,
  with limits on size (``MAX_ELEMENTS``) and nesting (``MAX_DEPTH``).
- **Entries** (``run_case`` in ``helpers.grading.checking`` writes them): per case, ``{"output": value}`` or
  ``{"error": code, "detail": text}`` (``ERROR_CODES``), plus the facts contracts are judged on
  (``"mutated"``, ``"warnings"``, ``"used"``).
- **Verdicts** (``judge`` → ``ExerciseReport``): one record per case with a kind (``CASE_KINDS``).

Nothing here raises because of what a submission wrote: a malformed entry is that case's failure.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from helpers.grading.diagnosis import TINY, compare, same_values

# --------------------------------------------------------------------------- #
# Layout: the grader's folder inside the sandbox.
# --------------------------------------------------------------------------- #

#: Environment variable that tells ``check`` it runs under the grader, and where the folder is.
HARVEST_ENV = "AUTOGRADER_HARVEST"


@dataclass(frozen=True)
class Harvest:
    """The grader's folder: ``inputs/<exercise>.json`` in, ``outputs/<exercise>.json`` out."""

    root: Path

    @classmethod
    def in_workdir(cls, workdir: Path) -> "Harvest":
        """Where the grader's folder lies in a per-notebook working folder (``<workdir>/grader``)."""
        return cls(Path(workdir) / "grader")

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def input_file(self, exercise: str) -> Path:
        return self.inputs / f"{exercise}.json"

    def output_file(self, exercise: str) -> Path:
        return self.outputs / f"{exercise}.json"


def inputs_document(exercise: str, framework: str, contract: "Contract", inputs: Sequence[list]) -> str:
    """The text of ``inputs/<exercise>.json``: the cases' inputs only (never an expected value)."""
    return json.dumps({"exercise": exercise, "framework": framework, "contract": contract.as_data(),
                       "cases": [{"inputs": i} for i in inputs]})


def results_document(exercise: str, entries: list[dict]) -> str:
    """The text of ``outputs/<exercise>.json``: one entry per case run so far."""
    return json.dumps({"exercise": exercise, "results": entries})


#: Largest results document the trusted side parses per exercise (bytes).
MAX_RESULTS_BYTES = 16_000_000


def read_results(raw: str | None, exercise: str, max_bytes: int = MAX_RESULTS_BYTES
                 ) -> tuple[list | None, tuple[str, str] | None]:
    """Parse what the sandbox wrote for one exercise: ``(entries, None)`` or ``(None, (kind, message))``.

    raw: the file's text (None: nothing was written). Total: never raises."""
    if raw is None:
        return None, ("not_run", "no outputs were recorded: the check cell did not run "
                                 "(an error before it, a time limit, or the kernel died?)")
    if len(raw) > max_bytes:
        return None, ("malformed", f"the recorded outputs are larger than {max_bytes // 1_000_000} MB")
    try:
        data = json.loads(raw)
        entries = data["results"]
        if not isinstance(entries, list) or data.get("exercise") != exercise:
            raise ValueError
    except (ValueError, KeyError, TypeError, RecursionError, MemoryError):
        return None, ("malformed", "the recorded outputs were unreadable")
    return entries, None


# --------------------------------------------------------------------------- #
# Encoding: the only form in which values cross the sandbox wall.
# --------------------------------------------------------------------------- #


class EncodingError(ValueError):
    """A value that is not plain numeric data (or is malformed)."""


#: Largest array (number of elements) accepted in an encoded value.
MAX_ELEMENTS = 5_000_000


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

# --------------------------------------------------------------------------- #
# Entries: what one case's call recorded.
# --------------------------------------------------------------------------- #

#: Why a case has no output: the function raised NotImplementedError (the release's stub); it
#: raised anything else; the time limit interrupted it; the case's inputs could not be read.
NOT_IMPLEMENTED, RAISED, INTERRUPTED, BAD_INPUT = "not_implemented", "raised", "interrupted", "bad_input"
ERROR_CODES = (NOT_IMPLEMENTED, RAISED, INTERRUPTED, BAD_INPUT)


def error_entry(code: str, exc: BaseException | None = None) -> dict:
    """An entry for a case without output; ``detail`` is "Type: text" of the exception, if any."""
    entry: dict[str, Any] = {"error": code}
    if exc is not None:
        entry["detail"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return entry


# ANSI escape sequences, C0/C1 control characters and Unicode bidi/format overrides: none of them
# may reach a verdict, the terminal table or the CSV (a kernel or a file name can carry any of them).
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b.")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_EXC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,80}$")


def clean_text(text: Any) -> str:
    """``text`` as one printable line: escape sequences removed, other control characters as spaces."""
    return _CONTROLS.sub(" ", _ESCAPES.sub("", str(text))).strip()


def _raised_text(entry: dict, hidden: bool) -> str:
    """How the student's exception is named in a verdict: its type only for hidden cases."""
    text = clean_text(entry.get("detail", ""))[:200] or "an exception"
    if not hidden:
        return text
    name = text.split(":", 1)[0].strip()
    return name if _EXC_NAME.match(name) else "an exception"


# --------------------------------------------------------------------------- #
# Contracts an exercise's text states: the facts are recorded by ``run_case`` in the
# student's process; they are judged here.
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Contract:
    """What an exercise's text promises beyond its outputs (see ``autograder.authoring.exercises.Exercise``).

    pure:      the inputs must not be modified in place.
    silent:    no warning may be raised (numerically stable code raises none).
    forbidden: dotted names of library calls the exercise asks students to write by hand.
    dtype:     the kind of number the text asks for: None (any), one of ``DTYPE_KINDS`` for a
               single output, or a tuple with one entry (a kind or None) per item of a tuple output.
    """

    pure: bool = False
    silent: bool = False
    forbidden: tuple[str, ...] = ()
    dtype: str | tuple[str | None, ...] | None = None

    def as_data(self) -> dict:
        data: dict[str, Any] = {"pure": self.pure, "silent": self.silent, "forbidden": list(self.forbidden)}
        if self.dtype is not None:  # only when set: checks.json of exercises without one stays as it was
            data["dtype"] = list(self.dtype) if isinstance(self.dtype, tuple) else self.dtype
        return data

    @classmethod
    def from_data(cls, data: Any) -> "Contract":
        data = data if isinstance(data, dict) else {}
        forbidden = data.get("forbidden") or []
        return cls(bool(data.get("pure")), bool(data.get("silent")),
                   tuple(f for f in forbidden if isinstance(f, str))[:16], _dtype_from_data(data.get("dtype")))


#: The kinds of number a contract can ask for (``Contract.dtype``).
DTYPE_KINDS = ("int", "float", "bool")
_KIND_OF = {"i": "int", "u": "int", "f": "float", "b": "bool"}
_DTYPE_WORDS = {"int": "integers (an integer dtype such as int64 / torch.long)",
                "float": "floating-point numbers (float32 or float64)",
                "bool": "booleans (dtype bool)"}


def _dtype_from_data(value: Any) -> str | tuple[str | None, ...] | None:
    if isinstance(value, str):
        return value if value in DTYPE_KINDS else None
    if isinstance(value, list) and len(value) <= 64:
        return tuple(v if v in DTYPE_KINDS else None for v in value)
    return None


def check_dtype_spec(dtype: Any) -> None:
    """Raise ValueError unless ``dtype`` is a valid ``Contract.dtype`` (a course's own mistake)."""
    if dtype is None or dtype in DTYPE_KINDS:
        return
    if isinstance(dtype, tuple) and all(d is None or d in DTYPE_KINDS for d in dtype):
        return
    raise ValueError(f"dtype must be None, one of {DTYPE_KINDS} or a tuple of them (None for any), not {dtype!r}")


def dtype_problem(got: Any, dtype: str | tuple[str | None, ...] | None) -> str | None:
    """Why a (decoded, correct-valued) output breaks the contract's dtype, or None.

    got: an array or a tuple of them, as ``decode`` gives them (its kind kept: int64, float64, bool).
    The message names kinds only (never a value): safe for hidden cases."""
    if dtype is None:
        return None
    if isinstance(dtype, tuple):
        if not isinstance(got, tuple) or len(got) != len(dtype):
            return None  # the shape of the answer is judged by ``compare``
        for i, (g, d) in enumerate(zip(got, dtype)):
            problem = dtype_problem(g, d)
            if problem:
                return f"item {i} of the returned tuple: {problem}"
        return None
    if isinstance(got, tuple):
        return None
    kind = _KIND_OF.get(np.asarray(got).dtype.kind)
    if kind == dtype:
        return None
    hint = {"int": ": convert with .long() (torch) or .astype(np.int64); argmax, topk's indices and "
                   "torch.multinomial already give int64",
            "float": ": compute in floating point (.float() / .astype(np.float64))",
            "bool": ": return the comparison itself (a boolean mask), not 0/1 numbers"}[dtype]
    return f"returned {kind or 'other'} values where the text asks for {_DTYPE_WORDS[dtype]}{hint}"


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
# Judging: one exercise's cases against what was recorded.
# --------------------------------------------------------------------------- #


@dataclass
class Case:
    """One case as the judge sees it.

    inputs:   ``[[name, encoded value], ...]`` (what the function was called with).
    expected: the reference's output, decoded (an array or a tuple of them).
    mistakes: ``[(message, decoded output of a known-wrong version), ...]``.
    hidden:   drawn at grading time: its verdict never shows values or sizes.
    """

    inputs: list
    expected: Any
    mistakes: list[tuple[str, Any]]
    hidden: bool = False


def case_data(case: Case) -> dict:
    """A case as plain data (a plan file; checks.json without ``hidden``)."""
    return {"inputs": case.inputs, "expected": encode(case.expected), "hidden": case.hidden,
            "mistakes": [{"message": m, "output": encode(o)} for m, o in case.mistakes]}


def case_from_data(data: dict) -> Case:
    """The inverse of ``case_data`` (a case of checks.json has no ``hidden``: it is visible)."""
    return Case(data["inputs"], decode(data["expected"]),
                [(m["message"], decode(m["output"])) for m in data.get("mistakes", [])], bool(data.get("hidden")))


#: What happened on one case: passed; a known mistake matched; another wrong output; the function
#: raised; not implemented; never run; output not plain numbers; an input modified in place (pure
#: exercises); a warning raised (silent exercises); a forbidden library call used (shortcut policy "zero");
#: the right values as the wrong kind of number (``Contract.dtype``: floats where the text asks for indices).
CASE_KINDS = ("passed", "known_mistake", "wrong", "error", "not_implemented", "not_run", "malformed",
              "mutated_input", "warning", "shortcut", "wrong_dtype")

#: What a forbidden library call costs: "warn" (named in the verdict, points kept) or "zero".
SHORTCUT_POLICIES = ("warn", "zero")


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass
class ExerciseReport:
    """The verdict on one exercise, in the notebook (visible cases) and on the trusted side.

    cases:    one record per case, in order: ``{"hidden": bool, "ok": bool, "kind": str,
              "message": str, "mistake": str | None}`` (kind in ``CASE_KINDS``).
    problems: the verdict's lines ("visible case 2: ..."), most specific first.
    notes:    shown whatever the verdict (a shortcut under the "warn" policy).
    """

    name: str
    passed: int = 0
    total: int = 0
    problems: list[str] = field(default_factory=list)
    cases: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    partial_credit: bool | None = None  # the exercise's own setting; None: the course's

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total

    @property
    def not_implemented(self) -> bool:
        return any(c["kind"] == "not_implemented" for c in self.cases)

    def score(self, points: float, partial_credit: bool = False) -> float:
        """The points earned out of ``points``: all or nothing, or (partial credit, set on the
        exercise or else by the course) in proportion to the cases passed, visible and hidden."""
        partial = partial_credit if self.partial_credit is None else self.partial_credit
        if self.ok:
            return points
        if partial and self.total > 0:
            return round(points * self.passed / self.total, 2)
        return 0.0

    def message(self, points: float, partial_credit: bool = False) -> str:
        """The grader's verdict (feedback): passed cases and points, then the problems."""
        got = self.score(points, partial_credit)
        head = f"{'✔' if self.ok else '✘'} {self.name}: {self.passed} of {self.total} checks passed " \
               f"({_fmt(got)} / {_fmt(points)} points)"
        lines = [head] + [f"  - {p}" for p in self.problems[:4]] + [f"  - note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """The notebook's verdict on the visible cases (``check``)."""
        if self.not_implemented:
            return (f"{self.name}: not implemented yet. Replace `raise NotImplementedError()` "
                    "with your code, run that cell, then run this check again.")
        notes = [f"  - note: {n} (the grader may not give it the points)" for n in self.notes]
        if self.ok:
            return "\n".join([f"{self.name}: all {self.total} visible checks passed."] + notes)
        lines = [f"{self.name}: {self.passed} of {self.total} visible checks passed."]
        lines += [f"  - {p}" for p in self.problems[:3]] + notes
        return "\n".join(lines)


def judge(name: str, cases: Sequence[Case], entries: list | None, *, rtol: float, atol: float,
          contract: Contract = Contract(), problem: tuple[str, str] | None = None,
          shortcut_policy: str = "warn", partial_credit: bool | None = None,
          in_notebook: bool = False) -> ExerciseReport:
    """Judge what was recorded for one exercise (``entries[i]`` for ``cases[i]``).

    entries: ``run_case`` entries (None with ``problem = (kind, message)`` when the whole record
             is missing or unreadable: ``read_results``). Each case is judged on its output first
             (``compare``: a wrong output is the more specific diagnosis), then on the exercise's
             contract (``contract_problems``). shortcut_policy: "warn" names a forbidden call and
             keeps the case's verdict; "zero" fails the case. in_notebook: the student's check
             (problems say "case 2: ..." rather than "visible case 2: ..."). Never raises on what
             was recorded."""
    if shortcut_policy not in SHORTCUT_POLICIES:
        raise ValueError(f"shortcut_policy must be one of {SHORTCUT_POLICIES}, not {shortcut_policy!r}")
    report = ExerciseReport(name, total=len(cases), partial_credit=partial_credit)
    if entries is None:
        kind, message = problem or ("not_run", "nothing was recorded")
        report.problems.append(message)
        report.cases = [{"hidden": c.hidden, "ok": False, "kind": kind, "message": message, "mistake": None}
                        for c in cases]
        return report

    def fail(i: int, kind: str, message: str, mistake: str | None = None) -> None:
        case = cases[i]
        report.cases.append({"hidden": case.hidden, "ok": False, "kind": kind, "message": message,
                             "mistake": mistake})
        if kind != "not_implemented":
            where = "" if in_notebook else ("hidden " if case.hidden else "visible ")
            report.problems.append(f"{where}case {i + 1}: {message}")

    failed_outputs: dict[int, Any] = {}
    for i, case in enumerate(cases):
        entry = entries[i] if i < len(entries) else None
        if not isinstance(entry, dict):
            fail(i, "not_run", "not run")
            continue
        if "error" in entry:
            code = entry["error"]
            if code == NOT_IMPLEMENTED:
                fail(i, "not_implemented", "not implemented yet")
            elif code == INTERRUPTED:
                fail(i, "error", "interrupted (time limit)")
            elif code == BAD_INPUT:
                fail(i, "error", "the case's inputs could not be read")
            else:
                fail(i, "error", f"your function raised {_raised_text(entry, case.hidden)}")
            continue
        try:
            got = decode(entry.get("output"))
            verdict = compare(got, case.expected, rtol, atol, case.mistakes, hidden=case.hidden)
        except EncodingError as e:
            fail(i, "malformed", f"the output is not plain numbers ({e})")
            continue
        except Exception:  # noqa: BLE001 - overflow, recursion, odd shapes: the case fails, judging goes on
            fail(i, "malformed", "the output is not plain numbers")
            continue
        if not verdict.ok:
            fail(i, "known_mistake" if verdict.mistake else "wrong", verdict.message, verdict.mistake)
            failed_outputs[i] = got
            continue
        wrong_kind = dtype_problem(got, contract.dtype)
        if wrong_kind:  # the right values, but not the kind of number the text promises
            fail(i, "wrong_dtype", wrong_kind)
            continue
        broken = contract_problems(entry, contract, [n for n, _ in case.inputs], hidden=case.hidden)
        for kind, message in broken:
            if kind == "shortcut" and shortcut_policy == "warn" and message not in report.notes:
                report.notes.append(message)
        broken = [(k, m) for k, m in broken if k != "shortcut" or shortcut_policy == "zero"]
        if broken:  # the right output, but the text's contract is broken
            fail(i, *broken[0])
            continue
        report.passed += 1
        report.cases.append({"hidden": case.hidden, "ok": True, "kind": "passed", "message": "",
                             "mistake": None})
    _drop_contradicted_mistakes(report, cases, failed_outputs, rtol, atol, in_notebook)
    if report.not_implemented:
        report.problems.insert(0, "not implemented yet")
    return report


def _drop_contradicted_mistakes(report: ExerciseReport, cases: Sequence[Case], failed: dict[int, Any],
                                rtol: float, atol: float, in_notebook: bool) -> None:
    """A known mistake named on one case but contradicted on another is a coincidence: unname it.

    A student's code that has mistake M gives M's output on every case. When the output of a failed
    case differs from M's output there (M ran on that case), a match elsewhere on weak evidence (a
    tiny output, a constant) was probably chance, and naming M would mislead: those cases get the
    generic message instead. A match on a larger, varied output stays named: the student has M, and
    another bug besides (softmax over the wrong axis *and* without the max shift)."""
    named = {c["mistake"] for c, case in zip(report.cases, cases)
             if c["kind"] == "known_mistake" and c["mistake"] and not isinstance(case.expected, tuple)}
    if not named:  # (a tuple's mistakes are named item by item: whole outputs can't contradict them)
        return
    contradicted = set()
    for i, got in failed.items():
        if isinstance(cases[i].expected, tuple):
            continue
        for message, wrong in cases[i].mistakes:
            if message in named and not _same_output(got, wrong, rtol, atol):
                contradicted.add(message)
    if not contradicted:
        return
    for i, record in enumerate(report.cases):
        if record["kind"] != "known_mistake" or record["mistake"] not in contradicted or i not in failed:
            continue
        if not _weak_evidence(failed[i]):
            continue
        others = [(m, o) for m, o in cases[i].mistakes if m not in contradicted]
        verdict = compare(failed[i], cases[i].expected, rtol, atol, others, hidden=cases[i].hidden)
        old = record["message"]
        record.update(kind="known_mistake" if verdict.mistake else "wrong", message=verdict.message,
                      mistake=verdict.mistake)
        where = "" if in_notebook else ("hidden " if cases[i].hidden else "visible ")
        report.problems = [f"{where}case {i + 1}: {verdict.message}" if p == f"{where}case {i + 1}: {old}" else p
                           for p in report.problems]


def _weak_evidence(got: Any) -> bool:
    """Whether matching ``got`` says little: a tiny output (``TINY`` numbers or fewer) or a constant one."""
    values = np.asarray(got, dtype=np.float64).reshape(-1)
    return values.size <= TINY or bool(np.all(values == values[0]))


def _same_output(got: Any, wrong: Any, rtol: float, atol: float) -> bool:
    """Whether a decoded output equals a known mistake's (tuples item by item)."""
    if isinstance(got, tuple) or isinstance(wrong, tuple):
        return (isinstance(got, tuple) and isinstance(wrong, tuple) and len(got) == len(wrong)
                and all(_same_output(g, w, rtol, atol) for g, w in zip(got, wrong)))
    return same_values(got, wrong, rtol, atol)


def cascade_message(dependency: str) -> str:
    """The verdict's first line when an exercise uses an earlier one that fails its checks."""
    return f"uses your `{dependency}`, which fails its checks: fix that first"
