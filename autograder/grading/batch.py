"""Grade a batch: collect, check the host (canary), autograde (sandboxed, in parallel), feedback, outcomes.

Each (student, assignment) is graded by nbgrader's own autograde and
generate_feedback, configured with the sandboxed execution and trusted scoring
of this package. Work runs in worker processes (forked here, or on a Dask cluster:
``autograder.run.pools``), each against a private staged course and gradebook; a
worker returns its result as data and this process alone writes the gradebook,
outcomes and feedback. A failure is recorded as that
submission's outcome (and its gradebook scores set to what the outcome says) and
never stops the batch. Before a batch, the reference solution is graded in the
same sandbox as a canary: a host that cannot grade it full marks stops the run.
A submission already graded with the same file and seed is skipped only when the
gradebook still holds the same score; ``force`` regrades everything (idempotent).
No process a submission started outlives its grading.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from autograder.authoring.challenges import heldout_files
from autograder.grading import answers, worker
from autograder.grading.canary import (HostBroken, canary_job, canary_problem, grade_checked, passed,
                                       reference_submission, run_canary)
from autograder.grading import bundle as worker_bundle
from autograder.run import jobs, pools
from autograder.store import results as store_results
from autograder.intake import collect
from autograder.intake import roster as roster_mod
from autograder.lms import intake as lms_intake
from autograder.store import gradebook as nbgrader_api
from autograder.store import outcomes
from autograder.course import Course, CourseError
from autograder.sandbox.kernel import UNSAFE_WARNING, SandboxUnavailable, bwrap_path
from autograder.config import GradingSettings

WORKER_DIED = "the grading worker died (killed, or out of memory)"
RERUN = "run the same command again to grade it"


@dataclass
class GradeOptions:
    workers: int = max(1, os.cpu_count() or 1)
    seed: int | None = None
    unsafe_no_sandbox: bool = False
    # Start every kernel cold (``c.GradingSettings.warm_kernels = False`` for this run).
    cold_kernels: bool = False
    force: bool = False
    assignment: str | None = None
    # A Dask scheduler's address (tls://host:8786 or a scheduler file): grade there instead of
    # in a local process pool. None: c.GradingSettings.cluster of the course, if set.
    cluster: str | None = None
    # The cluster's certificate folder (autograder cluster-certs), and whether a tcp:// address is
    # accepted; None: c.GradingSettings.cluster_certs / insecure_cluster.
    cluster_certs: str | None = None
    insecure_cluster: bool | None = None
    # Found by the caller while collecting (an LMS export, the exchange): remarks per
    # (student, assignment), kept in that submission's outcome, and entries refused outright.
    notes: dict[tuple[str, str], list[str]] = dataclasses.field(default_factory=dict)
    refusals: list[collect.Refusal] = dataclasses.field(default_factory=list)
    timestamps: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)




def _config(course: Course, opts: GradeOptions):
    settings = {"unsafe_no_sandbox": opts.unsafe_no_sandbox, **({"warm_kernels": False} if opts.cold_kernels else {})}
    if opts.seed is not None:
        settings["seed"] = opts.seed
    return nbgrader_api.course_config(course, GradingSettings=settings)








def zero_scores(course: Course, aid: str, student: str) -> None:
    """Set every autograded score of a submission to 0 (its outcome says why it is not graded)."""
    with nbgrader_api.gradebook(course) as gb:
        gb.update_or_create_student(student)
        try:
            submission = gb.update_or_create_submission(aid, student)
        except Exception as e:  # the assignment is not in the gradebook yet
            raise CourseError(f"{aid} is not in the gradebook: run `autograder release` first ({e})")
        for nb in submission.notebooks:
            for grade in nb.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


def _record_missing(course: Course, sub: collect.Submission) -> None:
    """No gradable notebook: zero points in the gradebook, and the reason."""
    zero_scores(course, sub.assignment, sub.student)
    outcomes.record_not_graded(course, sub.assignment, sub.student, sub.problem or "no notebook")


def ensure_in_gradebook(course: Course, aids: set[str]) -> None:
    """nbgrader needs each assignment's cells in the gradebook before grading it.

    `autograder release` puts them there; on a fresh course (a new clone, a deleted
    gradebook) we do the same into a throw-away folder, leaving release/ alone. Each
    assignment's due date is then set from the syllabus (late penalties depend on it).
    """
    from nbgrader.api import MissingEntry

    from autograder.authoring.release import release

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


def _gradebook_score(course: Course, aid: str, student: str) -> float | None:
    """The submission's score in the gradebook, or None if it holds no scores for it."""
    from nbgrader.api import MissingEntry

    with nbgrader_api.gradebook(course) as gb:
        try:
            sub = gb.find_submission(aid, student)
        except MissingEntry:
            return None
        grades = [g for nb in sub.notebooks for g in nb.grades]
        if not grades or any(g.auto_score is None for g in grades if g.cell.cell_type == "code"):
            return None
        return float(sub.score)


