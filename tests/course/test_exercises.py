"""Every graded exercise of every assignment, judged against its reference.

- the reference passes every case (visible and hidden);
- every known-wrong version in cases.py fails at least one case, so it loses the
  exercise's points, and is named in at least one failure message;
- checks.json and the notebook's test cells agree with cases.py.
"""
from __future__ import annotations

import re

import nbformat
import pytest

from autograder.course import Course
from autograder.authoring.plan import grading_plan
from autograder.authoring.reference import load_exercises
from autograder.pipeline.scoring import score_exercise
from tests.support.course import mistake_params, REPO, syllabus_ids
from helpers.grading.checking import resolve_callables, run_case
import json

COURSE = Course(REPO / "course")
SEED = 12345


def _exercise_params():
    params = []
    for aid in syllabus_ids():
        for name in load_exercises(COURSE.cases_file(aid)):
            params.append(pytest.param(aid, name, id=f"{aid}:{name}"))
    return params


def _harvest_like(plan, fn):
    """What the sandbox would write for ``fn`` (outputs on every planned case)."""
    watch = resolve_callables(plan.exercise.forbidden)
    results = [run_case(fn, case.inputs, plan.exercise.framework, watch) for case in plan.cases]
    return json.dumps({"exercise": plan.exercise.name, "results": results})


@pytest.mark.parametrize("aid, name", _exercise_params())
def test_reference_passes_every_case(aid, name):
    from autograder.authoring.reference import load_reference

    plan = grading_plan(COURSE.root, aid, SEED)[name]
    ref = load_reference(COURSE.source_notebook(aid))[name]
    result = score_exercise(plan, _harvest_like(plan, ref))
    assert result.ok, result.problems
    assert sum(c.hidden for c in plan.cases) >= 3, "each exercise needs hidden cases"


@pytest.mark.parametrize("aid, name, message", mistake_params())
def test_each_known_mistake_loses_the_points_and_is_named(aid, name, message):
    plan = grading_plan(COURSE.root, aid, SEED)[name]
    wrong = load_exercises(COURSE.cases_file(aid))[name].mistakes[message]  # plans hold outputs, not code
    result = score_exercise(plan, _harvest_like(plan, wrong))
    assert not result.ok, f"the mistake {message!r} passes every case: the cases cannot tell it apart"
    assert any(message in p for p in result.problems), (message, result.problems[:3])


@pytest.mark.parametrize("aid", syllabus_ids())
def test_test_cells_match_cases_and_points_match_syllabus(aid):
    nb = nbformat.read(COURSE.source_notebook(aid), as_version=4)
    exercises = load_exercises(COURSE.cases_file(aid))
    from autograder.authoring.challenges import load_challenges  # issue 19: challenges are graded cells too

    exercises = {**exercises, **load_challenges(COURSE.cases_file(aid))}
    graded = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            m = re.search(r'(?:check|challenge)\(\s*"([^"]+)"', cell.source)
            assert m, f"graded cell {meta['grade_id']} does not call check(...) or challenge(...)"
            assert m.group(1) == meta["grade_id"], "a test cell's grade_id must equal its exercise name"
            graded[meta["grade_id"]] = meta["points"]
        assert not cell.get("outputs"), "source notebooks are committed without outputs"
    assert set(graded) == set(exercises), "every exercise has exactly one graded test cell"
    assert sum(graded.values()) == COURSE.assignment(aid).points, "syllabus points != sum of cell points"


@pytest.mark.parametrize("aid", syllabus_ids())
def test_checks_json_holds_no_code(aid):
    text = (COURSE.source_dir / aid / "checks.json").read_text()
    assert "def " not in text and "lambda" not in text and "import" not in text
