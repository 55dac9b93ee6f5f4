"""LMS identities come from ids, never from what a student can type (issue 27 §3).

Each test is one class of hostile export, graded through the real CLI (``autograder grade
EXPORT.zip --roster ...``) and read back from the CSVs the grader writes:
- two people with one name, and an impostor taking a classmate's name (ids decide; a names-only
  roster is loud about it, and a look-alike never blocks the name as written);
- Unicode look-alike names (full-width letters fold to ASCII under NFKD);
- Moodle names containing ``_<digits>_assignsubmission_`` (read from the right in a folder;
  ambiguous, so refused, in a flat name);
- Canvas sortable names containing ``_<user id>_<id>_`` (another user's ids);
- one student's files named and made for another assignment (decided per student);
- an absent student is never graded (an impostor aiming at them is refused);
- a late Moodle submission is penalised from the grading worksheet's time;
- formula-like names and e-mails are neutralised in every CSV written;
- a roster with a huge field is one error line.
Each zip is graded once per module (grading is the slow part); the tests read the results.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import submissions as subs
from tests.support.course import copy_course, run_cli

AID = "01_perceptron"
OTHER = "02_backprop"
WRONG_SOFTMAX = subs.WRONG_SOFTMAX
F = "_assignsubmission_file_"
EVE = '=HYPERLINK("x.example","Eve")'          # a name a spreadsheet would evaluate
ROSTER = f"""student,name,email,canvas_user_id,moodle_participant_id,sis_user_id,section
ada,Ada Lovelace,ada@uni.example,2001,1001,S001,Section A
bob,Bob Marley,bob@uni.example,2002,1002,S002,Section A
carol,Carol Shaw,carol@uni.example,2003,1003,S003,Section B
dan,Dan Brown,dan@uni.example,2004,1004,S004,Section B
eve,"{EVE.replace('"', '""')}",+eve@uni.example,2005,1005,-S005,@Section
fay,Fay Other,fay@uni.example,2006,1006,S006,Section B
sam,Sam Lee,sam@uni.example,2007,1007,S007,Section A
sal,Sam Lee,sal@uni.example,2008,1008,S008,Section A
"""
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _nb(kind: str) -> bytes:
    nb = {"solved": subs.solved(AID), "wrong": subs.replace_exercise(subs.solved(AID), "softmax", WRONG_SOFTMAX),
          "other": subs.release_notebook(OTHER)}[kind]
    return json.dumps(nb, indent=1).encode()


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 30, 12, 0, 0)), data)
    return path


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def _grades(course: Path) -> dict[tuple[str, str], dict]:
    with open(course / "exports" / "grades.csv", newline="") as f:
        return {(r["student"], r["assignment"]): r for r in csv.DictReader(f)}


def _refused(g: dict) -> dict[str, dict]:
    return {k[0]: v for k, v in g.items() if v["status"] == "refused"}


def moodle_entries() -> dict[str, bytes]:
    """Moodle's "Download all submissions" (in folders), with one flat entry beside them (Moodle
    writes either form; each entry is read on its own)."""
    return {
        f"Ada Lovelace_1001{F}/{AID}.ipynb": _nb("solved"),
        f"Ada Lovelace_1010{F}/{AID}.ipynb": _nb("wrong"),                   # took Ada's name, not in roster
        f"\uff21da Lovelace_1011{F}/{AID}.ipynb": _nb("wrong"),              # full-width A: folds to "Ada"
        f"Bob Marley_1002{F}/{AID}.ipynb": _nb("solved"),
        f"Eve_1002{F}x_1005{F}{AID}.ipynb": _nb("wrong"),                   # flat, reads as 1002 and 1005
        f"Carol Shaw_1013{F}/{AID}.ipynb": _nb("solved"),                    # carol never submitted
        f"Dan Brown_999{F}_1004{F}/{AID}.ipynb": _nb("solved"),              # "_999_assignsubmission_" in a name
        f"{EVE}_1005{F}/{AID}.ipynb": _nb("wrong"),
        f"=cmd|' -C calc'!A0_1099{F}/{AID}.ipynb": _nb("solved"),           # not in the roster
        **{f"Fay Other_1006{F}/{OTHER}{s}.ipynb": _nb("other") for s in ("", "-1", "-2", " (1)", "_v2")},
        f"Sam Lee_1007{F}/{AID}.ipynb": _nb("solved"),                       # two students named Sam Lee
        f"Sam Lee_1008{F}/{AID}.ipynb": _nb("wrong"),
    }


def canvas_entries() -> dict[str, bytes]:
    return {
        f"lovelaceada_2001_9001_{AID}.ipynb": _nb("solved"),
        f"marleybob_2002_9002_{AID}.ipynb": _nb("solved"),
        f"marleybob_2002_9002_2006_9006_{AID}.ipynb": _nb("wrong"),         # fay named "marleybob_2002_9002"
        f"shawcarol_2003_9003_2099_9099_{AID}.ipynb": _nb("solved"),        # not in the roster, aims at carol
        f"{EVE}_late_2005_9005_{AID}.ipynb": _nb("wrong"),
        f"@SUM(1+1)_2098_9098_{AID}.ipynb": _nb("solved"),                  # not in the roster
    }


def _grade(course: Path, export: Path, roster: Path, *more: str) -> subprocess.CompletedProcess:
    return run_cli("grade", str(export), "--roster", str(roster), "--workers", "2", *more, course=course)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Both hostile zips graded with the ids roster; the names-only roster's zip graded too."""
    tmp = tmp_path_factory.mktemp("lms_identity")
    roster = tmp / "roster.csv"
    roster.write_text(ROSTER)
    out = {"roster": roster, "tmp": tmp}
    for name, entries, more in (("moodle", moodle_entries(), ("--lms-assignment", AID)),
                                ("canvas", canvas_entries(), ())):
        course = copy_course(tmp / name)
        r = _grade(course, _zip(tmp / f"{name}.zip", entries), roster, *more)
        out[name] = {"course": course, "result": r, "grades": _grades(course) if r.returncode == 0 else {}}
    names_only = tmp / "names.csv"       # Moodle ids only for dan
    names_only.write_text("student,name,moodle_participant_id\nada,Ada Lovelace,\nbob,Bob Marley,\n"
                          "dan,Dan Brown,1004\n")
    course = copy_course(tmp / "names")
    r = _grade(course, _zip(tmp / "names.zip", {
        f"Ada Lovelace_1001{F}/{AID}.ipynb": _nb("solved"),
        f"\uff21da Lovelace_1011{F}/{AID}.ipynb": _nb("wrong"),              # a look-alike of Ada's name
        f"Bob Marley_1002{F}/{AID}.ipynb": _nb("solved"),
        f"Bob Marley_1012{F}/{AID}.ipynb": _nb("wrong"),                    # the very same name
        f"Dan Brown_1004{F}/{AID}.ipynb": _nb("solved"),
        f"Dan Brown_1014{F}/{AID}.ipynb": _nb("wrong"),
    }), names_only)
    out["names"] = {"course": course, "result": r, "grades": _grades(course) if r.returncode == 0 else {}}
    return out


