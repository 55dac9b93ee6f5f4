"""Grading work as data: what travels between the coordinator and the workers.

A worker (a forked process of the local pool, or a Dask worker on any machine) gets a :class:`Bundle`
once per batch and a :class:`Job` per submission, and sends back a :class:`Result` as plain data
(:func:`result_data`). These types know nothing of grading: ``autograder.grading`` fills and reads
them; ``autograder.run.pools`` carries them.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

#: Largest answer the coordinator reads from a worker (the autograded notebook and feedback page).
MAX_ANSWER_BYTES = 512 * 1024 * 1024


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
           grades it before its first submission of that assignment (``autograder.grading.batch.grade_checked``).
    """

    files: dict[str, bytes]
    course: str
    source: str
    template: bytes
    key: str
    plans: tuple[tuple[str, int, bytes], ...] = ()
    canaries: tuple[tuple[str, bytes], ...] = ()

    def ref(self) -> "Bundle":
        """The bundle by its key only (no files): what the local pool hands its forked workers, which
        inherit the copy staged before the fork (``autograder.grading.worker.staged`` finds it by key)."""
        return replace(self, files={}, template=b"", plans=(), canaries=())


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


def result_data(result: Result) -> dict:
    """``result`` as plain data (str, bytes, numbers, lists, dicts): what a worker sends back. The
    assignment and student are not part of it: the coordinator knows which job it sent."""
    return {"outcome": result.outcome, "zero": bool(result.zero), "autograded": dict(result.autograded),
            "feedback": dict(result.feedback), "gradebook": result.gradebook, "worker": str(result.worker),
            "refused": str(result.refused)}


def remote(fn, bundle, job: Job) -> dict:
    """``fn(bundle, job)`` on a worker, its result returned as plain data (:func:`result_data`)."""
    return result_data(fn(bundle, job))


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


def where() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"
