"""Grade a batch: collect, autograde (sandboxed, in parallel), feedback, outcomes.

Each (student, assignment) is graded by nbgrader's own autograde and
generate_feedback, configured with the sandboxed execution and trusted scoring
of this package. Work runs in worker processes; a failure is recorded as that
submission's outcome and never stops the batch. A submission already graded
with the same file and the same seed is skipped, so after a crash or Ctrl-C
the next run finishes the rest; ``force`` regrades everything (idempotent).
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from autograder import collect, nbgrader_api, outcomes
from autograder.course import Course, CourseError
from autograder.sandbox import UNSAFE_WARNING, SandboxUnavailable, bwrap_path
from autograder.settings import GradingSettings


@dataclass
class GradeOptions:
    workers: int = max(1, os.cpu_count() or 1)
    seed: int | None = None
    unsafe_no_sandbox: bool = False
    force: bool = False
    assignment: str | None = None


def _config(course: Course, opts: GradeOptions):
    settings = {"unsafe_no_sandbox": opts.unsafe_no_sandbox}
    if opts.seed is not None:
        settings["seed"] = opts.seed
    return nbgrader_api.course_config(course, GradingSettings=settings)


def grade_one(course_root: str, aid: str, student: str, opts: GradeOptions, digest: str) -> dict:
    """Autograde one submission and write its feedback (runs in a worker process)."""
    course = Course(Path(course_root))
    try:
        nb_api = nbgrader_api.api(course, _config(course, opts))
        result = nb_api.autograde(aid, student, force=True, create=True)
        if not result.get("success"):
            raise CourseError(nbgrader_api.failure_reason(result))
        result = nb_api.generate_feedback(aid, student, force=True)
        if not result.get("success"):
            raise CourseError("feedback: " + nbgrader_api.failure_reason(result))
        data = outcomes.read(course, aid, student) or {}
        if data.get("status") != outcomes.GRADED:
            raise CourseError("the scorer recorded no result")
        data["sha256"] = digest
        data["feedback"] = True
        outcomes._write(outcomes._path(course, aid, student), data)
        return data
    except Exception as e:  # one bad submission never stops the batch
        outcomes.record_not_graded(course, aid, student, f"internal error: {str(e)[:300]}")
        return outcomes.read(course, aid, student) or {}


def _record_missing(course: Course, sub: collect.Submission) -> None:
    """No gradable notebook: zero points in the gradebook, and the reason."""
    with nbgrader_api.gradebook(course) as gb:
        gb.update_or_create_student(sub.student)
        try:
            submission = gb.update_or_create_submission(sub.assignment, sub.student)
        except Exception as e:  # the assignment is not in the gradebook yet
            raise CourseError(f"{sub.assignment} is not in the gradebook: run `autograder release` first ({e})")
        for nb in submission.notebooks:
            for grade in nb.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()
    outcomes.record_not_graded(course, sub.assignment, sub.student, sub.problem or "no notebook")


def ensure_in_gradebook(course: Course, aids: set[str]) -> None:
    """nbgrader needs each assignment's cells in the gradebook before grading it.

    `autograder release` puts them there; on a fresh course (a new clone, a deleted
    gradebook) we do the same into a throw-away folder, leaving release/ alone. Each
    assignment's due date is then set from the syllabus (late penalties depend on it).
    """
    from nbgrader.api import MissingEntry

    from autograder.release import release

    missing = set()
    with nbgrader_api.gradebook(course) as gb:
        for aid in aids:
            try:
                if not gb.find_assignment(aid).notebooks:
                    missing.add(aid)
            except MissingEntry:
                missing.add(aid)
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            release(course, sorted(missing), release_dir=Path(tmp))
    nbgrader_api.set_due_dates(course, aids)


def grade(course: Course, path: Path, opts: GradeOptions) -> list[dict]:
    """Grade every submission under ``path`` (a folder or a zip). Returns the outcomes."""
    if opts.unsafe_no_sandbox:
        print(f"WARNING: {UNSAFE_WARNING}", file=sys.stderr)
    elif bwrap_path() is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so student code cannot be sandboxed. Install it "
            "(Debian/Ubuntu: apt-get install bubblewrap) or pass --unsafe-no-sandbox to grade without protection.")
    with tempfile.TemporaryDirectory() as unpack:
        root = collect.open_source(Path(path), Path(unpack), {a.id for a in course.assignments()})
        submissions, skipped = collect.discover(course, root, opts.assignment)
        for s in skipped:
            print(f"skipped {s}", file=sys.stderr)
        if not submissions:
            raise CourseError(f"no submissions found in {path} (expected <student>/<assignment>/<assignment>.ipynb)")
        ensure_in_gradebook(course, {s.assignment for s in submissions})
        with nbgrader_api.gradebook(course) as gb:  # once, before parallel workers race to create them
            for student in sorted({s.student for s in submissions}):
                gb.update_or_create_student(student)
        # One seed for the whole run, given explicitly to every worker.
        seed = GradingSettings(config=_config(course, opts)).resolved_seed(course)
        opts = dataclasses.replace(opts, seed=seed)
        todo: list[tuple[collect.Submission, str]] = []
        for sub in submissions:
            if not sub.gradable:
                _record_missing(course, sub)
                continue
            digest = collect.sha256(sub.notebook)
            collect.install(course, sub)
            previous = outcomes.read(course, sub.assignment, sub.student) or {}
            if (not opts.force and previous.get("status") == outcomes.GRADED and previous.get("feedback")
                    and previous.get("sha256") == digest and previous.get("seed") == seed):
                continue  # already graded, same file, same seed
            outcomes.clear(course, sub.assignment, sub.student)
            for note in sub.notes:
                outcomes.record_note(course, sub.assignment, sub.student, note)
            todo.append((sub, digest))
        _run(course, todo, opts)
    return [outcomes.read(course, s.assignment, s.student) or {} for s in submissions]


def _run(course: Course, todo: list, opts: GradeOptions) -> None:
    if not todo:
        return
    # Warm the reference and the cases once; forked workers inherit them.
    from autograder.plan import grading_plan

    for aid in {s.assignment for s, _ in todo}:
        grading_plan(course.root, aid, opts.seed)
    bar = tqdm(total=len(todo), desc="grading", unit="submission")
    if opts.workers <= 1:
        for sub, digest in todo:
            grade_one(str(course.root), sub.assignment, sub.student, opts, digest)
            bar.update()
        bar.close()
        return
    ctx = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(max_workers=opts.workers, mp_context=ctx) as pool:
        futures = [pool.submit(grade_one, str(course.root), s.assignment, s.student, opts, d) for s, d in todo]
        try:
            for _ in cf.as_completed(futures):
                bar.update()
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            raise
        finally:
            bar.close()