def _ok(run: dict) -> dict:
    r = run["result"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stdout + r.stderr
    return run["grades"]


@pytest.mark.slow
def test_a_name_collision_never_blocks_an_id_match(graded):
    g = _ok(graded["moodle"])
    # ids roster: the two Sam Lees each get their own work; Ada's name taken by a stranger blocks nobody
    assert g[("sam", AID)]["score"] == "12" and g[("sal", AID)]["score"] == "10"
    assert g[("ada", AID)]["score"] == "12" and g[("ada", AID)]["status"] == "graded"
    assert "Ada Lovelace_1010" in _refused(g)
    # names-only roster: a loud warning; the same name twice is nobody's, an id still decides for dan
    r, g = graded["names"]["result"], _ok(graded["names"])
    assert "WARNING" in r.stderr and "matched by the name they chose" in r.stderr and "moodle_participant_id" in r.stderr
    assert ("bob", AID) not in g
    both = _refused(g)
    assert "one student id, bob" in both["Bob Marley_1002"]["reason"] and "moodle_participant_id" in both[
        "Bob Marley_1002"]["reason"]
    assert "one student id, bob" in both["Bob Marley_1012"]["reason"]
    assert g[("dan", AID)]["score"] == "12" and "Dan Brown_1014" in both
    assert "by name only" in g[("ada", AID)]["reason"]


@pytest.mark.slow
def test_a_unicode_look_alike_never_blocks_the_real_name(graded):
    g = _ok(graded["moodle"])        # ids roster: the look-alike is simply not in the roster
    assert g[("ada", AID)]["score"] == "12"
    assert "\uff21da Lovelace_1011" in _refused(g)
    g = _ok(graded["names"])         # names-only: it folds to "Ada Lovelace", but Ada's own name wins
    assert g[("ada", AID)]["score"] == "12" and g[("ada", AID)]["status"] == "graded"
    assert "only looks like ada's" in _refused(g)["\uff21da Lovelace_1011"]["reason"]


@pytest.mark.slow
def test_moodle_names_are_read_from_the_fixed_suffix(graded):
    g = _ok(graded["moodle"])
    # a folder: the participant id is the last one, whatever the name holds
    assert g[("dan", AID)]["score"] == "12" and g[("dan", AID)]["status"] == "graded"
    # a flat name that reads as participant 1002 and as 1005: nobody's, and bob's own work is untouched
    flat = _refused(g)[f"Eve_1002{F}x_1005{F}{AID}.ipynb"]["reason"]
    assert "more than one user" in flat and "1002" in flat and "1005" in flat
    assert g[("bob", AID)]["score"] == "12" and "several notebooks" not in g[("bob", AID)]["reason"]


@pytest.mark.slow
def test_canvas_names_holding_another_users_ids_are_refused(graded):
    g = _ok(graded["canvas"])
    assert g[("bob", AID)]["score"] == "12" and g[("bob", AID)]["reason"] in ("", "ok")
    assert "more than one user" in _refused(g)[f"marleybob_2002_9002_2006_9006_{AID}.ipynb"]["reason"]
    assert ("fay", AID) not in g
    assert g[("ada", AID)]["score"] == "12" and g[("eve", AID)]["score"] == "10"
    assert "late" in g[("eve", AID)]["reason"]


@pytest.mark.slow
def test_an_absent_student_never_gets_a_graded_row(graded, tmp_path):
    for lms in ("moodle", "canvas"):
        g = _ok(graded[lms])
        assert not [k for k in g if k[0] == "carol"], g.get(("carol", AID))
    assert "Carol Shaw_1013" in _refused(graded["moodle"]["grades"])
    assert f"shawcarol_2003_9003_2099_9099_{AID}.ipynb" in _refused(graded["canvas"]["grades"])
    course = graded["canvas"]["course"]
    r = run_cli("export", "--format", "canvas", "--roster", str(graded["roster"]), "--to", str(tmp_path / "c"),
                "--lms-assignment", f"{AID}=48213", course=course)
    assert r.returncode == 0, r.stderr
    assert "2003" not in {row[1] for row in _csv(tmp_path / "c" / "grades.csv")[2:]}


@pytest.mark.slow
def test_files_of_another_assignment_are_that_students_outcome(course_copy, tmp_path, graded):
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER)
    # one student's five notebooks of 02_backprop outnumber the class's: no vote, the export is ambiguous
    export = _zip(tmp_path / "e.zip", {f"Ada Lovelace_1001{F}/{AID}.ipynb": _nb("solved"),
                                       f"Bob Marley_1002{F}/{AID}.ipynb": _nb("solved"),
                                       **{f"Fay Other_1006{F}/{OTHER}{s}.ipynb": _nb("other")
                                          for s in ("", "-1", "-2", " (1)", "_v2")}})
    r = _grade(course_copy, export, roster)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr[-2000:]
    assert "--lms-assignment" in r.stderr and f"{OTHER}: 1" in r.stderr and f"{AID}: 2" in r.stderr
    # with --lms-assignment, the class is graded and fay's notebooks are her outcome
    g = _ok(graded["moodle"])
    assert g[("fay", AID)]["status"] == "not graded"
    assert "5 notebook(s) made or named for another assignment" in g[("fay", AID)]["reason"]
    assert g[("ada", AID)]["score"] == "12"