def already_graded(course: Course, sub: collect.Submission, digest: str, seed: int) -> bool:
    """Skip a submission only when its outcome (same file, same seed), its feedback and the
    gradebook's scores all agree; a lost or replaced gradebook means it is graded again."""
    previous = outcomes.read(course, sub.assignment, sub.student) or {}
    if not (previous.get("status") == outcomes.GRADED and previous.get("feedback")
            and previous.get("sha256") == digest and previous.get("seed") == seed):
        return False
    if not (course.step_dir("feedback", sub.student, sub.assignment) / f"{sub.assignment}.html").is_file():
        return False
    score = _gradebook_score(course, sub.assignment, sub.student)
    return score is not None and abs(score - float(previous.get("score", -1))) < 1e-9


def grade(course: Course, path: Path, opts: GradeOptions) -> list[dict]:
    """Grade every submission under ``path`` (a folder or a zip). Returns the outcomes
    (and, with status "refused", what was refused while collecting).

    Everything the run creates (submitted copies, plans, outcomes, feedback, the gradebook, work
    folders) is created private to this user (umask 077), whatever the course folder's modes; when
    root grades a course folder that belongs to the instructor, what the run wrote there is then
    handed to the instructor (:func:`hand_to_course_owner`)."""
    old = os.umask(0o077)
    try:
        return _grade(course, path, opts)
    finally:
        os.umask(old)
        hand_to_course_owner(course)


#: What a grading run writes in the course folder.
RUN_FILES = ("submitted", "autograded", "feedback", "outcomes", "plans", "exports", "gradebook.db",
             "gradebook.db-journal", ".grading_seed")


def hand_to_course_owner(course: Course) -> None:
    """Grading as root (so that each kernel runs as an unused uid) in a course folder owned by the
    instructor: what the run wrote there (private: 0600 files, 0700 folders) becomes the
    instructor's, so that their formgrader and ``autograder return`` read it; no one else can.
    Links are never followed."""
    if os.geteuid() != 0:
        return
    try:
        owner = course.root.stat()
    except OSError:
        return
    if owner.st_uid == 0:
        return
    for name in RUN_FILES:
        top = course.root / name
        if not os.path.lexists(top):
            continue
        paths = [str(top)]
        if top.is_dir() and not top.is_symlink():
            for folder, dirs, files in os.walk(top):
                paths += [os.path.join(folder, n) for n in dirs + files]
        for p in paths:
            try:
                os.chown(p, owner.st_uid, owner.st_gid, follow_symlinks=False)
            except OSError:
                pass


