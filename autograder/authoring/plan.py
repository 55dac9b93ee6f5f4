"""Grading plans: every case of an assignment and what the reference returns, computed once.

A plan is computed by ``python -m autograder.authoring.plan`` in a subprocess of its own, the only place
that runs the reference (the source notebook's solution cells, which import torch and change its
global state), and cached as rounded, indented JSON beside the course's other runtime state::

    course/plans/<aid>/visible.json     the visible cases (``checks.json`` is made from it)
    course/plans/<aid>/seed-<S>.json    the visible cases, then the hidden ones of seed S

A cached plan is used only while its ``sources`` digest (source notebook, cases.py, the helpers
package, this module) matches. Grading processes only read plans: no reference code runs in
them, so a process pool may fork or spawn, and cluster workers get the plan as data.
The sandbox only ever receives a plan's inputs (``ExercisePlan.sandbox_inputs``).
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import helpers
from autograder.course import REPO, Course, CourseError
from autograder.files import readable_json, write_atomic
from autograder.authoring.challenges import challenge_plans, visible_specs
from autograder.authoring.exercises import Exercise
from helpers.grading.contract import (MAX_RESULTS_BYTES, Case, Contract, ExerciseReport, case_data, case_from_data,
                                      decode, dtype_problem, encode, encode_inputs, inputs_document, judge,
                                      read_results, rounded)

#: What a planned case is: the judge's case (``helpers.grading.contract.Case``).
PlannedCase = Case

PLANS_DIR = "plans"


@dataclass(frozen=True)
class ExerciseSpec:
    """What judging an exercise needs of its ``Exercise`` (plain data: no generators, no mistakes'
    code). Same attribute names as ``Exercise``, so either can head a plan."""

    name: str
    framework: str
    rtol: float
    atol: float
    pure: bool = False
    silent: bool = False
    forbidden: tuple[str, ...] = ()
    builds_on: tuple[str, ...] = ()
    partial_credit: bool | None = None
    dtype: str | tuple[str | None, ...] | None = None

    def contract(self) -> Contract:
        return Contract(pure=self.pure, silent=self.silent, forbidden=tuple(self.forbidden), dtype=self.dtype)

    @classmethod
    def of(cls, ex: Exercise) -> "ExerciseSpec":
        return cls(ex.name, ex.framework, ex.rtol, ex.atol, ex.pure, ex.silent, tuple(ex.forbidden),
                   tuple(ex.builds_on), ex.partial_credit, ex.dtype)


class GradedItem(Protocol):
    """One graded cell of a run: an exercise (``ExercisePlan``) or a challenge
    (``autograder.authoring.challenges.ChallengePlan``). The execute step and the scorer call these
    and nothing else, whatever the kind.

    exercise:        its declaration (``name``, ``builds_on``, ``partial_credit``)
    sandbox_inputs:  the text of the sandbox's ``inputs/<name>.json`` (never an expected value or target)
    sandbox_files:   package files the sandbox sees in place of the helpers package's own (path relative to
                     the package -> bytes; e.g. a challenge's data without the labels its rules withhold)
    cell_timeout:    the wall-clock limit of its graded cell, given the run's default
    score:           the trusted verdict on what the sandbox wrote (None: nothing); ``run_cpu_seconds`` is
                     the whole run's CPU time measured from outside the sandbox (None: not measured)
    unscored:        a verdict of no points for a reason that is not the student's (the grading host)
    The verdicts share one interface: ``ok``, ``score(points)``, ``message(points)``, ``cases``."""

    exercise: Any

    def sandbox_inputs(self) -> str: ...

    def sandbox_files(self) -> dict[str, bytes]: ...

    def cell_timeout(self, default: int | None) -> int | None: ...

    def score(self, raw: str | None, *, shortcut_policy: str = "warn", max_bytes: int = MAX_RESULTS_BYTES,
              run_cpu_seconds: float | None = None) -> Any: ...

    def unscored(self, why: str) -> Any: ...


@dataclass
class ExercisePlan:
    """One exercise of a plan: its spec and its cases (visible first, then hidden)."""

    exercise: ExerciseSpec | Exercise
    cases: list[Case]

    def sandbox_inputs(self) -> str:
        """The text of the sandbox's ``inputs/<exercise>.json``: the inputs only, in order."""
        ex = self.exercise
        return inputs_document(ex.name, ex.framework, ex.contract(), [c.inputs for c in self.cases])

    def sandbox_files(self) -> dict[str, bytes]:
        return {}  # an exercise's sandbox sees the package as it ships

    def cell_timeout(self, default: int | None) -> int | None:
        return default

    def score(self, raw: str | None, *, shortcut_policy: str = "warn", max_bytes: int = MAX_RESULTS_BYTES,
              run_cpu_seconds: float | None = None) -> ExerciseReport:
        """Judge the raw text the sandbox wrote (None: nothing written) with the contract's ``judge``
        (as the student's ``check`` does). Total: whatever the text holds (malformed, deep, huge,
        overflowing), every case ends passed or failed with a reason; nothing raises because of it."""
        ex = self.exercise
        entries, problem = read_results(raw, ex.name, max_bytes)
        return judge(ex.name, self.cases, entries, rtol=ex.rtol, atol=ex.atol, contract=ex.contract(),
                     problem=problem, shortcut_policy=shortcut_policy, partial_credit=ex.partial_credit)

    def unscored(self, why: str) -> ExerciseReport:
        return ExerciseReport(self.exercise.name, total=len(self.cases), problems=[why])


