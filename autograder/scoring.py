"""Scores computed outside the student's process.

``TrustedScores`` replaces nbgrader's ``SaveAutoGrades``: instead of believing a
test cell because it printed no error, it reads the plain numeric outputs the
sandbox wrote, validates them, compares them with the reference's outputs on
the same inputs (``helpers.checking.compare``), writes the points into nbgrader's
gradebook through nbgrader's API, and replaces the test cell's output with the
trusted verdict (which feedback then shows). Hidden inputs and expected values
never appear in a message.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import SaveAutoGrades
from traitlets import Bool, Enum

from autograder import outcomes
from autograder.outcomes import clean_text
from autograder.plan import ExercisePlan, grading_plan
from autograder.settings import GradingSettings, course_from_config
from helpers.checking import EncodingError, cascade_message, compare, contract_problems, decode


#: Largest output file the trusted side parses per exercise (bytes); larger is that exercise's failure.
MAX_OUTPUT_BYTES = 16_000_000
_EXC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,80}$")


@dataclass
class ExerciseResult:
    """The trusted verdict on one exercise.

    cases: one record per planned case, in order: ``{"hidden": bool, "ok": bool, "kind": str,
           "message": str, "mistake": str | None}``; kind is one of ``CASE_KINDS``. Messages of
           hidden cases never echo student-controlled text or values derived from hidden inputs.
    """

    name: str
    passed: int = 0
    total: int = 0
    problems: list[str] = field(default_factory=list)
    cases: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown whatever the verdict (shortcuts under "warn")
    partial_credit: bool | None = None  # the exercise's own setting; None: the course's

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total

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
        got = self.score(points, partial_credit)
        head = f"{'✔' if self.ok else '✘'} {self.name}: {self.passed} of {self.total} checks passed " \
               f"({_fmt(got)} / {_fmt(points)} points)"
        lines = [head] + [f"  - {p}" for p in self.problems[:4]] + [f"  - note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


#: What happened on one case: passed; a known mistake matched; another wrong output; the function
#: raised; not implemented; never run; output not plain numbers; an input modified in place (pure
#: exercises); a warning raised (silent exercises); a forbidden library call used (shortcut policy "zero").
CASE_KINDS = ("passed", "known_mistake", "wrong", "error", "not_implemented", "not_run", "malformed",
              "mutated_input", "warning", "shortcut")

#: What a forbidden library call costs: "warn" (named in the verdict, points kept) or "zero".
SHORTCUT_POLICIES = ("warn", "zero")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _error_text(error: Any, hidden: bool) -> str:
    """What the student's exception is called in a verdict: its type only for hidden cases."""
    text = clean_text(str(error))[:200]
    if not hidden:
        return text
    name = text.split(":", 1)[0].strip()
    return name if _EXC_NAME.match(name) else "an exception"


def score_exercise(plan: ExercisePlan, raw: str | None, shortcut_policy: str = "warn") -> ExerciseResult:
    """Judge the raw text the sandbox wrote for one exercise (None: nothing written).

    Each case is judged on its recorded facts first (the exercise's contract:
    ``helpers.checking.contract_problems``), then on its output (``compare``).
    shortcut_policy: "warn" names a forbidden library call and keeps the case's verdict;
    "zero" fails the case.

    Total: whatever the text holds (malformed, deep, huge, overflowing), every case ends
    passed or failed with a reason; nothing here raises because of what a submission wrote."""
    if shortcut_policy not in SHORTCUT_POLICIES:
        raise ValueError(f"shortcut_policy must be one of {SHORTCUT_POLICIES}, not {shortcut_policy!r}")
    result = ExerciseResult(plan.exercise.name, total=len(plan.cases),
                            partial_credit=plan.exercise.partial_credit)
    contract = plan.exercise.contract()

    def fail(i: int, kind: str, message: str, mistake: str | None = None) -> None:
        case = plan.cases[i]
        result.cases.append({"hidden": case.hidden, "ok": False, "kind": kind, "message": message,
                             "mistake": mistake})
        if kind != "not_implemented":
            result.problems.append(f"{'hidden' if case.hidden else 'visible'} case {i + 1}: {message}")

    results: list | None = None
    problem = None
    if raw is None:
        problem = ("not_run", "no outputs were recorded: the check cell did not run "
                              "(an error before it, a time limit, or the kernel died?)")
    elif len(raw) > MAX_OUTPUT_BYTES:
        problem = ("malformed", f"the recorded outputs are larger than {MAX_OUTPUT_BYTES // 1_000_000} MB")
    else:
        try:
            data = json.loads(raw)
            results = data["results"]
            if not isinstance(results, list) or data.get("exercise") != plan.exercise.name:
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError, MemoryError):
            results, problem = None, ("malformed", "the recorded outputs were unreadable")
    if results is None:
        kind, message = problem
        result.problems.append(message)
        result.cases = [{"hidden": c.hidden, "ok": False, "kind": kind, "message": message, "mistake": None}
                        for c in plan.cases]
        return result
    not_implemented = 0
    for i, case in enumerate(plan.cases):
        entry = results[i] if i < len(results) else None
        if not isinstance(entry, dict):
            fail(i, "not_run", "not run")
            continue
        if "error" in entry:
            err = entry["error"]
            if err == "not implemented":
                not_implemented += 1
                fail(i, "not_implemented", "not implemented yet")
            else:
                fail(i, "error", f"your function raised {_error_text(err, case.hidden)}")
            continue
        try:
            got = decode(entry.get("output"))
            verdict = compare(got, case.expected, plan.exercise.rtol, plan.exercise.atol, case.mistakes,
                              hidden=case.hidden)
        except EncodingError as e:
            fail(i, "malformed", f"the output is not plain numbers ({e})")
            continue
        except Exception:  # noqa: BLE001 - overflow, recursion, odd shapes: the case fails, grading goes on
            fail(i, "malformed", "the output is not plain numbers")
            continue
        if not verdict.ok:  # a wrong output is named first: it is the more specific diagnosis
            fail(i, "known_mistake" if verdict.mistake else "wrong", verdict.message, verdict.mistake)
            continue
        broken = contract_problems(entry, contract, [n for n, _ in case.inputs], hidden=case.hidden)
        for kind, message in broken:
            if kind == "shortcut" and shortcut_policy == "warn" and message not in result.notes:
                result.notes.append(message)
        broken = [(k, m) for k, m in broken if k != "shortcut" or shortcut_policy == "zero"]
        if broken:  # the right output, but the text's contract is broken
            fail(i, *broken[0])
            continue
        result.passed += 1
        result.cases.append({"hidden": case.hidden, "ok": True, "kind": "passed", "message": "",
                             "mistake": None})
    if not_implemented:
        result.problems.insert(0, "not implemented yet")
    return result


