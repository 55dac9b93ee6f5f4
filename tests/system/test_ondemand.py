"""Grading on submit (``autograder.ondemand``), for real: real system users write their submissions
into a real exchange (laid out by ``autograder release --exchange``'s code), and the service's rounds
collect, grade through ``autograder grade`` (sandboxed), return the feedback and count attempts.
The same service behind the real hub (its page, the student's login) is in ``test_hub``.

One course, one scenario, run once (module fixture), then asserted piece by piece:
alice: solved (12) -> wrong softmax (10) -> a third submission with no attempts left;
bob:   two submissions before a round (only the latest is graded);
carol: after the deadline (skipped), then with an extension (graded);
dave:  a kernel that dies, then a submission while the assignment is closed, then reset and open;
erin:  00_pytorch_basics is best-of: a full submission, then a worse one (the gradebook keeps the best);
fred:  queued, the service restarted before grading (a new service resumes the queue);
30 students at once: the queue holds, each is graded once, latency measured (median and p95).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pytest

from tests.support import submissions as subs
from tests.support.course import copy_course

AID, BEST = "01_perceptron", "00_pytorch_basics"
pytestmark = pytest.mark.slow
CROWD = 30


def _why_not() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux: real system users (useradd) and sandboxed grading"
    if shutil.which("useradd") is None or shutil.which("bwrap") is None:
        return "useradd or bubblewrap is missing"
    return None


def _as(user: str, fn, *args) -> None:
    """``fn(*args)`` in a child process running as the system user ``user``."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            entry = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            fn(*args)
            code = 0
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"as {user}: failed"


def _write_entry(inbound: str, student: str, aid: str, notebook: bytes, when: str) -> None:
    """What ``nbgrader submit`` (our PrivateSubmit) leaves in the inbound, written by the student."""
    from autograder.exchange.instructor import nbgrader_time

    stamp = nbgrader_time(dt.datetime.fromisoformat(when))
    entry = Path(inbound) / f"{student}+{aid}+{stamp}+{secrets.token_hex(4)}"
    entry.mkdir(0o750)
    for name, data in [(f"{aid}.ipynb", notebook), ("timestamp.txt", stamp.encode()),
                       ("submission_secret.txt", secrets.token_hex(32).encode())]:
        fd = os.open(entry / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def _nb_bytes(nb) -> bytes:
    return subs.nbformat.writes(nb).encode()


@pytest.fixture(scope="module")
def run():
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    from autograder.course import Course
    from autograder.exchange import instructor as exchange
    from autograder.ondemand import attempts
    from autograder.ondemand.service import Service
    from autograder.store import extensions

    tag = secrets.token_hex(2)
    names = {r: f"{r}{tag}" for r in ("alice", "bob", "carol", "dave", "erin", "fred")}
    crowd = [f"c{i:02d}x{tag}" for i in range(CROWD)]
    made: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="ondemand-"))
    try:
        for name in [*names.values(), *crowd]:
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                           check=True, capture_output=True)
            made.append(name)
        base.chmod(0o755)
        root = copy_course(base)
        due = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).replace(microsecond=0)
        text = (root / "syllabus.toml").read_text()
        text = text.replace(f'id = "{AID}"', f'id = "{AID}"\ndue = "{due.isoformat()}"\nattempts = 2')
        text = text.replace(f'id = "{BEST}"', f'id = "{BEST}"\nattempts = 3\nbest_of = true')
        (root / "syllabus.toml").write_text(text)
        course = Course(root)
        ex = base / "exchange"
        ex.mkdir()
        ex.chmod(0o1777)
        exchange.publish(course, [AID, BEST], str(ex))
        inbound = str(ex / exchange.course_id(course) / "inbound")
        solved, wrong = subs.solved(AID), subs.replace_exercise(subs.solved(AID), "softmax", subs.WRONG_SOFTMAX)
        dies = subs.insert_code(subs.solved(AID), "import os\nos._exit(3)", after="softmax_impl")
        now = dt.datetime.now(dt.timezone.utc)

        def at(seconds: float) -> str:
            return (now + dt.timedelta(seconds=seconds)).isoformat()

        def submit(who: str, nb, when: str, aid: str = AID) -> None:
            _as(who, _write_entry, inbound, who, aid, _nb_bytes(nb), when)

        log: list[str] = []
        service = Service(course, str(ex), workers=2, interval=0.5, log=log.append)
        rounds: dict[str, list[dict]] = {}
        a, b, c, d, e, f = (names[k] for k in ("alice", "bob", "carol", "dave", "erin", "fred"))
        submit(a, solved, at(1))
        submit(b, wrong, at(2))
        submit(b, solved, at(3))  # again, before any round: only this one is graded
        submit(c, solved, (due + dt.timedelta(hours=1)).isoformat())  # after the deadline
        submit(d, dies, at(4))
        submit(e, subs.solved(BEST), at(5), BEST)
        rounds["first"] = service.cycle()
        submit(a, wrong, at(10))
        submit(e, subs.release_notebook(BEST), at(11), BEST)  # the untouched stub: worse
        rounds["second"] = service.cycle()
        submit(a, solved, at(20))  # a third: no attempts left
        rounds["third"] = service.cycle()
        extensions.grant(course, c, AID, days=3)
        attempts.set_open(course, AID, False, "test")
        submit(d, solved, at(21))  # closed
        rounds["closed"] = service.cycle()
        attempts.reset(course, d, AID, "test")
        attempts.set_open(course, AID, True, "test")
        submit(c, subs.solved(AID), (due + dt.timedelta(hours=2)).isoformat())  # within the extension
        submit(d, solved, at(22))
        submit(f, solved, at(23))
        Service(course, str(ex), log=log.append)._queue(exchange.collect(course, str(ex))[0])  # queued, then "crash"
        restarted = Service(course, str(ex), workers=2, log=log.append)  # a new service resumes the queue
        rounds["fourth"] = restarted.cycle()
        # 30 students in the same minute
        sent = {}
        for i, who in enumerate(crowd):
            sent[who] = time.time()
            submit(who, [solved, wrong][i % 2], at(30 + i * 0.1))
        start = time.time()
        rounds["crowd"] = restarted.cycle()
        latency = {r["student"]: time.time() - sent[r["student"]] for r in rounds["crowd"] if "n" in r}
        crowd_wall = time.time() - start
        yield {"course": course, "exchange": ex, "names": names, "crowd": crowd, "rounds": rounds, "log": log,
               "service": restarted, "latency": latency, "crowd_wall": crowd_wall, "state": attempts.load(course)}
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _history(run, who: str, aid: str = AID) -> list[dict]:
    return run["state"]["attempts"].get(run["names"].get(who, who), {}).get(aid, [])


