"""``autograder new <id> "title"``: the skeleton of a lecture, in a temporary copy of the course.

Fast: what it creates (the cell pattern of docs/authoring.md, nbgrader's metadata, cases.py, the
syllabus line), that it is deterministic, and that it refuses a used or malformed id and an empty
title with one line, exit status 2 and nothing written. Slow: the skeleton, with a solution the
author writes, released (after a misspelt input name in cases.py is refused, naming the reference's
parameters) and graded through the CLI: the solution gets full marks, the release 0.
"""
from __future__ import annotations

import hashlib
import importlib.util
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator

from tests.support import submissions as subs
from autograder.authoring import scaffold
from autograder.cli import main
from autograder.course import Course, CourseError
from tests.support.course import REPO, copy_course, run_cli

AID, TITLE = "12_demo", "A demo"


def _tree(root: Path) -> dict[str, str]:
    """Every file under the course copy (course, source_notebooks, release) and a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _load_cases(path: Path):
    spec = importlib.util.spec_from_file_location("scaffold_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def course(tmp_path) -> Path:
    return copy_course(tmp_path)


def new(course: Path, capsys, *args: str) -> tuple[int, str, str]:
    """``autograder --course COURSE new ARGS`` in this process (the slow test runs the real command)."""
    code = main(["--course", str(course), "new", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_new_creates_the_cell_pattern_with_nbgrader_metadata(course, capsys):
    before = _tree(course.parent)
    code, stdout, stderr = new(course, capsys, AID, TITLE)
    assert code == 0, stderr
    folder = course.parent / "source_notebooks" / AID
    added = set(_tree(course.parent)) - set(before)
    assert added == {f"source_notebooks/{AID}/{AID}.ipynb", f"source_notebooks/{AID}/cases.py"}
    assert f"| `{AID}` | {TITLE} |" in stdout  # the README row to add, printed

    nb = nbformat.read(folder / f"{AID}.ipynb", as_version=4)
    nbformat.validate(nb)
    MetadataValidator().validate_nb(nb)
    kinds = []
    for cell in nb.cells:
        meta, tags = cell.metadata.get("nbgrader", {}), cell.metadata.get("tags", [])
        kinds.append("setup" if "reference" in tags else "demo" if "demo" in tags else
                     "solution" if meta.get("solution") else "test" if meta.get("grade") else cell.cell_type)
    assert kinds == ["markdown", "setup", "markdown", "solution", "test", "markdown", "demo", "markdown"]
    assert nb.cells[0].source.startswith(f"# 12 · {TITLE}\n")
    setup, solution, test = nb.cells[1], nb.cells[3], nb.cells[4]
    assert setup.metadata.nbgrader == {"grade": False, "grade_id": "setup", "locked": True, "schema_version": 3,
                                       "solution": False, "task": False}
    assert "from helpers import check" in setup.source
    assert solution.metadata.nbgrader.grade_id == f"{scaffold.EXAMPLE}_impl" and not solution.metadata.nbgrader.locked
    assert "### BEGIN SOLUTION" in solution.source and "### END SOLUTION" in solution.source
    assert test.source == f'check("{scaffold.EXAMPLE}", {scaffold.EXAMPLE})'
    assert (test.metadata.nbgrader.grade_id, test.metadata.nbgrader.points, test.metadata.nbgrader.locked) == (
        scaffold.EXAMPLE, scaffold.EXAMPLE_POINTS, True)
    assert "except NotImplementedError" in nb.cells[6].source  # the demo runs in the released notebook too
    assert [c.id for c in nb.cells] == [f"c{i:03d}" for i in range(len(nb.cells))]

    entries = tomllib.loads((course / "syllabus.toml").read_text())["assignment"]
    assert entries[-1] == {"id": AID, "title": TITLE, "points": scaffold.EXAMPLE_POINTS}
    assert [e["id"] for e in entries[:-1]] == [a["id"] for a in tomllib.loads(
        (REPO / "course" / "syllabus.toml").read_text())["assignment"]]  # appended, kept
    cases = _load_cases(folder / "cases.py")
    assert [e.name for e in cases.EXERCISES] == [test.metadata.nbgrader.grade_id]
    assert len(cases.EXERCISES[0].mistakes) == 2


def test_the_skeleton_is_deterministic():
    a, b = scaffold.notebook(AID, TITLE), scaffold.notebook(AID, TITLE)
    assert nbformat.writes(a) == nbformat.writes(b)
    assert scaffold.cases_source(AID) == scaffold.cases_source(AID)


def test_titles_are_written_as_valid_toml():
    title = 'Graphs: "message passing" \\ GNNs, à la Kipf'
    entry = tomllib.loads(scaffold.syllabus_entry(AID, title, 2))["assignment"][0]
    assert entry == {"id": AID, "title": title, "points": 2}


@pytest.mark.parametrize("aid, title, words", [
    ("03_optimisation", "Again", "already exists"),
    ("12-demo", TITLE, "malformed"), ("demo", TITLE, "malformed"), ("1_demo", TITLE, "malformed"),
    ("12_Demo", TITLE, "malformed"), ("12_", TITLE, "malformed"), ("../12_demo", TITLE, "malformed"),
    (AID, "", "title is empty"), (AID, "   ", "title is empty"), (AID, "two\nlines", "one line"),
])
def test_refusals_are_one_line_exit_2_and_write_nothing(course, capsys, aid, title, words):
    before = _tree(course.parent)
    code, stdout, stderr = new(course, capsys, aid, title)
    assert code == 2, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autograder: error: ") and words in lines[0], stderr
    assert not stdout
    assert _tree(course.parent) == before


def test_an_existing_folder_is_never_overwritten(course):
    c = Course(course)
    (c.source_dir / AID).mkdir()
    (c.source_dir / AID / "notes.md").write_text("mine")
    before = _tree(course.parent)
    with pytest.raises(CourseError, match="already exists"):
        scaffold.new_assignment(c, AID, TITLE)
    assert _tree(course.parent) == before and (c.source_dir / AID / "notes.md").read_text() == "mine"
    (c.source_dir / AID / "notes.md").unlink()
    (c.source_dir / AID).rmdir()
    (c.release_dir / AID).mkdir()
    before = _tree(course.parent)
    with pytest.raises(CourseError, match="already exists"):
        scaffold.new_assignment(c, AID, TITLE)
    assert _tree(course.parent) == before and not (c.source_dir / AID).exists()


AUTHORS_SOLUTION = "return np.linalg.norm(X, axis=1)"  # not the skeleton's formula: the author's own


@pytest.mark.slow
def test_a_scaffolded_lecture_releases_and_grades_through_the_cli(course, tmp_path):
    assert run_cli("new", AID, TITLE, course=course).returncode == 0
    src = course.parent / "source_notebooks" / AID / f"{AID}.ipynb"
    nb = nbformat.read(src, as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    head, _, rest = cell.source.partition("### BEGIN SOLUTION\n")
    _, _, tail = rest.partition("    ### END SOLUTION")
    cell.source = f"{head}### BEGIN SOLUTION\n    {AUTHORS_SOLUTION}\n    ### END SOLUTION{tail}"
    nbformat.write(nb, src)

    cases = src.parent / "cases.py"  # a misspelt input name is refused, naming the reference's parameters
    good = cases.read_text()
    cases.write_text(good.replace('return {"X": rng.normal', 'return {"x": rng.normal'))
    refused = run_cli("release", AID, course=course)
    assert refused.returncode == 2 and "are (x) but the reference takes (X)" in refused.stderr, refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr
    cases.write_text(good)

    released = run_cli("release", AID, course=course)
    assert released.returncode == 0, released.stderr[-3000:]
    release = nbformat.read(course.parent / "release" / AID / f"{AID}.ipynb", as_version=4)
    (student_cell,) = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert "raise NotImplementedError" in student_cell.source and AUTHORS_SOLUTION not in student_cell.source
    assert (course.parent / "release" / AID / "checks.json").is_file()

    solved = nbformat.from_dict(release)
    solved_cell = [c for c in solved.cells if c.metadata.get("nbgrader", {}).get("solution")][0]
    solved_cell.source = f'def {scaffold.EXAMPLE}(X):\n    {AUTHORS_SOLUTION}'
    folder = tmp_path / "submissions"
    subs.write(folder, "alice", AID, solved)
    subs.write(folder, "bob", AID, release)
    graded = run_cli("grade", str(folder), "--workers", "1", course=course)
    assert graded.returncode == 0, graded.stderr[-3000:]
    grades = subs.read_grades(course / "exports" / "grades.csv")
    assert (grades[("alice", AID)]["score"], grades[("alice", AID)]["max_score"]) == ("2", "2")
    assert (grades[("bob", AID)]["score"], grades[("bob", AID)]["status"]) == ("0", "graded")