def _grade(course: Course, path: Path, opts: GradeOptions) -> list[dict]:
    settings = GradingSettings(config=_config(course, opts))
    address = opts.cluster or settings.cluster or None
    certs = opts.cluster_certs or settings.cluster_certs or ""
    insecure = settings.insecure_cluster if opts.insecure_cluster is None else opts.insecure_cluster
    opts = dataclasses.replace(opts, cluster=address, cluster_certs=certs, insecure_cluster=insecure)
    if opts.unsafe_no_sandbox:
        print(f"WARNING: {UNSAFE_WARNING}", file=sys.stderr)
    elif bwrap_path() is None and not address:  # a cluster's workers are checked by the canary
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so student code cannot be sandboxed. Install it "
            "(Debian/Ubuntu: apt-get install bubblewrap) or pass --unsafe-no-sandbox to grade without protection.")
    if address:  # an unreachable scheduler, missing certificates or unsuitable workers are said now
        pools.probe(address, certs, insecure, warn=lambda text: print(text, file=sys.stderr))
    with tempfile.TemporaryDirectory() as unpack:
        root, problems = collect.open_source(Path(path), Path(unpack), {a.id for a in course.assignments()})
        submissions, refused = collect.discover(course, root, opts.assignment, problems)
        refused = [*refused, *opts.refusals]
        for r in refused:
            outcomes.record_refusal(course, r.name, r.assignment, r.reason)
            where = f" ({outcomes.printable_name(r.assignment)})" if r.assignment else ""
            print(f"refused {outcomes.printable_name(r.name)}{where}: {outcomes.clean_text(r.reason)}", file=sys.stderr)
        if not submissions:
            if refused:
                return [outcomes.read_refusals(course)[f"{r.name}\x00{r.assignment}"] for r in refused]
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
            key = (sub.student, sub.assignment)
            sub.notes.extend(opts.notes.get(key, []))
            sub.timestamp = opts.timestamps.get(key, sub.timestamp)
            if not sub.gradable:
                outcomes.clear(course, sub.assignment, sub.student)
                for note in sub.notes:
                    outcomes.record_note(course, sub.assignment, sub.student, note)
                _record_missing(course, sub)
                continue
            digest = collect.sha256(sub.notebook)
            collect.install(course, sub)
            if not opts.force and already_graded(course, sub, digest, seed):
                continue  # already graded, same file, same seed, and the gradebook agrees
            outcomes.clear(course, sub.assignment, sub.student)
            for note in sub.notes:
                outcomes.record_note(course, sub.assignment, sub.student, note)
            todo.append((sub, digest))
        if todo:
            aids = sorted({s.assignment for s, _ in todo})
            with _workers(course, aids, opts, address) as pool:
                check_host(course, aids, opts, pool)
                _run(course, todo, opts, pool)
    results = [outcomes.read(course, s.assignment, s.student) or {} for s in submissions]
    refusals = outcomes.read_refusals(course)
    return results + [refusals[f"{r.name}\x00{r.assignment}"] for r in refused
                      if f"{r.name}\x00{r.assignment}" in refusals]


# --------------------------------------------------------------------------- #
# The canary: the reference solution, graded in the same sandbox first.
# --------------------------------------------------------------------------- #








def _settings(opts: GradeOptions) -> dict:
    """The run's ``c.GradingSettings`` for a worker (the seed already resolved)."""
    return {"unsafe_no_sandbox": opts.unsafe_no_sandbox, "seed": opts.seed,
            **({"warm_kernels": False} if opts.cold_kernels else {})}
















# --------------------------------------------------------------------------- #
# Running the batch.
# --------------------------------------------------------------------------- #


@contextlib.contextmanager
def _workers(course: Course, aids: list[str], opts: GradeOptions, address: str | None):
    """The batch's workers: a Dask cluster at ``address``, else a local process pool; either
    gets the course's bundle (configuration, the assignments' source folders, a template
    gradebook) and nothing else of the course."""
    from autograder.authoring import plan

    for aid in aids:  # computed once, here (and cached in the course); workers get the files
        plan.grading_plan(course.root, aid, opts.seed)
    # The plan files, as data: the staged course's plan cache may live elsewhere (plan_path).
    plans = [(aid, opts.seed, plan.plan_path(course, aid, opts.seed).read_bytes()) for aid in aids]
    shipped = heldout_files(course, aids)  # the challenges' held-out sets: trusted processes only
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.db"
        nbgrader_api.template_gradebook(course, aids, template)
        import nbformat

        canaries = [(aid, nbformat.writes(reference_submission(course, aid)).encode()) for aid in aids]
        bundle = worker_bundle.build_bundle(course, aids, template, [p for p in shipped if p.is_file()], plans, canaries)
    if address:
        pool: pools.LocalPool | pools.DaskPool = pools.DaskPool(
            address, bundle, HANDLERS, warn=lambda text: tqdm.write(text, file=sys.stderr),
            certs=opts.cluster_certs or "", insecure=bool(opts.insecure_cluster))
    else:
        pool = pools.LocalPool(opts.workers, bundle, HANDLERS)
        # Loaded here, before any fork: forked workers (and the canary's) inherit the plans of the
        # staged course and never run torch after a fork (its thread pool would deadlock them).
        for aid in aids:
            plan.grading_plan(worker.staged(bundle), aid, opts.seed)
    try:
        yield pool
    finally:
        pool.close()


#: What the pools need from grading (``autograder.run.pools.Handlers``): they know nothing of it.
HANDLERS = pools.Handlers(accept=answers.believed, fail=answers.failed, stage=worker.staged, unstage=worker.unstage)


