"""Build release/ from source_notebooks/ (and check that the committed one is in sync).

For each assignment: write ``checks.json`` (visible cases and their expected
outputs, computed from the reference) beside the source notebook, then let
nbgrader's generate_assignment produce the student version in ``release/<id>/``.
"""
from __future__ import annotations

import filecmp
import json

from autograder.files import readable_json
import math
import tempfile
from pathlib import Path
from typing import Any

from autograder.store import gradebook as nbgrader_api
from autograder.course import Course, CourseError
from autograder.authoring.plan import visible_checks
from helpers.grading.checking import CHECKS_FILE
from helpers.grading.contract import rounded

#: Two checks.json agree when every number agrees to this tolerance (another CPU's libm or SIMD
#: kernels change the last bits of a float; a changed reference or case changes far more).
RTOL = 1e-7
ATOL = 1e-10


def checks_json_text(course: Course, aid: str) -> str:
    """checks.json: sorted, indented, floats rounded (``helpers.grading.checking.SIGNIFICANT_DIGITS``)."""
    return readable_json(rounded(visible_checks(course, aid))) + "\n"


def json_difference(a: Any, b: Any, where: str = "") -> str | None:
    """Where two JSON values differ (numbers to RTOL/ATOL, everything else exactly); None if they agree."""
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        if type(a) is not type(b):
            return f"{where or 'the top level'}: {type(a).__name__} vs {type(b).__name__}"
        if isinstance(a, dict):
            if a.keys() != b.keys():
                return f"{where or 'the top level'}: keys {sorted(set(a) ^ set(b))[:5]} differ"
            return next((d for k in sorted(a) if (d := json_difference(a[k], b[k], f"{where}.{k}"))), None)
        if isinstance(a, list):
            if len(a) != len(b):
                return f"{where}: {len(a)} vs {len(b)} items"
            return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := json_difference(x, y, f"{where}[{i}]"))), None)
        return None if a == b else f"{where}: {str(a)[:40]!r} vs {str(b)[:40]!r}"
    if math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL):
        return None
    return f"{where}: {a!r} vs {b!r}"


def _json_file_difference(fresh: Path, committed: Path) -> str | None:
    try:
        return json_difference(json.loads(fresh.read_text()), json.loads(committed.read_text()))
    except (OSError, ValueError) as e:
        return f"unreadable ({e})"


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
        try:
            diff = json_difference(json.loads(checks_json_text(course, aid)), json.loads(committed.read_text()))
        except (OSError, ValueError) as e:
            diff = f"unreadable ({e})"
        if diff:
            problems.append(f"{committed} is out of date with the reference solution or cases.py ({diff[:160]})")
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
        if rel.suffix == ".json":
            diff = _json_file_difference(fresh / rel, committed / rel)
            if diff:
                problems.append(f"{committed / rel} differs from a fresh release ({diff[:160]})")
        elif not filecmp.cmp(fresh / rel, committed / rel, shallow=False):
            problems.append(f"{committed / rel} differs from a fresh release")
    return problems
