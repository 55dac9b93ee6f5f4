"""Nothing of a grading run is readable by other users of the machine (issue 27 §4, design principle 12).

A real second local user (``useradd``, removed afterwards) polls ``/tmp`` and the course folder
while ``autograder grade`` grades a small batch through the CLI (local pool: forked workers,
sandboxes running as other uids, the canary). It tries to open and read every file it can reach.
The course folder is made reachable on purpose (0755 down to it): what the run creates there
(plans, submitted copies, outcomes, feedback, autograded notebooks, the gradebook, the CSV) and
in ``/tmp`` (work folders with hidden inputs, staged courses, results) must stay closed: it may
read 0 of them. The poller must have seen the work folders exist (so it polled during the batch).
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.support import submissions as subs
from tests.support.course import copy_course

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                                 reason="needs root to create a second user")]

AID = "01_perceptron"
PYTHON = shutil.which("python3", path="/usr/bin:/bin")

POLLER = textwrap.dedent('''
    import json, os, signal, sys, time

    roots = sys.argv[1:]
    readable, seen_workdirs, rounds = set(), set(), 0

    def stop(*_):
        print(json.dumps({"readable": sorted(readable), "workdirs": sorted(seen_workdirs), "rounds": rounds}))
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        rounds += 1
        try:
            seen_workdirs.update(n for n in os.listdir("/tmp") if n.startswith("autograder-"))
        except OSError:
            pass
        for root in roots:
            for folder, dirs, files in os.walk(root):
                for name in files:
                    path = os.path.join(folder, name)
                    try:
                        with open(path, "rb") as f:
                            f.read(1)
                        readable.add(path)
                    except OSError:
                        pass
        time.sleep(0.02)
''')


def _user(prefix: str):
    name = f"{prefix}{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def second_user():
    yield from _user("agpoll")


@pytest.fixture
def instructor():
    yield from _user("aginst")


def test_another_user_reads_nothing_of_a_batch(second_user, instructor):
    """(Graded as root, as the README says, in a course folder owned by the instructor: what the run
    wrote there is the instructor's afterwards, still private.)"""
    assert PYTHON, "a system python3 for the second user"
    base = Path(tempfile.mkdtemp(prefix="h7-private-", dir="/tmp"))
    poller = None
    try:
        base.chmod(0o755)  # reachable on purpose: the course's modes must not be what protects the run
        course = copy_course(base)
        for p in (base / "repo", course):
            p.chmod(0o755)
        os.chown(course, instructor.pw_uid, instructor.pw_gid)
        folder = Path(tempfile.mkdtemp(prefix="h7-subs-"))  # the instructor's input: private, as tmp is
        solved = subs.solved(AID)
        subs.write(folder, "amy", AID, solved)
        subs.write(folder, "bob", AID, subs.release_notebook(AID))
        subs.write(folder, "cyd", AID, subs.insert_code(solved, "import os\nos._exit(0)", after="perceptron_predict"))
        before = {str(p) for p in base.rglob("*") if p.is_file()}
        script = base / "poll.py"
        script.write_text(POLLER)
        script.chmod(0o644)
        u = second_user
        poller = subprocess.Popen(["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--clear-groups",
                                   PYTHON, str(script), "/tmp"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        time.sleep(1)
        assert poller.poll() is None, poller.stderr.read()
        # The course's own plan folder (not the tests' shared cache): the plans are made by this run.
        env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_PLAN_CACHE"}
        r = subprocess.run([sys.executable, "-m", "autograder", "--course", str(course), "grade", str(folder),
                            "--workers", "2", "--seed", "7"], capture_output=True, text=True, timeout=1200,
                           env=dict(env, PYTHONWARNINGS="ignore"))
        assert r.returncode == 0, r.stderr[-3000:]
        time.sleep(0.5)
        poller.send_signal(signal.SIGTERM)
        out, err = poller.communicate(timeout=60)
        seen = json.loads(out)
        created = {str(p) for p in base.rglob("*") if p.is_file()} - before
        assert len(created) >= 10, created  # plans, submitted, outcomes, feedback, autograded, gradebook, CSV
        assert {"plans", "outcomes", "feedback", "autograded", "submitted", "exports"} <= {
            Path(p).relative_to(course).parts[0] for p in created if Path(p).is_relative_to(course)}
        for p in (p for p in created if Path(p).is_relative_to(course)):  # handed to the instructor (formgrader, `autograder return`), private still
            st = os.lstat(p)
            assert (st.st_uid, st.st_mode & 0o077) == (instructor.pw_uid, 0), (p, st.st_uid, oct(st.st_mode))
        assert seen["workdirs"], "the poller never saw a work folder: it did not poll during the batch"
        leaked = [p for p in seen["readable"]
                  if p not in before and p != str(script)
                  and (p.startswith(str(base)) or Path(p).relative_to("/").parts[1].startswith("autograder-"))]
        assert leaked == [], f"{len(leaked)} file(s) of the run were readable by another user: {leaked[:20]}"
    finally:
        if poller is not None and poller.poll() is None:
            poller.kill()
            poller.wait(10)
        shutil.rmtree(base, ignore_errors=True)