def _lost(job: jobs.Job, why: str) -> jobs.Result:
    """A submission no worker finished (its worker died, every attempt on a cluster; or no worker was
    left to take it): zero points, what happened, and how to finish."""
    return answers.failed(job, f"not graded: {WORKER_DIED}: {why}; {RERUN}")


def _run(course: Course, todo: list, opts: GradeOptions, pool: pools.LocalPool | pools.DaskPool) -> None:
    """Grade ``todo`` (submission, digest) pairs on ``pool``; write each result here as it comes."""
    if not todo:
        return
    settings = _settings(opts)
    ext = nbgrader_api.extensions(course, [(s.assignment, s.student) for s, _ in todo])
    todo_jobs = (worker_bundle.make_job(course, s.assignment, s.student, settings, digest,
                                        ext.get((s.assignment, s.student))) for s, digest in todo)
    bar = tqdm(total=len(todo), desc="grading", unit="submission")
    try:
        for _job, result in pool.results(grade_checked, todo_jobs, _lost):
            store_results.apply_result(course, result, zero_scores)
            bar.update()
    finally:
        bar.close()


def lost_submissions(results: list[dict]) -> list[dict]:
    """Outcomes that say the submission still has to be graded (a worker died, or none was recorded)."""
    return [r for r in results if not r or not r.get("status")
            or (r.get("status") == outcomes.NOT_GRADED and WORKER_DIED in r.get("reason", ""))]


def grade_lms_export(course: Course, export: Path, roster: roster_mod.Roster, lms: str | None, assignment: str | None,
                 opts, times: Path | None = None) -> tuple[lms_intake.LmsBatch, list[dict]]:
    """Prepare an LMS export (``autograder.lms.intake.prepare``) and grade it; returns the batch and
    the results. The LMS layer only reads its formats; grading one is this layer's job.

    ``times``: the LMS's submission times (``read_times``); without them no LMS submission can
    be late, and when the assignment has a due date a warning line and each outcome say so."""
    import dataclasses
    import sys

    from autograder.lms.intake import prepare, save_identities

    with tempfile.TemporaryDirectory(prefix="lms-") as tmp:
        batch = prepare(course, export, roster, lms, assignment, Path(tmp), times)
        if opts.assignment and opts.assignment != batch.assignment:
            raise CourseError(f"{export.name} holds {batch.assignment}, not {opts.assignment}")
        for line in batch.warnings:
            print(line, file=sys.stderr)
        notes = {**opts.notes}
        for key, more in batch.notes.items():
            notes[key] = [*notes.get(key, []), *more]
        opts = dataclasses.replace(opts, assignment=batch.assignment, notes=notes,
                                   refusals=[*opts.refusals, *batch.refusals],
                                   timestamps={**opts.timestamps, **batch.timestamps})
        if not any(batch.folder.iterdir()) and not opts.refusals:
            raise CourseError(f"{export.name} holds no submission")
        results = grade(course, batch.folder, opts)  # nothing matched: only the refusals are recorded
    save_identities(course, batch)
    return batch, results


#: Canaries that passed in this process: (course, assignment, seed, unsafe, cluster). A process grades
#: one batch (the CLI), so this only spares repeated in-process batches (tests, benchmarks) a rerun.
_HOST_OK: set[tuple] = set()



def check_host(course: Course, aids: list[str], opts: GradeOptions,
               pool: pools.LocalPool | pools.DaskPool) -> None:
    """Grade the reference solution of each assignment as a canary (in a fresh worker process,
    or once on every worker of a cluster); stop if it loses a point anywhere. The canary's
    result is only read: nothing of it reaches the course's gradebook or folders."""
    for aid in aids:
        job = canary_job(aid, pool.canaries[aid], _settings(opts))
        key = (str(course.root), aid, opts.seed, opts.unsafe_no_sandbox, getattr(pool, "address", None))
        if key not in _HOST_OK:
            for where, result in pool.on_each_worker(run_canary, job).items():
                problem = canary_problem(course, result)
                if problem:
                    host = "this host" if isinstance(pool, pools.LocalPool) else f"the Dask worker {where}"
                    raise HostBroken(f"{host} cannot grade {aid}: {problem}. Nothing was graded; fix the grading "
                                     "environment (is the project installed, bubblewrap working?) and rerun.")
            _HOST_OK.add(key)
        passed(pool.key, job)
