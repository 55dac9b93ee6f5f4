"""Grading on a Dask cluster (``autograder grade --cluster``), through the real CLI.

A ``distributed.LocalCluster`` with two worker *processes* (started here, one task at a time
each, on 127.0.0.1, mutual TLS with certificates made by ``autograder.run.tls.make_certificates``) grades a mixed batch: correct, untouched, wrong, hostile (patched numpy, a gradebook
write from inside the sandbox, ``os._exit``), an infinite loop (timed out) and a file that is
not a notebook. The CSV must be the local pool's, byte for byte, with the expected scores.
The workers run with ``GRADEBOOK_URL`` pointing at a file that does not exist: any write to a
gradebook other than their private one would fail the batch. A worker killed mid-batch loses
nothing: its submission is graded elsewhere, and a rerun changes nothing.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import submissions as subs
from tests.support.course import copy_course, run_cli

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

AID = "01_perceptron"
SEED = "7"
WRONG_SOFTMAX = subs.WRONG_SOFTMAX
#: student -> (score, status, words in the reason)
EXPECTED = {
    "a_correct": ("12", "graded", "ok"),
    "b_untouched": ("0", "graded", "ok"),
    "c_wrong": ("10", "graded", "ok"),
    "d_patch_numpy": ("0", "graded", "ok"),
    "e_os_exit": ("6", "graded", "kernel died"),
    "f_gradebook_write": ("0", "graded", "ok"),
    "g_infinite_loop": ("12", "graded", "timed out"),
    "h_not_json": ("0", "not graded", "not JSON"),
}


def _batch(folder: Path) -> None:
    solved, stub = subs.solved(AID), subs.release_notebook(AID)
    subs.write(folder, "a_correct", AID, solved)
    subs.write(folder, "b_untouched", AID, stub)
    subs.write(folder, "c_wrong", AID, subs.replace_exercise(solved, "softmax", WRONG_SOFTMAX))
    subs.write(folder, "d_patch_numpy", AID, subs.insert_code(
        stub, "import numpy as np\nnp.allclose = lambda *a, **k: True\nnp.testing.assert_allclose = lambda *a, **k: None"))
    # os._exit after perceptron_predict's check: the checks before it count (1 + 2 + 2 + 1 points)
    subs.write(folder, "e_os_exit", AID, subs.insert_code(solved, "import os\nos._exit(0)", after="perceptron_predict"))
    subs.write(folder, "f_gradebook_write", AID, subs.insert_code(
        stub, "import glob, sqlite3\nfor p in ['../../../gradebook.db', '../gradebook.db', *glob.glob('/tmp/*/*.db')]:\n"
              "    try:\n"
              "        db = sqlite3.connect(p)\n        db.execute('UPDATE grade SET auto_score = 100')\n"
              "        db.commit()\n    except Exception as e:\n        print(p, type(e).__name__)"))
    subs.write(folder, "g_infinite_loop", AID, subs.insert_code(solved, "while True:\n    pass", after="sigmoid_impl"))
    subs.write(folder, "h_not_json", AID, "this is { not json")


def _course(tmp: Path) -> Path:
    course = copy_course(tmp)
    with open(course / "nbgrader_config.py", "a") as f:  # a short cell timeout keeps the loop quick
        f.write("\nc.SandboxPolicy.cell_timeout = 15\n")
    return course


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cluster-subs") / "subs"
    _batch(folder)
    return folder


def _security(certs: Path):
    from distributed.security import Security

    files = {}
    for role in ("scheduler", "worker", "client"):
        files[f"tls_{role}_cert"] = str(certs / f"{role}.pem")
        files[f"tls_{role}_key"] = str(certs / f"{role}-key.pem")
    return Security(tls_ca_file=str(certs / "ca.pem"), require_encryption=True, **files)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """Two worker processes, one task each, with their own temporary folder and a gradebook URL
    that leads nowhere (so a worker that wrote to any gradebook but its private one would fail);
    TLS on 127.0.0.1 with the course's certificates."""
    from distributed import Client, LocalCluster

    from autograder.run.tls import make_certificates

    certs = tmp_path_factory.mktemp("certs") / "certs"
    make_certificates(certs)
    worker_tmp = tmp_path_factory.mktemp("worker-tmp")
    env = {"TMPDIR": str(worker_tmp), "GRADEBOOK_URL": "sqlite:////nonexistent/never-written.db",
           "PYTHONWARNINGS": "ignore"}
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0,
                           dashboard_address=None, env=env, protocol="tls://", host="127.0.0.1",
                           security=_security(certs))
    client = Client(cluster)
    assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
    yield {"cluster": cluster, "client": client, "address": cluster.scheduler_address, "tmp": worker_tmp,
           "certs": certs}
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def local_csv(tmp_path_factory, folder) -> str:
    course = _course(tmp_path_factory.mktemp("local"))
    r = run_cli("grade", str(folder), "--workers", "2", "--seed", SEED, course=course, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return (course / "exports" / "grades.csv").read_text()


@pytest.fixture(scope="module")
def on_cluster(tmp_path_factory, folder, dask_cluster):
    course = _course(tmp_path_factory.mktemp("on-cluster"))
    r = run_cli("grade", str(folder), "--cluster", dask_cluster["address"], "--cluster-certs",
                str(dask_cluster["certs"]), "--seed", SEED, course=course, timeout=1800)
    return {"course": course, "result": r}


def test_the_cluster_grades_the_mixed_batch_as_expected(on_cluster):
    r = on_cluster["result"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stdout + r.stderr
    grades = subs.read_grades(on_cluster["course"] / "exports" / "grades.csv")
    for student, (score, status, words) in EXPECTED.items():
        row = grades[(student, AID)]
        assert (row["score"], row["status"]) == (score, status), (student, row)
        assert words in row["reason"], (student, row["reason"])


def _same_csv(got: str, want: str) -> None:
    import difflib

    assert got == want, "\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(), "local pool", "cluster",
                                                       lineterm=""))


