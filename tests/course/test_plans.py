"""Grading plans: computed in a subprocess, cached as JSON, recomputed when a source changes."""
from __future__ import annotations

import json
import sys

import pytest

from autograder.course import Course, CourseError
from autograder.authoring.plan import SHARED_CACHE_ENV, ensure_plan, load_plan, plan_path

pytestmark = pytest.mark.slow
AID = "00_pytorch_basics"


@pytest.fixture
def course(course_copy, monkeypatch) -> Course:
    monkeypatch.delenv(SHARED_CACHE_ENV, raising=False)  # the course's own plans/ folder
    return Course(course_copy)


def test_a_plan_is_computed_once_then_read_and_recomputed_when_cases_change(course):
    path = ensure_plan(course, AID, 3)
    assert path == course.root / "plans" / AID / "seed-3.json" and path.read_text().startswith('{\n "sources"')
    data = json.loads(path.read_text())
    assert data["seed"] == 3 and any(c["hidden"] for e in data["exercises"].values() for c in e["cases"])
    stamp = path.stat().st_mtime_ns
    assert ensure_plan(course, AID, 3) == path and path.stat().st_mtime_ns == stamp  # cached
    cases = course.cases_file(AID)
    cases.write_text(cases.read_text() + "\n# a changed case file\n")
    ensure_plan(course, AID, 3)
    assert path.stat().st_mtime_ns != stamp, "a changed cases.py must give a new plan"


def test_no_reference_code_runs_in_the_grading_process(course):
    import subprocess

    ensure_plan(course, AID, 4)

    probe = ("import sys; from autograder.course import Course; from autograder.authoring.plan import load_plan; "
             f"load_plan(Course({str(course.root)!r}), {AID!r}, 4); "
             "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "reading a plan must not import torch (forking after it deadlocks)"


def test_inputs_that_do_not_match_the_reference_are_refused(course):
    cases = course.cases_file(AID)
    text = cases.read_text()
    import re

    first = re.search(r'lambda rng: \{"(\w+)"', text)
    assert first, "cases.py of 00 draws inputs with a lambda"
    cases.write_text(text.replace(f'lambda rng: {{"{first.group(1)}"', 'lambda rng: {"misspelt"', 1))
    with pytest.raises(CourseError, match="use the parameters' names"):
        ensure_plan(course, AID, None)
    assert not plan_path(course, AID, None).exists()
