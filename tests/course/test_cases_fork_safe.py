"""The grader forks its workers after loading the assignments' ``cases.py``: a ``cases.py`` that runs
torch work when it is imported starts torch's thread pool in the parent, and a forked worker that
then uses torch waits for that pool for ever (14_robustness's first cases.py hung grading so). Every
``cases.py`` is loaded as the grader loads it, then a forked child runs a parallel torch operation:
it must finish."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support.course import REPO, syllabus_ids

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent('''
    import os, sys, signal
    from pathlib import Path
    from autograder.authoring.reference import load_exercises
    for aid in sys.argv[1:]:
        load_exercises(Path("source_notebooks") / aid / "cases.py")
    if "torch" not in sys.modules:
        print("no torch at import"); sys.exit(0)
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)  # a hung child dies, and the parent sees it
        import torch
        x = torch.ones(512, 512)
        (x @ x).sum().item()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status)); sys.exit(0 if os.waitstatus_to_exitcode(status) == 0 else 1)
''')


def test_no_cases_file_leaves_torch_unsafe_to_fork():
    aids = [a for a in syllabus_ids() if (REPO / "source_notebooks" / a / "cases.py").is_file()]
    r = subprocess.run([sys.executable, "-c", SCRIPT, *aids], cwd=REPO, capture_output=True, text=True, timeout=300)
    if r.returncode == 0:
        return
    culprits = [a for a in aids if subprocess.run([sys.executable, "-c", SCRIPT, a], cwd=REPO,
                                                  capture_output=True, timeout=120).returncode != 0]
    pytest.fail(f"a worker forked after loading these cases.py hangs in torch: {culprits or aids} "
                f"(do torch work inside the cases' functions, not at import)\n{r.stdout[-500:]}{r.stderr[-1500:]}")