def _gradebook_score(run, who: str, aid: str = AID) -> float | None:
    db = sqlite3.connect(run["course"].root / "gradebook.db")
    row = db.execute("SELECT SUM(grade.auto_score) FROM grade JOIN submitted_notebook ON grade.notebook_id = "
                     "submitted_notebook.id JOIN submitted_assignment ON submitted_notebook.assignment_id = "
                     "submitted_assignment.id JOIN assignment ON submitted_assignment.assignment_id = assignment.id "
                     "JOIN student ON submitted_assignment.student_id = student.id WHERE student.id = ? AND "
                     "assignment.name = ?", (run["names"].get(who, who), aid)).fetchone()
    return row[0]


def test_each_submission_is_graded_once_with_its_score(run):
    alice = _history(run, "alice")
    assert [(h["n"], h["score"], h["status"]) for h in alice] == [(1, 12.0, "graded"), (2, 10.0, "graded")]
    assert [h["official"] for h in alice] == [False, True], "the last graded attempt is the grade"
    assert _gradebook_score(run, "alice") == 10.0


def test_a_submission_replaced_while_queued_is_not_graded(run):
    bob = _history(run, "bob")
    assert len(bob) == 1 and bob[0]["score"] == 12.0, "only the latest submission (solved) was graded"


def test_no_attempts_left_is_skipped_with_the_reason_and_kept(run):
    skipped = [r for r in run["rounds"]["third"] if r["student"] == run["names"]["alice"]]
    assert skipped and "no attempts left: 2 of 2 used" in skipped[0]["skipped"]
    assert len(_history(run, "alice")) == 2
    kept = run["course"].root / "ondemand" / "skipped" / run["names"]["alice"] / AID
    assert any(kept.iterdir()), "the skipped submission is kept"
    # the submission of record is the graded one again: the instructor's return and regrade see the grade
    inbound = run["course"].root / "inbound" / run["names"]["alice"] / AID / f"{AID}.ipynb"
    attempt2 = run["course"].root / "ondemand" / "attempts" / run["names"]["alice"] / AID / "2" / f"{AID}.ipynb"
    assert inbound.read_bytes() == attempt2.read_bytes()


