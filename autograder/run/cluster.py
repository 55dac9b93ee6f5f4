"""Grading work as data: workers grade, the coordinating process alone writes.

A worker (a forked process of the local pool, or a Dask worker on any machine) gets:

* a :class:`Bundle` once per batch: the course's configuration files, the run's plan files
  (computed once by the coordinator), the assignments' source folders (their public data
  files go into each sandbox; the plan cache checks its digest against the source notebook
  and ``cases.py``) and a *template gradebook*, a small sqlite file holding only the
  assignments' cells, due dates and course id;
* a :class:`Job` per submission: the files of its ``submitted/<student>/<assignment>/``
  folder, the notes recorded while collecting, the run's settings (seed, sandbox).

It grades the submission with nbgrader's autograde and generate_feedback against a private
copy of the template gradebook inside a private staged course (:func:`staged`), and returns
a :class:`Result` as plain data: the outcome, the autograded and feedback folders' files,
and the gradebook entries nbgrader wrote. The coordinator then writes them into the course
(:func:`apply_result`) through nbgrader's Gradebook API, so no gradebook, outcome or
feedback folder is ever written from two places.

Dask (``distributed``) runs the work on a cluster (:class:`DaskPool`): ``autograder grade
--cluster tls://scheduler:8786`` or ``c.GradingSettings.cluster`` in nbgrader_config.py. Only
parties holding a certificate of the course's own authority (:func:`make_certificates`) reach a
tls:// scheduler (mutual TLS); a tcp:// address is refused unless marked insecure. A worker's
answer is only data for the job it was sent: it travels as plain data (msgpack: no pickle is
read from a worker), is checked (:func:`from_data`), and the job, never the answer, says whose
result it is.
A worker lost mid-batch has its tasks rescheduled on the others by Dask's scheduler (up to
``distributed.scheduler.allowed-failures`` times); a submission whose every attempt lost
its worker ends "not graded: ... run the same command again".
"""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import datetime as dt
import fnmatch
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from autograder.store import outcomes
from autograder.course import Course, CourseError

#: The only files of the course folder itself shipped to a worker (never the gradebook, the seed, a
#: roster or anything else an instructor keeps there).
_SHIPPED = ("nbgrader_config.py", "syllabus.toml")
#: Skipped inside the shipped source folders (besides the course's CourseDirectory.ignore).
_SKIP = (".ipynb_checkpoints", "__pycache__", "*.pyc")
#: Name of the template gradebook inside a staged course folder.
TEMPLATE = "_template_gradebook.db"
#: How long a Dask batch waits with no worker connected before its remaining work is "run again".
NO_WORKERS_S = 120


# --------------------------------------------------------------------------- #
# What travels: the bundle (once per batch), the job and the result (per submission).
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Bundle:
    """Everything a worker needs from the course, as bytes.

    files: ``{relative path: content}``, paths relative to the common folder of the course
           and its source directory (e.g. ``course/nbgrader_config.py``,
           ``source_notebooks/01_perceptron/cases.py``);
    course: the course folder's path relative to that common folder (e.g. ``course``);
    source: the source directory's relative path (e.g. ``source_notebooks``);
    template: the template gradebook (a sqlite file's bytes);
    key: a digest of all of it (names the staged copy on a worker);
    plans: the run's plan files, ``(assignment, seed, content)``: written where the staged
           course's plan cache looks for them (``autograder.authoring.plan.plan_path``);
    canaries: ``(assignment, notebook)``, the reference solution as a submission: every worker
           grades it before its first submission of that assignment (``grading.grade_checked``).
    """

    files: dict[str, bytes]
    course: str
    source: str
    template: bytes
    key: str
    plans: tuple[tuple[str, int, bytes], ...] = ()
    canaries: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Job:
    """One submission to grade.

    files: the submitted folder's files, ``{name: content}`` (the notebook, timestamp.txt);
    pending: the outcome file as the coordinator left it (notes found while collecting), or None;
    settings: ``c.GradingSettings`` values for this run (seed, unsafe_no_sandbox);
    extension_s: the student's extension for this assignment (seconds), from the gradebook.
    """

    assignment: str
    student: str
    files: dict[str, bytes]
    settings: dict[str, Any]
    digest: str = ""
    pending: dict | None = None
    extension_s: float | None = None


