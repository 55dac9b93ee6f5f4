"""A grading cluster only the instructor's machines can join (issue 27 §6), through the real CLI
and a real ``dask scheduler`` / ``dask worker``.

The scheduler speaks mutual TLS with certificates made by ``autograder cluster-certs``. Refused:
a worker without a certificate, or with one of another authority (it never joins, so it never
receives the batch); a plain client without them (it never connects, so it runs nothing on the
workers); a tcp:// address unless ``--insecure-cluster`` (then with a warning). A worker that
*has* the certificate but is rogue (a ``--preload`` replacing the task function) cannot make the
coordinator believe more than data for the job it sent: a result naming another student is
applied to the job's own student, a pickled object is never unpickled (it would create a file),
and a malformed answer or an impossible score is that submission's "not graded".
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support import submissions as subs
from tests.support.course import REPO, copy_course, run_cli

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

AID = "01_perceptron"
DASK = str(Path(sys.executable).parent / "dask")

ROGUE = textwrap.dedent('''
    """A worker holding the cluster's certificate, whose task function lies."""
    import os

    from autograder.run import jobs as cluster
    from autograder.store import outcomes

    honest = getattr(cluster, "_honest_remote", cluster.remote)  # Dask imports a preload twice
    cluster._honest_remote = honest
    MARKER = os.environ["ROGUE_MARKER"]


    class Payload:
        def __reduce__(self):  # unpickling it creates MARKER: code run wherever it is unpickled
            return (open, (MARKER, "w"))


    def remote(fn, bundle, job):
        if job.student == "mallory":  # "this is the victim's result: not graded, zero points"
            return {"outcome": {"assignment": job.assignment, "student": "victim", "status": outcomes.NOT_GRADED,
                                "reason": "forged", "score": 0.0, "exercises": {}, "events": [], "notes": []},
                    "zero": True, "autograded": {}, "feedback": {}, "gradebook": {}, "worker": "x", "refused": ""}
        if job.student == "pickler":  # a pickle sent as the result, as a crafted worker would send it
            import pickle

            from distributed.protocol.serialize import Serialized

            return Serialized({"serializer": "pickle"}, [pickle.dumps(Payload())])
        if job.student == "garbage":
            return ["not", "a", "result"]
        if job.student == "greedy":  # more points than the cell is worth
            return {"outcome": {"status": outcomes.GRADED, "score": 100.0, "exercises": {}, "events": []},
                    "zero": False, "autograded": {}, "feedback": {},
                    "gradebook": {"timestamp": None, "notebooks": {job.assignment: {
                        "late_submission_penalty": None, "grades": {"softmax": [100.0, False]}, "comments": {}}}},
                    "worker": "x", "refused": ""}
        return honest(fn, bundle, job)


    cluster.remote = remote