def test_the_cluster_gives_the_local_pools_csv(on_cluster, local_csv):
    _same_csv((on_cluster["course"] / "exports" / "grades.csv").read_text(), local_csv)


def test_the_coordinator_wrote_the_course_and_the_workers_left_nothing(on_cluster, dask_cluster):
    course = on_cluster["course"]
    for student, (_score, status, _words) in EXPECTED.items():
        feedback = course / "feedback" / student / AID / f"{AID}.html"
        assert feedback.is_file() == (status == "graded"), student
        if status == "graded":
            assert (course / "autograded" / student / AID / f"{AID}.ipynb").is_file()
    import sqlite3

    db = sqlite3.connect(course / "gradebook.db")
    students = {s for (s,) in db.execute("SELECT id FROM student")}
    assert students == set(EXPECTED)  # no canary, no stray entry
    assert db.execute("SELECT MAX(auto_score) FROM grade").fetchone()[0] <= 2  # no cell is worth more
    # staged courses, private gradebooks and sandboxes all removed; what stays is each live worker's
    # warm template (autograder.sandbox.warm), whose spool holds no submission once it is graded
    spools = [p for p in dask_cluster["tmp"].iterdir() if p.name.startswith("autograder-warm-")]
    leftovers = [p.name for p in dask_cluster["tmp"].iterdir() if p.name.startswith("autograder-") and p not in spools]
    assert not leftovers, leftovers
    from autograder.sandbox import warm

    assert all(sorted(f.name for f in p.iterdir()) in ([], [warm.LOG]) for p in spools), \
        [list(p.iterdir()) for p in spools]


def test_workers_that_run_several_tasks_at_once_are_refused(tmp_path, folder):
    """(On a plain tcp:// cluster, accepted with --insecure-cluster and a warning.)"""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        r = run_cli("grade", str(folder), "--cluster", cluster.scheduler_address, "--insecure-cluster",
                    course=_course(tmp_path))
    assert r.returncode == 2 and "--nthreads 1" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "WARNING: grading on a Dask cluster without TLS" in r.stderr