@dataclass
class Result:
    """What a worker sends back for one job.

    outcome: the outcome record (``outcomes`` format; status "graded" or "not graded");
    zero: the gradebook must hold 0 for every autograded cell (not graded);
    autograded, feedback: the files of ``autograded/<student>/<aid>/`` and
           ``feedback/<student>/<aid>/`` (relative path -> content; empty when none);
    gradebook: ``{"timestamp": ISO text or None, "notebooks": {notebook: {"late_submission_penalty":
           float | None, "grades": {cell: [auto_score, needs_manual_grade]}, "comments": {cell: text}}}}``;
    worker: where it ran (host and process id), for messages;
    refused: why that worker grades nothing of this assignment (its canary failed, or it runs
           several tasks at once): the job goes to another worker; "" when it was graded;
    address: the Dask worker's address when one refused (the coordinator sends it no more), as the
           scheduler knows it (never as the worker reports it; not part of :func:`result_data`).
    """

    assignment: str
    student: str
    outcome: dict
    zero: bool = True
    autograded: dict[str, bytes] = field(default_factory=dict)
    feedback: dict[str, bytes] = field(default_factory=dict)
    gradebook: dict = field(default_factory=dict)
    worker: str = ""
    refused: str = ""
    address: str = ""


def failed(job: Job, reason: str, events: list[str] | None = None) -> Result:
    """A result saying the job was not graded, and why (its gradebook scores become 0)."""
    notes = (job.pending or {}).get("notes", []) if (job.pending or {}).get("pending") else []
    outcome = {"assignment": job.assignment, "student": job.student, "status": outcomes.NOT_GRADED,
               "reason": outcomes.clean_text(reason), "events": [outcomes.clean_text(e) for e in events or []],
               "notes": notes, "time": outcomes._now(), "score": 0.0, "exercises": {}}
    return Result(job.assignment, job.student, outcome, zero=True, worker=_where())


def refused(job: Job, why: str) -> Result:
    """This worker grades nothing of ``job.assignment`` (``why``): the coordinator sends the job
    to another worker, and this one no more (on the local pool, it is a failed result)."""
    result = failed(job, f"not graded: the worker that took it cannot grade {job.assignment} ({why})")
    result.refused, result.address = why, dask_worker_address()
    return result


def dask_worker_address() -> str:
    """The address of the Dask worker running this task ("" outside one)."""
    if "distributed" not in sys.modules:  # not a Dask worker (and importing Dask would cost a second)
        return ""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


def dask_worker_threads() -> int:
    """How many tasks the Dask worker running this one runs at once (1 outside one)."""
    if "distributed" not in sys.modules:
        return 1
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return 1


def _where() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


# --------------------------------------------------------------------------- #
# A result as plain data: what a worker sends, and what the coordinator believes of it.
# --------------------------------------------------------------------------- #

#: Largest answer the coordinator reads from a worker (the autograded notebook and feedback page).
MAX_ANSWER_BYTES = 512 * 1024 * 1024


class MalformedAnswer(ValueError):
    """A worker's answer is not the plain data of a result."""


def result_data(result: Result) -> dict:
    """``result`` as plain data (str, bytes, numbers, lists, dicts): what a worker sends back. The
    assignment and student are not part of it: the coordinator knows which job it sent."""
    return {"outcome": result.outcome, "zero": bool(result.zero), "autograded": dict(result.autograded),
            "feedback": dict(result.feedback), "gradebook": result.gradebook, "worker": str(result.worker),
            "refused": str(result.refused)}


def remote(fn, bundle, job: Job) -> dict:
    """``fn(bundle, job)`` on a worker, its result returned as plain data (:func:`result_data`)."""
    return result_data(fn(bundle, job))


def _plain(x: Any, where: str, depth: int = 0) -> None:
    """``x`` is JSON data (no bytes, no object, finite numbers), or MalformedAnswer."""
    if depth > 32:
        raise MalformedAnswer(f"{where} is nested too deep")
    if x is None or isinstance(x, (bool, str, int)):
        return
    if isinstance(x, float):
        if not math.isfinite(x):
            raise MalformedAnswer(f"{where} holds a number that is not finite")
        return
    if isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _plain(v, f"{where}[{i}]", depth + 1)
        return
    if isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, str):
                raise MalformedAnswer(f"{where} has a key that is not text")
            _plain(v, f"{where}.{k}", depth + 1)
        return
    raise MalformedAnswer(f"{where} holds a {type(x).__name__}")


def _files_of(x: Any, where: str) -> dict[str, bytes]:
    if not isinstance(x, dict) or not all(isinstance(k, str) and isinstance(v, (bytes, bytearray))
                                          for k, v in x.items()):
        raise MalformedAnswer(f"{where} is not a set of files")
    return {k: bytes(v) for k, v in x.items()}