# --------------------------------------------------------------------------- #
# Computing a plan (runs the reference: only in ``python -m autograder.authoring.plan``).
# --------------------------------------------------------------------------- #


def _check_names(aid: str, name: str, fn: Any, inputs: dict[str, Any]) -> None:
    """A case's input names must be the reference's parameters, in order (trailing parameters with
    defaults may be left out): the sandbox calls positionally, so a misspelt name would silently
    feed the wrong argument."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):  # a builtin or an nn.Module class without a signature: nothing to check
        return
    given = list(inputs)
    expected = [p.name for p in params[:len(given)]]
    required = [p.name for p in params if p.default is p.empty]
    if given != expected or len(given) < len(required):
        raise CourseError(f"cases.py of {aid}: the inputs of {name!r} are ({', '.join(given)}) but the reference "
                          f"takes ({', '.join(p.name for p in params)}): use the parameters' names, in order")


def _plan_case(aid: str, ex: Exercise, reference: Any, inputs: dict[str, Any], hidden: bool) -> Case:
    from helpers.grading.checking import call_case  # the reference is called as the student's function is

    _check_names(aid, ex.name, reference, inputs)
    enc = encode_inputs(inputs)
    expected = decode(encode(call_case(reference, enc, ex.framework)))
    wrong_kind = dtype_problem(expected, ex.dtype)
    if wrong_kind:
        raise CourseError(f"the reference {ex.name!r} of {aid} breaks its own dtype contract: {wrong_kind}")
    mistakes = []
    for message, wrong in ex.mistakes.items():
        try:
            mistakes.append((message, decode(encode(call_case(wrong, enc, ex.framework)))))
        except Exception:  # a wrong version may crash on some inputs: then it can't be matched
            continue
    return Case(enc, expected, mistakes, hidden)


def compute_plan(course: Course, aid: str, seed: int | None) -> dict[str, ExercisePlan]:
    """Run the reference on every case, in this process: the visible cases, then (for a seed)
    the hidden ones. Called by ``main`` (the subprocess) and by tests that need no cache."""
    from autograder.authoring.reference import load_exercises, reference_function

    plans = {}
    for name, ex in load_exercises(course.cases_file(aid)).items():
        fn = reference_function(course.source_notebook(aid), name)
        drawn = [(i, False) for i in ex.visible_cases()]
        if seed is not None:
            drawn += [(i, True) for i in ex.hidden_cases(seed)]
        cases = []
        for inputs, hidden in drawn:
            try:
                cases.append(_plan_case(aid, ex, fn, inputs, hidden))
            except CourseError:
                raise
            except Exception as e:  # noqa: BLE001 - the course's own bug: one clear line
                raise CourseError(f"the reference {name!r} of {aid} fails on one of its cases: "
                                  f"{type(e).__name__}: {str(e)[:200]}") from e
        plans[name] = ExercisePlan(ex, cases)
    return plans


# --------------------------------------------------------------------------- #
# Plans as data, and the cache.
# --------------------------------------------------------------------------- #


def plan_data(plans: dict[str, ExercisePlan], aid: str, seed: int | None, sources: str) -> dict:
    """A plan as plain JSON data (floats rounded to ``helpers.grading.contract.SIGNIFICANT_DIGITS``)."""
    exercises = {}
    for name, p in plans.items():
        spec = ExerciseSpec.of(p.exercise) if isinstance(p.exercise, Exercise) else p.exercise
        exercises[name] = {
            "framework": spec.framework, "rtol": spec.rtol, "atol": spec.atol,
            "contract": spec.contract().as_data(), "builds_on": list(spec.builds_on),
            "partial_credit": spec.partial_credit,
            "cases": [case_data(c) for c in p.cases],
        }
    return rounded({"assignment": aid, "seed": seed, "sources": sources, "exercises": exercises})


def plans_from_data(data: dict) -> dict[str, ExercisePlan]:
    plans = {}
    for name, e in data["exercises"].items():
        contract = Contract.from_data(e.get("contract"))
        spec = ExerciseSpec(name, e["framework"], e["rtol"], e["atol"], contract.pure, contract.silent,
                            contract.forbidden, tuple(e.get("builds_on", ())), e.get("partial_credit"),
                            contract.dtype)
        plans[name] = ExercisePlan(spec, [case_from_data(c) for c in e["cases"]])
    return plans


def visible_part(data: dict) -> dict:
    """The content of ``checks.json`` from a plan's data: its visible cases, as students get them."""
    out: dict[str, Any] = {"assignment": data["assignment"],
                           "note": "Generated by `autograder release` from the reference solution. Do not edit.",
                           "exercises": {}}
    for name, e in data["exercises"].items():
        contract = e.get("contract") or {}
        out["exercises"][name] = {
            "framework": e["framework"], "rtol": e["rtol"], "atol": e["atol"],
            **({"contract": contract} if Contract.from_data(contract) != Contract() else {}),
            **({"builds_on": e["builds_on"]} if e.get("builds_on") else {}),
            "cases": [{k: c[k] for k in ("inputs", "expected", "mistakes")} for c in e["cases"] if not c["hidden"]],
        }
    return out


