"""Per-student deadlines (``autograder.store.extensions``): the rule, the log, the state file, the
roster's accommodations and nbgrader's gradebook (its ``SubmittedAssignment.extension`` and the late
penalty that depends on it). No kernel: the gradebook is filled through nbgrader's API."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat

import pytest

from autograder import cli
from autograder.course import Course, CourseError
from autograder.intake.roster import accommodations, read_roster
from autograder.store import extensions
from autograder.store import gradebook as nbgrader_api
from tests.support.course import REPO

UTC = dt.timezone.utc
DUE = dt.datetime(2026, 12, 15, 23, 59, tzinfo=UTC)
AID, OTHER = "00_pytorch_basics", "01_perceptron"


@pytest.fixture
def course(tmp_path):
    """A course folder with the repository's config and a syllabus where two assignments have a due date."""
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy(REPO / "course" / "nbgrader_config.py", root)
    text = (REPO / "course" / "syllabus.toml").read_text()
    for aid in (AID, OTHER):
        text = text.replace(f'id = "{aid}"\n', f'id = "{aid}"\ndue = "{DUE.isoformat()}"\n', 1)
    (root / "syllabus.toml").write_text(text)
    c = Course(root)
    assert c.assignment(AID).due == DUE
    return c


def log(course):
    path = extensions.log_path(course)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_days_and_until_give_the_effective_deadline_and_nothing_else_moves(course):
    extensions.grant(course, "alice", AID, days=2, reason="illness")
    extensions.grant(course, "bob", OTHER, until=dt.datetime(2026, 12, 16, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert extensions.effective(course, "alice", AID).effective == DUE + dt.timedelta(days=2)
    assert extensions.effective(course, "bob", OTHER).effective == dt.datetime(2026, 12, 16, 11, 0, tzinfo=UTC)
    assert extensions.effective(course, "alice", OTHER) is None and extensions.effective(course, "carol", AID) is None
    rows = {(d.student, d.assignment): d for d in extensions.deadlines(course)}
    assert set(rows) == {("alice", AID), ("bob", OTHER)}
    assert "illness" in rows[("alice", AID)].reason and "2 day(s)" in rows[("alice", AID)].reason
    assert extensions.extension_seconds(course, [(AID, "alice"), (OTHER, "alice")]) == {(AID, "alice"): 2 * 86400.0}


def test_an_accommodation_moves_every_due_date_and_an_extension_never_shortens_it(course):
    extensions.set_accommodations(course, {"carol": 1.5}, "roster.csv")
    for aid in (AID, OTHER):
        assert extensions.effective(course, "carol", aid).effective == DUE + dt.timedelta(hours=36)
    extensions.grant(course, "carol", AID, days=1)  # shorter than the accommodation: the accommodation wins
    d = extensions.effective(course, "carol", AID)
    assert d.effective == DUE + dt.timedelta(hours=36) and "accommodation" in d.reason and "ends earlier" in d.reason
    extensions.grant(course, "carol", AID, days=3)
    assert extensions.effective(course, "carol", AID).effective == DUE + dt.timedelta(days=3)
    assert extensions.effective(course, "carol", OTHER).effective == DUE + dt.timedelta(hours=36)


def test_every_change_is_appended_to_the_log_with_who_when_old_and_new(course):
    extensions.grant(course, "alice", AID, days=2)
    first = extensions.log_path(course).read_bytes()
    extensions.grant(course, "alice", AID, days=3)
    extensions.clear(course, "alice", AID)
    assert extensions.log_path(course).read_bytes().startswith(first)  # appended, never rewritten
    entries = log(course)
    assert [(e["action"], e["old"], e["new"]) for e in entries] == [
        ("extend", "2026-12-15T23:59:00Z", "2026-12-17T23:59:00Z"),
        ("extend", "2026-12-17T23:59:00Z", "2026-12-18T23:59:00Z"),
        ("clear", "2026-12-18T23:59:00Z", "2026-12-15T23:59:00Z")]
    assert all(e["by"] == extensions.os_user() and e["student"] == "alice" and e["assignment"] == AID for e in entries)
    assert all(dt.datetime.fromisoformat(e["at"]) <= dt.datetime.now(UTC) for e in entries)
    assert extensions.deadlines(course) == []
    for path in (extensions.log_path(course), extensions.state_path(course)):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("call, words", [
    (lambda c: extensions.grant(c, "alice", "99_nope", days=1), "unknown assignment"),
    (lambda c: extensions.grant(c, "alice", "02_backprop", days=1), "no due date"),
    (lambda c: extensions.grant(c, "alice", AID, days=0), "above 0"),
    (lambda c: extensions.grant(c, "alice", AID, days=float("nan")), "above 0"),
    (lambda c: extensions.grant(c, "alice", AID, days=5000), "at most 365"),
    (lambda c: extensions.grant(c, "alice", AID, until=DUE - dt.timedelta(hours=1)), "cannot shorten"),
    (lambda c: extensions.grant(c, "alice", AID), "exactly one"),
    (lambda c: extensions.clear(c, "alice", AID), "no extension"),
    (lambda c: extensions.parse_time("2026-12-17T23:59:00"), "no time zone"),
    (lambda c: extensions.parse_time("next friday"), "not an ISO 8601 time"),
])
def test_a_bad_request_is_one_error_and_writes_nothing(course, call, words):
    with pytest.raises(CourseError, match=words):
        call(course)
    assert not extensions.state_path(course).exists() and not extensions.log_path(course).exists()


@pytest.mark.parametrize("text, words", [
    ("[1, 2", "cannot read"), ("[1, 2]", "not an extensions file"),
    ('{"accommodations": {"ada": {"extra_days": "lots"}}}', "damaged"),
    ('{"accommodations": {"ada": {}}}', "damaged"),
    ('{"extensions": {"ada": {"00_pytorch_basics": {"until": "2026-12-20T10:00:00"}}}}', "damaged"),
    ('{"extensions": {"ada": {"00_pytorch_basics": {"days": -3}}}}', "damaged"),
    ('{"extensions": {"ada": ["00_pytorch_basics"]}}', "damaged")])
def test_a_damaged_state_file_is_one_error_line(course, text, words):
    extensions.state_path(course).write_text(text)
    with pytest.raises(CourseError, match=words):
        extensions.deadlines(course)


def test_the_roster_column_is_read_defensively(tmp_path, course):
    good = tmp_path / "roster.csv"
    good.write_text("student,name,extra_days\nada,Ada,1.5\nbob,Bob,\ncid,Cid,0\ndee,Dee,\"2,5\"\n")
    assert accommodations(read_roster(good)) == {"ada": 1.5, "dee": 2.5}
    for bad in ("lots", "-1", "1e3", "400", "1.5.2"):
        path = tmp_path / "bad.csv"
        path.write_text(f"student,extra_days\nada,{bad}\n")
        with pytest.raises(CourseError, match="extra_days"):
            read_roster(path)
    twice = tmp_path / "twice.csv"
    twice.write_text("student,extra_days\nada,1\nada,\n")
    with pytest.raises(CourseError, match="two different extra_days"):
        accommodations(read_roster(twice))
    plain = tmp_path / "lms.csv"
    plain.write_text("student,name\nada,Ada\n")
    with pytest.raises(CourseError, match="no extra_days column: nothing changed"):
        accommodations(read_roster(plain))
    # recorded, and a student left out of the column afterwards loses the accommodation (logged)
    extensions.set_accommodations(course, accommodations(read_roster(good)), good.name)
    assert {(d.student, d.assignment) for d in extensions.deadlines(course)} == {
        ("ada", AID), ("ada", OTHER), ("dee", AID), ("dee", OTHER)}
    extensions.set_accommodations(course, {"dee": 2.5}, good.name)
    assert {d.student for d in extensions.deadlines(course)} == {"dee"}
    removed = [(e["student"], e["assignment"], e["old"], e["new"]) for e in log(course)[-2:]]
    assert removed == [("ada", aid, "2026-12-17T11:59:00Z", "2026-12-15T23:59:00Z") for aid in (AID, OTHER)]


# -- nbgrader's gradebook --------------------------------------------------------------------------------


def _graded_submission(course, student, late_hours):
    """A graded submission of AID in the course's gradebook: one notebook, one 10-point cell, full marks,
    submitted ``late_hours`` after the due date, with the penalty nbgrader would have given (10 %/day)."""
    nbgrader_api.set_due_dates(course, {AID})
    with nbgrader_api.gradebook(course) as gb:
        gb.update_or_create_notebook(AID, AID)
        gb.update_or_create_grade_cell("ex1", AID, AID, max_score=10, cell_type="code")
        gb.update_or_create_solution_cell("ex1", AID, AID)
        gb.update_or_create_student(student)
        sub = gb.update_or_create_submission(AID, student, timestamp=(DUE + dt.timedelta(hours=late_hours)).replace(tzinfo=None))
        for nb in sub.notebooks:
            for g in nb.grades:
                g.auto_score = 10
            nb.late_submission_penalty = 1.0 if late_hours > 0 else None
        gb.db.commit()


def _in_gradebook(course, student):
    with nbgrader_api.gradebook(course) as gb:
        sub = gb.find_submission(AID, student)
        return sub.extension, sub.total_seconds_late, sub.late_submission_penalty


def test_the_gradebook_gets_the_extension_and_the_late_penalty_is_computed_again(course):
    _graded_submission(course, "alice", late_hours=5)
    _graded_submission(course, "bob", late_hours=5)
    assert _in_gradebook(course, "alice") == (None, 5 * 3600, 1.0)
    extensions.grant(course, "alice", AID, days=1)
    assert extensions.apply_to_gradebook(course, {AID}) == [(AID, "alice")]
    assert _in_gradebook(course, "alice") == (dt.timedelta(days=1), 0, 0.0)   # in time thanks to it
    assert _in_gradebook(course, "bob") == (None, 5 * 3600, 1.0)              # untouched
    # what grading gives a worker agrees; bob's hand-set extension (none) is the gradebook's
    assert nbgrader_api.extensions(course, [(AID, "alice"), (AID, "bob")]) == {(AID, "alice"): 86400.0}
    extensions.clear(course, "alice", AID)
    assert extensions.apply_to_gradebook(course, {AID}, also=[(AID, "alice")]) == [(AID, "alice")]
    assert _in_gradebook(course, "alice") == (None, 5 * 3600, 1.0)
    # set_due_dates (grading, publishing) applies them too
    extensions.set_accommodations(course, {"bob": 0.25}, "roster.csv")
    nbgrader_api.set_due_dates(course, {AID})
    ext, late, penalty = _in_gradebook(course, "bob")
    assert ext == dt.timedelta(hours=6) and late == 0 and penalty == 0.0


def test_a_hand_set_extension_in_the_gradebook_is_kept_for_students_the_file_does_not_decide(course):
    _graded_submission(course, "erin", late_hours=5)
    with nbgrader_api.gradebook(course) as gb:
        gb.grant_extension(AID, "erin", hours=2)
    nbgrader_api.set_due_dates(course, {AID})
    assert nbgrader_api.extensions(course, [(AID, "erin")]) == {(AID, "erin"): 7200.0}
    assert _in_gradebook(course, "erin")[0] == dt.timedelta(hours=2)


def test_the_cli_refuses_bad_input_with_one_line_and_writes_nothing(course, capsys):
    for argv in (["extend", "../x", AID, "--days", "1"], ["extend", "alice", "99_nope", "--days", "1"],
                 ["extend", "alice", AID, "--until", "tomorrow"], ["extend", "alice", AID],
                 ["extend", "alice", AID, "--days", "1", "--clear"], ["extend", "--list", "alice", AID],
                 ["extend", "--roster", "r.csv", "alice"], ["extend", "alice", AID, "--days", "1e9"]):
        assert cli.main(["--course", str(course.root), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("autograder: error: ") and "Traceback" not in err, (argv, err)
    assert not extensions.state_path(course).exists() and not extensions.log_path(course).exists()


def test_the_cli_grants_lists_one_student_and_clears(course, capsys):
    def run(*argv):
        code = cli.main(["--course", str(course.root), "extend", *argv])
        return code, capsys.readouterr().out
    assert run("alice", AID, "--days", "1.5", "--reason", "flu") == (0, run_text(course, "alice"))
    code, out = run("bob", OTHER, "--until", "2026-12-20T12:00:00+01:00")
    assert code == 0 and "bob 01_perceptron: deadline 2026-12-15T23:59:00Z -> 2026-12-20T11:00:00Z" in out
    code, out = run("--list", "alice")
    assert code == 0 and "alice" in out and "2026-12-17T11:59:00Z" in out and "flu" in out and "bob" not in out
    assert run("alice", AID, "--clear")[0] == 0
    code, out = run("--list", "alice")
    assert "the deadlines of alice are the syllabus's" in out


def run_text(course, student):
    return (f"{student} {AID}: deadline 2026-12-15T23:59:00Z -> 2026-12-17T11:59:00Z\n"
            f"log: {extensions.log_path(course)}\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_run_as_root_in_an_instructors_course_the_files_stay_the_instructors(course):
    os.chown(course.root, 65534, 65534)
    extensions.grant(course, "alice", AID, days=1)
    for path in (extensions.state_path(course), extensions.log_path(course)):
        st = os.stat(path)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (65534, 0o600), path