def name_cascades(results: dict[str, ExerciseResult], plans: dict[str, ExercisePlan]) -> None:
    """Put "uses your `f`, which fails its checks: fix that first" at the top of the verdict of
    every failing exercise that builds on a failing one (``Exercise.builds_on``)."""
    for name, result in results.items():
        plan = plans.get(name)
        if plan is None or result.ok:
            continue
        for dep in plan.exercise.builds_on:
            if dep in results and not results[dep].ok and cascade_message(dep) not in result.problems:
                result.problems.insert(0, cascade_message(dep))


#: Errors the grader itself writes into cells it did not run (not a failure of the cell).
_OWN_ERRORS = {"NotebookTimeLimit"}


def setup_error(nb: NotebookNode) -> str | None:
    """"environment error: ..." if a locked set-up cell (read-only code the student cannot change:
    imports, given helpers) raised while grading; None otherwise."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("locked") or meta.get("grade") or meta.get("solution"):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") not in _OWN_ERRORS:
                what = f"{clean_text(out.get('ename', 'Error'))[:60]}: {clean_text(out.get('evalue', ''))[:160]}"
                return (f"environment error: the locked cell {meta.get('grade_id', '?')!r} failed ({what}); "
                        "check the grading environment (the reference solution is graded first as a canary)")
    return None


class TrustedScores(SaveAutoGrades):
    """nbgrader's SaveAutoGrades, with the score of each test cell computed by us.

    Per course (nbgrader_config.py): ``c.TrustedScores.partial_credit = True`` gives points in
    proportion to the cases passed (an exercise's own ``partial_credit`` wins); default all or
    nothing. ``c.TrustedScores.shortcut_policy = "zero"`` fails the cases that use a library call
    an exercise forbids; default "warn" (named in the verdict, points kept)."""

    partial_credit = Bool(False, help="Points in proportion to the cases passed (default: all or "
                                      "nothing); an exercise's own partial_credit wins.").tag(config=True)
    shortcut_policy = Enum(list(SHORTCUT_POLICIES), default_value="warn",
                           help="What using a library call an exercise asks to write by hand costs: "
                                "'warn' (named, points kept) or 'zero' (its cases fail).").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict):
        config = self.config
        course = course_from_config(config)
        info = resources["nbgrader"]
        seed = GradingSettings(config=config).resolved_seed(course)
        self._plan = grading_plan(course.root, info["assignment"], seed)
        record = resources.setdefault("autograder", {"events": []})
        outputs = record.get("outputs", {})
        env_error = setup_error(nb)
        if env_error:  # the grading host, not the student, failed: no score stands
            self._results = {name: ExerciseResult(name, total=len(p.cases), problems=[env_error])
                             for name, p in self._plan.items()}
        else:
            self._results = {name: score_exercise(p, outputs.get(name), self.shortcut_policy)
                             for name, p in self._plan.items()}
            name_cascades(self._results, self._plan)
            for r in self._results.values():  # the course's setting where the exercise has none
                r.partial_credit = self.partial_credit if r.partial_credit is None else r.partial_credit
        self._points: dict[str, float] = {}
        self._events = record["events"]
        nb, resources = super().preprocess(nb, resources)
        if env_error:
            outcomes.record_not_graded(course, info["assignment"], info["student"], env_error, record["events"])
        else:
            outcomes.record_graded(course, info["assignment"], info["student"], info["notebook"], seed,
                                   record["events"], self._results, self._points)
        return nb, resources

    def _add_score(self, cell: NotebookNode, resources: dict) -> None:
        if utils.is_solution(cell):  # a written answer: graded by hand, as nbgrader does
            return super()._add_score(cell, resources)
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        try:
            grade = self.gradebook.find_grade(grade_id, self.notebook_id, self.assignment_id, self.student_id)
        except MissingEntry:  # a graded cell the source does not have: worth nothing
            self._events.append(f"ignored a graded cell that is not in the source ({grade_id[:40]!r})")
            cell.metadata["nbgrader"]["grade"] = False
            return None
        points = float(grade.max_score)  # from the gradebook, not from the submission
        self._points[grade_id] = points
        result = self._results.get(grade_id)
        if result is None:
            grade.auto_score = 0.0
            grade.needs_manual_grade = True
            text = f"✘ {grade_id}: this test cell has no trusted check; it needs manual grading\n"
        else:
            grade.auto_score = result.score(points, self.partial_credit)
            grade.needs_manual_grade = grade.manual_score is not None
            text = result.message(points, self.partial_credit)
        cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=text)]
        self.gradebook.db.commit()
