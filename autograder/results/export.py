"""Grades out of nbgrader's gradebook, with each submission's recorded outcome.

``export_csv`` is what ``autograder export`` and ``autograder grade`` write;
``OutcomeCsvExport`` is the same as an nbgrader export plugin, so that
``nbgrader export`` (configured in nbgrader_config.py) gives the same file.

Every CSV cell goes through ``safe_cell``: a student's name, a file name or a reason that
starts like a formula (``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading
``'``, so that a spreadsheet shows it as text instead of evaluating it.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin

from autograder.store import gradebook as nbgrader_api
from autograder.store import outcomes
from autograder.course import Course

COLUMNS = ["student", "assignment", "score", "max_score", "status", "reason"]
# What makes a spreadsheet read a cell as a formula (the full-width forms too: some applications
# fold them), and plain numbers, which are left as they are.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def safe_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: ``'`` before anything that starts like a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_rows(rows):
    """``safe_cell`` on every cell of rows given as lists or as dicts."""
    for row in rows:
        yield {k: safe_cell(v) for k, v in row.items()} if isinstance(row, dict) else [safe_cell(v) for v in row]


def grade_rows(course: Course, gb: Gradebook) -> list[dict]:
    """One row per (student, assignment of the syllabus), in syllabus order."""
    rows = []
    for student in sorted(gb.students, key=lambda s: s.id):
        for a in course.assignments():
            penalty = 0.0
            try:
                sub = gb.find_submission(a.id, student.id)
                penalty = float(sub.late_submission_penalty or 0.0)
                score, max_score = max(0.0, sub.score - penalty), sub.max_score
            except MissingEntry:
                score, max_score = 0.0, a.points
            outcome = outcomes.read(course, a.id, student.id) or {}
            status = outcome.get("status", "no submission")
            reason = outcome.get("reason", "")
            notes = outcome.get("notes", [])
            if penalty:
                notes = [*notes, f"late: {penalty:g} point(s) off"]
            if notes:
                reason = "; ".join([*notes, reason]) if reason and reason != "ok" else "; ".join(notes)
            rows.append({"student": student.id, "assignment": a.id, "score": f"{score:g}",
                         "max_score": f"{max_score:g}", "status": status, "reason": outcomes.clean_text(reason)})
    for refusal in sorted(outcomes.read_refusals(course).values(), key=lambda r: (r["name"], r["assignment"])):
        rows.append({"student": refusal["name"], "assignment": refusal["assignment"], "score": "0",
                     "max_score": "", "status": outcomes.REFUSED, "reason": refusal["reason"]})
    return rows


def export_csv(course: Course, to: Path | None = None) -> Path:
    to = to or course.root / "exports" / "grades.csv"
    to.parent.mkdir(parents=True, exist_ok=True)
    with nbgrader_api.gradebook(course) as gb:
        rows = grade_rows(course, gb)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(safe_rows(rows))
    to.write_text(buf.getvalue())
    return to


def summary_table(course: Course, results: list[dict]) -> str:
    """The per-student table printed after grading (scores from the gradebook)."""
    with nbgrader_api.gradebook(course) as gb:
        rows = {(r["student"], r["assignment"]): r for r in grade_rows(course, gb)}
    lines = [f"{'student':<20} {'assignment':<18} {'score':>11}  outcome"]
    refused = [r for r in results if r.get("status") == outcomes.REFUSED]
    for res in sorted((r for r in results if r.get("status") != outcomes.REFUSED),
                      key=lambda r: (r.get("student", ""), r.get("assignment", ""))):
        key = (res.get("student", "?"), res.get("assignment", "?"))
        row = rows.get(key, {"score": "0", "max_score": "?", "status": res.get("status", "?"),
                             "reason": res.get("reason", "")})
        score = f"{row['score']}/{row['max_score']}"
        outcome = row["status"] + (f" ({row['reason']})" if row["reason"] and row["reason"] != "ok" else "")
        lines.append(f"{key[0]:<20} {key[1]:<18} {score:>11}  {outcomes.clean_text(outcome)[:110]}")
    for row in refused:
        lines.append(f"{row['name'][:20]:<20} {row['assignment'][:18]:<18} {'-':>11}  refused ({row['reason'][:100]})")
    return "\n".join(lines)


class OutcomeCsvExport(ExportPlugin):
    """``nbgrader export`` plugin writing the same CSV as ``autograder export``."""

    def export(self, gradebook: Gradebook) -> None:
        # The course nbgrader was given (its CourseDirectory.root), never the repository's.
        course = Course(Path(self.config.CourseDirectory.root).resolve())
        to = Path(self.to) if self.to else course.root / "exports" / "grades.csv"
        export_csv(course, to)
