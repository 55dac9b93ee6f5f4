"""The checking API: the one call every graded test cell makes.

    check("sigmoid", sigmoid)

In a student's notebook, ``check`` runs the exercise's *visible* cases, whose
inputs and expected outputs ship as data in ``checks.json`` beside the notebook
(generated from the reference solution by ``autograder release``; never code),
and prints a short verdict that names the likely mistake.

When the trusted grader runs a submission (inside its sandbox) it sets
``AUTOGRADER_HARVEST`` to a folder holding the inputs it chose for this run.
``check`` then only *calls* the student's function on those inputs and writes
what each call recorded (``run_case``) there as plain JSON. The judging happens
outside the student's process (``autograder.pipeline.scoring``), with the same ``judge``
(``helpers.grading.contract``), so students and the grader judge alike.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from helpers.grading.contract import (BAD_INPUT, HARVEST_ENV, INTERRUPTED, NONE_INPUT, NOT_IMPLEMENTED, RAISED, Case,
                                      Contract, EncodingError, ExerciseReport, Harvest, cascade_message, case_from_data,
                                      decode, encode, error_entry, judge, results_document)

CHECKS_FILE = "checks.json"

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



def call_case(func: Callable, inputs: list, framework: str) -> Any:
    """Call ``func`` positionally with a case's inputs (in the order given)."""
    return func(*prepare_inputs(inputs, framework))



# --------------------------------------------------------------------------- #
# Recording what a call did: inputs changed in place, warnings, library calls.
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
    """Call ``func`` on one case and record what happened: an entry of the contract.

    Returns ``{"output": encoded}`` or ``{"error": code, "detail": "Type: text"}`` (codes:
    ``helpers.grading.contract.ERROR_CODES``), plus the facts the contracts are judged on:
    ``"mutated"``: indices of the arguments that differ after the call (changed in place);
    ``"warnings"``: ``[[category, text], ...]`` raised during the call;
    ``"used"``: indices into ``watch`` (resolved library callables) that were called.
    KeyboardInterrupt is recorded as an interruption, then raised again."""
    import warnings

    try:
        args = prepare_inputs(inputs, framework)
    except Exception as e:  # noqa: BLE001 - malformed inputs: this case's error
        return error_entry(BAD_INPUT, e)
    before = [_snapshot(a) for a in args]
    entry: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught, _CallWatch(watch) as calls:
        warnings.simplefilter("always")
        try:
            entry["output"] = encode(func(*args))
        except NotImplementedError:
            entry = error_entry(NOT_IMPLEMENTED)
        except KeyboardInterrupt:
            entry = error_entry(INTERRUPTED)
            raise
        except BaseException as e:  # noqa: BLE001 - SystemExit & co. are this case's error
            entry = error_entry(RAISED, e)
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


# --------------------------------------------------------------------------- #
# The student-facing check.
# --------------------------------------------------------------------------- #


class CheckFailed(AssertionError):
    """A visible check failed. Rendered by IPython without a traceback wall."""

    def __init__(self, report: ExerciseReport):
        super().__init__(report.summary())
        self.report = report

    def _render_traceback_(self) -> list[str]:  # IPython hook: show the verdict, not a stack
        return ["\x1b[0;31mCheckFailed\x1b[0m: " + self.report.summary()]


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
        _harvest(name, func, Harvest(Path(harvest)))
        return
    report = run_visible_checks(name, func, path=path)
    if not report.ok:
        raise CheckFailed(report)
    print("\u2714 " + report.summary())


def visible_cases(spec: dict) -> list[Case]:
    """checks.json's cases of one exercise, as the judge takes them."""
    return [case_from_data(c) for c in spec["cases"]]


def run_visible_checks(name: str, func: Callable, *, path: str | os.PathLike | None = None,
                       _depth: int = 0) -> ExerciseReport:
    """Run the visible cases of ``name`` on ``func`` and judge them (``helpers.grading.contract.judge``).

    When the exercise fails and builds on earlier exercises (``builds_on`` in checks.json),
    those of the student's functions (looked up where ``func`` was defined) are checked too,
    and named first if they fail."""
    checks = load_checks(path)
    spec = checks["exercises"].get(name)
    if spec is None:
        raise KeyError(f"no checks named {name!r} in {CHECKS_FILE}")
    contract = Contract.from_data(spec.get("contract"))
    watch = resolve_callables(contract.forbidden)
    entries = []
    for case in spec["cases"]:
        entries.append(run_case(func, case["inputs"], spec["framework"], watch))
        if entries[-1].get("error") == NOT_IMPLEMENTED:
            break  # the stub: the other cases would say the same
    report = judge(name, visible_cases(spec), entries, rtol=spec["rtol"], atol=spec["atol"], contract=contract,
                   in_notebook=True)
    if not report.ok and not report.not_implemented and _depth < 4:
        namespace = getattr(func, "__globals__", {})
        for dep in spec.get("builds_on", []):
            dep_func = namespace.get(dep) if isinstance(namespace, dict) else None
            if dep in checks["exercises"] and callable(dep_func):
                dep_report = run_visible_checks(dep, dep_func, path=path, _depth=_depth + 1)
                if not dep_report.ok:
                    report.problems.insert(0, cascade_message(dep))
    return report


def _harvest(name: str, func: Callable, harvest: Harvest) -> None:
    """Grader mode: call ``func`` on the grader's inputs and write what ``run_case`` records."""
    src = harvest.input_file(name)
    if not src.exists():
        print(f"{name}: not graded in this run")
        return None
    spec = json.loads(src.read_text())
    watch = resolve_callables(Contract.from_data(spec.get("contract")).forbidden)
    entries: list[dict] = []
    out = harvest.output_file(name)
    for case in spec["cases"]:
        try:
            entries.append(run_case(func, case["inputs"], spec["framework"], watch))
        except KeyboardInterrupt:
            entries.append(error_entry(INTERRUPTED))
            break
        out.write_text(results_document(name, entries))  # a pre-made file: no rename
    print(f"{name}: {len(entries)} outputs recorded for grading")
    return None