def _source_files(course: Course, aid: str) -> list[Path]:
    pkg = Path(helpers.__file__).resolve().parent
    here = Path(__file__).resolve().parent
    return [course.source_notebook(aid), course.cases_file(aid), here / "plan.py", here / "exercises.py",
            here / "reference.py",
            *sorted(p for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts)]


_DIGESTS: dict[tuple, str] = {}


def _named(f: Path) -> str:
    """How a source file enters the digest: code (autograder/, helpers/) by its path in the repository,
    so that moving a module changes the digest; the course's files by name, so that copies of a
    course share their plans."""
    try:
        rel = f.resolve().relative_to(REPO)
    except ValueError:
        return f.name
    return rel.as_posix() if rel.parts[0] in ("autograder", "helpers") else f.name


def sources_digest(course: Course, aid: str) -> str:
    """sha256 of everything a plan depends on: the source notebook, cases.py, the helpers package
    (code and data the reference imports) and the modules that draw and encode cases. Remembered
    while none of those files changes (size and modification time)."""
    files = _source_files(course, aid)
    stats = []
    for f in files:
        try:
            st = f.stat()
            stats.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append((str(f), None, None))
    key = tuple(stats)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        for f in files:
            h.update(_named(f).encode() + b"\0")  # its path in the repository: a moved file changes the digest
            try:
                h.update(f.read_bytes())
            except OSError:
                h.update(b"<missing>")
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


#: A folder of plans shared by several course folders (the test suite's copies of the course):
#: there, plans are filed under their sources digest, so identical courses share them.
SHARED_CACHE_ENV = "AUTOGRADER_PLAN_CACHE"


