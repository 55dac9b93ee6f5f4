"""The worker's side of grading: the staged course a worker grades in, a job installed into it, and
what it holds once graded, as a ``Result``.

A worker grades with nbgrader's autograde and generate_feedback against a private copy of the
template gradebook inside a private staged course (:func:`staged`); the coordinator alone writes
the course (``autograder.store.results``).
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from autograder.course import Course, CourseError
from autograder.grading.bundle import TEMPLATE
from autograder.run.jobs import Bundle, Job, Result, where
from autograder.store import gradebook as store_gradebook
from autograder.store import outcomes

#: Bundles staged by this process: key -> the staged course folder. Inherited by forked workers.
_STAGED: dict[str, Path] = {}


#: The canary notebooks of the staged bundles: key -> {assignment: notebook}.
_CANARIES: dict[str, dict[str, bytes]] = {}


def canary_notebook(key: str, aid: str) -> bytes | None:
    """The reference solution of ``aid`` as a submission, from the staged bundle ``key``."""
    return _CANARIES.get(key, {}).get(aid)


def staged(bundle: Bundle) -> Path:
    """The private course folder of ``bundle`` in this process (written on first use)."""
    root = _STAGED.get(bundle.key)
    if root is not None and root.is_dir():
        return root
    base = Path(tempfile.mkdtemp(prefix=f"autograder-stage-{bundle.key}-"))  # 0700: the grader's only
    base.chmod(0o700)
    for rel, content in bundle.files.items():
        dest = (base / rel).resolve()
        if base.resolve() not in dest.parents:
            raise CourseError(f"the course bundle names a file outside its folder: {rel!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
    root = base / bundle.course
    (root / TEMPLATE).write_bytes(bundle.template)
    got = Course(root).source_dir.resolve()
    if got != (base / bundle.source).resolve():
        shutil.rmtree(base, ignore_errors=True)
        raise CourseError("to grade in worker processes, nbgrader_config.py must give source_directory relative "
                          f"to its own folder (as the course's does); it names {got}")
    for aid, seed, content in bundle.plans:
        _install_plan(Course(root), aid, seed, content)
    _STAGED[bundle.key] = root
    _CANARIES[bundle.key] = dict(bundle.canaries)
    if len(_STAGED) == 1:
        atexit.register(unstage_all)
    return root


def _install_plan(course: Course, aid: str, seed: int, content: bytes) -> None:
    """Put a plan file where this process's plan cache looks for it (unless one is there: the
    cache names a plan by the digest of its sources, so the one there is the same)."""
    from autograder.authoring import plan

    if not hasattr(plan, "plan_path"):  # a plan module that keeps plans in memory only
        return
    path = plan.plan_path(course, aid, seed)
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def unstage(key: str) -> None:
    """Remove this process's staged copy of a bundle (end of a batch)."""
    root = _STAGED.pop(key, None)
    _CANARIES.pop(key, None)
    if root is not None:
        shutil.rmtree(root.parent if root.parent.name.startswith("autograder-stage-") else root, ignore_errors=True)


def unstage_all() -> None:
    for key in list(_STAGED):
        unstage(key)


def install_job(root: Path, job: Job, db_url: str) -> None:
    """Write the job into the staged course: its submitted folder, its pending outcome, and
    the student (with any extension) in the private gradebook."""
    course = Course(root)
    clean_job(root, job)
    folder = root / "submitted" / job.student / job.assignment
    folder.mkdir(parents=True)
    for name, content in job.files.items():
        if "/" in name or name in ("", ".", ".."):
            raise CourseError(f"unexpected file name in a job: {name!r}")
        (folder / name).write_bytes(content)
    if job.pending:
        outcomes.write(course, job.assignment, job.student, job.pending)
    store_gradebook.add_student(db_url, course.course_id(), job.student, job.assignment, job.extension_s)


def clean_job(root: Path, job: Job) -> None:
    """Remove what grading the job left in the staged course."""
    for step in ("submitted", "autograded", "feedback"):
        shutil.rmtree(root / step / job.student / job.assignment, ignore_errors=True)
    outcomes.clear(Course(root), job.assignment, job.student)


def _files(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def collect_result(root: Path, job: Job, db_url: str, outcome: dict, zero: bool) -> Result:
    """What the staged course holds for the job once graded, as data."""
    entries = store_gradebook.submission_entries(db_url, Course(root).course_id(), job.assignment, job.student)
    return Result(job.assignment, job.student, outcome, zero,
                  _files(root / "autograded" / job.student / job.assignment),
                  _files(root / "feedback" / job.student / job.assignment) if not zero else {},
                  entries, where())
