"""The course as tests use it: the repository, throw-away copies of the course, the real CLI, the syllabus."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The many copies of the course that tests grade in share their grading plans (filed by the
# digest of their sources: a copy whose cases or notebook differ gets plans of its own).
os.environ.setdefault("AUTOGRADER_PLAN_CACHE", str(REPO / "artifacts" / "plan-cache"))
#: And they record one seed (``course/.grading_seed``), so that a plan is computed once per run,
#: not once per copy; a test of seeds passes ``--seed`` or removes the file.
COPY_SEED = 20261201


def syllabus_ids() -> list[str]:
    from autograder.course import Course

    return [a.id for a in Course(REPO / "course").assignments()]


def mistake_params() -> list:
    """One pytest param per catalogued mistake of every exercise: (assignment, exercise, message)."""
    import pytest

    from autograder.authoring.reference import load_exercises
    from autograder.course import Course

    course = Course(REPO / "course")
    return [pytest.param(aid, name, message, id=f"{aid}:{name}:mistake{i}")
            for aid in syllabus_ids() for name, ex in load_exercises(course.cases_file(aid)).items()
            for i, message in enumerate(ex.mistakes)]


def copy_course(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir(parents=True)
    ignore = shutil.ignore_patterns("gradebook.db*", "submitted", "autograded", "feedback", "outcomes",
                                    "exports", "exchange", ".grading_seed", ".ipynb_checkpoints", "__pycache__",
                                    "plans", "ondemand", "extensions.json", "extensions.log")
    for name in ("course", "source_notebooks", "release"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    (root / "course" / ".grading_seed").write_text(f"{COPY_SEED}\n")
    return root / "course"


def run_cli(*args: str, course: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real instructor CLI (``python -m autograder``) in a subprocess."""
    cmd = [sys.executable, "-m", "autograder"]
    if course is not None:
        cmd += ["--course", str(course)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env)
