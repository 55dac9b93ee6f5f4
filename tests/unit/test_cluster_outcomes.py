"""What the coordinator believes of a worker's answer, and outcomes that used to be internal errors.

* ``autograder.grading.answers.from_data``: a worker's answer is plain data for the job it was sent; the job, not the
  answer, says whose result it is; any other shape is refused with a reason.
* A feedback page that takes longer than ``feedback_seconds`` to render (here: a course whose
  feedback exporter has a slow step) leaves the submission graded with its score, and says that
  the page was not made (it used to end "not graded (internal error: _FeedbackTooSlow)").
"""
from __future__ import annotations

import pytest

from tests.support import submissions as subs
from tests.support.course import copy_course, run_cli

AID = "01_perceptron"


def _job(student="amy"):
    from autograder.run.jobs import Job

    return Job(AID, student, {}, {"seed": 1})


def _answer(**over):
    data = {"outcome": {"assignment": AID, "student": "someone_else", "status": "graded", "score": 3.0,
                        "exercises": {}, "events": []},
            "zero": False, "autograded": {f"{AID}.ipynb": b"{}"}, "feedback": {},
            "gradebook": {"timestamp": None, "notebooks": {AID: {"late_submission_penalty": None,
                                                                 "grades": {"softmax": (2.0, False)},
                                                                 "comments": {"softmax": None}}}},
            "worker": "w", "refused": ""}
    data.update(over)
    return data


def test_an_answer_is_data_for_the_job_that_was_sent():
    from autograder.grading import answers as cluster

    result = cluster.from_data(_job("amy"), _answer())
    assert (result.assignment, result.student) == (AID, "amy")
    assert (result.outcome["assignment"], result.outcome["student"]) == (AID, "amy")  # "someone_else" is ignored
    assert result.gradebook["notebooks"][AID]["grades"]["softmax"] == [2.0, False]


@pytest.mark.parametrize("answer, words", [
    ("a string", "not a dict"),
    (_answer(outcome="x"), "outcome is not a dict"),
    (_answer(extra=1), "unknown fields"),
    (_answer(zero=True), "do not agree with its status"),
    (_answer(outcome={"status": "not graded", "score": 0.0}), "do not agree with its status"),
    (_answer(outcome={"status": "graded", "score": float("nan")}), "not finite"),
    (_answer(outcome={"status": "graded", "score": 1.0, "x": b"bytes"}), "holds a bytes"),
    (_answer(outcome={"status": "done", "score": 1.0}), "neither graded"),
    (_answer(autograded={"a.ipynb": "text, not bytes"}), "not a set of files"),
    (_answer(gradebook={"notebooks": {AID: {"grades": {"softmax": (-1.0, False)}}}}), "not a score"),
    (_answer(gradebook={"notebooks": {AID: {"grades": {"softmax": (1.0, "yes")}}}}), "[score, needs manual grade]"),
    (_answer(gradebook={"timestamp": "yesterday", "notebooks": {}}), "not a date"),
])
def test_a_malformed_answer_is_that_submissions_outcome(answer, words):
    from autograder.grading import answers as cluster
    from autograder.store import outcomes

    with pytest.raises(cluster.MalformedAnswer, match=None) as info:
        cluster.from_data(_job(), answer)
    assert words in str(info.value), str(info.value)
    result = cluster.believed(_job(), answer)
    assert result.student == "amy" and result.zero and result.outcome["status"] == outcomes.NOT_GRADED
    assert "not a result" in result.outcome["reason"]


SLOW_FEEDBACK = '''
# A feedback exporter with a slow step (test of c.SandboxPolicy.feedback_seconds).
import time as _time

from nbconvert.preprocessors import Preprocessor as _Preprocessor


class _SlowPage(_Preprocessor):
    enabled = True  # nbconvert's preprocessors are off unless enabled

    def preprocess(self, nb, resources):
        end = _time.monotonic() + 30
        while _time.monotonic() < end:  # Python code: the time limit stops it
            pass
        return nb, resources


c.GenerateFeedback.preprocessors = [*c.GenerateFeedback.preprocessors, _SlowPage]  # after the course's own
c.SandboxPolicy.feedback_seconds = 2
'''


