"""0 and 13: memory does not grow with the batch; no process outlives its grading (sandbox or not).

In a file of its own so that the test runner (one file per worker) runs it beside the other
integrity tests.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.course import copy_course
from tests.system.test_integrity import AID, FULL, MARKER, _batch, _cli, _grades, _kernels, _matching

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("unsafe", [False, True], ids=["sandbox", "unsafe-no-sandbox"])
def test_kernels_end_with_their_submission(tmp_path, unsafe):
    n = 4 if unsafe else 100
    course = copy_course(tmp_path)
    folder = tmp_path / "subs"
    _batch(folder, n)
    tmpdir = Path(tempfile.mkdtemp(prefix="gt-", dir="/tmp"))  # short: unix socket paths are limited
    args = ["grade", str(folder), "--workers", "2"] + (["--unsafe-no-sandbox"] if unsafe else [])
    proc = _cli(course, *args, tmpdir=tmpdir)
    most = 0
    while proc.poll() is None:
        most = max(most, len(_kernels(tmpdir)))
        time.sleep(0.1)
    out, err = proc.communicate()
    shutil.rmtree(tmpdir, ignore_errors=True)
    assert proc.returncode == 0, err[-3000:]
    assert 1 <= most <= 2, f"{most} kernels alive at once with 2 workers"
    time.sleep(1)
    assert _kernels(tmpdir) == set() and _matching(str(tmpdir)) == [], "processes outlived the batch"
    assert _matching(MARKER) == [], "a daemon a submission started outlived its grading"
    grades = _grades(course)
    assert len([k for k in grades if k[1] == AID]) == n
    assert all(grades[(f"s{i:03d}", AID)]["score"] == (str(FULL) if i % 2 == 0 or i == 3 else "0") for i in range(n))


