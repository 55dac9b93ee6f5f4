"""The worker's side of grading: the staged course a worker grades in, a job installed into it, and
what it holds once graded, as a ``Result``.

A worker grades with nbgrader's autograde and generate_feedback against a private copy of the
template gradebook inside a private staged course (:func:`staged`); the coordinator alone writes
the course (``autograder.store.results``).
"""
from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import tempfile
from pathlib import Path

from autograder.config import SandboxPolicy
from autograder.course import STEPS, Course, CourseError
from autograder.files import write_atomic
from autograder.grading.answers import failed
from autograder.grading.bundle import TEMPLATE
from autograder.run.jobs import Bundle, Job, Result, where
from autograder.sandbox import processes, warm
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

    path = plan.plan_path(course, aid, seed)
    if path.is_file():
        return
    write_atomic(path, content, private=True)


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
    folder = Course(root).step_dir("submitted", job.student, job.assignment)
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
    course = Course(root)
    for step in STEPS:
        shutil.rmtree(course.step_dir(step, job.student, job.assignment), ignore_errors=True)
    outcomes.clear(course, job.assignment, job.student)


def _files(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def collect_result(root: Path, job: Job, db_url: str, outcome: dict, zero: bool) -> Result:
    """What the staged course holds for the job once graded, as data."""
    entries = store_gradebook.submission_entries(db_url, Course(root).course_id(), job.assignment, job.student)
    return Result(job.assignment, job.student, outcome, zero,
                  _files(Course(root).step_dir("autograded", job.student, job.assignment)),
                  _files(Course(root).step_dir("feedback", job.student, job.assignment)) if not zero else {},
                  entries, where())


# -- grading one job ------------------------------------------------------------------------------


class _FeedbackTooSlow(BaseException):
    """Raised in the thread rendering feedback when its time is up (a BaseException, so that the
    renderer's own ``except Exception`` clauses do not swallow it)."""


@contextlib.contextmanager
def _time_limit(seconds: float, fired: dict | None = None):
    """Raise _FeedbackTooSlow in this thread after ``seconds`` (and set ``fired["fired"]``).

    In a process's main thread (a local pool's worker) by SIGALRM; in any other thread (a Dask
    worker's) by an asynchronous exception (``PyThreadState_SetAsyncExc``, the C API's way to raise
    in another thread). Both are delivered between two bytecodes, so both stop Python code (as
    nbconvert's rendering is) and neither interrupts one long call into C. An asynchronous
    exception is never cleared once set (clearing one leaves the interpreter's "pending" flag
    raised, which hangs later profiled code on Python 3.11): one that fires as the block ends is
    delivered and caught here."""
    import threading

    if threading.current_thread() is threading.main_thread():
        def expire(signum, frame):
            if fired is not None:
                fired["fired"] = True
            raise _FeedbackTooSlow()

        old = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        return
    import ctypes

    target, lock = ctypes.c_ulong(threading.get_ident()), threading.Lock()
    state = {"done": False, "fired": False}

    def expire() -> None:
        with lock:
            if not state["done"]:
                state["fired"] = True
                if fired is not None:
                    fired["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(_FeedbackTooSlow))

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
        if state["fired"]:  # set as the block ended: let it arrive here (at the loop's first jump)
            try:
                for _ in range(100_000):
                    pass
            except _FeedbackTooSlow:
                pass


def grade_job(bundle: Bundle, job: Job) -> Result:
    """Autograde one submission and render its feedback; return all of it as data.

    Runs in a worker (a forked process, or a Dask worker): in this process's staged copy of the
    course (``bundle``, or the key of a bundle staged before the fork), against a private copy
    of the template gradebook. Nothing of the course itself is written here. Whatever happens,
    the result has an outcome, and every process the grading started is gone when this returns."""
    root = staged(bundle)
    course = Course(root)
    aid, student = job.assignment, job.student
    processes.become_subreaper()
    before = processes.descendants()
    private = Path(tempfile.mkdtemp(prefix="autograder-gradebook-"))
    url = f"sqlite:///{private / 'gradebook.db'}"
    try:
        shutil.copyfile(root / TEMPLATE, private / "gradebook.db")
        install_job(root, job, url)
        config = store_gradebook.course_config(course, GradingSettings=job.settings, CourseDirectory={"db_url": url})
        nb_api = store_gradebook.api(course, config)
        result = nb_api.autograde(aid, student, force=True, create=True)
        if not result.get("success"):
            raise CourseError(store_gradebook.failure_reason(result))
        data = outcomes.read(course, aid, student) or {}
        if data.get("status") == outcomes.NOT_GRADED:  # e.g. an environment error, found by the scorer
            return collect_result(root, job, url, data, zero=True)
        if data.get("status") != outcomes.GRADED:
            raise CourseError("the scorer recorded no result")
        from autograder.pipeline import templates

        templates.install()  # the feedback page's templates are compiled once per worker
        feedback_seconds = SandboxPolicy(config=config).feedback_seconds
        fired: dict = {"fired": False}
        try:
            with _time_limit(feedback_seconds, fired):
                result = nb_api.generate_feedback(aid, student, force=True)
        except _FeedbackTooSlow:
            fired["fired"] = True
        if fired["fired"]:  # nbgrader may have caught it (its API catches everything): the timer says
            # The scores are in and stand; only the page is missing (a rerun makes it again).
            shutil.rmtree(course.step_dir("feedback", student, aid), ignore_errors=True)
            slow = f"feedback page not made: rendering it took more than {feedback_seconds} s"
            data["events"] = [*data.get("events", []), slow]
            data["reason"] = "; ".join(data["events"])
            data["sha256"] = job.digest
            data["feedback"] = False
            return collect_result(root, job, url, data, zero=False)
        if not result.get("success"):
            raise CourseError("feedback: " + store_gradebook.failure_reason(result))
        from autograder.pipeline.sanitize import harden_feedback_html

        harden_feedback_html(course.step_dir("feedback", student, aid) / f"{aid}.html")
        data["sha256"] = job.digest
        data["feedback"] = True
        return collect_result(root, job, url, data, zero=False)
    except Exception as e:  # one bad submission never stops the batch; its old points never remain
        return failed(job, f"internal error: {str(e)[:300]}")
    finally:
        processes.kill_new_descendants(before, keep=warm.kept_pids())  # the template serves the next one
        clean_job(root, job)
        shutil.rmtree(private, ignore_errors=True)
