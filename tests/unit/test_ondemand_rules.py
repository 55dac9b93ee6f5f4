"""Grading on submit, the rules without grading (``autograder.ondemand.attempts``): which submission
is graded, how attempts count (in total, per UTC day, after a reset), which attempt is the grade."""
from __future__ import annotations

import datetime as dt

import pytest

from autograder.course import Assignment, Course
from autograder.ondemand import attempts as rec

UTC = dt.timezone.utc
DUE = dt.datetime(2026, 12, 15, 23, 59, tzinfo=UTC)


@pytest.fixture
def course(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("")
    (tmp_path / "syllabus.toml").write_text(
        '[[assignment]]\nid = "a1"\ntitle = "A"\npoints = 10\ndue = "2026-12-15T23:59:00Z"\nattempts = 2\n'
        '[[assignment]]\nid = "a2"\ntitle = "B"\npoints = 10\nattempts = 2\nattempts_per = "day"\nbest_of = true\n'
        '[[assignment]]\nid = "a3"\ntitle = "C"\npoints = 10\n')
    return Course(tmp_path)


def _attempt(n, graded, score, counted=True):
    return {"n": n, "graded": graded, "score": score, "counted": counted, "sha256": str(n)}


def test_the_rules_in_order(course):
    a1, a2, a3 = course.assignments()
    state = rec.load(course)
    before = DUE - dt.timedelta(hours=1)
    assert rec.verdict(course, a3, state, "s", before, before).startswith("not graded on submit")
    assert rec.verdict(course, a1, state, "s", before, before) is None
    assert rec.verdict(course, a1, state, "s", DUE + dt.timedelta(seconds=1), before).startswith("submitted after")
    state["attempts"] = {"s": {"a1": [_attempt(1, "2026-12-14T10:00:00Z", 5),
                                      _attempt(2, "2026-12-14T11:00:00Z", 0, counted=False),
                                      _attempt(3, "2026-12-14T12:00:00Z", 7)]}}
    assert rec.used(state, a1, "s", before) == 2, "an attempt the host could not grade does not count"
    assert rec.verdict(course, a1, state, "s", before, before) == "no attempts left: 2 of 2 used"
    state["resets"] = {"s": {"a1": "2026-12-14T11:30:00Z"}}
    assert rec.used(state, a1, "s", before) == 1, "only those graded since the reset count"
    state["open"] = {"a1": False}
    assert "closed" in rec.verdict(course, a1, state, "s", before, before)


def test_per_day_counts_only_today_utc(course):
    _a1, a2, _a3 = course.assignments()
    state = rec.load(course)
    state["attempts"] = {"s": {"a2": [_attempt(1, "2026-12-13T23:50:00Z", 3), _attempt(2, "2026-12-14T00:10:00Z", 4),
                                      _attempt(3, "2026-12-14T09:00:00Z", 2)]}}
    at = dt.datetime(2026, 12, 14, 12, tzinfo=UTC)
    assert rec.used(state, a2, "s", at) == 2
    assert rec.verdict(course, a2, state, "s", at, at) == "no attempts left: 2 of 2 used today (UTC)"
    assert rec.verdict(course, a2, state, "s", at, at + dt.timedelta(days=1)) is None


def test_the_grade_is_the_last_or_the_best(course):
    history = [_attempt(1, "t", 6), _attempt(2, "t", 9), _attempt(3, "t", 9), _attempt(4, "t", 4),
               _attempt(5, "t", 0, counted=False)]
    assert rec.official(history, best_of=False)["n"] == 4, "the last graded (5 was not graded)"
    assert rec.official(history, best_of=True)["n"] == 2, "the best, the earliest of equal scores"
    assert rec.official([], best_of=True) is None


def test_the_instructors_switches_are_logged(course):
    rec.set_open(course, "a1", False, "teacher")
    assert rec.load(course)["open"] == {"a1": False}
    rec.set_open(course, "a1", True, "teacher")
    assert rec.load(course)["open"] == {}
    assert rec.reset(course, "s", "a1", "teacher") == 0
    lines = (rec.folder(course) / "log.jsonl").read_text().splitlines()
    assert [__import__("json").loads(l)["action"] for l in lines] == ["close", "open", "reset"]
    with pytest.raises(Exception, match="no attempts in the syllabus"):
        rec.set_open(course, "a3", False, "teacher")
    assert oct((rec.folder(course) / "state.json").stat().st_mode & 0o777) == "0o600"
