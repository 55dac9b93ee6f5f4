"""What the coordinator believes of a worker's answer, and the results that say a job was not graded.

A worker's answer is only data for the job it was sent: it travels as plain data, is checked here
(:func:`from_data`: shape, types, finite scores, a status that agrees with its scores), and the job,
never the answer, says whose result it is.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any

from autograder.run.jobs import Job, Result, dask_worker_address, where
from autograder.store import outcomes

class MalformedAnswer(ValueError):
    """A worker's answer is not the plain data of a result."""


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


def believed(job: Job, data: Any, sender: str = "the grading worker") -> Result:
    """:func:`from_data`, or a not-graded result saying the answer was malformed."""
    try:
        return from_data(job, data)
    except MalformedAnswer as e:
        return failed(job, f"not graded: {sender} sent an answer that is not a result ({e})")


def failed(job: Job, reason: str, events: list[str] | None = None) -> Result:
    """A result saying the job was not graded, and why (its gradebook scores become 0)."""
    notes = (job.pending or {}).get("notes", []) if (job.pending or {}).get("pending") else []
    outcome = {"assignment": job.assignment, "student": job.student, "status": outcomes.NOT_GRADED,
               "reason": outcomes.clean_text(reason), "events": [outcomes.clean_text(e) for e in events or []],
               "notes": notes, "time": outcomes.now(), "score": 0.0, "exercises": {}}
    return Result(job.assignment, job.student, outcome, zero=True, worker=where())


def refused(job: Job, why: str) -> Result:
    """This worker grades nothing of ``job.assignment`` (``why``): the coordinator sends the job
    to another worker, and this one no more (on the local pool, it is a failed result)."""
    result = failed(job, f"not graded: the worker that took it cannot grade {job.assignment} ({why})")
    result.refused, result.address = why, dask_worker_address()
    return result
