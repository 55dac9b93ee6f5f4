"""Extensions and accommodations through the real CLI (``autograder extend``), with real grading.

One small batch of 00_pytorch_basics (9 points) is graded once for the module: three copies of the
reference solution, each submitted 30 hours after the due date (nbgrader's ``timestamp.txt``, as the
exchange writes it). At 10 % per started day that costs two days, 1.8 points, unless the student's
deadline was moved: alice has nothing (penalised), bob an extension of two days (``--days 2``), carol
the roster's standing accommodation of 1.5 days (``extra_days``). After grading, an extension given
to alice changes her exported grade at once (the gradebook's extension and late penalty are updated),
and clearing it brings the penalty back; the log keeps every change.
"""
from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from tests.support import submissions as subs
from tests.support.course import copy_course, run_cli

AID = "00_pytorch_basics"
DUE = dt.datetime(2026, 11, 2, 23, 59, tzinfo=dt.timezone.utc)
SUBMITTED = DUE + dt.timedelta(hours=30)

pytestmark = pytest.mark.slow


def _moodle_grades(course) -> dict[str, str]:
    with open(course / "exports" / "moodle" / f"{AID}.csv", newline="") as f:
        return {r["Full name"]: r["Grade"] for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("extensions")
    course = copy_course(tmp)
    syllabus = course / "syllabus.toml"
    syllabus.write_text(syllabus.read_text().replace(f'id = "{AID}"\n', f'id = "{AID}"\ndue = "{DUE.isoformat()}"\n', 1))
    roster = tmp / "roster.csv"
    roster.write_text("student,name,moodle_participant_id,extra_days\n"
                      "alice,Alice A,101,\nbob,Bob B,102,\ncarol,Carol C,103,1.5\ndave,Dave D,104,0.5\n")
    folder = tmp / "submissions"
    for student in ("alice", "bob", "carol"):
        subs.write(folder, student, AID, subs.solved(AID))
        (folder / student / AID / "timestamp.txt").write_text(SUBMITTED.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
    out = {"course": course, "roster": roster, "cli": {}}

    def cli(name, *args):
        out["cli"][name] = run_cli(*args, course=course)
        return out["cli"][name]

    # refused requests first: nothing may be written by them
    cli("bad_student", "extend", "bob/../x", AID, "--days", "2")
    cli("bad_assignment", "extend", "bob", "99_nothing", "--days", "2")
    cli("bad_time", "extend", "bob", AID, "--until", "2026-11-04 23:59")
    cli("bad_days", "extend", "bob", AID, "--days", "-1")
    out["after_bad"] = sorted(p.name for p in course.iterdir() if p.name.startswith("extensions"))
    cli("extend_bob", "extend", "bob", AID, "--days", "2", "--reason", "doctor's note")
    cli("roster", "extend", "--roster", str(roster))
    cli("list", "extend", "--list")
    graded = cli("grade", "grade", str(folder), "--workers", "2")
    assert graded.returncode == 0, (graded.stdout[-2000:], graded.stderr[-3000:])
    out["graded"] = subs.read_grades(course / "exports" / "grades.csv")
    cli("report", "report", AID, "--no-similarity", "--to", str(tmp / "report.html"), "--json", str(tmp / "report.json"))
    out["report"] = json.loads((tmp / "report.json").read_text())
    cli("export_before", "export", "--format", "moodle", "--roster", str(roster))
    out["moodle_before"] = _moodle_grades(course)
    cli("extend_alice", "extend", "alice", AID, "--until", (DUE + dt.timedelta(days=2)).isoformat())
    cli("export_extended", "export", "--format", "moodle", "--roster", str(roster))
    out["moodle_extended"] = _moodle_grades(course)
    cli("csv_extended", "export")
    out["csv_extended"] = subs.read_grades(course / "exports" / "grades.csv")
    cli("clear_alice", "extend", "alice", AID, "--clear")
    cli("export_cleared", "export", "--format", "moodle", "--roster", str(roster))
    out["moodle_cleared"] = _moodle_grades(course)
    out["log"] = [json.loads(line) for line in (course / "extensions.log").read_text().splitlines()]
    out["state"] = json.loads((course / "extensions.json").read_text())
    return out


def test_every_command_ran(run):
    for name, r in run["cli"].items():
        if not name.startswith("bad_"):
            assert r.returncode == 0, (name, r.stdout[-2000:], r.stderr[-3000:])


@pytest.mark.parametrize("name, words", [("bad_student", "not a valid student id"),
                                         ("bad_assignment", "unknown assignment"),
                                         ("bad_time", "no time zone"), ("bad_days", "above 0")])
def test_a_bad_student_assignment_or_time_is_one_line_and_writes_nothing(run, name, words):
    r = run["cli"][name]
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("autograder: error: ") and words in r.stderr, r.stderr
    assert run["after_bad"] == []


def test_a_late_submission_without_extension_is_penalised(run):
    row = run["graded"][("alice", AID)]
    assert (row["score"], row["status"]) == ("7.2", "graded") and "late: 1.8 point(s) off" in row["reason"], row


@pytest.mark.parametrize("student", ["bob", "carol"])
def test_an_extension_or_an_accommodation_makes_the_same_submission_in_time(run, student):
    row = run["graded"][(student, AID)]
    assert (row["score"], row["status"]) == ("9", "graded") and "late" not in row["reason"], row


def test_the_gradebook_agrees_so_the_report_lists_only_the_late_one(run):
    """nbgrader's duedate of each submission includes its extension (the report reads its lateness)."""
    late = {e["student"]: e["seconds_late"] for e in run["report"]["assignments"][0]["late"]}
    assert late == {"alice": 30 * 3600}, late


def test_list_shows_each_moved_deadline_with_its_reason(run):
    text = run["cli"]["list"].stdout
    lines = {tuple(line.split()[:2]): line for line in text.splitlines()[1:]}
    assert set(lines) == {("bob", AID), ("carol", AID), ("dave", AID)}, text
    assert "2026-11-04T23:59:00Z" in lines[("bob", AID)] and "doctor's note" in lines[("bob", AID)]
    assert "2026-11-04T11:59:00Z" in lines[("carol", AID)] and "accommodation: 1.5 extra day(s)" in lines[("carol", AID)]
    assert "2026-11-03T11:59:00Z" in lines[("dave", AID)]
    assert "alice" not in text


def test_the_lms_export_has_the_extension_applied_grade_at_once(run):
    assert run["moodle_before"] == {"Alice A": "7.20", "Bob B": "9.00", "Carol C": "9.00"}
    said = run["cli"]["extend_alice"].stdout
    assert "gradebook: the extension (and late penalty) of 1 submission(s) updated" in said, said
    assert run["moodle_extended"]["Alice A"] == "9.00"
    assert run["csv_extended"][("alice", AID)]["score"] == "9"
    assert run["moodle_cleared"]["Alice A"] == "7.20"


def test_the_log_keeps_every_change_and_the_state_only_the_current_one(run):
    changes = [(e["action"], e["student"], e["old"], e["new"]) for e in run["log"]]
    assert changes == [
        ("extend", "bob", "2026-11-02T23:59:00Z", "2026-11-04T23:59:00Z"),
        ("accommodation", "carol", "2026-11-02T23:59:00Z", "2026-11-04T11:59:00Z"),
        ("accommodation", "dave", "2026-11-02T23:59:00Z", "2026-11-03T11:59:00Z"),
        ("extend", "alice", "2026-11-02T23:59:00Z", "2026-11-04T23:59:00Z"),
        ("clear", "alice", "2026-11-04T23:59:00Z", "2026-11-02T23:59:00Z")]
    assert all(e["by"] and e["at"] for e in run["log"])
    assert set(run["state"]["extensions"]) == {"bob"} and set(run["state"]["accommodations"]) == {"carol", "dave"}