@pytest.mark.slow
def test_no_cell_of_any_csv_written_is_a_formula(graded, tmp_path):
    written = [graded["moodle"]["course"] / "exports" / "grades.csv",
               graded["canvas"]["course"] / "exports" / "grades.csv"]
    r = run_cli("export", "--format", "moodle", "--roster", str(graded["roster"]), "--to", str(tmp_path / "m"),
                course=graded["moodle"]["course"])
    assert r.returncode == 0, r.stderr
    r = run_cli("export", "--format", "canvas", "--roster", str(graded["roster"]), "--to", str(tmp_path / "c"),
                course=graded["canvas"]["course"])
    assert r.returncode == 0, r.stderr
    written += [tmp_path / "m" / f"{AID}.csv", tmp_path / "c" / "grades.csv"]
    cells = [cell for path in written for row in _csv(path) for cell in row]
    assert not [c for c in cells if c.startswith(FORMULA_START)]
    # the students' text is still there, as text
    assert "'=cmd|' -C calc'!A0_1099" in cells and "'@SUM(1+1)_2098" in cells
    canvas = {row[1]: row for row in _csv(tmp_path / "c" / "grades.csv")[2:]}
    assert canvas["2005"][:5] == [f"'{EVE}", "2005", "'-S005", "", "'@Section"]
    moodle = {row[0]: row for row in _csv(tmp_path / "m" / f"{AID}.csv")}
    assert moodle["Participant 1005"][1:3] == [f"'{EVE}", "'+eve@uni.example"]


