"""Writing a worker's result into the course (coordinator only): the gradebook through nbgrader's API,
the autograded and feedback folders, then the outcome, so that no gradebook, outcome or feedback
folder is ever written from two places."""
from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path
from typing import Callable

from autograder.course import Course, CourseError
from autograder.run.jobs import Result
from autograder.store import outcomes
from autograder.store.gradebook import gradebook

def _replace_folder(folder: Path, files: dict[str, bytes]) -> None:
    """``folder`` holds exactly ``files`` afterwards (written next to it, then swapped in)."""
    if not files:
        shutil.rmtree(folder, ignore_errors=True)
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        for rel, content in files.items():
            dest = (tmp / rel).resolve()
            if tmp.resolve() not in dest.parents:
                raise CourseError(f"a worker returned a file outside its folder: {rel!r}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(content)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.old")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def write_gradebook(course: Course, result: Result) -> None:
    """The worker's gradebook entries for one submission, written into the course's gradebook.

    A grade keeps its manual score; it needs manual grading when the worker says so or when a
    grader already gave one (what nbgrader's SaveAutoGrades decides in place)."""
    entries = result.gradebook
    aid, student = result.assignment, result.student
    with gradebook(course) as gb:
        gb.update_or_create_student(student)
        ts = entries.get("timestamp")
        if ts:
            sub = gb.update_or_create_submission(aid, student, timestamp=dt.datetime.fromisoformat(ts))
        else:
            sub = gb.update_or_create_submission(aid, student)
        given = entries.get("notebooks", {})
        for nb in sub.notebooks:
            theirs = given.get(nb.name)
            if theirs is None:
                continue
            nb.late_submission_penalty = theirs.get("late_submission_penalty")
            for grade in nb.grades:
                if grade.name in theirs["grades"]:
                    auto, needs = theirs["grades"][grade.name]
                    if auto is not None and not 0 <= auto <= (grade.max_score or 0) + 1e-9:
                        raise CourseError(f"the worker gave {grade.name} {auto:g} points, outside 0..{grade.max_score or 0:g}")
                    grade.auto_score = auto
                    grade.needs_manual_grade = bool(needs) or grade.manual_score is not None
            for comment in nb.comments:
                if comment.name in theirs["comments"]:
                    comment.auto_comment = theirs["comments"][comment.name]
        gb.db.commit()


def apply_result(course: Course, result: Result, zero_scores: Callable[[Course, str, str], None]) -> dict:
    """Write one result into the course: gradebook, autograded and feedback folders, then the
    outcome (last: an outcome that says graded is only ever written after its scores and files).
    ``zero_scores(course, aid, student)`` sets a not-graded submission's scores to 0."""
    aid, student = result.assignment, result.student
    outcomes.clear(course, aid, student)
    try:
        if result.zero:
            zero_scores(course, aid, student)
        else:
            write_gradebook(course, result)
        if result.autograded:
            _replace_folder(course.step_dir("autograded", student, aid), result.autograded)
        _replace_folder(course.step_dir("feedback", student, aid), result.feedback)
        outcome = result.outcome
    except Exception as e:  # noqa: BLE001 - the submission still ends with an outcome
        try:
            zero_scores(course, aid, student)
        except Exception:  # noqa: BLE001 - the outcome below says it is not graded
            pass
        shutil.rmtree(course.step_dir("feedback", student, aid), ignore_errors=True)
        outcome = {**result.outcome, "status": outcomes.NOT_GRADED, "score": 0.0, "exercises": {},
                   "feedback": False, "reason": outcomes.clean_text(f"internal error: writing the result: {e}")[:300]}
    outcomes.write(course, aid, student, outcome)
    return outcome