def test_an_unreachable_scheduler_is_one_line(tmp_path, folder, dask_cluster):
    r = run_cli("grade", str(folder), "--cluster", "tls://127.0.0.1:9", "--cluster-certs", str(dask_cluster["certs"]),
                course=_course(tmp_path), timeout=600)
    assert r.returncode == 2 and "cannot reach the Dask scheduler" in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().count("\n") == 0


def _busy_worker_pid(dask_cluster, timeout: float = 600) -> int:
    """The process id of a worker that is grading a submission now."""
    client, cluster = dask_cluster["client"], dask_cluster["cluster"]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        busy = {addr for addr, keys in client.processing().items() if any(str(k).startswith("grade-") for k in keys)}
        for nanny in cluster.workers.values():
            if nanny.worker_address in busy:
                return nanny.process.pid
        time.sleep(0.2)
    raise AssertionError("no worker ever graded a submission")


def test_a_killed_worker_loses_nothing(tmp_path, folder, dask_cluster, local_csv):
    course = _course(tmp_path)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "--course", str(course), "grade", str(folder),
                             "--cluster", dask_cluster["address"], "--cluster-certs", str(dask_cluster["certs"]),
                             "--seed", SEED],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        pid = _busy_worker_pid(dask_cluster)
        time.sleep(2)  # well inside its submission (kernel started)
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = {k: r for k, r in subs.read_grades(course / "exports" / "grades.csv").items() if k[1] == AID}
    assert set(rows) == {(s, AID) for s in EXPECTED}, "a submission has no outcome"
    lost = [s for (s, _a), r in rows.items() if "worker died" in r["reason"]]
    assert all(rows[(s, AID)]["score"] == "0" for s in lost)
    # Dask reschedules the killed worker's task on the other worker: nothing needs a rerun.
    assert proc.returncode == 0 and not lost, (lost, err[-2000:])
    r = run_cli("grade", str(folder), "--cluster", dask_cluster["address"], "--cluster-certs",
                str(dask_cluster["certs"]), "--seed", SEED, course=course)
    assert r.returncode == 0, r.stderr[-2000:]
    _same_csv((course / "exports" / "grades.csv").read_text(), local_csv)


def test_the_coordinator_writes_a_result_and_keeps_a_graders_manual_score(tmp_path):
    """The single writer: a worker's result becomes gradebook rows, folders and the outcome here;
    a manual score a grader gave stays (and flags the grade for review, as nbgrader does); a
    returned path leaving its folder is refused and the submission ends not graded."""
    from autograder.run import jobs as cluster
    from autograder.store.results import apply_result
    from autograder.grading import batch as grading
    from autograder.store import gradebook as nbgrader_api
    from autograder.store import outcomes
    from autograder.course import Course

    course = Course(copy_course(tmp_path))
    grading.ensure_in_gradebook(course, {AID})
    with nbgrader_api.gradebook(course) as gb:
        gb.update_or_create_student("amy")
        gb.update_or_create_submission(AID, "amy")
        gb.find_grade("softmax", AID, AID, "amy").manual_score = 1.5
        gb.db.commit()
    outcome = {"assignment": AID, "student": "amy", "status": outcomes.GRADED, "reason": "ok", "score": 3.0,
               "exercises": {}, "feedback": True}
    entries = {"timestamp": "2026-12-01T10:00:00", "notebooks": {AID: {
        "late_submission_penalty": 0.5, "grades": {"softmax": [2.0, False], "sigmoid": [1.0, False]}, "comments": {}}}}
    result = cluster.Result(AID, "amy", outcome, zero=False, autograded={f"{AID}.ipynb": b"{}"},
                            feedback={f"{AID}.html": b"<p>verdict</p>"}, gradebook=entries)
    assert apply_result(course, result, grading.zero_scores)["status"] == outcomes.GRADED
    with nbgrader_api.gradebook(course) as gb:
        softmax, sigmoid = (gb.find_grade(n, AID, AID, "amy") for n in ("softmax", "sigmoid"))
        assert (softmax.auto_score, softmax.manual_score, softmax.needs_manual_grade) == (2.0, 1.5, True)
        assert (sigmoid.auto_score, sigmoid.needs_manual_grade) == (1.0, False)
        sub = gb.find_submission(AID, "amy")
        assert sub.timestamp.isoformat() == "2026-12-01T10:00:00"
        assert sub.notebooks[0].late_submission_penalty == 0.5
    assert (course.root / "feedback" / "amy" / AID / f"{AID}.html").read_bytes() == b"<p>verdict</p>"
    assert outcomes.read(course, AID, "amy")["score"] == 3.0

    escaping = cluster.Result(AID, "amy", outcome, zero=False, autograded={"../../../escaped.txt": b"x"},
                              gradebook=entries)
    written = apply_result(course, escaping, grading.zero_scores)
    assert written["status"] == outcomes.NOT_GRADED and "outside its folder" in written["reason"]
    assert not list(course.root.rglob("escaped.txt"))
    with nbgrader_api.gradebook(course) as gb:
        assert gb.find_grade("sigmoid", AID, AID, "amy").auto_score == 0  # no old points remain


