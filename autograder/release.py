"""Build release/ from source_notebooks/ (and check that the committed one is in sync).

For each assignment: write ``checks.json`` (visible cases and their expected
outputs, computed from the reference) beside the source notebook, then let
nbgrader's generate_assignment produce the student version in ``release/<id>/``.
"""
from __future__ import annotations

import filecmp
import json
import tempfile
from pathlib import Path

from autograder import nbgrader_api
from autograder.course import Course, CourseError
from autograder.plan import visible_checks
from helpers.checking import CHECKS_FILE


def checks_json_text(course: Course, aid: str) -> str:
    return json.dumps(visible_checks(course, aid), sort_keys=True) + "\n"


def release(course: Course, aids: list[str], release_dir: Path | None = None, db_url: str | None = None) -> None:
    """Regenerate checks.json and the student version of each assignment."""
    overrides: dict = {}
    if release_dir is not None:
        overrides["CourseDirectory"] = {"release_directory": str(release_dir)}
    if db_url is not None:
        overrides.setdefault("CourseDirectory", {})["db_url"] = db_url
    config = nbgrader_api.course_config(course, **overrides)
    nb_api = nbgrader_api.api(course, config)
    for aid in aids:
        course.assignment(aid)
        if not course.source_notebook(aid).is_file():
            raise CourseError(f"{course.source_notebook(aid)} is missing")
        text = checks_json_text(course, aid)
        target = course.source_dir / aid / CHECKS_FILE
        if release_dir is None and (not target.exists() or target.read_text() != text):
            target.write_text(text)
        nbgrader_api.check_result(nb_api.generate_assignment(aid, force=True, create=True),
                                  f"generate_assignment {aid}")


def check_release(course: Course, aids: list[str]) -> list[str]:
    """What differs between the committed release and a fresh one (empty: in sync)."""
    problems = []
    for aid in aids:
        committed = course.source_dir / aid / CHECKS_FILE
        if not committed.exists() or committed.read_text() != checks_json_text(course, aid):
            problems.append(f"{committed} is out of date with the reference solution or cases.py")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "release"
        release(course, aids, release_dir=fresh, db_url=f"sqlite:///{tmp}/gradebook.db")
        for aid in aids:
            problems += _diff_trees(fresh / aid, course.release_dir / aid)
    return problems


def _diff_trees(fresh: Path, committed: Path) -> list[str]:
    if not committed.is_dir():
        return [f"{committed} is missing"]
    problems = []
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    committed_files = {p.relative_to(committed) for p in committed.rglob("*")
                       if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts}
    for rel in sorted(fresh_files - committed_files):
        problems.append(f"{committed / rel} is missing")
    for rel in sorted(committed_files - fresh_files):
        problems.append(f"{committed / rel} is not generated from the source (stale?)")
    for rel in sorted(fresh_files & committed_files):
        if not filecmp.cmp(fresh / rel, committed / rel, shallow=False):
            problems.append(f"{committed / rel} differs from a fresh release")
    return problems
