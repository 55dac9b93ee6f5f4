"""The record of grading on submit, and the rules that decide whether a submission is graded.

One file, ``course/ondemand/state.json`` (0600, written atomically under a lock; ``log.jsonl`` beside
it keeps every change the instructor made, appended, never rewritten)::

    {"queue":    {"<student>/<assignment>": {"student", "assignment", "submitted", "sha256", "queued"}},
     "attempts": {student: {assignment: [{"n", "submitted", "sha256", "graded", "status", "score",
                                          "max_score", "reason", "counted", "official"}]}},
     "skipped":  {student: {assignment: {"sha256", "submitted", "reason", "at"}}},
     "open":     {assignment: false},              # closed by the instructor (absent: open)
     "resets":   {student: {assignment: time}}}    # attempts graded before it are not counted

The rules (``verdict``), in this order: the syllabus gives the assignment ``attempts`` (else the
instructor grades it, not this service); the instructor has not closed it; the submission's trusted
time is before the student's deadline (the syllabus's ``due``, moved by their extension or
accommodation: ``autograder.store.extensions``); the student has an attempt left (``attempts`` in
total, or per UTC day with ``attempts_per = "day"``, counted since the instructor's last reset). An
attempt counts when it was graded (a crash or a time limit of the student's code is graded, with
its reason); one the host could not grade (an environment error) does not count.

The grade (``official``): the last graded attempt, or with ``best_of = true`` the best one (the
earliest of equal scores); the service keeps the gradebook on it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from pathlib import Path
from typing import Iterator

from autograder.course import Assignment, Course, CourseError
from autograder.files import read_regular, write_atomic

FOLDER = "ondemand"
MAX_STATE_BYTES = 64 * 2**20


def folder(course: Course) -> Path:
    return course.root / FOLDER


def _empty() -> dict:
    return {"queue": {}, "attempts": {}, "skipped": {}, "open": {}, "resets": {}}


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextlib.contextmanager
def locked(course: Course) -> Iterator[None]:
    """The state's lock: one writer at a time (the service, and the instructor's commands)."""
    base = folder(course)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load(course: Course) -> dict:
    """The state (empty when there is none); a damaged file is one CourseError line."""
    path = folder(course) / "state.json"
    try:
        data = json.loads(read_regular(path, MAX_STATE_BYTES))
    except FileNotFoundError:
        return _empty()
    except (OSError, ValueError) as e:
        raise CourseError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k, {}), dict) for k in _empty()):
        raise CourseError(f"{path} is not the grading-on-submit state: restore it from a backup")
    return {**_empty(), **data}


def save(course: Course, state: dict) -> None:
    write_atomic(folder(course) / "state.json", json.dumps(state, indent=1, sort_keys=True), private=True)


def log(course: Course, entry: dict) -> None:
    """Append one change to ``log.jsonl`` (never rewritten)."""
    path = folder(course) / "log.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def history(state: dict, student: str, aid: str) -> list[dict]:
    return state["attempts"].get(student, {}).get(aid, [])


def used(state: dict, assignment: Assignment, student: str, at: dt.datetime) -> int:
    """Attempts of ``student`` that count at time ``at`` (today's only, when counted per day)."""
    reset = state["resets"].get(student, {}).get(assignment.id)
    count = 0
    for a in history(state, student, assignment.id):
        graded = parse(a["graded"])
        if not a.get("counted") or (reset and graded < parse(reset)):
            continue
        if assignment.attempts_per == "day" and graded.date() != at.date():
            continue
        count += 1
    return count


def deadline(course: Course, assignment: Assignment, student: str) -> tuple[dt.datetime | None, str]:
    """The student's deadline of ``assignment`` (None: no due date) and why it differs, if it does."""
    from autograder.store import extensions

    if assignment.due is None:
        return None, ""
    moved = extensions.effective(course, student, assignment.id)
    return (moved.effective, moved.reason) if moved else (assignment.due, "")


def verdict(course: Course, assignment: Assignment, state: dict, student: str, submitted: dt.datetime,
            at: dt.datetime) -> str | None:
    """Why this submission is not graded on submit (None: it is)."""
    if assignment.attempts is None:
        return "not graded on submit: your instructor grades this assignment"
    if state["open"].get(assignment.id) is False:
        return "grading on submit is closed for this assignment (your instructor closed it)"
    due, _why = deadline(course, assignment, student)
    if due is not None and submitted > due:
        return f"submitted after your deadline ({iso(due)}): not graded on submit"
    n = used(state, assignment, student, at)
    if n >= assignment.attempts:
        per = " today (UTC)" if assignment.attempts_per == "day" else ""
        return f"no attempts left: {n} of {assignment.attempts} used{per}"
    return None


def official(attempts: list[dict], best_of: bool) -> dict | None:
    """The attempt that is the grade: the last graded one, or the best (earliest of equal scores)."""
    graded = [a for a in attempts if a.get("counted")]
    if not graded:
        return None
    if best_of:
        return max(graded, key=lambda a: (float(a["score"]), -a["n"]))
    return graded[-1]


def set_open(course: Course, aid: str, is_open: bool, by: str) -> None:
    """Open or close grading on submit for an assignment (the syllabus must give it attempts)."""
    a = course.assignment(aid)
    if a.attempts is None:
        raise CourseError(f"{aid} has no attempts in the syllabus: add e.g. attempts = 3 to its entry first")
    with locked(course):
        state = load(course)
        if is_open:
            state["open"].pop(aid, None)
        else:
            state["open"][aid] = False
        save(course, state)
        log(course, {"at": iso(now()), "by": by, "action": "open" if is_open else "close", "assignment": aid})


def reset(course: Course, student: str, aid: str, by: str) -> int:
    """Give ``student`` all the attempts of ``aid`` again (the earlier ones stay in the history).
    Returns how many counted before."""
    a = course.assignment(aid)
    with locked(course):
        state = load(course)
        before = used(state, a, student, now())
        state["resets"].setdefault(student, {})[aid] = iso(now())
        state["skipped"].get(student, {}).pop(aid, None)  # a submission refused for want of attempts is looked at again
        save(course, state)
        log(course, {"at": iso(now()), "by": by, "action": "reset", "student": student, "assignment": aid,
                     "counted_before": before})
    return before
