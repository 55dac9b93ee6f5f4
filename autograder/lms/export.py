"""Grades and feedback in the files each LMS imports: ``autograder export --format canvas|moodle``.

Canvas (Grades > Import): one CSV for the course,

    Student,ID,SIS User ID,SIS Login ID,Section,<assignment> (<Canvas assignment id>),...
    Points Possible,,,,,12,...
    "Lovelace, Ada",2001,S123,alovelace,Section A,12,...

matched by Canvas on ``ID`` (the Canvas user id); an assignment column without an id in
parentheses makes Canvas create a new assignment, so give ``--lms-assignment AID=CANVAS_ID``.
Feedback: ``canvas/<aid>-feedback.zip`` with one HTML per student, named with the prefix of the
submissions download (``<lastfirst>_<user id>_<submission id>_``), which Canvas's
"Re-Upload Submissions" attaches to each student's submission as a comment.

Moodle (Assignment > View all submissions > Upload grading worksheet): one CSV per assignment,
with the columns of Moodle's own grading worksheet (``MOODLE_COLUMNS``) and ``Identifier`` =
"Participant <id>"; feedback: ``moodle/<aid>-feedback.zip`` with one folder per participant,
``<Full Name>_<id>_assignsubmission_file_/<aid>-feedback.html`` ("Upload multiple feedback files
in a zip").

The LMS ids come from the export that was graded (``lms.read_identities``) and from the roster.
Only submissions with a recorded outcome get a grade: a student who submitted nothing is left
blank (the LMS keeps what it has), never given a 0 they did not earn. No cell of either CSV
starts like a spreadsheet formula (``export.safe_cell``): names and e-mails are the students'.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from autograder.results import export
from autograder.lms import intake as lms
from autograder.store import gradebook as nbgrader_api
from autograder.store import outcomes
from autograder.files import ZIP_TIME, atomic_output
from autograder.course import Course, CourseError
from autograder.intake.roster import Roster

CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_COLUMNS = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                  "Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback comments"]
GRADED_STATUSES = {outcomes.GRADED, outcomes.NOT_GRADED}


@dataclass
class Written:
    """What an LMS export wrote, and who could not be included (and why)."""

    files: list[Path]
    rows: int
    skipped: list[str]


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(export.safe_rows(rows))  # no cell is a formula
    return buf.getvalue()


def _sortable(name: str) -> str:
    """Canvas's "Last, First" form of a full name (as its gradebook export writes it)."""
    parts = name.split()
    return f"{parts[-1]}, {' '.join(parts[:-1])}" if len(parts) > 1 else name


def _rows(course: Course) -> dict[tuple[str, str], dict]:
    with nbgrader_api.gradebook(course) as gb:
        return {(r["student"], r["assignment"]): r for r in export.grade_rows(course, gb)
                if r["status"] in GRADED_STATUSES}


def _assignments(course: Course, rows: dict, only: str | None) -> list[str]:
    if only:
        return [course.assignment(only).id]
    graded = {aid for _, aid in rows}
    return [a.id for a in course.assignments() if a.id in graded]


def _feedback_html(course: Course, student: str, aid: str) -> bytes | None:
    path = course.step_dir("feedback", student, aid) / f"{aid}.html"
    try:
        return path.read_bytes() if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


def _write_zip(path: Path, entries: dict[str, bytes]) -> None:
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name])


def _score(value: str) -> str:
    return f"{float(value):g}"


