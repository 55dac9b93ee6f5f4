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
--cluster tcp://scheduler:8786`` or ``c.GradingSettings.cluster`` in nbgrader_config.py.
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

from autograder import outcomes
from autograder.course import Course, CourseError

#: Files of the course folder that are runtime state, never shipped to a worker.
_STATE = ("gradebook.db*", ".grading_seed", ".*")
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
           course's plan cache looks for them (``autograder.plan.plan_path``);
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
    address: the Dask worker's address when one refused (the coordinator sends it no more).
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
    for f in sorted(root.iterdir()):
        if f.is_file() and not f.is_symlink() and not _skipped(f.name, _STATE):
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

    from autograder import nbgrader_api

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

    from autograder import nbgrader_api

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
    base = Path(tempfile.mkdtemp(prefix=f"autograder-stage-{bundle.key}-"))
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
    from autograder import plan

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
    from autograder import nbgrader_api

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


def dask_client(address: str):
    """A ``distributed.Client`` for ``address`` (tcp://host:8786, or a scheduler file path)."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a dependency of the project
        raise CourseError("--cluster needs Dask: pip install dask distributed") from None
    try:
        if address.endswith(".json") and Path(address).is_file():
            return Client(scheduler_file=address, timeout=15)
        return Client(address, timeout=15)
    except (OSError, TimeoutError, ValueError) as e:  # ValueError: an address Dask cannot use here
        raise CourseError(f"cannot reach the Dask scheduler at {address}: {str(e).splitlines()[0][:200]}") from None


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
    """``fn(key, job)`` in a pool worker; its result goes to a new file of ``folder``, whose path is returned.

    A result (the autograded notebook, the feedback page) is far larger than a pipe's buffer, and the
    pool's reader waits for a whole message: a worker killed half-way through sending it would hold
    the coordinator forever. A path is a few hundred bytes, written to the pipe at once (under
    PIPE_BUF); the file appears whole or not at all (written aside, then renamed)."""
    import pickle

    result = fn(key, job)
    fd, part = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
    path = part[: -len(".part")] + ".result"
    os.replace(part, path)
    return path


def _read_answer(path: str):
    """The result :func:`_answer_in_a_file` left at ``path`` (the file is removed)."""
    import pickle

    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    finally:
        os.unlink(path)


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
        self.answers = tempfile.mkdtemp(prefix="autograder-answers-")  # mode 0700: this user's only

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
            return {"this machine": _read_answer(self._submit(pool, fn, job).result())}

    def results(self, fn, jobs: Iterable[Job], lost: Lost) -> Iterator[tuple[Job, Result]]:
        from concurrent.futures.process import BrokenProcessPool

        jobs = iter(jobs)
        if self.workers == 1:
            for job in jobs:
                yield job, fn(self.key, job)
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
                            yield job, _read_answer(future.result())
                        except BrokenProcessPool:
                            broken = True
                            yield job, lost(job, "worker died")
                        except Exception as e:  # noqa: BLE001 - the worker function returns its own failures
                            yield job, failed(job, f"internal error: {str(e)[:300]}")
                if broken:  # every job still in this pool is lost with it; the rest go to a new one
                    for future, job in list(inflight.items()):
                        cf.wait([future])
                        if future.exception() is None:
                            yield job, _read_answer(future.result())
                        else:
                            yield job, lost(job, "worker died")
                    inflight.clear()
                    pool.shutdown(wait=True)
                    pool = self._pool(self.workers)
        finally:
            for future in inflight:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def probe(address: str) -> list[str]:
    """Connect to the scheduler at ``address`` and check its workers (``check_workers``)."""
    client = dask_client(address)
    try:
        return check_workers(client)
    finally:
        client.close()


class DaskPool:
    """Jobs on a Dask cluster: the bundle scattered once to every worker, one task per job.

    ``results(fn, jobs)`` yields ``(job, Result)`` in completion order; a job whose task lost
    its worker too often (``KilledWorker``) or found no worker for ``NO_WORKERS_S`` seconds
    yields a :func:`failed` result saying to run again (``lost`` tells them apart). A worker
    that refuses a job (:func:`refused`: its canary failed, or it runs several tasks at once;
    workers that join after the start check themselves on their first job) gets no more jobs,
    is named once through ``warn``, and its job goes to another worker."""

    def __init__(self, address: str, bundle: Bundle, warn: Callable[[str], None] | None = None):
        self.client = dask_client(address)
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
        futures = {w: self.client.submit(fn, self.bundle, job, workers=[w], allow_other_workers=False,
                                         pure=False, key=f"canary-{job.assignment}-{uuid.uuid4().hex}")
                   for w in self.workers}
        results = {}
        for w, f in futures.items():
            try:
                results[w] = f.result()
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
        return self.client.submit(fn, self.bundle, job, pure=False, key=f"grade-{job.assignment}-{uuid.uuid4().hex}",
                                  **kw)

    def results(self, fn, jobs: Iterable[Job], lost: Lost) -> Iterator[tuple[Job, Result]]:
        from distributed import wait
        from distributed.client import FutureCancelledError, FuturesCancelledError
        from distributed.scheduler import KilledWorker

        jobs = iter(jobs)
        again: list[Job] = []  # refused by a worker: to be sent to another
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
                        result = future.result()
                    except (KilledWorker, FutureCancelledError, cf.CancelledError) as e:
                        yield job, lost(job, type(e).__name__)
                        continue
                    except Exception as e:  # noqa: BLE001 - the worker function returns its own failures
                        yield job, failed(job, f"internal error: {str(e)[:300]}")
                        continue
                    if result.refused and result.address:
                        if result.address not in self.refusing:
                            self.refusing[result.address] = result.refused
                            self.warn(f"the Dask worker {result.address} grades nothing more in this run: "
                                      f"{outcomes.clean_text(result.refused)[:300]}")
                        again.append(job)
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
