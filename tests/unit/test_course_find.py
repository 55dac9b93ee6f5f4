"""``Course.find``: a course named on the command line must be one (no silent fall back)."""
from __future__ import annotations

import pytest

from autograder.course import Course, CourseError


def test_a_mistyped_course_is_an_error_not_another_course(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CourseError, match="is not a course folder"):
        Course.find(tmp_path / "nonexistent")


def test_the_course_given_is_the_one_used(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("")
    assert Course.find(tmp_path).root == tmp_path.resolve()


def test_the_syllabus_checks_the_attempts(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("")
    course = Course(tmp_path)
    for bad, words in [('attempts = 0', "positive whole number"), ('attempts = 2\nattempts_per = "week"', "day"),
                       ('best_of = true', "no attempts"), ('attempts = 2\nbest_of = "yes"', "true or false")]:
        (tmp_path / "syllabus.toml").write_text(f'[[assignment]]\nid = "a"\ntitle = "A"\npoints = 1\n{bad}\n')
        with pytest.raises(CourseError, match=words):
            course.assignments()
    (tmp_path / "syllabus.toml").write_text('[[assignment]]\nid = "a"\ntitle = "A"\npoints = 1\n'
                                            'attempts = 3\nattempts_per = "day"\nbest_of = true\n')
    (a,) = course.assignments()
    assert (a.attempts, a.attempts_per, a.best_of) == (3, "day", True)