def export_canvas(course: Course, to: Path, roster: Roster | None, lms_ids: dict[str, str],
                  only: str | None = None) -> Written:
    """``to/grades.csv`` (Canvas gradebook import) and ``to/<aid>-feedback.zip`` per assignment."""
    rows = _rows(course)
    aids = _assignments(course, rows, only)
    if not aids:
        raise CourseError("no graded submission to export (grade some first)")
    identities = {aid: lms.read_identities(course, lms.CANVAS, aid) for aid in aids}
    people: dict[str, dict] = {}  # student -> Canvas identity
    for aid in aids:
        for student, ident in identities[aid].items():
            people.setdefault(student, {})["user_id"] = ident["user_id"]
            people[student].setdefault("name", ident.get("roster_name") or ident.get("name", ""))
    for p in (roster.people if roster else []):
        if p.canvas_user_id:
            people.setdefault(p.student, {}).setdefault("user_id", p.canvas_user_id)
        if p.student in people:
            people[p.student].update({k: v for k, v in (("name", p.name), ("sis_user_id", p.sis_user_id),
                                                          ("sis_login_id", p.sis_login_id), ("section", p.section)) if v})
    skipped = sorted({f"{s}: no Canvas user id (not in a graded Canvas export, no canvas_user_id in the roster)"
                      for s, a in rows if a in aids and s not in people})
    points = {a.id: a.points for a in course.assignments()}
    header = CANVAS_FIXED + [f"{aid} ({lms_ids[aid]})" if aid in lms_ids else aid for aid in aids]
    table = [header, ["Points Possible", "", "", "", ""] + [f"{points[a]:g}" for a in aids]]
    for student in sorted(people, key=lambda s: (_sortable(people[s].get("name", s)).casefold(), s)):
        ident = people[student]
        cells = [_score(rows[(student, a)]["score"]) if (student, a) in rows else "" for a in aids]
        if not any(cells):
            continue
        table.append([_sortable(ident.get("name") or student), ident["user_id"], ident.get("sis_user_id", ""),
                      ident.get("sis_login_id", ""), ident.get("section", ""), *cells])
    to.mkdir(parents=True, exist_ok=True)
    files = [to / "grades.csv"]
    files[0].write_text(_csv_text(table))
    for aid in aids:
        entries = {}
        for student, ident in identities[aid].items():
            html = _feedback_html(course, student, aid)
            if html is not None and ident.get("submission_id"):
                entries[f"{ident['name']}_{ident['user_id']}_{ident['submission_id']}_{aid}-feedback.html"] = html
        if entries:
            _write_zip(to / f"{aid}-feedback.zip", entries)
            files.append(to / f"{aid}-feedback.zip")
    return Written(files, len(table) - 2, skipped)


def _moodle_time(iso: str | None) -> str:
    """Moodle's worksheet date form ("Tuesday, 1 December 2026, 11:36 AM"), UTC; "-" for none."""
    if not iso:
        return "-"
    try:
        t = dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc)
    except ValueError:
        return "-"
    return f"{t:%A}, {t.day} {t:%B %Y}, {int(t.strftime('%I'))}:{t:%M %p}"  # Moodle drops leading zeros


def export_moodle(course: Course, to: Path, roster: Roster | None, only: str | None = None) -> Written:
    """``to/<aid>.csv`` (Moodle grading worksheet) and ``to/<aid>-feedback.zip`` per assignment."""
    rows = _rows(course)
    aids = _assignments(course, rows, only)
    if not aids:
        raise CourseError("no graded submission to export (grade some first)")
    to.mkdir(parents=True, exist_ok=True)
    files, count, skipped = [], 0, []
    points = {a.id: a.points for a in course.assignments()}
    for aid in aids:
        identities = lms.read_identities(course, lms.MOODLE, aid)
        table = [MOODLE_COLUMNS]
        entries = {}
        students = sorted({s for s, a in rows if a == aid})
        for student in students:
            ident = identities.get(student, {})
            person = (roster.by_student(student) or [None])[0] if roster else None
            pid = ident.get("user_id") or (person.moodle_participant_id if person else "")
            if not pid:
                skipped.append(f"{student}/{aid}: no Moodle participant id (not in a graded Moodle export, "
                               "no moodle_participant_id in the roster)")
                continue
            row = rows[(student, aid)]
            outcome = outcomes.read(course, aid, student) or {}
            name = (person.name if person and person.name else "") or ident.get("name", student)
            comment = f"Autograded {_score(row['score'])}/{_score(row['max_score'])}: {row['status']}"
            if row["reason"] and row["reason"] != "ok":
                comment += f" ({row['reason']})"
            table.append([f"Participant {pid}", name, (person.email if person else "") or ident.get("email", ""),
                          "Submitted for grading", f"{float(row['score']):.2f}", f"{points[aid]:.2f}", "Yes",
                          "-", _moodle_time(outcome.get("time")), comment])
            html = _feedback_html(course, student, aid)
            if html is not None:
                folder = ident.get("label") or f"{name}_{pid}"
                entries[f"{folder}_assignsubmission_file_/{aid}-feedback.html"] = html
        path = to / f"{aid}.csv"
        path.write_text(_csv_text(table))
        files.append(path)
        count += len(table) - 1
        if entries:
            _write_zip(to / f"{aid}-feedback.zip", entries)
            files.append(to / f"{aid}-feedback.zip")
    return Written(files, count, skipped)


def parse_lms_ids(values: list[str] | None, course: Course) -> dict[str, str]:
    """``["01_perceptron=48213", ...]`` as ``{"01_perceptron": "48213"}`` (syllabus ids checked)."""
    out = {}
    for v in values or []:
        aid, sep, lid = v.partition("=")
        if not sep or not lid.strip().isdigit():
            raise CourseError(f"--lms-assignment {v!r}: write ASSIGNMENT=LMS_ID, e.g. 01_perceptron=48213")
        out[course.assignment(aid.strip()).id] = lid.strip()
    return out
