"""Scores computed outside the student's process.

``TrustedScores`` replaces nbgrader's ``SaveAutoGrades``: instead of believing a
test cell because it printed no error, it reads the plain numeric outputs the
sandbox wrote and judges them against the reference's outputs on the same inputs
with the contract's ``judge`` (``helpers.grading.contract``, as the student's ``check``
does), writes the points into nbgrader's
gradebook through nbgrader's API, and replaces the test cell's output with the
trusted verdict (which feedback then shows). Hidden inputs and expected values
never appear in a message.
"""
from __future__ import annotations

from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import SaveAutoGrades
from traitlets import Bool, Enum

from autograder.store import outcomes
from autograder.store.outcomes import clean_text
from autograder.authoring.plan import GradedItem, graded_items
from autograder.config import SandboxPolicy
from autograder.config import GradingSettings, course_from_config
from helpers.grading.contract import MAX_RESULTS_BYTES, SHORTCUT_POLICIES, ExerciseReport, cascade_message


def score_exercise(plan: GradedItem, raw: str | None, shortcut_policy: str = "warn",
                   max_bytes: int = MAX_RESULTS_BYTES, run_cpu_seconds: float | None = None) -> ExerciseReport:
    """The trusted verdict on one graded item from the raw text the sandbox wrote (None: nothing):
    ``GradedItem.score`` (an exercise's cases judged by the contract's ``judge``, a challenge's
    metric on the held-out targets). Total: nothing here raises because of ``raw``."""
    return plan.score(raw, shortcut_policy=shortcut_policy, max_bytes=max_bytes, run_cpu_seconds=run_cpu_seconds)


#: The trusted verdict on one exercise is the contract's report (one class on both sides).
ExerciseResult = ExerciseReport


def name_cascades(results: dict[str, ExerciseReport], plans: dict[str, GradedItem]) -> None:
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
        record = resources.setdefault("autograder", {"events": []})
        if "plan" in record:  # what the execute step staged: the same plan, the same seed
            seed, self._plan = record["seed"], record["plan"]
        else:
            seed = GradingSettings(config=config).resolved_seed(course)
            self._plan = graded_items(course, info["assignment"], seed)
        max_bytes = SandboxPolicy(config=config).results_bytes
        outputs = record.get("outputs", {})
        env_error = setup_error(nb)
        if env_error:  # the grading host, not the student, failed: no score stands
            self._results = {name: p.unscored(env_error) for name, p in self._plan.items()}
        else:
            cpu = record.get("cpu_seconds")  # the run's CPU time, measured from outside the sandbox
            self._results = {name: score_exercise(p, outputs.get(name), self.shortcut_policy, max_bytes, cpu)
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
