"""Real LMS exports in, LMS grade files out.

The fixtures follow each LMS's own naming (see autograder/lms/intake.py):
Moodle's "Download all submissions" zip, one folder per participant
``<Full Name>_<participant id>_assignsubmission_file_/`` (and ``..._onlinetext_/``), and
Canvas's "Download Submissions" zip, flat ``<lastfirst>_[late_]<user id>_<submission id>_<name>``
with numbered re-uploads. Each holds the odd cases: a resubmission, several files, a file
that is not a notebook, a student missing from the roster, two LMS users mapped to one id, an
unreadable entry, a misnamed notebook. The fast tests check the mapping; the slow ones grade
both zips through the real CLI and read the Canvas and Moodle CSVs back.
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from tests.support import submissions as subs
from autograder.lms import intake as lms
from autograder.course import Course, CourseError
from autograder.intake.roster import read_roster
from tests.support.course import copy_course, run_cli

AID = "01_perceptron"
WRONG_SOFTMAX = subs.WRONG_SOFTMAX

ROSTER = """student,name,email,canvas_user_id,sis_user_id,sis_login_id,section
ada,Ada Lovelace,ada@uni.example,2001,S001,alovelace,Section A
bob,Bob Marley,bob@uni.example,2002,S002,bmarley,Section A
carol,Carol Shaw,carol@uni.example,2003,S003,cshaw,Section B
eve,Eve Twin,eve@uni.example,2005,S005,etwin,Section B
eve,Eva Twin,eva@uni.example,2006,S006,evtwin,Section B
fay,Fay Text,fay@uni.example,2007,S007,ftext,Section B
gus,Gus Multi,gus@uni.example,2008,S008,gmulti,Section A
zoe,Zoe O'Neil,zoe@uni.example,2009,S009,zoneil,Section A
"""


def _nb(kind: str) -> bytes:
    nb = {"solved": subs.solved(AID), "release": subs.release_notebook(AID),
          "wrong": subs.replace_exercise(subs.solved(AID), "softmax", WRONG_SOFTMAX)}[kind]
    return json.dumps(nb, indent=1).encode()


CORRUPT = b'{"cells": [], "this entry": "has its bytes changed after zipping"}'


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    """Write ``entries``; an entry whose data is ``CORRUPT`` is stored and then damaged (bad CRC)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 30, 12, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if data == CORRUPT else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    raw = path.read_bytes()
    if CORRUPT in raw:
        path.write_bytes(raw.replace(CORRUPT, CORRUPT.replace(b"changed", b"CHANGED")))
    return path


def moodle_zip(folder: Path) -> Path:
    """A Moodle "Download all submissions" zip (submissions in folders, the default)."""
    f = "_assignsubmission_file_"
    return _zip(folder / "DL2026-Perceptron-4711.zip", {
        f"Ada Lovelace_1001{f}/{AID}.ipynb": _nb("solved"),
        f"Bob Marley_1002{f}/perceptron (1).ipynb": _nb("release"),            # misnamed, graded
        f"Carol Shaw_1003{f}/{AID}.ipynb": _nb("wrong"),
        f"Carol Shaw_1003{f}/notes.pdf": b"%PDF-1.4 not a notebook",           # refused, noted
        f"Dan Unknown_1004{f}/{AID}.ipynb": _nb("solved"),                     # not in the roster
        f"Eve Twin_1005{f}/{AID}.ipynb": _nb("solved"),                        # two people, one id
        f"Eva Twin_1006{f}/{AID}.ipynb": _nb("release"),
        "Fay Text_1007_assignsubmission_onlinetext_/onlinetext.html": b"<p>my answer</p>",
        f"Gus Multi_1008{f}/{AID}.ipynb": _nb("solved"),                       # several notebooks
        f"Gus Multi_1008{f}/draft.ipynb": _nb("release"),
        f"Zoë O'Neil_1009{f}/{AID}.ipynb": _nb("solved"),                      # name matched loosely
        f"Zoë O'Neil_1009{f}/extra.ipynb": CORRUPT,                           # an unreadable entry
    })


