"""Every submission ends with a recorded outcome and a reason.

One JSON file per (assignment, student) under ``course/outcomes/``, written
atomically by the trusted side: ``graded`` (possibly with events such as a cell
timing out or the kernel dying) or ``not graded`` with the reason (missing,
unreadable, wrong file name, over the size limit, internal error).
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from autograder.course import Course
from autograder.files import write_atomic
from helpers.grading.contract import clean_text  # noqa: F401 - the one definition; imported from here too

GRADED = "graded"
NOT_GRADED = "not graded"
REFUSED = "refused"
REFUSALS_FILE = "_refused.json"

def printable_name(name: str, limit: int = 80) -> str:
    """A file or folder name as shown in the CSV: printable, quoted if it had to be changed."""
    clean = clean_text(name)
    if clean != name or len(clean) > limit:
        return ascii(name)[:limit]
    return clean


def _path(course: Course, aid: str, student: str) -> Path:
    return course.outcomes_dir / aid / f"{student}.json"


def _write(path: Path, data: dict) -> None:
    """Write an outcome privately (0600, new folders 0700: it names the student's mistakes) and atomically."""
    write_atomic(path, json.dumps(data, indent=1, ensure_ascii=False), private=True)


def now() -> str:
    """The time an outcome is recorded: UTC, ISO 8601, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write(course: Course, aid: str, student: str, record: dict) -> None:
    """Write a whole outcome record (one a worker or the coordinator made: ``record_*`` build them)."""
    _write(_path(course, aid, student), record)


def record_graded(course: Course, aid: str, student: str, notebook: str, seed: int,
                  events: list[str], results: dict[str, Any], points: dict[str, float]) -> None:
    """Called by the trusted scorer once a notebook's scores are in the gradebook."""
    path = _path(course, aid, student)
    previous = read(course, aid, student) or {}
    notes = [n for n in previous.get("notes", []) if previous.get("pending")]
    events = [clean_text(e) for e in events]
    exercises = {name: {"passed": r.passed, "total": r.total, "ok": r.ok,
                        "points": r.score(points.get(name, 0.0)),
                        "max_points": points.get(name, 0.0), "cases": r.cases} for name, r in results.items()}
    _write(path, {
        "assignment": aid, "student": student, "notebook": notebook, "status": GRADED,
        "reason": "; ".join(events) if events else "ok", "events": events, "notes": notes,
        "seed": seed, "time": now(), "score": sum(e["points"] for e in exercises.values()),
        "exercises": exercises,
    })


def record_note(course: Course, aid: str, student: str, note: str) -> None:
    """A remark found while collecting (e.g. the file's name was wrong), kept for the final outcome."""
    path = _path(course, aid, student)
    data = read(course, aid, student) or {}
    if not data.get("pending"):
        data = {"assignment": aid, "student": student, "pending": True, "notes": []}
    data["notes"].append(clean_text(note))
    _write(path, data)


def record_not_graded(course: Course, aid: str, student: str, reason: str, events: list[str] | None = None) -> None:
    """A submission that got no grade, and why (its gradebook scores are set to 0 by the caller)."""
    previous = read(course, aid, student) or {}
    notes = previous.get("notes", []) if previous.get("pending") else []
    _write(_path(course, aid, student), {
        "assignment": aid, "student": student, "status": NOT_GRADED, "reason": clean_text(reason),
        "events": [clean_text(e) for e in events or []], "notes": notes, "time": now(), "score": 0.0,
        "exercises": {}})


def record_refusal(course: Course, name: str, aid: str, reason: str) -> None:
    """Something collected that is not a gradable (student, assignment): a link, an invalid id, a
    stray file. Kept (by name and assignment) so that the CSV lists it with its reason."""
    path = course.outcomes_dir / REFUSALS_FILE
    data = read_refusals(course)
    key = f"{name}\x00{aid}"
    data[key] = {"name": printable_name(name), "assignment": printable_name(aid), "status": REFUSED,
                 "reason": clean_text(reason), "time": now()}
    _write(path, data)


def read_refusals(course: Course) -> dict[str, dict]:
    try:
        data = json.loads((course.outcomes_dir / REFUSALS_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def clear(course: Course, aid: str, student: str) -> None:
    _path(course, aid, student).unlink(missing_ok=True)


def read(course: Course, aid: str, student: str) -> dict | None:
    path = _path(course, aid, student)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
