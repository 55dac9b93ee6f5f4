"""Build student submissions for the end-to-end tests, the way students make them:
start from the released notebook, fill in (or break) the exercise cells."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

from tests.support.course import REPO

#: 01_perceptron's softmax over the wrong axis (columns instead of rows): the wrong answer the
#: end-to-end tests submit (a catalogued mistake: its verdict names it).
WRONG_SOFTMAX = """
def softmax(Z):
    e = np.exp(Z - Z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)
"""


def release_notebook(aid: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "release" / aid / f"{aid}.ipynb", as_version=4)


def _solution_sources(aid: str) -> dict[str, str]:
    src = nbformat.read(REPO / "source_notebooks" / aid / f"{aid}.ipynb", as_version=4)
    out = {}
    for cell in src.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            out[meta["grade_id"]] = "\n".join(l for l in cell.source.splitlines()
                                               if l.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return out


def solved(aid: str) -> nbformat.NotebookNode:
    """The release with every exercise cell filled in with the reference solution."""
    nb = release_notebook(aid)
    sources = _solution_sources(aid)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in sources:
            cell.source = sources[gid]
    return nb


def replace_exercise(nb: nbformat.NotebookNode, name: str, source: str) -> nbformat.NotebookNode:
    """Put ``source`` in the exercise cell of ``name`` (its ``<name>_impl`` cell)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == f"{name}_impl":
            cell.source = source
            return nb
    raise KeyError(name)


def insert_code(nb: nbformat.NotebookNode, source: str, after: str | None = None,
                at_end: bool = False) -> nbformat.NotebookNode:
    """A student's own code cell, after the cell whose grade_id is ``after`` (default: after setup)."""
    nb = copy.deepcopy(nb)
    cell = new_code_cell(source)
    if at_end:
        nb.cells.append(cell)
        return nb
    target = after or "setup"
    for i, c in enumerate(nb.cells):
        if c.metadata.get("nbgrader", {}).get("grade_id") == target:
            nb.cells.insert(i + 1, cell)
            return nb
    raise KeyError(target)


def write(folder: Path, student: str, aid: str, nb: nbformat.NotebookNode | str | bytes,
          name: str | None = None) -> Path:
    """Save a submission as ``folder/<student>/<aid>/<name or aid>.ipynb``."""
    d = folder / student / aid
    d.mkdir(parents=True, exist_ok=True)
    path = d / (name or f"{aid}.ipynb")
    if isinstance(nb, bytes):
        path.write_bytes(nb)
    elif isinstance(nb, str):
        path.write_text(nb)
    else:
        path.write_text(json.dumps(nb, indent=1))
    return path


def read_grades(csv_path: Path) -> dict[tuple[str, str], dict]:
    import csv

    with open(csv_path) as f:
        return {(r["student"], r["assignment"]): r for r in csv.DictReader(f)}


#: A variant's source that stands for the released stub of the challenge's fit (``raise NotImplementedError``).
STUB = "<the released stub>"


def challenge_batch(tmp: Path, aid: str, challenge: str, fit: str, variants: dict[str, str | None]) -> dict:
    """Grade, through the real CLI in a new copy of the course, one solved notebook of ``aid`` per student
    of ``variants`` with its function ``fit`` replaced by that source (None: the reference itself; STUB:
    the released stub). Returns ``{"result": the CLI's CompletedProcess, "grades": read_grades(...),
    "verdict": student -> the challenge's verdict text on the feedback page, "aid", "course"}``."""
    import html
    import re

    from tests.support.course import copy_course, run_cli

    course = copy_course(tmp)
    folder = tmp / "submissions"
    reference = solved(aid)
    stub = next(c.source for c in release_notebook(aid).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == f"{fit}_impl")
    for student, source in variants.items():
        nb = reference if source is None else replace_exercise(reference, fit, stub if source == STUB else source)
        write(folder, student, aid, nb)
    result = run_cli("grade", str(folder), "--workers", "2", course=course, timeout=1800)
    grades = read_grades(course / "exports" / "grades.csv")

    def verdict(student: str) -> str:
        page = (course / "feedback" / student / aid / f"{aid}.html").read_text()
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        found = text[text.index(f"{challenge}:"):]
        return found[:found.index("\n\n")]  # the grader's verdict only, not the markdown after it

    return {"result": result, "grades": grades, "verdict": verdict, "aid": aid, "course": course}