def plan_path(course: Course, aid: str, seed: int | None, sources: str | None = None) -> Path:
    """``<course>/plans/<aid>/{visible,seed-S}.json`` (or ``$AUTOGRADER_PLAN_CACHE/<digest>/<aid>/...``)."""
    name = "visible.json" if seed is None else f"seed-{int(seed)}.json"
    shared = os.environ.get(SHARED_CACHE_ENV)
    if shared:
        return Path(shared) / (sources or sources_digest(course, aid))[:24] / aid / name
    return course.root / PLANS_DIR / aid / name


def _current(path: Path, sources: str) -> bool:
    try:
        with path.open() as f:
            head = f.read(4096)
        return f'"sources": "{sources}"' in head
    except OSError:
        return False


def ensure_plan(course: Course, aid: str, seed: int | None) -> Path:
    """The plan file, computed (in a subprocess) unless a current one is cached."""
    sources = sources_digest(course, aid)
    path = plan_path(course, aid, seed, sources)
    if _current(path, sources):
        return path
    cmd = [sys.executable, "-m", "autograder.authoring.plan", str(course.root), aid, "--sources", sources]
    if seed is not None:
        cmd += ["--seed", str(int(seed))]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(course.root))
    if done.returncode != 0 or not _current(path, sources):
        lines = [l for l in (done.stderr or "").strip().splitlines() if l.strip()]
        errors = [l[len("error: "):] for l in lines if l.startswith("error: ")]
        why = (errors or lines or [f"exit status {done.returncode}"])[-1][:400]
        raise CourseError(f"could not compute the grading plan of {aid}: {why}")
    return path


_LOADED: dict[tuple[str, int, int], dict[str, ExercisePlan]] = {}


def load_plan(course: Course, aid: str, seed: int | None) -> dict[str, ExercisePlan]:
    """Every case of every exercise of a grading run (visible, then hidden), read from the plan file."""
    path = ensure_plan(course, aid, seed)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _LOADED:
        _LOADED.clear()  # one assignment at a time, in practice
        _LOADED[key] = plans_from_data(json.loads(path.read_text()))
    return _LOADED[key]


def graded_items(course: Course, aid: str, seed: int | None) -> dict[str, GradedItem]:
    """Every graded cell of a run by grade_id: the exercises of the plan, then the challenges."""
    return {**load_plan(course, aid, seed), **challenge_plans(course, aid)}


def grading_plan(course_root: Path, aid: str, seed: int) -> dict[str, ExercisePlan]:
    """``load_plan`` for a course root (what tests and tools call)."""
    return load_plan(Course(Path(course_root)), aid, seed)


def visible_checks(course: Course, aid: str) -> dict:
    """The content of an assignment's checks.json."""
    return {**visible_part(json.loads(ensure_plan(course, aid, None).read_text())), **visible_specs(course, aid)}


def _write(path: Path, text: str) -> None:
    """Write a plan privately (0600 in a 0700 folder: it holds hidden inputs and expected outputs,
    whoever runs ``python -m autograder.authoring.plan`` and under whatever umask) and atomically."""
    write_atomic(path, text, private=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder.authoring.plan COURSE AID [--seed S]``: compute one plan file."""

    p = argparse.ArgumentParser(prog="python -m autograder.authoring.plan", description=main.__doc__)
    p.add_argument("course")
    p.add_argument("assignment")
    p.add_argument("--seed", type=int)
    p.add_argument("--sources", help="the digest the caller computed (default: computed here)")
    args = p.parse_args(argv)
    course = Course(Path(args.course).resolve())
    try:
        sources = args.sources or sources_digest(course, args.assignment)
        plans = compute_plan(course, args.assignment, args.seed)
        data = plan_data(plans, args.assignment, args.seed, sources)
    except Exception as e:  # noqa: BLE001 - one line for the caller (CourseError, or a bug in cases.py)
        print(f"error: {e}" if isinstance(e, CourseError) else f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    # "sources" first: ``_current`` reads it from the file's head.
    text = "{\n " + json.dumps("sources") + ": " + json.dumps(sources) + ",\n" + \
        readable_json({k: v for k, v in data.items() if k != "sources"})[2:]
    _write(plan_path(course, args.assignment, args.seed, sources), text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