def _worker_named(client, name: str, timeout: float = 120) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for addr, info in client.scheduler_info().get("workers", {}).items():
            if info.get("name") == name:
                return addr
        time.sleep(0.2)
    raise AssertionError(f"the worker {name} never joined")


def test_a_worker_that_joins_late_grades_the_reference_first(tmp_path, dask_cluster):
    """A worker that joins after the batch's canaries grades the reference solution before any
    submission; one that cannot (here: no bubblewrap on its PATH) grades nothing, is named once,
    and the submission it took is graded by another worker."""
    folder = tmp_path / "subs"
    solved = subs.solved(AID)
    subs.write(folder, "a_loop", AID, subs.insert_code(solved, "while True:\n    pass", after="sigmoid_impl"))
    for i in range(7):  # one worker holds the loop for 15 s: the others have these to grade meanwhile
        subs.write(folder, f"b_correct_{i}", AID, solved)
    course = _course(tmp_path)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "--course", str(course), "grade", str(folder),
                             "--cluster", dask_cluster["address"], "--cluster-certs", str(dask_cluster["certs"]),
                             "--seed", SEED],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    late = None
    try:
        _busy_worker_pid(dask_cluster)  # the canaries are done: the batch has begun
        no_bwrap = dict(env, PATH=str(Path(sys.executable).parent), TMPDIR=str(dask_cluster["tmp"]))
        late = subprocess.Popen([str(Path(sys.executable).parent / "dask"), "worker", dask_cluster["address"],
                                 "--nthreads", "1", "--no-nanny", "--name", "late-broken", "--no-dashboard",
                                 "--tls-ca-file", str(dask_cluster["certs"] / "ca.pem"),
                                 "--tls-cert", str(dask_cluster["certs"] / "worker.pem"),
                                 "--tls-key", str(dask_cluster["certs"] / "worker-key.pem")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=no_bwrap)
        address = _worker_named(dask_cluster["client"], "late-broken")
        assert proc.poll() is None, "the batch ended before the late worker joined: nothing was tested"
        out, err = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
        if late is not None:
            late.terminate()
            late.wait(60)
    assert proc.returncode == 0, err[-3000:]
    rows = {s: r for (s, a), r in subs.read_grades(course / "exports" / "grades.csv").items() if a == AID}
    assert {s: (r["score"], r["status"]) for s, r in rows.items()} == {
        "a_loop": ("12", "graded"), **{f"b_correct_{i}": ("12", "graded") for i in range(7)}}, rows
    named = [line for line in err.splitlines() if address in line and "grades nothing more" in line]
    assert len(named) == 1 and "reference solution was not graded" in named[0], err[-3000:]