def _score(x: Any, where: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
        raise MalformedAnswer(f"{where} is not a score")
    return float(x)


def _entries(x: Any) -> dict:
    """The gradebook entries of an answer, checked (``Result.gradebook``'s shape)."""
    if x in ({}, None):
        return {}
    if not isinstance(x, dict) or set(x) - {"timestamp", "notebooks"}:
        raise MalformedAnswer("its gradebook entries are not a dict of timestamp and notebooks")
    ts = x.get("timestamp")
    if ts is not None:
        try:
            dt.datetime.fromisoformat(ts)
        except (TypeError, ValueError):
            raise MalformedAnswer("its timestamp is not a date") from None
    notebooks = x.get("notebooks", {})
    if not isinstance(notebooks, dict):
        raise MalformedAnswer("its notebooks are not a dict")
    out: dict[str, Any] = {"timestamp": ts, "notebooks": {}}
    for name, nb in notebooks.items():
        if not isinstance(name, str) or not isinstance(nb, dict) or not isinstance(nb.get("grades"), dict) \
                or not isinstance(nb.get("comments", {}), dict):
            raise MalformedAnswer(f"notebook {name!r} of its gradebook entries is malformed")
        grades = {}
        for cell, pair in nb["grades"].items():
            if not isinstance(cell, str) or not isinstance(pair, (list, tuple)) or len(pair) != 2 \
                    or not isinstance(pair[1], bool):
                raise MalformedAnswer(f"grade {cell!r} is not [score, needs manual grade]")
            grades[cell] = [_score(pair[0], f"grade {cell!r}"), pair[1]]
        comments = {}
        for cell, text in nb.get("comments", {}).items():
            if not isinstance(cell, str) or not (text is None or isinstance(text, str)):
                raise MalformedAnswer(f"comment {cell!r} is not text")
            comments[cell] = text
        out["notebooks"][name] = {"late_submission_penalty": _score(nb.get("late_submission_penalty"), "a penalty"),
                                  "grades": grades, "comments": comments}
    return out


def from_data(job: Job, data: Any) -> Result:
    """The result of ``job`` from a worker's answer ``data`` (:func:`result_data`), checked: plain
    data of the right shape, or MalformedAnswer. Whose result it is comes from the job the
    coordinator sent, never from the answer (an outcome naming someone else is re-labelled)."""
    if not isinstance(data, dict):
        raise MalformedAnswer(f"the answer is a {type(data).__name__}, not a dict")
    unknown = set(data) - {"outcome", "zero", "autograded", "feedback", "gradebook", "worker", "refused"}
    if unknown:
        raise MalformedAnswer(f"the answer has unknown fields {sorted(map(str, unknown))[:5]}")
    outcome = data.get("outcome")
    if not isinstance(outcome, dict):
        raise MalformedAnswer("its outcome is not a dict")
    _plain(outcome, "its outcome")
    if outcome.get("status") not in (outcomes.GRADED, outcomes.NOT_GRADED):
        raise MalformedAnswer("its outcome's status is neither graded nor not graded")
    zero = data.get("zero", True)
    if not isinstance(zero, bool) or zero != (outcome["status"] == outcomes.NOT_GRADED):
        raise MalformedAnswer("its scores do not agree with its status (graded: kept; not graded: 0)")
    if not zero:
        _score(outcome.get("score"), "its score")
    worker, refused_why = data.get("worker", ""), data.get("refused", "")
    if not isinstance(worker, str) or not isinstance(refused_why, str):
        raise MalformedAnswer("its worker or refusal is not text")
    outcome = {**outcome, "assignment": job.assignment, "student": job.student}
    return Result(job.assignment, job.student, outcome, zero, _files_of(data.get("autograded", {}), "autograded"),
                  _files_of(data.get("feedback", {}), "feedback"), _entries(data.get("gradebook", {})),
                  outcomes.clean_text(worker)[:200], refused_why)


def believed(job: Job, data: Any, where: str = "the grading worker") -> Result:
    """:func:`from_data`, or a not-graded result saying the answer was malformed."""
    try:
        return from_data(job, data)
    except MalformedAnswer as e:
        return failed(job, f"not graded: {where} sent an answer that is not a result ({e})")


# --------------------------------------------------------------------------- #
# Building the bundle (coordinator).
# --------------------------------------------------------------------------- #


def _skipped(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def _folder_files(folder: Path, ignore: Iterable[str]) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(_skipped(part, ignore) for part in rel.parts) or path.is_symlink() or not path.is_file():
            continue
        yield path


def build_bundle(course: Course, aids: list[str], template: Path, extra: Iterable[Path] = (),
                 plans: Iterable[tuple[str, int, bytes]] = (),
                 canaries: Iterable[tuple[str, bytes]] = ()) -> Bundle:
    """The course's configuration files, the source folders of ``aids``, the ``extra`` files of
    the course folder (e.g. the challenges' held-out sets), the run's plan files
    (``(assignment, seed, content)``), the canary notebooks and the template gradebook."""
    root, source = course.root.resolve(), course.source_dir.resolve()
    base = Path(os.path.commonpath([root, source]))
    files: dict[str, bytes] = {}
    for name in _SHIPPED:
        f = root / name
        if f.is_file() and not f.is_symlink():
            files[str(f.relative_to(base))] = f.read_bytes()
    for aid in aids:
        for f in _folder_files(source / aid, _SKIP):
            files[str(f.relative_to(base))] = f.read_bytes()
    for f in extra:
        f = f.resolve()
        if root not in f.parents:
            raise CourseError(f"{f} is not in the course folder {root}")
        files[str(f.relative_to(base))] = f.read_bytes()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    plans = tuple(plans)
    for aid, seed, content in plans:
        digest.update(f"{aid}\0{seed}\0".encode() + hashlib.sha256(content).digest())
    canaries = tuple(sorted(canaries))
    for aid, content in canaries:
        digest.update(f"canary\0{aid}\0".encode() + hashlib.sha256(content).digest())
    blob = template.read_bytes()
    digest.update(hashlib.sha256(blob).digest())
    return Bundle(files, str(root.relative_to(base)), str(source.relative_to(base)), blob, digest.hexdigest()[:16],
                  plans, canaries)


def template_gradebook(course: Course, aids: list[str], path: Path) -> None:
    """A sqlite gradebook at ``path`` with only what autograde needs of ``aids``: each
    assignment (due date, course id), its notebooks and their cells, copied from the course's
    gradebook through nbgrader's API."""
    import warnings

    from nbgrader.api import Gradebook

    from autograder.store import gradebook as nbgrader_api

    with nbgrader_api.gradebook(course) as src:
        course_id = course.config().CourseDirectory.get("course_id", "default_course")
        with Gradebook(f"sqlite:///{path}", course_id=course_id) as dst, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for aid in aids:
                a = src.find_assignment(aid)
                dst.update_or_create_assignment(aid, duedate=a.duedate)
                for nb in a.notebooks:
                    dst.update_or_create_notebook(nb.name, aid, kernelspec=nb.kernelspec)
                    for c in nb.grade_cells:
                        dst.update_or_create_grade_cell(c.name, nb.name, aid, max_score=c.max_score,
                                                        cell_type=c.cell_type)
                    for c in nb.solution_cells:
                        dst.update_or_create_solution_cell(c.name, nb.name, aid)
                    for c in nb.task_cells:
                        dst.update_or_create_task_cell(c.name, nb.name, aid, max_score=c.max_score,
                                                       cell_type=c.cell_type)
                    for c in nb.source_cells:
                        dst.update_or_create_source_cell(c.name, nb.name, aid, cell_type=c.cell_type,
                                                         locked=c.locked, source=c.source, checksum=c.checksum)


def extensions(course: Course, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """The extensions (seconds) the gradebook gives these (assignment, student) pairs, if any."""
    from nbgrader.api import MissingEntry

    from autograder.store import gradebook as nbgrader_api

    found = {}
    with nbgrader_api.gradebook(course) as gb:
        for aid, student in keys:
            try:
                ext = gb.find_submission(aid, student).extension
            except MissingEntry:
                continue
            if ext is not None and ext.total_seconds() > 0:
                found[(aid, student)] = ext.total_seconds()
    return found


def make_job(course: Course, aid: str, student: str, settings: dict[str, Any], digest: str,
             extension_s: float | None = None) -> Job:
    """The job of a submission installed in ``submitted/`` (its files and the notes recorded so far)."""
    folder = course.root / "submitted" / student / aid
    files = {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file() and not f.is_symlink()}
    return Job(aid, student, files, settings, digest, outcomes.read(course, aid, student), extension_s)


# --------------------------------------------------------------------------- #
# The staged course (worker).
# --------------------------------------------------------------------------- #

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
    from nbgrader.api import Gradebook

    course = Course(root)
    clean_job(root, job)
    folder = root / "submitted" / job.student / job.assignment
    folder.mkdir(parents=True)
    for name, content in job.files.items():
        if "/" in name or name in ("", ".", ".."):
            raise CourseError(f"unexpected file name in a job: {name!r}")
        (folder / name).write_bytes(content)
    if job.pending:
        outcomes._write(outcomes._path(course, job.assignment, job.student), job.pending)
    course_id = Course(root).config().CourseDirectory.get("course_id", "default_course")
    with Gradebook(db_url, course_id=course_id) as gb:
        gb.update_or_create_student(job.student)
        if job.extension_s:
            gb.update_or_create_submission(job.assignment, job.student,
                                           extension=dt.timedelta(seconds=job.extension_s))


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
    from nbgrader.api import Gradebook, MissingEntry

    entries: dict[str, Any] = {"timestamp": None, "notebooks": {}}
    course_id = Course(root).config().CourseDirectory.get("course_id", "default_course")
    with Gradebook(db_url, course_id=course_id) as gb:
        try:
            sub = gb.find_submission(job.assignment, job.student)
        except MissingEntry:
            sub = None
        if sub is not None:
            entries["timestamp"] = sub.timestamp.isoformat() if sub.timestamp else None
            for nb in sub.notebooks:
                entries["notebooks"][nb.name] = {
                    "late_submission_penalty": nb.late_submission_penalty,
                    "grades": {g.name: [g.auto_score, bool(g.needs_manual_grade)] for g in nb.grades},
                    "comments": {c.name: c.auto_comment for c in nb.comments}}
    return Result(job.assignment, job.student, outcome, zero,
                  _files(root / "autograded" / job.student / job.assignment),
                  _files(root / "feedback" / job.student / job.assignment) if not zero else {},
                  entries, _where())


# --------------------------------------------------------------------------- #
# Writing a result (coordinator only).
# --------------------------------------------------------------------------- #


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
    from autograder.store import gradebook as nbgrader_api

    entries = result.gradebook
    aid, student = result.assignment, result.student
    with nbgrader_api.gradebook(course) as gb:
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
            _replace_folder(course.root / "autograded" / student / aid, result.autograded)
        _replace_folder(course.root / "feedback" / student / aid, result.feedback)
        outcome = result.outcome
    except Exception as e:  # noqa: BLE001 - the submission still ends with an outcome
        try:
            zero_scores(course, aid, student)
        except Exception:  # noqa: BLE001 - the outcome below says it is not graded
            pass
        shutil.rmtree(course.root / "feedback" / student / aid, ignore_errors=True)
        outcome = {**result.outcome, "status": outcomes.NOT_GRADED, "score": 0.0, "exercises": {},
                   "feedback": False, "reason": outcomes.clean_text(f"internal error: writing the result: {e}")[:300]}
    outcomes._write(outcomes._path(course, aid, student), outcome)
    return outcome


# --------------------------------------------------------------------------- #
# Running jobs: the local process pool or a Dask cluster, behind one small interface.
# --------------------------------------------------------------------------- #


#: The files of a cluster's certificate folder (:func:`make_certificates`): role -> (certificate, key).
CERT_FILES = {"scheduler": ("scheduler.pem", "scheduler-key.pem"), "worker": ("worker.pem", "worker-key.pem"),
              "client": ("client.pem", "client-key.pem")}
INSECURE_WARNING = ("WARNING: grading on a Dask cluster without TLS ({address}): whoever reaches the scheduler can "
                    "join as a worker and read the batch (reference solutions, hidden inputs, expected outputs), "
                    "forge results or run code on the workers. Use only on a network where every machine and "
                    "user is trusted.")


def make_certificates(folder: Path, days: int = 365) -> list[Path]:
    """A new certificate authority for one course's cluster, and a certificate signed by it for each
    role (scheduler, worker, client), written to ``folder`` (new, 0700; every file 0600).

    The authority's private key is never written: nobody can sign another certificate, so the set is
    exactly what these files grant (to add a machine, copy it the worker's files; to revoke, make a
    new set). Dask does not tell roles apart: each key lets its holder join the cluster."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CourseError(f"{folder} exists and is not empty: give a new folder for the certificates")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"autograder cluster CA {uuid.uuid4().hex[:8]}")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))

    def private(name: str, data: bytes) -> Path:
        path = folder / name
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(data)
        return path

    written = [private("ca.pem", ca.public_bytes(serialization.Encoding.PEM))]
    for role, (cert_name, key_name) in CERT_FILES.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"autograder cluster {role}")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
                .sign(ca_key, hashes.SHA256()))
        written.append(private(cert_name, cert.public_bytes(serialization.Encoding.PEM)))
        written.append(private(key_name, key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption())))
    return written


def _scheduler_address(address: str) -> str:
    """The scheduler's address, read from a scheduler file if ``address`` is one."""
    if address.endswith(".json") and Path(address).is_file():
        try:
            found = json.loads(Path(address).read_text())["address"]
        except (OSError, ValueError, KeyError, TypeError):
            raise CourseError(f"{address} is not a Dask scheduler file (no address in it)") from None
        if not isinstance(found, str):
            raise CourseError(f"{address} is not a Dask scheduler file (no address in it)")
        return found
    return address


def cluster_security(address: str, certs: str = "", insecure: bool = False):
    """``(scheduler address, distributed.Security)`` to reach ``address``, or CourseError.

    A tls:// address: mutual TLS with the client certificate of ``certs`` (a folder made by
    :func:`make_certificates`) or, without it, Dask's own ``distributed.comm.tls`` settings; a key
    another user could read is refused. Any other address (tcp://, a bare host:port) authenticates
    nobody: refused unless ``insecure``."""
    from distributed.security import Security

    target = _scheduler_address(address)
    scheme = target.split("://", 1)[0].lower() if "://" in target else "tcp"
    if scheme != "tls":
        if not insecure:
            raise CourseError(
                f"refusing the cluster address {target}: without TLS, whoever reaches the scheduler can join as a "
                "worker and receive the batch (reference solutions, hidden inputs), forge results or run code. "
                "Use tls:// with the course's certificates (`autograder cluster-certs DIR`, then --cluster-certs DIR; "
                "README: Grading on a cluster), or pass --insecure-cluster if every machine and user that can "
                "reach it is trusted.")
        return target, Security()
    if certs:
        folder = Path(certs)
        cert, key = (folder / n for n in CERT_FILES["client"])
        files = {"tls_ca_file": folder / "ca.pem", "tls_client_cert": cert, "tls_client_key": key}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise CourseError(f"the cluster's certificate folder {folder} lacks {', '.join(missing)} "
                              "(make one with `autograder cluster-certs DIR`)")
        security = Security(**{k: str(v) for k, v in files.items()}, require_encryption=True)
    else:
        security = Security(require_encryption=True)  # distributed.comm.tls.{ca-file, client.cert, client.key}
        if not (security.tls_ca_file and security.tls_client_cert):
            raise CourseError(f"{target} needs the cluster's certificates: pass --cluster-certs DIR (a folder made "
                              "by `autograder cluster-certs DIR`) or set Dask's distributed.comm.tls.ca-file and "
                              "distributed.comm.tls.client.cert")
    key = security.tls_client_key or security.tls_client_cert
    if key and "-----BEGIN" not in key and Path(key).is_file() and Path(key).stat().st_mode & 0o077:
        raise CourseError(f"the cluster key {key} can be read by other users of this machine: chmod 600 it "
                          "(whoever reads it can join the cluster)")
    return target, security


def dask_client(address: str, certs: str = "", insecure: bool = False, warn: Callable[[str], None] | None = None):
    """A ``distributed.Client`` for ``address`` (tls://host:8786, or a scheduler file path), authenticated
    as :func:`cluster_security` says. It reads no pickle from the workers: task results must be plain
    data (msgpack); anything else raises when the result is fetched. ``warn`` is told when the
    connection is not authenticated."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a dependency of the project
        raise CourseError("--cluster needs Dask: pip install dask distributed") from None
    import logging

    target, security = cluster_security(address, certs, insecure)
    # A worker's answer that is not plain data is refused (and becomes that submission's outcome):
    # Dask's own report of the refusal, with the worker's text, is not for the terminal.
    logging.getLogger("distributed.protocol.core").setLevel(logging.CRITICAL + 1)
    if warn is not None and not target.lower().startswith("tls://"):
        warn(INSECURE_WARNING.format(address=target))
    try:
        return Client(target, timeout=15, security=security, deserializers=["msgpack"])
    except (OSError, TimeoutError, ValueError, TypeError) as e:  # ValueError: an address Dask cannot use here
        raise CourseError(f"cannot reach the Dask scheduler at {target}: {str(e).splitlines()[0][:200]}") from None


def check_workers(client) -> list[str]:
    """The cluster's worker addresses; each must run one task at a time (the grading of a
    submission kills the processes it started, so two at once in one process would collide)."""
    workers = client.scheduler_info().get("workers", {})
    if not workers:
        raise CourseError("the Dask cluster has no workers: start some with `dask worker ADDRESS --nthreads 1`")
    many = [a for a, w in workers.items() if w.get("nthreads", 1) != 1]
    if many:
        raise CourseError(f"Dask workers {', '.join(sorted(many))} run several tasks at once: start each with "
                          "`dask worker ADDRESS --nthreads 1` (use --nworkers N for N processes per machine)")
    return sorted(workers)


Lost = Callable[[Job, str], Result]


def _answer_in_a_file(fn, folder: str, key: str, job: Job) -> str:
    """``fn(key, job)`` in a pool worker; its result, as plain data (:func:`result_data`, in msgpack),
    goes to a new file of ``folder`` (0600, in a 0700 folder), whose path is returned.

    A result (the autograded notebook, the feedback page) is far larger than a pipe's buffer, and the
    pool's reader waits for a whole message: a worker killed half-way through sending it would hold
    the coordinator forever. A path is a few hundred bytes, written to the pipe at once (under
    PIPE_BUF); the file appears whole or not at all (written aside, then renamed)."""
    import msgpack

    data = result_data(fn(key, job))
    fd, part = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(msgpack.packb(data, use_bin_type=True))
    path = part[: -len(".part")] + ".result"
    os.replace(part, path)
    return path


def _read_answer(job: Job, path: str) -> Result:
    """The result of ``job`` that :func:`_answer_in_a_file` left at ``path`` (the file is removed)."""
    import msgpack

    try:
        with open(path, "rb") as f:
            blob = f.read(MAX_ANSWER_BYTES + 1)
    finally:
        os.unlink(path)
    try:
        data = msgpack.unpackb(blob, raw=False, max_bin_len=MAX_ANSWER_BYTES, max_str_len=MAX_ANSWER_BYTES)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: that submission's outcome
        data = f"unreadable ({type(e).__name__})"
    return believed(job, data, "the grading process")


class LocalPool:
    """Jobs in forked worker processes of this machine (or in this process with one worker).

    The bundle is staged here first (:func:`staged`): forked workers inherit the staged folder
    and the plans computed for it, and get only the bundle's key. At most ``2 * workers`` jobs
    are in flight (the coordinator's memory does not grow with the batch). A worker that dies
    breaks the pool: the jobs in flight come back from ``lost``, the rest go on in a new pool.
    Workers hand back each result as a file of a private folder (:func:`_answer_in_a_file`)."""

    def __init__(self, workers: int, bundle: Bundle):
        self.workers = max(1, workers)
        self.key = bundle.key
        self.root = staged(bundle)
        self.canaries = dict(bundle.canaries)
        self.answers = tempfile.mkdtemp(prefix="autograder-answers-")
        os.chmod(self.answers, 0o700)  # the results, this user's only

    def close(self) -> None:
        unstage(self.key)
        shutil.rmtree(self.answers, ignore_errors=True)

    def _submit(self, pool: cf.ProcessPoolExecutor, fn, job: Job) -> cf.Future:
        return pool.submit(_answer_in_a_file, fn, self.answers, self.key, job)

    def _pool(self, workers: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))

    def on_each_worker(self, fn, job: Job) -> dict[str, Result]:
        """``fn(key, job)`` in a fresh worker process (the coordinator never hosts a kernel)."""
        with self._pool(1) as pool:
            return {"this machine": _read_answer(job, self._submit(pool, fn, job).result())}

    def results(self, fn, jobs: Iterable[Job], lost: Lost) -> Iterator[tuple[Job, Result]]:
        from concurrent.futures.process import BrokenProcessPool

        jobs = iter(jobs)
        if self.workers == 1:
            for job in jobs:
                yield job, believed(job, result_data(fn(self.key, job)))
            return
        pool = self._pool(self.workers)
        inflight: dict[cf.Future, Job] = {}
        again: list[Job] = []  # taken from ``jobs`` but not accepted by a pool that broke meanwhile
        try:
            while True:
                broken = False
                while len(inflight) < 2 * self.workers:
                    job = again.pop() if again else next(jobs, None)
                    if job is None:
                        break
                    try:
                        inflight[self._submit(pool, fn, job)] = job
                    except BrokenProcessPool:  # a worker died while this process was writing a result
                        again.append(job)
                        broken = True
                        break
                if not inflight and not broken:
                    return
                if not broken:
                    done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                    for future in done:
                        job = inflight.pop(future)
                        try:
                            yield job, _read_answer(job, future.result())
                        except BrokenProcessPool:
                            broken = True
                            yield job, lost(job, "worker died")
                        except Exception as e:  # noqa: BLE001 - the worker function returns its own failures
                            yield job, failed(job, f"internal error: {str(e)[:300]}")
                if broken:  # every job still in this pool is lost with it; the rest go to a new one
                    for future, job in list(inflight.items()):
                        cf.wait([future])
                        if future.exception() is None:
                            yield job, _read_answer(job, future.result())
                        else:
                            yield job, lost(job, "worker died")
                    inflight.clear()
                    pool.shutdown(wait=True)
                    pool = self._pool(self.workers)
        finally:
            for future in inflight:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def probe(address: str, certs: str = "", insecure: bool = False,
          warn: Callable[[str], None] | None = None) -> list[str]:
    """Connect to the scheduler at ``address`` and check its workers (``check_workers``)."""
    client = dask_client(address, certs, insecure, warn)
    try:
        return check_workers(client)
    finally:
        client.close()


#: How often a job refused by a worker the scheduler cannot name (it left meanwhile) is sent again.
MAX_UNNAMED_REFUSALS = 3

class DaskPool:
    """Jobs on a Dask cluster: the bundle scattered once to every worker, one task per job.

    ``results(fn, jobs)`` yields ``(job, Result)`` in completion order; a job whose task lost
    its worker too often (``KilledWorker``) or found no worker for ``NO_WORKERS_S`` seconds
    yields a :func:`failed` result saying to run again (``lost`` tells them apart). A worker
    that refuses a job (:func:`refused`: its canary failed, or it runs several tasks at once;
    workers that join after the start check themselves on their first job) gets no more jobs,
    is named once through ``warn``, and its job goes to another worker."""

    def __init__(self, address: str, bundle: Bundle, warn: Callable[[str], None] | None = None,
                 certs: str = "", insecure: bool = False):
        self.client = dask_client(address, certs, insecure)
        self.address = address
        try:
            self.workers = check_workers(self.client)
            self.bundle = self.client.scatter(bundle, broadcast=True, hash=False)
        except BaseException:
            self.client.close()
            raise
        self.key = bundle.key
        self.canaries = dict(bundle.canaries)
        self.refusing: dict[str, str] = {}  # worker address -> why it grades nothing
        self.warn = warn or (lambda text: print(text, file=sys.stderr))

    def close(self) -> None:
        try:
            self.client.run(unstage, self.key)
        except Exception:  # noqa: BLE001 - a worker gone already: its temporary folder went with it
            pass
        self.client.close()

    def on_each_worker(self, fn, job: Job) -> dict[str, Result]:
        """``fn(bundle, job)`` once on every worker (the canary)."""
        futures = {w: self.client.submit(remote, fn, self.bundle, job, workers=[w], allow_other_workers=False,
                                         pure=False, key=f"canary-{job.assignment}-{uuid.uuid4().hex}")
                   for w in self.workers}
        results = {}
        for w, f in futures.items():
            try:
                results[w] = believed(job, f.result(), f"the Dask worker {w}")
            except TypeError as e:  # not plain data (msgpack): never unpickled here
                results[w] = failed(job, f"the worker's answer is not plain data ({str(e)[:120]})")
            except Exception as e:  # noqa: BLE001 - the worker died (the function returns its own failures)
                results[w] = failed(job, f"the worker was lost while grading it ({type(e).__name__})")
        return results

    def _grading_workers(self) -> list[str]:
        """The workers that may take a job now: those connected, less those that refused."""
        return sorted(w for w in self.client.scheduler_info().get("workers", {}) if w not in self.refusing)

    def _submit(self, fn, job: Job):
        """A future for ``job``, kept off the refusing workers; None when no worker is left."""
        kw: dict[str, Any] = {}
        if self.refusing:
            allowed = self._grading_workers()
            if not allowed:
                return None
            kw = {"workers": allowed, "allow_other_workers": False}
        return self.client.submit(remote, fn, self.bundle, job, pure=False,
                                  key=f"grade-{job.assignment}-{uuid.uuid4().hex}", **kw)

    def _ran_on(self, future) -> str:
        """The worker that holds ``future``'s result, as the scheduler knows it (never as it says itself)."""
        try:
            held = self.client.who_has([future]).get(future.key, ())
        except Exception:  # noqa: BLE001 - gone meanwhile
            return ""
        return held[0] if len(held) == 1 else ""

    def results(self, fn, jobs: Iterable[Job], lost: Lost) -> Iterator[tuple[Job, Result]]:
        from distributed import wait
        from distributed.client import FutureCancelledError, FuturesCancelledError
        from distributed.scheduler import KilledWorker

        jobs = iter(jobs)
        again: list[Job] = []  # refused by a worker: to be sent to another
        refusals: dict[tuple[str, str], int] = {}
        inflight: dict[Any, Job] = {}
        alone_since = None
        try:
            while True:
                window = 2 * max(1, len(self._grading_workers()))
                while len(inflight) < window:
                    job = again.pop() if again else next(jobs, None)
                    if job is None:
                        break
                    future = self._submit(fn, job)
                    if future is None:
                        yield job, lost(job, "no worker can grade it")
                        continue
                    inflight[future] = job
                if not inflight:
                    return
                try:
                    wait(list(inflight), timeout=5, return_when="FIRST_COMPLETED")
                except (TimeoutError, FuturesCancelledError):  # each future is looked at below
                    pass
                done = [f for f in inflight if f.done()]
                for future in done:
                    job = inflight.pop(future)
                    try:
                        data = future.result()
                    except (KilledWorker, FutureCancelledError, cf.CancelledError) as e:
                        yield job, lost(job, type(e).__name__)
                        continue
                    except TypeError as e:  # pickled, not plain data: refused by the client, never unpickled
                        yield job, failed(job, "not graded: the grading worker's answer is not plain data "
                                               f"({outcomes.clean_text(str(e))[:200]})")
                        continue
                    except Exception as e:  # noqa: BLE001 - the worker function returns its own failures
                        yield job, failed(job, f"internal error: {str(e)[:300]}")
                        continue
                    result = believed(job, data)
                    result.address = self._ran_on(future) if result.refused else ""
                    if result.refused:
                        # a refusal is never the submission's outcome: the job goes to another worker.
                        # The scheduler may no longer name the worker (it left meanwhile): then the job
                        # is still sent again, a bounded number of times.
                        if result.address and result.address not in self.refusing:
                            self.refusing[result.address] = result.refused
                            self.warn(f"the Dask worker {result.address} grades nothing more in this run: "
                                      f"{outcomes.clean_text(result.refused)[:300]}")
                        key = (job.assignment, job.student)
                        refusals[key] = refusals.get(key, 0) + 1
                        if result.address or refusals[key] <= MAX_UNNAMED_REFUSALS:
                            again.append(job)
                        else:
                            yield job, lost(job, "refused by workers the scheduler could not name")
                        continue
                    yield job, result
                if done or self._grading_workers():
                    alone_since = None
                    continue
                alone_since = alone_since or time.monotonic()
                if time.monotonic() - alone_since > NO_WORKERS_S:  # nobody left to grade: say so, stop
                    for future, job in list(inflight.items()):
                        future.cancel()
                        yield job, lost(job, "no worker left")
                    inflight.clear()
                    for job in [*again, *jobs]:
                        yield job, lost(job, "no worker left")
                    again.clear()
        finally:
            for future in inflight:
                future.cancel()