def test_the_deadline_and_an_extension_are_honoured(run):
    first = [r for r in run["rounds"]["first"] if r["student"] == run["names"]["carol"]]
    assert first and first[0]["skipped"].startswith("submitted after your deadline")
    carol = _history(run, "carol")
    assert len(carol) == 1 and carol[0]["score"] == 12.0, ("within her extension: graded", run["log"])


def test_a_kernel_that_dies_is_graded_and_counted_closing_and_reset_work(run):
    dave = _history(run, "dave")
    assert dave[0]["status"] == "graded" and dave[0]["score"] < 12 and dave[0]["counted"]
    assert "kernel died" in dave[0]["reason"] or "died" in dave[0]["reason"]
    closed = [r for r in run["rounds"]["closed"] if r["student"] == run["names"]["dave"]]
    assert closed and "closed" in closed[0]["skipped"]
    assert len(dave) == 2 and dave[1]["score"] == 12.0, "after the reset and reopening: graded"


def test_best_of_keeps_the_best_attempt_in_the_gradebook(run):
    erin = _history(run, "erin", BEST)
    assert len(erin) == 2 and erin[0]["score"] > erin[1]["score"]
    assert [h["official"] for h in erin] == [True, False]
    assert _gradebook_score(run, "erin", BEST) == erin[0]["score"]


def test_a_restarted_service_resumes_the_queue(run):
    fred = _history(run, "fred")
    assert len(fred) == 1 and fred[0]["score"] == 12.0
    assert not run["state"]["queue"], "nothing is left in the queue"


def test_thirty_at_once_each_graded_once_with_feedback(run):
    graded = [r for r in run["rounds"]["crowd"] if "n" in r]
    assert sorted(r["student"] for r in graded) == sorted(run["crowd"])
    assert all(len(_history(run, who)) == 1 for who in run["crowd"])
    assert {r["score"] for r in graded} == {12.0, 10.0}
    feedback = list((run["exchange"] / "dl-course" / "feedback").glob("*.html")) if \
        (run["exchange"] / "dl-course" / "feedback").is_dir() else \
        [p for p in run["exchange"].rglob("feedback/*.html")]
    assert len(feedback) >= CROWD
    lat = sorted(run["latency"].values())
    p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
    print(f"\n30 submissions at once: round {run['crowd_wall']:.1f} s; submit -> feedback median "
          f"{statistics.median(lat):.1f} s, p95 {p95:.1f} s", file=sys.stderr)


def test_a_student_sees_only_their_own_attempts(run):
    service = run["service"]
    mine = service.status(run["names"]["alice"])
    a = next(x for x in mine["assignments"] if x["assignment"] == AID)
    assert a["used"] == 2 and len(a["history"]) == 2 and a["attempts"] == 2
    assert "no attempts left" in a["skipped"]
    assert service.feedback_page(run["names"]["alice"], AID, 1) is not None
    assert service.feedback_page(run["names"]["bob"], AID, 2) is None, "bob has one attempt: no second page"
    carol_status = service.status(run["names"]["carol"])
    carol = next(x for x in carol_status["assignments"] if x["assignment"] == AID)
    assert carol["deadline_reason"].startswith("extension")
    (mine_due,) = [d for d in mine["deadlines"] if d["assignment"] == AID]
    (carol_due,) = [d for d in carol_status["deadlines"] if d["assignment"] == AID]
    assert mine_due["deadline"] == mine_due["due"] and not mine_due["reason"]
    assert carol_due["deadline"] > carol_due["due"] and carol_due["reason"].startswith("extension")
    from autograder.ondemand.service import render

    page = render(mine, "/services/grader/")
    assert run["names"]["bob"] not in page and "12 / 12" in page and "10 / 12" in page