@pytest.mark.slow
def test_feedback_too_slow_keeps_the_score_and_says_why(tmp_path):
    course = copy_course(tmp_path)
    with open(course / "nbgrader_config.py", "a") as f:
        f.write(SLOW_FEEDBACK)
    folder = tmp_path / "subs"
    subs.write(folder, "amy", AID, subs.solved(AID))
    r = run_cli("grade", str(folder), "--workers", "1", "--seed", "7", course=course, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    row = subs.read_grades(course / "exports" / "grades.csv")[("amy", AID)]
    assert (row["score"], row["status"]) == ("12", "graded"), row
    assert "feedback page not made: rendering it took more than 2 s" in row["reason"], row
    assert "internal error" not in row["reason"] and "_FeedbackTooSlow" not in row["reason"]
    assert not (course / "feedback" / "amy" / AID).exists()
    from autograder.store import outcomes
    from autograder.course import Course

    assert outcomes.read(Course(course), AID, "amy")["feedback"] is False  # a rerun makes the page again


def test_a_pool_workers_answer_is_a_short_path_to_private_plain_data(tmp_path):
    """A local pool worker answers with a path (short enough for one pipe write) to a 0600 file of
    plain data (msgpack, not pickle), read back as the result of the job that was sent."""
    import os
    import pickle
    import select

    from autograder.grading.answers import believed
    from autograder.run.jobs import Result
    from autograder.run.pools import _answer_in_a_file, _read_answer

    big = Result(AID, "mallory", {"status": "graded", "score": 1.0}, zero=False,
                 autograded={"a.ipynb": b"x" * 5_000_000})
    path = _answer_in_a_file(lambda bundle, job: big, str(tmp_path), None, _job("amy"))
    assert len(pickle.dumps(path, protocol=pickle.HIGHEST_PROTOCOL)) + 4 < select.PIPE_BUF
    assert [p.suffix for p in tmp_path.iterdir()] == [".result"]
    assert os.stat(path).st_mode & 0o077 == 0
    assert b"\x80\x04" not in open(path, "rb").read(2)  # not a pickle stream
    got = _read_answer(_job("amy"), path, believed)
    assert (got.student, got.outcome["student"], got.autograded) == ("amy", "amy", big.autograded)
    assert list(tmp_path.iterdir()) == []


def test_a_refusal_from_a_worker_the_scheduler_cannot_name_is_sent_again_not_recorded():
    """A worker that refuses and leaves before the scheduler names it: its refusal is never the
    submission's outcome; the job is sent again, a bounded number of times (CI saw this race)."""
    from autograder.grading import answers as grading_answers
    from autograder.grading.batch import HANDLERS
    from autograder.run import jobs as cluster
    from autograder.run import pools

    job = cluster.Job("01_perceptron", "alice", {}, {})
    graded = cluster.Result("01_perceptron", "alice", {"status": "graded", "score": 1.0}, zero=False)

    class Future:
        def __init__(self, answer):
            self.answer, self.key = answer, id(self)

        def done(self):
            return True

        def result(self):
            return self.answer

    refusal = cluster.result_data(grading_answers.refused(job, "its canary failed"))
    answers = iter([refusal, refusal, cluster.result_data(graded)])
    pool = pools.DaskPool.__new__(pools.DaskPool)
    pool.refusing, pool.warn, pool.handlers = {}, lambda text: None, HANDLERS
    pool._grading_workers = lambda: ["tls://a"]
    pool._ran_on = lambda future: ""  # the scheduler no longer knows the worker
    sent = []
    pool._submit = lambda fn, job: sent.append(job) or Future(next(answers))
    import distributed

    real_wait = distributed.wait
    distributed.wait = lambda *a, **k: None
    try:
        out = list(pool.results(None, [job], lambda job, why: ("lost", why)))
    finally:
        distributed.wait = real_wait
    assert len(sent) == 3 and len(out) == 1 and out[0][1].outcome.get("status") == "graded"