def canvas_zip(folder: Path) -> Path:
    """A Canvas "Download Submissions" zip (flat, numbered re-uploads, a late flag)."""
    return _zip(folder / "submissions.zip", {
        f"lovelaceada_2001_9001_{AID}.ipynb": _nb("solved"),
        f"marleybob_2002_9002_{AID}.ipynb": _nb("wrong"),                      # re-uploaded twice:
        f"marleybob_2002_9002_{AID}-1.ipynb": _nb("release"),
        f"marleybob_2002_9002_{AID}-2.ipynb": _nb("solved"),                   # the latest wins
        f"shawcarol_late_2003_9003_{AID}.ipynb": _nb("wrong"),                 # marked late
        f"unknownd_2004_9004_{AID}.ipynb": _nb("solved"),                      # not in the roster
        f"twineve_2005_9005_{AID}.ipynb": _nb("solved"),                       # two people, one id
        f"twineva_2006_9006_{AID}.ipynb": _nb("solved"),
        "textfay_2007_9007_essay.txt": b"I wrote it in a text file",          # no notebook at all
    })


@pytest.fixture
def roster_file(tmp_path: Path) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER)
    return path


# --------------------------------------------------------------------------- #
# The roster
# --------------------------------------------------------------------------- #


def test_roster_reads_aliases_bom_and_semicolons(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("\ufeffStudent_ID;Full name;Email address;Canvas_ID\ns1;Ada Lovelace;a@x.org;17\n".encode())
    roster = read_roster(path)
    person, why = roster.match("canvas_user_id", "17")
    assert person.student == "s1" and person.email == "a@x.org" and why is None
    assert roster.match("name", "lovelaceada")[0].student == "s1"  # Canvas's lastfirst
    assert roster.match("name", "ADA  LOVELACE")[0].student == "s1"


@pytest.mark.parametrize("text, words", [
    ("name,email\nAda,a@x\n", "no student column"),
    ("student,name\n../etc,Ada\n", "not a valid student id"),
    ("student,canvas_user_id\na,1\nb,1\n", "same canvas_user_id"),
    ("student,name\n", "lists nobody"),
])
def test_roster_mistakes_are_one_line(tmp_path, text, words):
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(CourseError, match=words) as e:
        read_roster(path)
    assert "\n" not in str(e.value)


def test_an_ambiguous_name_never_matches(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("student,name\na,Sam Lee\nb,Sam Lee\n")
    person, why = read_roster(path).match("name", "Sam Lee")
    assert person is None and "2 people" in why


# --------------------------------------------------------------------------- #
# Mapping an export to the course's layout (no grading)
# --------------------------------------------------------------------------- #


def _refusal(batch, words: str) -> list:
    return [r for r in batch.refusals if words in r.name]


def test_moodle_export_is_mapped_with_every_odd_case_said(course_copy, roster_file, tmp_path):
    course = Course(course_copy)
    batch = lms.prepare(course, moodle_zip(tmp_path), read_roster(roster_file), None, None, tmp_path / "w")
    assert batch.lms == "moodle" and batch.assignment == AID  # both told from the zip
    assert sorted(p.name for p in batch.folder.iterdir()) == ["ada", "bob", "carol", "fay", "gus", "zoe"]
    assert (batch.folder / "ada" / AID / f"{AID}.ipynb").read_bytes() == _nb("solved")
    assert [p.name for p in (batch.folder / "bob" / AID).iterdir()] == ["perceptron (1).ipynb"]
    assert not (batch.folder / "carol" / AID / "notes.pdf").exists()  # only notebooks are copied
    assert "not a notebook (.pdf)" in _refusal(batch, "notes.pdf")[0].reason
    assert "not in the roster" in _refusal(batch, "Dan Unknown_1004")[0].reason
    twins = _refusal(batch, "Twin_100")
    assert len(twins) == 2 and all("2 LMS users" in r.reason and "eve" in r.reason for r in twins)
    assert any("online-text" in n for n in batch.notes[("fay", AID)])
    assert "draft.ipynb not graded" in " ".join(batch.notes[("gus", AID)])
    assert "could not be read" in _refusal(batch, "extra.ipynb")[0].reason
    assert "could not be read, so none of it is graded" in " ".join(batch.notes[("zoe", AID)])
    assert list((batch.folder / "zoe" / AID).iterdir()) == []  # a damaged submission is not graded
    assert batch.identities["ada"]["user_id"] == "1001" and batch.identities["zoe"]["name"] == "Zoë O'Neil"
    assert all(r.assignment == AID for r in batch.refusals)


def test_canvas_export_keeps_the_latest_upload_and_says_so(course_copy, roster_file, tmp_path):
    course = Course(course_copy)
    batch = lms.prepare(course, canvas_zip(tmp_path), read_roster(roster_file), None, None, tmp_path / "w")
    assert batch.lms == "canvas" and batch.assignment == AID
    assert (batch.folder / "bob" / AID / f"{AID}.ipynb").read_bytes() == _nb("solved")
    assert len(list((batch.folder / "bob" / AID).iterdir())) == 1
    note = " ".join(batch.notes[("bob", AID)])
    assert f"{AID}-2.ipynb graded" in note and f"{AID}-1.ipynb" in note and f"{AID}.ipynb not graded" in note
    assert "late" in " ".join(batch.notes[("carol", AID)])
    assert "not in the roster" in _refusal(batch, "unknownd_2004")[0].reason
    assert len(_refusal(batch, "twin")) == 2
    assert "not a notebook (.txt)" in _refusal(batch, "essay.txt")[0].reason
    assert list((batch.folder / "fay" / AID).iterdir()) == []  # graded as "notebook missing", with a note
    assert "only essay.txt" in " ".join(batch.notes[("fay", AID)])
    assert batch.identities["bob"] == {**batch.identities["bob"], "user_id": "2002", "submission_id": "9002",
                                       "name": "marleybob"}


def test_the_lms_and_assignment_options_are_checked(course_copy, roster_file, tmp_path):
    course, roster = Course(course_copy), read_roster(roster_file)
    with pytest.raises(CourseError, match="looks like a Canvas export"):
        lms.prepare(course, canvas_zip(tmp_path), roster, "moodle", None, tmp_path / "w1")
    with pytest.raises(CourseError, match="unknown assignment"):
        lms.prepare(course, canvas_zip(tmp_path), roster, None, "99_nothing", tmp_path / "w2")
    ours = _zip(tmp_path / "ours.zip", {f"ada/{AID}/{AID}.ipynb": _nb("solved")})
    with pytest.raises(CourseError, match="neither a Moodle nor a Canvas"):
        lms.prepare(course, ours, roster, None, None, tmp_path / "w3")
    misnamed = _zip(tmp_path / "m.zip", {"lovelaceada_2001_9001_homework.ipynb": _nb("release")})
    batch = lms.prepare(course, misnamed, roster, None, None, tmp_path / "w4")
    assert batch.assignment == AID  # told from the notebook's graded cells


def test_an_unreadable_zip_is_one_line(course_copy, roster_file, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    r = run_cli("grade", str(bad), "--roster", str(roster_file), course=course_copy)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "not a readable zip" in r.stderr


# --------------------------------------------------------------------------- #
# End to end through the CLI: grade both zips, export both LMS files, read them back
# --------------------------------------------------------------------------- #


def _grades(course: Path) -> dict[tuple[str, str], dict]:
    with open(course / "exports" / "grades.csv", newline="") as f:
        return {(r["student"], r["assignment"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lms")
    roster = tmp / "roster.csv"
    roster.write_text(ROSTER)
    out = {"roster": roster}
    for name, make in (("moodle", moodle_zip), ("canvas", canvas_zip)):
        course = copy_course(tmp / name)
        r = run_cli("grade", str(make(tmp)), "--roster", str(roster), "--workers", "2", course=course)
        out[name] = {"course": course, "result": r, "grades": _grades(course) if r.returncode == 0 else {}}
    return out


@pytest.mark.slow
def test_moodle_zip_graded_with_the_right_ids_and_outcomes(graded):
    r, g = graded["moodle"]["result"], graded["moodle"]["grades"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Moodle export of 01_perceptron: 6 student(s) matched" in r.stdout
    assert g[("ada", AID)]["score"] == "12" and g[("ada", AID)]["status"] == "graded"
    assert g[("zoe", AID)]["status"] == "not graded" and "could not be read" in g[("zoe", AID)]["reason"]
    assert g[("carol", AID)]["score"] == "10"
    assert g[("bob", AID)]["status"] == "graded" and "wrong file name" in g[("bob", AID)]["reason"]
    assert g[("gus", AID)]["score"] == "12" and "draft.ipynb not graded" in g[("gus", AID)]["reason"]
    assert g[("fay", AID)]["status"] == "not graded" and "online-text" in g[("fay", AID)]["reason"]
    refused = {k[0]: v for k, v in g.items() if v["status"] == "refused"}
    assert "not in the roster" in refused["Dan Unknown_1004"]["reason"]
    assert "one student id, eve" in refused["Eve Twin_1005"]["reason"]
    assert "one student id, eve" in refused["Eva Twin_1006"]["reason"]
    assert ("eve", AID) not in g or g[("eve", AID)]["status"] == "no submission"
    assert any("notes.pdf" in k and "not a notebook" in v["reason"] for k, v in refused.items())
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.slow
def test_canvas_zip_graded_latest_upload_wins(graded):
    r, g = graded["canvas"]["result"], graded["canvas"]["grades"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert g[("ada", AID)]["score"] == "12"
    assert g[("bob", AID)]["score"] == "12" and "resubmission" in g[("bob", AID)]["reason"]
    assert g[("carol", AID)]["score"] == "10" and "late" in g[("carol", AID)]["reason"]
    assert g[("fay", AID)]["status"] == "not graded" and "notebook missing" in g[("fay", AID)]["reason"]
    refused = {k[0]: v for k, v in g.items() if v["status"] == "refused"}
    assert "not in the roster" in refused["unknownd_2004"]["reason"]
    assert {"twineve_2005", "twineva_2006"} <= refused.keys()


@pytest.mark.slow
def test_canvas_gradebook_csv_reads_back_as_the_gradebook(graded, tmp_path):
    course, g = graded["canvas"]["course"], graded["canvas"]["grades"]
    r = run_cli("export", "--format", "canvas", "--roster", str(graded["roster"]), "--to", str(tmp_path),
                "--lms-assignment", f"{AID}=48213", course=course)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO((tmp_path / "grades.csv").read_text())))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{AID} (48213)"]
    assert rows[1][0] == "Points Possible" and rows[1][5] == "12"
    by_id = {row[1]: row for row in rows[2:]}
    assert by_id["2001"][:5] == ["Lovelace, Ada", "2001", "S001", "alovelace", "Section A"]
    expected = {"2001": "ada", "2002": "bob", "2003": "carol", "2007": "fay"}
    assert {uid: row[5] for uid, row in by_id.items()} == {uid: g[(s, AID)]["score"] for uid, s in expected.items()}
    with zipfile.ZipFile(tmp_path / f"{AID}-feedback.zip") as zf:
        names = sorted(zf.namelist())
    assert f"lovelaceada_2001_9001_{AID}-feedback.html" in names and len(names) == 3  # fay: no feedback page


@pytest.mark.slow
def test_moodle_worksheet_reads_back_as_the_gradebook(graded, tmp_path):
    course, g = graded["moodle"]["course"], graded["moodle"]["grades"]
    r = run_cli("export", "--format", "moodle", "--roster", str(graded["roster"]), "--to", str(tmp_path),
                course=course)
    assert r.returncode == 0, r.stderr
    with open(tmp_path / f"{AID}.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                                     "Grade can be changed", "Last modified (submission)", "Last modified (grade)",
                                     "Feedback comments"]
        rows = {row["Identifier"]: row for row in reader}
    expected = {"1001": "ada", "1002": "bob", "1003": "carol", "1007": "fay", "1008": "gus", "1009": "zoe"}
    assert sorted(rows) == sorted(f"Participant {pid}" for pid in expected)
    for pid, student in expected.items():
        row = rows[f"Participant {pid}"]
        assert float(row["Grade"]) == float(g[(student, AID)]["score"]) and row["Maximum Grade"] == "12.00"
    assert rows["Participant 1001"]["Email address"] == "ada@uni.example"
    assert rows["Participant 1009"]["Full name"] == "Zoe O'Neil"
    with zipfile.ZipFile(tmp_path / f"{AID}-feedback.zip") as zf:
        names = set(zf.namelist())
    assert f"Ada Lovelace_1001_assignsubmission_file_/{AID}-feedback.html" in names
    assert all(n.split("/")[0].endswith("_assignsubmission_file_") for n in names)
