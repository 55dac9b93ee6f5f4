"""A grade is right, or it says why not; and nothing of a submission outlives or escapes its grading.

Each test grades for real through the CLI (sandbox included) in a throw-away course.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.support import submissions as subs
from autograder.sandbox import processes
from tests.support.course import REPO, copy_course, run_cli
from tests.unit.test_collect_safety import hostile_zip

AID = "01_perceptron"
FULL = 12
MARKER = "autograder-test-daemon-7f3a"
# A submission that leaves a daemon behind: double fork, new session, its own marker in argv.
DAEMON = ("import os, subprocess, sys\n"
          "if os.fork() == 0:\n    os.setsid()\n"
          f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{MARKER}'])\n"
          "    os._exit(0)\n")

pytestmark = pytest.mark.slow


def _cli(course: Path, *args: str, tmpdir: Path | None = None, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    # SIGINT at its default in the CLI, whatever this test process inherited: an ignored SIGINT passes
    # through exec, and a CLI started with it ignored would never see the interrupt a test sends it
    kw.setdefault("preexec_fn", lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.Popen([sys.executable, "-m", "autograder", "--course", str(course), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def _matching(*texts: str) -> list[int]:
    """Processes whose command line contains every one of ``texts`` (processes come and go meanwhile)."""
    found = []
    for pid in processes.all_processes():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pid != os.getpid() and all(t in cmdline for t in texts):
            found.append(pid)
    return found


def _kernels(tmpdir: Path) -> set[str]:
    """The kernels alive under ``tmpdir``, one per sandbox folder: a kernel is several processes
    (bubblewrap's, the kernel's, any fork of it), all naming the same per-notebook folder."""
    import re

    found = set()
    for pid in _matching(str(tmpdir), "ipykernel"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found |= set(re.findall(rf"{re.escape(str(tmpdir))}/autograder-[^/ ]+", cmdline))
    return found


def _grades(course: Path) -> dict:
    return subs.read_grades(course / "exports" / "grades.csv")


# --------------------------------------------------------------------------- #
# 0 and 13: memory does not grow with the batch; no process outlives its grading.
# --------------------------------------------------------------------------- #


def _batch(folder: Path, n: int) -> None:
    solved, stub = subs.solved(AID), subs.release_notebook(AID)
    daemon = subs.insert_code(solved, DAEMON, after="sigmoid_impl")
    for i in range(n):
        nb = daemon if i == 3 else (solved if i % 2 == 0 else stub)
        subs.write(folder, f"s{i:03d}", AID, nb)


# (the batch test itself is in test_integrity_batch.py: a file of its own runs beside this one)


# --------------------------------------------------------------------------- #
# 2: a broken grading host is not a class of zeros.
# --------------------------------------------------------------------------- #


def test_a_broken_host_stops_before_grading_anyone(tmp_path):
    course = copy_course(tmp_path)
    # Below what the course's modules map: a warm kernel refuses to start (they are mapped already), so the
    # grader falls back to a cold one, which starts but cannot import torch.
    with open(course / "nbgrader_config.py", "a") as f:
        f.write("\nc.SandboxPolicy.memory_mb = 600\n")
    folder = tmp_path / "subs"
    subs.write(folder, "alice", AID, subs.solved(AID))
    r = run_cli("grade", str(folder), "--workers", "1", course=course)
    assert r.returncode == 2, r.stderr[-2000:]
    line = r.stderr.strip().splitlines()[-1]
    assert "cannot grade 01_perceptron" in line and "Nothing was graded" in line
    # the cause is named: torch fails to import in the set-up cell, or the kernel dies of it
    assert "setup cell failed" in line or "kernel died" in line or "failed to start" in line, line
    assert "Traceback" not in r.stderr
    assert not (course / "outcomes" / AID / "alice.json").exists()


def test_an_error_in_a_locked_cell_is_an_environment_error_and_keeps_no_old_points(tmp_path):
    course = copy_course(tmp_path)
    folder = tmp_path / "subs"
    subs.write(folder, "alice", AID, subs.solved(AID))
    assert run_cli("grade", str(folder), "--workers", "1", course=course).returncode == 0
    assert _grades(course)[("alice", AID)]["score"] == str(FULL)
    nb = subs.solved(AID)  # a cell of hers before the setup cell makes the locked import fail
    nb.cells.insert(0, subs.new_code_cell("import sys\nsys.modules['helpers'] = None"))
    subs.write(folder, "alice", AID, nb)
    r = run_cli("grade", str(folder), "--workers", "1", course=course)
    assert r.returncode == 0, r.stderr[-2000:]
    row = _grades(course)[("alice", AID)]
    assert (row["score"], row["status"]) == ("0", "not graded") and "environment error" in row["reason"], row
    db = sqlite3.connect(course / "gradebook.db")
    assert db.execute("SELECT MAX(auto_score) FROM grade").fetchone()[0] == 0


# --------------------------------------------------------------------------- #
# 1, 5 and resuming: the gradebook, dead workers, interruptions.
# --------------------------------------------------------------------------- #


def _six(folder: Path) -> None:
    solved, stub = subs.solved(AID), subs.release_notebook(AID)
    slow = subs.insert_code(solved, "import time\ntime.sleep(4)", after="sigmoid_impl")
    for i, nb in enumerate([solved, stub, slow, slow, solved, slow]):
        subs.write(folder, f"p{i}", AID, nb)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain")
    course = copy_course(tmp)
    folder = tmp / "subs"
    _six(folder)
    r = run_cli("grade", str(folder), "--workers", "2", "--seed", "5", course=course)
    assert r.returncode == 0, r.stderr[-2000:]
    return course, folder, (course / "exports" / "grades.csv").read_text()


def _wait_for_outcome(course: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        done = [p for p in (course / "outcomes" / AID).glob("p*.json") if '"graded"' in p.read_text()]
        if done:
            return
        time.sleep(0.2)
    raise AssertionError("no submission was graded")


def _start_and_wait(tmp_path: Path) -> tuple[Path, Path, subprocess.Popen]:
    """The six submissions graded in a new course, returned once the first one is graded."""
    course = copy_course(tmp_path)
    folder = tmp_path / "subs"
    _six(folder)
    proc = _cli(course, "grade", str(folder), "--workers", "2", "--seed", "5")
    _wait_for_outcome(course, proc)
    return course, folder, proc


def _finish_and_compare(course: Path, folder: Path, uninterrupted) -> None:
    r = run_cli("grade", str(folder), "--workers", "2", "--seed", "5", course=course)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (course / "exports" / "grades.csv").read_text() == uninterrupted[2]


def test_a_lost_gradebook_means_regrading(uninterrupted, tmp_path):
    course, folder, csv_text = uninterrupted
    (course / "gradebook.db").unlink()
    r = run_cli("grade", str(folder), "--workers", "2", "--seed", "5", course=course)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (course / "exports" / "grades.csv").read_text() == csv_text
    assert _grades(course)[("p0", AID)]["score"] == str(FULL)


def test_a_killed_worker_loses_nothing_and_the_rerun_finishes(uninterrupted, tmp_path):
    course, folder, proc = _start_and_wait(tmp_path)
    workers = [p for p in processes.descendants(proc.pid)
               if processes.all_processes().get(p, (0, 0))[0] == proc.pid]
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 1, (out[-1500:], err[-1500:])
    assert "Run the same command again" in err and "Traceback" not in err
    rows = _grades(course)
    assert all((f"p{i}", AID) in rows for i in range(6)), "a submission has no outcome"
    assert any("worker died" in r["reason"] for r in rows.values())
    assert all(r["score"] == "0" for r in rows.values() if "worker died" in r["reason"])
    _finish_and_compare(course, folder, uninterrupted)


def test_an_interrupted_batch_resumed_gives_the_same_csv(uninterrupted, tmp_path):
    course, folder, proc = _start_and_wait(tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "Traceback" not in err, err[-2000:]
    _finish_and_compare(course, folder, uninterrupted)


def test_twenty_forced_regrades_give_identical_scores(tmp_path):
    from autograder.course import Course
    from autograder.results.export import export_csv
    from autograder.grading.batch import GradeOptions, grade

    course = Course(copy_course(tmp_path))
    folder = tmp_path / "subs"
    subs.write(folder, "alice", AID, subs.replace_exercise(subs.solved(AID), "softmax", "def softmax(Z):\n    return Z"))
    first = None
    for _ in range(20):
        grade(course, folder, GradeOptions(workers=1, force=True, seed=11))
        text = export_csv(course).read_text()
        first = first or text
        assert text == first
    assert _grades(course.root)[("alice", AID)]["score"] == "10"


# --------------------------------------------------------------------------- #
# 4, 7, 8, 12: the given course; links and zips through the CLI; printable CSV.
# --------------------------------------------------------------------------- #


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_hostile_zip_through_the_cli_gives_every_entry_a_row(tmp_path):
    course = copy_course(tmp_path)
    zpath = tmp_path / "export.zip"
    hostile_zip(zpath, (REPO / "release" / AID / f"{AID}.ipynb").read_bytes())
    with zipfile.ZipFile(zpath, "a") as zf:  # one solved student too
        zf.writestr(f"zed/{AID}/{AID}.ipynb", json.dumps(subs.solved(AID)))
        zf.writestr(f"ctrl/{AID}/\x1b[2Jwrong\x07name.ipynb", json.dumps(subs.solved(AID)))
    r = run_cli("grade", str(zpath), "--workers", "2", course=course)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _grades(course)
    assert rows[("zed", AID)]["score"] == str(FULL)
    assert rows[("ctrl", AID)]["score"] == str(FULL) and "wrong file name" in rows[("ctrl", AID)]["reason"]
    for student in ("bob", "carol", "dave", "erin", "frank", "gina", "hugo"):
        assert rows[(student, AID)]["status"] == "not graded", rows[(student, AID)]
    refused = {k: v for k, v in rows.items() if v["status"] == "refused"}
    assert ("josé", "") in refused and ("..", "") in refused
    text = (course / "exports" / "grades.csv").read_text()
    assert not any(ch in text for ch in "\x1b\x07\x00"), "control characters reached the CSV"
    assert "\x1b" not in r.stdout


def test_nbgrader_export_uses_the_course_it_was_given(tmp_path):
    course = copy_course(tmp_path)
    folder = tmp_path / "subs"
    subs.write(folder, "only_here", AID, subs.release_notebook(AID))
    assert run_cli("grade", str(folder), "--workers", "1", course=course).returncode == 0
    (course / "exports" / "grades.csv").unlink()
    nbgrader = Path(sys.executable).parent / "nbgrader"
    r = subprocess.run([str(nbgrader), "export"], cwd=course, capture_output=True, text=True,
                       env=dict(os.environ, PATH=f"{nbgrader.parent}:{os.environ['PATH']}"), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader((course / "exports" / "grades.csv").open()))
    assert {row["student"] for row in rows} == {"only_here"}
