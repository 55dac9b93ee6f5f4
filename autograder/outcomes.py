"""Every submission ends with a recorded outcome and a reason.

One JSON file per (assignment, student) under ``course/outcomes/``, written
atomically by the trusted side: ``graded`` (possibly with events such as a cell
timing out or the kernel dying) or ``not graded`` with the reason (missing,
unreadable, wrong file name, over the size limit, internal error).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from autograder.course import Course

GRADED = "graded"
NOT_GRADED = "not graded"


def _path(course: Course, aid: str, student: str) -> Path:
    return course.outcomes_dir / aid / f"{student}.json"


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    tmp.replace(path)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def record_graded(course: Course, aid: str, student: str, notebook: str, seed: int,
                  events: list[str], results: dict[str, Any], points: dict[str, float]) -> None:
    """Called by the trusted scorer once a notebook's scores are in the gradebook."""
    path = _path(course, aid, student)
    previous = read(course, aid, student) or {}
    notes = [n for n in previous.get("notes", []) if previous.get("pending")]
    _write(path, {
        "assignment": aid, "student": student, "notebook": notebook, "status": GRADED,
        "reason": "; ".join(events) if events else "ok", "events": list(events), "notes": notes,
        "seed": seed, "time": _now(),
        "exercises": {name: {"passed": r.passed, "total": r.total, "ok": r.ok,
                             "points": points.get(name, 0.0) if r.ok else 0.0,
                             "max_points": points.get(name, 0.0)} for name, r in results.items()},
    })


def record_note(course: Course, aid: str, student: str, note: str) -> None:
    """A remark found while collecting (e.g. the file's name was wrong), kept for the final outcome."""
    path = _path(course, aid, student)
    data = read(course, aid, student) or {}
    if not data.get("pending"):
        data = {"assignment": aid, "student": student, "pending": True, "notes": []}
    data["notes"].append(note)
    _write(path, data)


def record_not_graded(course: Course, aid: str, student: str, reason: str) -> None:
    _write(_path(course, aid, student), {
        "assignment": aid, "student": student, "status": NOT_GRADED, "reason": reason,
        "events": [], "notes": [], "time": _now(), "exercises": {}})


def clear(course: Course, aid: str, student: str) -> None:
    _path(course, aid, student).unlink(missing_ok=True)


def read(course: Course, aid: str, student: str) -> dict | None:
    path = _path(course, aid, student)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
