"""The canary: the reference solution graded as a submission, in the same sandbox, before a batch (and
by a worker before its first job of an assignment). A host or worker that cannot grade it full marks
grades nothing of that assignment."""
from __future__ import annotations

from autograder.course import Course, CourseError
from autograder.grading import worker
from autograder.grading.answers import refused
from autograder.grading.worker import grade_job
from autograder.run.jobs import Bundle, Job, Result, dask_worker_threads
from autograder.store import outcomes

#: The student id under which the reference solution is graded as a canary (never a valid
#: collected id: those start with a letter or a digit). Removed from the gradebook afterwards.
CANARY = "_reference_canary"


class HostBroken(CourseError):
    """The reference solution does not score full marks here: grading would be wrong for everyone."""


def reference_submission(course: Course, aid: str):
    """The released notebook with every solution cell filled in from the source notebook."""
    import nbformat

    source = nbformat.read(course.source_notebook(aid), as_version=4)
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(course.release_dir / aid / f"{aid}.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in solutions:
            cell.source = solutions[gid]
    return nb


def _first_setup_error(result: Result, aid: str) -> str | None:
    """The first error output in the canary's autograded notebook, if any."""
    import nbformat

    try:
        nb = nbformat.reads(result.autograded[f"{aid}.ipynb"].decode(), as_version=4)
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename')}: {outcomes.clean_text(out.get('evalue'))[:160]}"
    return None


def canary_problem(course: Course, result: Result) -> str | None:
    """Why the canary's ``result`` shows that its worker cannot grade (None: full marks)."""
    aid = result.assignment
    expected = course.assignment(aid).points
    data = result.outcome
    score = data.get("score") if data.get("status") == outcomes.GRADED else None
    if score is not None and abs(float(score) - expected) <= 1e-9:
        return None
    cause = data.get("reason", "")
    if data.get("status") == outcomes.GRADED:
        failing = []
        for n, e in data.get("exercises", {}).items():
            got, worth = float(e.get("points") or 0), float(e.get("max_points") or 0)
            if got >= worth - 1e-9:
                continue
            # the first failing case's message; a challenge's partial points may have none
            said = [c["message"] for c in e.get("cases", []) if not c.get("ok") and c.get("message")]
            failing.append(f"{n}: {said[0] if said else f'{got:g} of {worth:g} points'}")
        cause = "; ".join([*data.get("events", []), *failing[:2]]) or "no exercise passed"
    setup = _first_setup_error(result, aid)
    if setup:
        cause = f"the setup cell failed: {setup}"
    got = f"scored {score:g}/{expected:g}" if score is not None else "was not graded"
    return f"the reference solution {got} in the sandbox ({outcomes.clean_text(cause)[:300]})"


#: In a worker: (bundle key, assignment, seed, unsafe) -> why this process cannot grade that
#: assignment (None: its canary scored full marks). Forked workers inherit the coordinator's.
_CHECKED: dict[tuple, str | None] = {}


def _check_key(key: str, job: Job) -> tuple:
    """What a canary's verdict is remembered under: the bundle's key, the assignment and the settings."""
    return key, job.assignment, job.settings.get("seed"), bool(job.settings.get("unsafe_no_sandbox"))


def canary_job(aid: str, notebook: bytes, settings: dict) -> Job:
    return Job(aid, CANARY, {f"{aid}.ipynb": notebook}, settings, "canary")


def run_canary(bundle: Bundle, job: Job) -> Result:
    """Grade the canary ``job`` here and remember whether this worker can grade its assignment."""
    result = grade_job(bundle, job)
    root = worker.staged(bundle)
    _CHECKED[_check_key(bundle.key, job)] = canary_problem(Course(root), result)
    return result


def grade_checked(bundle: Bundle, job: Job) -> Result:
    """``grade_job``, in a worker that has graded the reference solution of the job's assignment
    full marks: a worker that joined a cluster after the batch's canaries grades it first (once
    per assignment); one whose canary failed, or that runs several tasks at once, refuses."""
    threads = dask_worker_threads()
    if threads != 1:
        return refused(job, f"it runs {threads} tasks at once; start it with --nthreads 1")
    key = _check_key(bundle.key, job)
    if key not in _CHECKED:
        worker.staged(bundle)
        notebook = worker.canary_notebook(key[0], job.assignment)
        if notebook is None:
            return refused(job, "the batch sent it no canary")
        run_canary(bundle, canary_job(job.assignment, notebook, job.settings))
    if _CHECKED[key]:
        return refused(job, _CHECKED[key])
    return grade_job(bundle, job)


def passed(key: str, job: Job) -> None:
    """Remember that this process's canary of ``job``'s assignment scored full marks under the bundle
    ``key`` (the local pool's workers, forked after this, inherit it and check nothing again)."""
    _CHECKED[_check_key(key, job)] = None
