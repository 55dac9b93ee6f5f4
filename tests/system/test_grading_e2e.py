"""The whole path through the real CLI: submissions -> autograde (sandboxed) -> feedback -> CSV.

One batch is graded once for the module (that is the slow part); each test then
reads its results: the reference gets full marks, the untouched release 0, one
wrong exercise loses exactly its points, and bad submissions get a clear outcome.
"""
from __future__ import annotations

import html
import json
import re
import zipfile

import nbformat
import pytest

from tests.support import submissions as subs
from tests.support.course import REPO, copy_course, run_cli, syllabus_ids

AID = "01_perceptron"
WRONG_SOFTMAX = subs.WRONG_SOFTMAX

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    course = copy_course(tmp)
    folder = tmp / "submissions"
    solved = subs.solved(AID)
    subs.write(folder, "alice", AID, solved)
    subs.write(folder, "bob", AID, subs.release_notebook(AID))
    subs.write(folder, "carol", AID, subs.replace_exercise(solved, "softmax", WRONG_SOFTMAX))
    (folder / "dave" / AID).mkdir(parents=True)
    subs.write(folder, "erin", AID, solved, name="perceptron_final.ipynb")
    subs.write(folder, "frank", AID, "this is { not json")
    subs.write(folder, "gina", AID, "")
    subs.write(folder, "hugo", AID, json.dumps({"cells": "nope"}))
    loud = subs.insert_code(solved, "import sys, warnings\nwarnings.warn('harmless', UserWarning)\n"
                                    "print('debug output', file=sys.stderr)", after="sigmoid_impl")
    subs.write(folder, "ivan", AID, loud)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    result = run_cli("grade", str(folder), "--workers", "2", course=course)
    grades = subs.read_grades(course / "exports" / "grades.csv")
    return {"course": course, "folder": folder, "result": result, "grades": grades, "before": before}


def test_cli_succeeds_and_prints_a_table(batch):
    r = batch["result"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "alice" in r.stdout and "12/12" in r.stdout and "Traceback" not in r.stdout


def test_reference_solution_gets_full_marks(batch):
    row = batch["grades"][("alice", AID)]
    assert (row["score"], row["max_score"], row["status"]) == ("12", "12", "graded")


def test_untouched_release_gets_zero_and_is_graded(batch):
    row = batch["grades"][("bob", AID)]
    assert (row["score"], row["status"]) == ("0", "graded")


def test_one_wrong_exercise_loses_exactly_its_points(batch):
    assert batch["grades"][("carol", AID)]["score"] == "10"  # softmax is worth 2


@pytest.mark.parametrize("student, words", [
    ("dave", "notebook missing"), ("frank", "not JSON"), ("gina", "empty"),
    ("hugo", "not a Jupyter notebook")])
def test_bad_submissions_get_zero_and_a_reason(batch, student, words):
    row = batch["grades"][(student, AID)]
    assert row["score"] == "0" and row["status"] == "not graded" and words in row["reason"]


def test_wrong_file_name_is_graded_and_reported(batch):
    row = batch["grades"][("erin", AID)]
    assert row["score"] == "12" and "wrong file name" in row["reason"]


def test_warnings_and_stderr_do_not_cost_points(batch):
    assert batch["grades"][("ivan", AID)]["score"] == "12"


def test_submissions_are_never_modified(batch):
    now = {p: p.read_bytes() for p in batch["folder"].rglob("*") if p.is_file()}
    assert now == batch["before"]


def _text(page: str) -> str:
    """What a reader of the HTML sees (tags removed, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _solution_lines(aid: str) -> set[str]:
    src = nbformat.read(REPO / "source_notebooks" / aid / f"{aid}.ipynb", as_version=4)
    lines, inside = set(), False
    for cell in src.cells:
        for line in cell.source.splitlines():
            if "### BEGIN SOLUTION" in line or "### END SOLUTION" in line:
                inside = "BEGIN" in line
            elif inside and len(line.strip()) > 20:
                lines.add(line.strip())
    return lines


def test_feedback_shows_the_diagnosis_but_no_solution(batch):
    feedback = batch["course"] / "feedback"
    carol = _text((feedback / "carol" / AID / f"{AID}.html").read_text())
    assert "softmax over the wrong axis" in carol and "0 / 2 points" in carol
    bob = _text((feedback / "bob" / AID / f"{AID}.html").read_text())
    assert "raise NotImplementedError" in bob  # the student's own code is shown (the search works)
    leaked = [line for line in _solution_lines(AID) if line in bob]
    assert not leaked, f"reference code in feedback: {leaked[:2]}"
    assert "HIDDEN TESTS" not in bob


def test_regrading_is_idempotent_and_skips_done_work(batch):
    r = run_cli("grade", str(batch["folder"]), "--workers", "2", course=batch["course"])
    assert r.returncode == 0, r.stderr[-2000:]
    again = subs.read_grades(batch["course"] / "exports" / "grades.csv")
    assert again == batch["grades"]


def test_lms_zip_is_accepted(batch, tmp_path):
    course = copy_course(tmp_path)
    zpath = tmp_path / "export.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in (batch["folder"] / "alice").rglob("*.ipynb"):
            zf.write(p, f"submissions/{p.relative_to(batch['folder'])}")
        for p in (batch["folder"] / "carol").rglob("*.ipynb"):
            zf.write(p, f"submissions/{p.relative_to(batch['folder'])}")
    r = run_cli("grade", str(zpath), "--workers", "1", course=course)
    assert r.returncode == 0, r.stderr[-2000:]
    grades = subs.read_grades(course / "exports" / "grades.csv")
    assert grades[("alice", AID)]["score"] == "12" and grades[("carol", AID)]["score"] == "10"


def test_user_errors_are_one_line(tmp_path, course_copy):
    r = run_cli("grade", str(tmp_path / "nowhere"), course=course_copy)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr
    r = run_cli("release", "99_nothing", course=course_copy)
    assert r.returncode == 2 and "unknown assignment" in r.stderr


@pytest.mark.parametrize("aid", syllabus_ids())
def test_every_assignment_solution_full_release_zero(aid, tmp_path):
    """Every notebook of the syllabus through the CLI: the reference solution full marks, the release 0.

    The solution is graded once, as the batch's canary (the same collection-free path through the
    sandbox and the trusted scorer as any submission): a canary below full marks stops the run with
    exit status 2 and names the exercise. So the solution does not run a second time as a student."""
    course = copy_course(tmp_path)
    folder = tmp_path / "subs"
    subs.write(folder, "starter", aid, subs.release_notebook(aid))
    r = run_cli("grade", str(folder), "--workers", "1", course=course)
    assert r.returncode == 0, r.stderr[-2000:]  # the canary (the solution) scored full marks
    assert "cannot grade" not in r.stderr
    grades = subs.read_grades(course / "exports" / "grades.csv")
    assert grades[("starter", aid)]["score"] == "0" and grades[("starter", aid)]["status"] == "graded"