def test_a_roster_with_a_huge_field_is_one_error_line(course_copy, tmp_path):
    export = _zip(tmp_path / "e.zip", {f"Ada Lovelace_1001{F}/{AID}.ipynb": _nb("solved")})
    for size in (200_000, 5_000):
        roster = tmp_path / f"r{size}.csv"
        roster.write_text(f"student,name,moodle_participant_id\nada,{'A' * size},1001\n")
        r = _grade(course_copy, export, roster)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert r.stderr.strip().count("\n") == 0 and str(roster) in r.stderr


# -- late penalties from Moodle's grading worksheet -----------------------------------------------

DUE = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)


def _moodle_time(t: dt.datetime) -> str:
    """Moodle's worksheet form, in this machine's local zone (as the downloading user sees it)."""
    t = t.astimezone()
    return f"{t:%A}, {t.day} {t:%B %Y}, {int(t.strftime('%I'))}:{t:%M %p}"


def _has_times_option() -> bool:
    r = subprocess.run([sys.executable, "-m", "autograder", "grade", "--help"], capture_output=True, text=True)
    return "--lms-times" in r.stdout


@pytest.mark.slow
def test_a_late_moodle_submission_is_penalised_from_the_worksheet(tmp_path):
    if not _has_times_option():
        pytest.fail("autograder grade has no --lms-times option (cli.py: see grading.batch.grade_lms_export's times)")
    course = copy_course(tmp_path)
    syllabus = course / "syllabus.toml"
    syllabus.write_text(syllabus.read_text().replace(f'id = "{AID}"\n', f'id = "{AID}"\ndue = "2026-11-20T12:00:00Z"\n'))
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER)
    worksheet = tmp_path / "Grades-DL-Perceptron.csv"
    rows = [["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
             "Last modified (submission)", "Last modified (grade)", "Feedback comments"],
            ["Participant 1001", "Ada Lovelace", "ada@uni.example", "Submitted", "", "12.00", "Yes",
             _moodle_time(DUE - dt.timedelta(hours=2)), "-", ""],
            ["Participant 1002", "Bob Marley", "bob@uni.example", "Submitted", "", "12.00", "Yes",
             _moodle_time(DUE + dt.timedelta(days=1, hours=1)), "-", ""]]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    worksheet.write_text(buf.getvalue())
    export = _zip(tmp_path / "e.zip", {f"Ada Lovelace_1001{F}/{AID}.ipynb": _nb("solved"),
                                       f"Bob Marley_1002{F}/{AID}.ipynb": _nb("solved"),
                                       f"Carol Shaw_1003{F}/{AID}.ipynb": _nb("solved")})   # no time given
    r = _grade(course, export, roster, "--lms-times", str(worksheet))
    assert r.returncode == 0, r.stderr[-3000:]
    g = _grades(course)
    assert g[("ada", AID)]["score"] == "12"
    assert g[("bob", AID)]["score"] == "9.6" and "late: 2.4 point(s) off" in g[("bob", AID)]["reason"]
    assert g[("carol", AID)]["score"] == "12"
    assert "submission time is unknown" in g[("carol", AID)]["reason"] and "no late penalty" in g[("carol", AID)]["reason"]
    assert "WARNING: 1 submission(s)" in r.stderr and "no late penalty" in r.stderr