''')


def _wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A TLS scheduler on 127.0.0.1 (scheduler file), the course's certificates and another authority's."""
    from autograder.run.tls import make_certificates

    base = tmp_path_factory.mktemp("tls")
    certs, foreign = base / "certs", base / "foreign"
    make_certificates(certs)
    make_certificates(foreign)
    sched_file = base / "scheduler.json"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    scheduler = subprocess.Popen([DASK, "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(sched_file),
                                  "--tls-ca-file", str(certs / "ca.pem"), "--tls-cert", str(certs / "scheduler.pem"),
                                  "--tls-key", str(certs / "scheduler-key.pem")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    procs = [scheduler]
    try:
        _wait_for(lambda: sched_file.is_file() and sched_file.stat().st_size > 0, 120, "the scheduler")
        import json

        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tls://127.0.0.1:"), address
        yield {"base": base, "certs": certs, "foreign": foreign, "file": sched_file, "address": address,
               "procs": procs, "env": env}
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def _client(tls, folder: Path | None):
    from distributed import Client
    from distributed.security import Security

    if folder is None:
        return Client(tls["address"], timeout=8)
    sec = Security(tls_ca_file=str(folder / "ca.pem"), tls_client_cert=str(folder / "client.pem"),
                   tls_client_key=str(folder / "client-key.pem"), require_encryption=True)
    return Client(tls["address"], timeout=8, security=sec)


def _worker(tls, name: str, certs: Path | None, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [DASK, "worker", tls["address"], "--nthreads", "1", "--no-nanny", "--name", name, "--no-dashboard",
           "--death-timeout", "60", *extra]
    if certs is not None:
        cmd += ["--tls-ca-file", str(certs / "ca.pem"), "--tls-cert", str(certs / "worker.pem"),
                "--tls-key", str(certs / "worker-key.pem")]
    log = open(tls["base"] / f"{name}.log", "wb")  # noqa: SIM115 - the worker's for its life
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env or tls["env"])
    tls["procs"].append(p)
    return p


def _stranger(tls, folder: Path | None) -> list[str]:
    """Try to connect a client with ``folder``'s certificates (None: none) in a fresh process (a failed
    Client can leave this process's Dask loop in a state where the next Client fails an internal assert,
    which would say nothing about the scheduler); the names of the error's classes, or ["CONNECTED"]."""
    code = ("from pathlib import Path\nfrom tests.system.test_cluster_security import _client\n"
            f"folder = {None if folder is None else str(folder)!r}\n"
            "try:\n"
            f"    _client({{'address': {tls['address']!r}}}, None if folder is None else Path(folder)).close()\n"
            "except BaseException as e:\n"
            "    print(' '.join(c.__name__ for c in type(e).__mro__))\n"
            "else:\n"
            "    print('CONNECTED')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=tls["env"],
                          cwd=REPO)  # -c puts the working folder first on the path: the tests package
    return (done.stdout.strip().splitlines() or ["no answer: " + done.stderr[-500:]])[-1].split()


def test_strangers_cannot_connect_or_join(tls):
    """No client and no worker without the course's certificate; the instructor's client works."""
    # Dask will not even try TLS without a certificate
    assert {"OSError", "TimeoutError", "TypeError"} & set(_stranger(tls, None)), _stranger(tls, None)
    # another authority's certificate: the handshake fails
    assert {"OSError", "TimeoutError"} & set(_stranger(tls, tls["foreign"])), _stranger(tls, tls["foreign"])
    # A TLS client that trusts the course's authority (ca.pem is no secret) but has no certificate of its own.
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(tls["certs"] / "ca.pem"))
    ctx.check_hostname = False
    host, port = tls["address"].removeprefix("tls://").rsplit(":", 1)
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as conn:
            conn.sendall(b"\0" * 64)
            if not conn.recv(1):  # TLS 1.3 says so at the first read, or closes the connection
                raise ConnectionResetError("closed")
    plain = tls["address"].replace("tls://", "tcp://")
    from distributed import Client

    with pytest.raises((OSError, TimeoutError)):
        Client(plain, timeout=8)
    _worker(tls, "rogue-no-cert", None)
    _worker(tls, "rogue-foreign", tls["foreign"])
    time.sleep(15)  # they keep trying; none is let in
    with _client(tls, tls["certs"]) as client:
        names = {w.get("name") for w in client.scheduler_info().get("workers", {}).values()}
    assert not names & {"rogue-no-cert", "rogue-foreign"}, names
    # Through the CLI: the other authority's client certificate does not reach the scheduler either.
    r = run_cli("grade", str(tls["base"]), "--cluster", str(tls["file"]), "--cluster-certs", str(tls["foreign"]),
                course=copy_course(tls["base"] / "c1"), timeout=300)
    assert r.returncode == 2 and "cannot reach the Dask scheduler" in r.stderr, r.stderr[-2000:]


def test_a_plain_tcp_address_is_refused_unless_marked_insecure(tmp_path):
    course = copy_course(tmp_path)
    folder = tmp_path / "subs"
    subs.write(folder, "amy", AID, subs.solved(AID))
    r = run_cli("grade", str(folder), "--cluster", "tcp://127.0.0.1:9", course=course, timeout=300)
    assert r.returncode == 2 and "refusing the cluster address tcp://127.0.0.1:9" in r.stderr, r.stderr[-2000:]
    assert "--insecure-cluster" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("grade", str(folder), "--cluster", "127.0.0.1:9", course=course, timeout=300)  # Dask's default: tcp
    assert r.returncode == 2 and "refusing" in r.stderr, r.stderr[-2000:]
    # Marked insecure, it is tried (here nothing listens), with a warning first.
    r = run_cli("grade", str(folder), "--cluster", "tcp://127.0.0.1:9", "--insecure-cluster", course=course,
                timeout=300)
    assert r.returncode == 2 and "cannot reach the Dask scheduler" in r.stderr, r.stderr[-2000:]
    assert "WARNING: grading on a Dask cluster without TLS" in r.stderr
    # A tls:// address with no certificate anywhere is one clear line.
    r = run_cli("grade", str(folder), "--cluster", "tls://127.0.0.1:9", course=course, timeout=300)
    assert r.returncode == 2 and "needs the cluster's certificates" in r.stderr, r.stderr[-2000:]
    assert not (course / "outcomes").exists()  # nothing was graded


def test_a_rogue_worker_with_the_certificate_is_believed_only_as_data_for_its_job(tls, tmp_path):
    preload = tmp_path / "rogue_preload.py"
    preload.write_text(ROGUE)
    marker = tmp_path / "UNPICKLED"
    env = dict(tls["env"], ROGUE_MARKER=str(marker), TMPDIR=str(tmp_path))
    worker = _worker(tls, "rogue-with-cert", tls["certs"], "--preload", str(preload), env=env)
    with _client(tls, tls["certs"]) as client:
        _wait_for(lambda: any(w.get("name") == "rogue-with-cert"
                              for w in client.scheduler_info().get("workers", {}).values()), 120, "the worker")
    folder = tmp_path / "subs"
    for student in ("victim", "mallory", "pickler", "garbage", "greedy"):
        subs.write(folder, student, AID, subs.solved(AID))
    course = copy_course(tmp_path / "c")
    r = run_cli("grade", str(folder), "--cluster", str(tls["file"]), "--cluster-certs", str(tls["certs"]),
                "--seed", "7", course=course, timeout=1200)
    assert worker.poll() is None, (tls["base"] / "rogue-with-cert.log").read_text()[-3000:]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stdout + r.stderr
    assert not marker.exists(), "a pickle from the worker was unpickled"
    import pickle

    class Payload:  # the same payload, unpickled here: it would have left the marker
        def __reduce__(self):
            return (open, (str(marker) + ".check", "w"))

    pickle.loads(pickle.dumps(Payload())).close()
    assert Path(str(marker) + ".check").exists()
    rows = {s: row for (s, a), row in subs.read_grades(course / "exports" / "grades.csv").items() if a == AID}
    assert (rows["victim"]["score"], rows["victim"]["status"]) == ("12", "graded"), rows["victim"]
    assert (rows["mallory"]["score"], rows["mallory"]["status"]) == ("0", "not graded"), rows["mallory"]
    assert rows["mallory"]["reason"] == "forged"  # its own forged answer, applied to its own job
    from autograder.store import outcomes
    from autograder.course import Course

    assert outcomes.read(Course(course), AID, "mallory")["student"] == "mallory"
    assert outcomes.read(Course(course), AID, "victim")["status"] == "graded"
    assert rows["pickler"]["status"] == "not graded" and "not plain data" in rows["pickler"]["reason"], rows
    assert rows["garbage"]["status"] == "not graded" and "not a result" in rows["garbage"]["reason"], rows
    assert rows["greedy"]["status"] == "not graded" and "outside 0..2" in rows["greedy"]["reason"], rows
    import sqlite3

    db = sqlite3.connect(course / "gradebook.db")
    assert db.execute("SELECT MAX(auto_score) FROM grade").fetchone()[0] <= 2
