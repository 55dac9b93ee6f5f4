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
from dataclasses import dataclass, field

from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import SaveAutoGrades

from autograder import outcomes
from autograder.plan import ExercisePlan, grading_plan
from autograder.settings import GradingSettings, course_from_config
from helpers.checking import EncodingError, compare, decode


@dataclass
class ExerciseResult:
    """The trusted verdict on one exercise."""

    name: str
    passed: int = 0
    total: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total

    def message(self, points: float) -> str:
        got = points if self.ok else 0
        head = f"{'✔' if self.ok else '✘'} {self.name}: {self.passed} of {self.total} checks passed " \
               f"({_fmt(got)} / {_fmt(points)} points)"
        return "\n".join([head] + [f"  - {p}" for p in self.problems[:4]]) + "\n"


def _fmt(x: float) -> str:
    return f"{x:g}"


def score_exercise(plan: ExercisePlan, raw: str | None) -> ExerciseResult:
    """Judge the raw text the sandbox wrote for one exercise (None: nothing written)."""
    result = ExerciseResult(plan.exercise.name, total=len(plan.cases))
    if raw is None:
        result.problems.append("no outputs were recorded: the check cell did not run "
                               "(an error before it, a time limit, or the kernel died?)")
        return result
    try:
        data = json.loads(raw)
        results = data["results"]
        if not isinstance(results, list) or data.get("exercise") != plan.exercise.name:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        result.problems.append("the recorded outputs were unreadable")
        return result
    not_implemented = 0
    for i, case in enumerate(plan.cases):
        label = f"{'hidden' if case.hidden else 'visible'} case {i + 1}"
        entry = results[i] if i < len(results) else None
        if not isinstance(entry, dict):
            result.problems.append(f"{label}: not run")
            continue
        if "error" in entry:
            err = str(entry["error"])[:200]
            if err == "not implemented":
                not_implemented += 1
            else:
                result.problems.append(f"{label}: your function raised {err}")
            continue
        try:
            got = decode(entry.get("output"))
        except EncodingError as e:
            result.problems.append(f"{label}: the output is not plain numbers ({e})")
            continue
        verdict = compare(got, case.expected, plan.exercise.rtol, plan.exercise.atol, case.mistakes)
        if verdict.ok:
            result.passed += 1
        else:
            result.problems.append(f"{label}: {verdict.message}")
    if not_implemented:
        result.problems.insert(0, "not implemented yet")
    return result


class TrustedScores(SaveAutoGrades):
    """nbgrader's SaveAutoGrades, with the score of each test cell computed by us."""

    def preprocess(self, nb: NotebookNode, resources: dict):
        config = self.config
        course = course_from_config(config)
        info = resources["nbgrader"]
        seed = GradingSettings(config=config).resolved_seed(course)
        self._plan = grading_plan(course.root, info["assignment"], seed)
        record = resources.setdefault("autograder", {"events": []})
        outputs = record.get("outputs", {})
        self._results = {name: score_exercise(p, outputs.get(name)) for name, p in self._plan.items()}
        self._points: dict[str, float] = {}
        self._events = record["events"]
        nb, resources = super().preprocess(nb, resources)
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
            grade.auto_score = points if result.ok else 0.0
            grade.needs_manual_grade = grade.manual_score is not None
            text = result.message(points)
        cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=text)]
        self.gradebook.db.commit()