# -- the class of crafted names, not only the examples (fast: the parser alone) -------------------

TOKENS = ["_", "__", "2002", "9002", "1002", "2003", "01", "late", "LATE", "assignsubmission", "file", "onlinetext",
          "x", "Bob", " ", "-1", ".ipynb", f"{AID}", "\u0661\u0660\u0660\u0662", "\uff10"]


def _crafted(rng, n: int) -> str:
    return "".join(rng.choice(TOKENS) for _ in range(rng.randint(0, n)))


def test_no_crafted_name_or_file_name_moves_an_entry_to_another_user():
    """Thousands of names and file names built from the ids' own pieces: an entry is read as its
    true user or refused, never as anyone else; an honest name is always read."""
    import random

    from autograder.lms import intake as lms

    rng = random.Random(27)
    aids = {AID, OTHER}
    shifted, read = [], 0
    for _ in range(20_000):
        uid, sid = str(rng.randint(1000, 99999)), str(rng.randint(10000, 999999))
        name = "Mallory" + _crafted(rng, 8)
        file = _crafted(rng, 6) + rng.choice([f"{AID}.ipynb", f"{AID}-2.ipynb", "x.ipynb", "01_a.ipynb"])
        late = "LATE_" if rng.random() < 0.3 else ""
        canvas = lms._pick(lms._cuts(f"{name}_{late}{uid}_{sid}_{file}", lms._CANVAS_CUT), aids)[0]
        flat = lms._pick(lms._cuts(f"{name}_{uid}_assignsubmission_file_{file}", lms._MOODLE_CUT), aids)[0]
        folder = lms._MOODLE_DIR.match(f"{name}_{uid}_assignsubmission_file_")
        shifted += [(kind, name, file) for kind, got in (("canvas", canvas and canvas.uid), ("flat", flat and flat.uid),
                                                         ("folder", folder["uid"])) if got not in (None, uid)]
        read += canvas is not None
    assert not shifted, shifted[:5]
    assert read > 5000   # the rule refuses the ambiguous, not everything
    for name in ("lovelaceada", "o'neilzoë", "Ada Lovelace", "van der Berg-Smith"):
        for file in (f"{AID}.ipynb", f"{AID}-3.ipynb", "perceptron (1).ipynb", "notes.pdf"):
            cut = lms._pick(lms._cuts(f"{name}_late_2001_9001_{file}", lms._CANVAS_CUT), aids)[0]
            assert (cut.name, cut.uid, cut.sid, cut.late, cut.rest) == (name, "2001", "9001", True, file)
            cut = lms._pick(lms._cuts(f"{name}_1001_assignsubmission_file_{file}", lms._MOODLE_CUT), aids)[0]
            assert (cut.name, cut.uid, cut.rest) == (name, "1001", file)
