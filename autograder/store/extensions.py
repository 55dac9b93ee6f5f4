"""Per-student deadlines: extensions and standing accommodations (``autograder extend``).

Two facts, owned here and nowhere else:

- ``course/extensions.json`` (the current state, rewritten atomically, readable JSON, 0600)::

      {"extensions": {STUDENT: {ASSIGNMENT: {"days": 2} | {"until": ISO}, "reason", "by", "at"}},
       "accommodations": {STUDENT: {"extra_days": 1.5, "source": ROSTER, "by", "at"}}}

- ``course/extensions.log`` (every change, one JSON object a line, only ever appended, 0600):
  when, who (the OS user), the student, the assignment, the effective deadline before and after.

The rule a lecturer reads (the README's "Extensions and accommodations"): the syllabus's ``due`` is
the deadline; a standing accommodation (the roster's ``extra_days``) moves every due date of that
student by that many days; an extension (``--days N``: N days after the syllabus's due date, or
``--until TIME``) gives one assignment a later deadline. The effective deadline is the later of the
two: an extension never takes away an accommodation, and nothing is ever earlier than the syllabus.
An assignment without a due date has no deadline to move (nothing is late).

nbgrader keeps the same fact as ``SubmittedAssignment.extension`` (its ``duedate`` is the
assignment's due date plus the extension, and its late-penalty step compares the submission's
time with that): :func:`apply_to_gradebook` writes the effective extension there for every
submission the gradebook already holds, and re-computes the late penalty of a graded one with the
course's configured plugin, as nbgrader's ``AssignLatePenalties`` does. Grading gives each worker
the extension of :func:`extension_seconds`, so a first submission is judged the same way.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from autograder.course import Course, CourseError
from autograder.files import read_regular, readable_json, write_atomic

STATE, LOG = "extensions.json", "extensions.log"
MAX_STATE_BYTES = 16 * 2**20
MAX_DAYS = 365.0          # longest extension or accommodation (days): a typo of 1000 is refused
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Deadline:
    """One student's effective deadline of one assignment, when it differs from the syllabus's."""

    student: str
    assignment: str
    due: dt.datetime              # the syllabus's (aware, UTC)
    effective: dt.datetime        # aware, UTC
    reason: str                   # why, in words ("extension: ...", "accommodation: ...")


def state_path(course: Course) -> Path:
    return course.root / STATE


def log_path(course: Course) -> Path:
    return course.root / LOG


def iso(when: dt.datetime | None) -> str | None:
    return when.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if when else None


def parse_time(text: str) -> dt.datetime:
    """``--until``: ISO 8601 with a time zone (as the syllabus's ``due``), as aware UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CourseError(f"--until {text!r} is not an ISO 8601 time; write e.g. 2026-12-17T23:59:00Z") from None
    if value.tzinfo is None:
        raise CourseError(f"--until {text!r} has no time zone; add one, e.g. Z for UTC or +01:00")
    return value.astimezone(dt.timezone.utc)


def check_days(days: float, what: str) -> float:
    if not math.isfinite(days) or not 0 < days <= MAX_DAYS:
        raise CourseError(f"{what} must be a number of days above 0 and at most {MAX_DAYS:g}, not {days:g}")
    return float(days)


def os_user() -> str:
    """Who ran the command: the OS user (of the effective uid, whatever $USER says)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


# --------------------------------------------------------------------------- #
# Reading the state, and the deadlines it gives
# --------------------------------------------------------------------------- #


def load(course: Course) -> dict:
    """The current state (empty when there is none yet); a damaged file is one CourseError line."""
    path = state_path(course)
    try:
        data = json.loads(read_regular(path, MAX_STATE_BYTES))
    except FileNotFoundError:
        return {"extensions": {}, "accommodations": {}}
    except (OSError, ValueError) as e:
        raise CourseError(f"cannot read {path}: {e}; its history is in {log_path(course)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("extensions", {}), dict) \
            or not isinstance(data.get("accommodations", {}), dict):
        raise CourseError(f"{path} is not an extensions file; its history is in {log_path(course)}")
    data.setdefault("extensions", {})
    data.setdefault("accommodations", {})
    try:  # a hand-edited file: every value the rule reads must be there and of its kind
        for acc in data["accommodations"].values():
            check_days(float(acc["extra_days"]), "extra_days")
        for per_student in data["extensions"].values():
            for ext in per_student.values():
                if "days" in ext:
                    check_days(float(ext["days"]), "days")
                elif dt.datetime.fromisoformat(ext["until"]).tzinfo is None:
                    raise ValueError("an until without a time zone")
    except (AttributeError, KeyError, TypeError, ValueError, CourseError) as e:
        raise CourseError(f"{path} is damaged ({str(e)[:120] or type(e).__name__}): fix it or restore it; "
                          f"its history is in {log_path(course)}") from None
    return data


def _effective_of(state: dict, student: str, aid: str, due: dt.datetime) -> tuple[dt.datetime, str] | None:
    """(effective deadline, reason) of one assignment from the student's entries; None when that is
    the syllabus's due date."""
    best: tuple[dt.datetime, str] | None = None
    acc = state["accommodations"].get(student)
    if acc:
        best = (due + float(acc["extra_days"]) * DAY, f"accommodation: {float(acc['extra_days']):g} extra day(s) "
                                                       f"on every deadline ({acc.get('source', 'roster')})")
    ext = state["extensions"].get(student, {}).get(aid) if aid else None
    if ext:
        when = due + float(ext["days"]) * DAY if "days" in ext else dt.datetime.fromisoformat(ext["until"])
        how = f"{float(ext['days']):g} day(s)" if "days" in ext else f"until {ext['until']}"
        why = f"{how}" + (f" ({ext['reason']})" if ext.get("reason") else "") \
            + f", granted by {ext.get('by', '?')} at {ext.get('at', '?')}"
        if best is None or when > best[0]:
            best = (when, f"extension: {why}")
        else:
            best = (best[0], best[1] + f"; the extension ({why}) ends earlier")
    if best is None or best[0] <= due:
        return None
    return best


def effective(course: Course, student: str, aid: str, state: dict | None = None) -> Deadline | None:
    """The student's effective deadline of ``aid`` when it is later than the syllabus's, else None."""
    state = load(course) if state is None else state
    due = course.assignment(aid).due
    found = _effective_of(state, student, aid, due) if due else None
    return Deadline(student, aid, due, *found) if found else None


def deadlines(course: Course, state: dict | None = None) -> list[Deadline]:
    """Every student's effective deadline per assignment that differs from the syllabus's (``--list``)."""
    state = load(course) if state is None else state
    students = sorted(set(state["extensions"]) | set(state["accommodations"]))
    out = []
    for a in course.assignments():
        for student in students:
            found = _effective_of(state, student, a.id, a.due) if a.due else None
            if found:
                out.append(Deadline(student, a.id, a.due, *found))
    return out


def extension_seconds(course: Course, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """The extension (seconds past the syllabus's due date) of these (assignment, student) pairs
    that have one here; what nbgrader's ``SubmittedAssignment.extension`` should hold."""
    state = load(course)
    dues = {a.id: a.due for a in course.assignments()}
    out = {}
    for aid, student in keys:
        due = dues.get(aid)
        found = _effective_of(state, student, aid, due) if due else None
        if found:
            out[(aid, student)] = (found[0] - due).total_seconds()
    return out


def known(course: Course, keys: Iterable[tuple[str, str]], state: dict | None = None) -> set[tuple[str, str]]:
    """The (assignment, student) pairs this file decides: the student has an accommodation, or an
    extension of that assignment (the others keep whatever the gradebook holds)."""
    state = load(course) if state is None else state
    return {(aid, s) for aid, s in keys if s in state["accommodations"] or aid in state["extensions"].get(s, {})}


# --------------------------------------------------------------------------- #
# Changing it: under a lock, the log line first, then the state
# --------------------------------------------------------------------------- #


@contextlib.contextmanager
def _locked(course: Course) -> Iterator[int]:
    """The log, opened for appending (never through a link) and locked: one change at a time."""
    fd = os.open(log_path(course), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _append(fd: int, entries: list[dict]) -> None:
    if entries:
        os.write(fd, "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in entries).encode())
        os.fsync(fd)


def _save(course: Course, state: dict) -> None:
    write_atomic(state_path(course), readable_json(state) + "\n", private=True)
    _to_course_owner(course)


def _to_course_owner(course: Course) -> None:
    """Run as root in an instructor's course folder (``sudo autograder ...``), the two files become
    the instructor's (still 0600), so that the instructor's own ``extend`` and grading read them."""
    if os.geteuid() != 0:
        return
    owner = course.root.stat()
    if owner.st_uid == 0:
        return
    for path in (state_path(course), log_path(course)):
        with contextlib.suppress(OSError):
            os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


def _changes(course: Course, before: dict, after: dict, action: str, now: str, by: str,
             students: Iterable[str], aids: Iterable[str] | None = None) -> list[dict]:
    """One log entry per (student, assignment with a due date) whose effective deadline changed."""
    out = []
    for a in course.assignments():
        if a.due is None or (aids is not None and a.id not in aids):
            continue
        for s in sorted(set(students)):
            old, new = _effective_of(before, s, a.id, a.due), _effective_of(after, s, a.id, a.due)
            old_t, new_t = iso(old[0] if old else a.due), iso(new[0] if new else a.due)
            if old_t != new_t:
                out.append({"at": now, "by": by, "action": action, "student": s, "assignment": a.id,
                            "old": old_t, "new": new_t, "reason": new[1] if new else "the syllabus's due date"})
    return out


def _commit(course: Course, change) -> list[dict]:
    """Apply ``change(state) -> (action, students, aids)`` under the lock; log, then save."""
    with _locked(course) as fd:
        before = load(course)
        after = json.loads(json.dumps(before))
        action, students, aids = change(after)
        now, by = iso(dt.datetime.now(dt.timezone.utc)), os_user()
        entries = _changes(course, before, after, action, now, by, students, aids)
        if after != before:
            _append(fd, entries or [{"at": now, "by": by, "action": action, "students": sorted(set(students)),
                                     "note": "no effective deadline changed"}])
            _save(course, after)
        return entries


def grant(course: Course, student: str, aid: str, days: float | None = None, until: dt.datetime | None = None,
          reason: str = "") -> list[dict]:
    """Give ``student`` an extension of ``aid``: ``days`` after the syllabus's due date, or ``until``
    a time. Checked first (nothing is written on an error); returns the log entries written."""
    a = course.assignment(aid)
    if a.due is None:
        raise CourseError(f"{aid} has no due date in the syllabus (nothing is late): there is nothing to extend")
    if (days is None) == (until is None):
        raise CourseError("give exactly one of --days N and --until TIME")
    if days is not None:
        entry: dict = {"days": check_days(days, "--days")}
    else:
        if until <= a.due:
            raise CourseError(f"--until {iso(until)} is not after {aid}'s due date {iso(a.due)}: "
                              "an extension cannot shorten a deadline")
        if until - a.due > MAX_DAYS * DAY:
            raise CourseError(f"--until {iso(until)} is more than {MAX_DAYS:g} days after {aid}'s due date")
        entry = {"until": iso(until)}
    entry["reason"] = " ".join(reason.split())[:300]
    entry["by"], entry["at"] = os_user(), iso(dt.datetime.now(dt.timezone.utc))

    def change(state: dict):
        state["extensions"].setdefault(student, {})[aid] = entry
        return "extend", [student], [aid]

    return _commit(course, change)


def clear(course: Course, student: str, aid: str) -> list[dict]:
    """Remove ``student``'s extension of ``aid`` (an accommodation stays); an error when there is none."""
    course.assignment(aid)
    if aid not in load(course)["extensions"].get(student, {}):
        raise CourseError(f"{student} has no extension of {aid} (see `autograder extend --list`)")

    def change(state: dict):
        del state["extensions"][student][aid]
        if not state["extensions"][student]:
            del state["extensions"][student]
        return "clear", [student], [aid]

    return _commit(course, change)


def set_accommodations(course: Course, extra_days: dict[str, float], source: str) -> list[dict]:
    """The roster's standing accommodations become these (student -> extra days; a student not in
    ``extra_days`` has none afterwards). Returns the log entries written."""
    for s, d in extra_days.items():
        check_days(d, f"extra_days of {s}")
    by, now = os_user(), iso(dt.datetime.now(dt.timezone.utc))

    def change(state: dict):
        old = state["accommodations"]
        new = {}
        for s, d in sorted(extra_days.items()):
            same = old.get(s, {}).get("extra_days") == d
            new[s] = old[s] if same else {"extra_days": d, "source": source, "by": by, "at": now}
        state["accommodations"] = new
        return "accommodation", set(old) | set(new), None

    return _commit(course, change)


# --------------------------------------------------------------------------- #
# nbgrader's gradebook: SubmittedAssignment.extension, and the late penalty that depends on it
# --------------------------------------------------------------------------- #


def apply_to_gradebook(course: Course, aids: Iterable[str] | None = None,
                       also: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Write the effective extensions into nbgrader's gradebook, for every submission it already
    holds of ``aids`` (default: all) that this file decides, and the pairs ``also`` ((assignment,
    student) just cleared: their extension is removed). The extension is the effective deadline
    minus the gradebook's due date of the assignment, so nbgrader's ``duedate`` is the effective
    deadline. A graded submission whose extension changed gets its late penalty computed again
    with the course's ``AssignLatePenalties.plugin_class``, as nbgrader's autograde does (the
    exported score changes with it). Returns the (assignment, student) pairs changed. A course
    without a gradebook yet has nothing to change (grading applies the extensions itself)."""
    from nbgrader.api import MissingEntry

    from autograder.store import gradebook as nbgrader_api

    if course.db_url.startswith("sqlite") and not Path(course.db_url.split(":///", 1)[-1].split("?", 1)[0]).exists():
        return []
    state, also = load(course), set(also)
    dues = {a.id: a.due for a in course.assignments()}
    wanted = set(dues) if aids is None else set(aids) & set(dues)
    changed = []
    plugin = None
    with nbgrader_api.gradebook(course) as gb:
        for aid in sorted(wanted):
            try:
                assignment = gb.find_assignment(aid)
            except MissingEntry:
                continue
            for sub in assignment.submissions:
                key = (aid, sub.student.id)
                if key not in also and not known(course, [key], state):
                    continue
                found = _effective_of(state, sub.student.id, aid, dues[aid]) if dues[aid] else None
                extension = None
                if found and assignment.duedate is not None:
                    seconds = (found[0] - assignment.duedate.replace(tzinfo=dt.timezone.utc)).total_seconds()
                    extension = dt.timedelta(seconds=seconds) if seconds > 0 else None
                if sub.extension == extension:
                    continue
                sub.extension = extension
                if plugin is None:
                    plugin = _late_plugin(course)
                _repenalise(sub, plugin)
                changed.append(key)
        gb.db.commit()
    return changed


def _late_plugin(course: Course):
    """The course's late-penalty plugin, built as nbgrader's AssignLatePenalties builds it."""
    from nbgrader.preprocessors import AssignLatePenalties

    pre = AssignLatePenalties(config=course.config())
    return pre.plugin_class(parent=pre)


def _repenalise(sub, plugin) -> None:
    """nbgrader's AssignLatePenalties.preprocess for every graded notebook of one submission."""
    late = sub.total_seconds_late
    for nb in sub.notebooks:
        if any(g.auto_score is None and g.manual_score is None for g in nb.grades):
            continue  # not graded yet: autograde will compute it
        nb.late_submission_penalty = None
        if late > 0:
            penalty = plugin.late_submission_penalty(sub.student.id, nb.score, late)
            if penalty is not None:
                nb.late_submission_penalty = min(max(0.0, penalty), nb.score)
