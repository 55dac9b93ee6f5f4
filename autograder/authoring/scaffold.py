"""``autograder new <id> "title"``: the skeleton of a new lecture, ready to release and grade.

    autograder new 12_demo "A demo"

creates, and never overwrites:

- ``source_notebooks/<id>/<id>.ipynb``: the cell pattern of docs/authoring.md with its nbgrader
  metadata: a markdown introduction, the locked ``reference``-tagged setup cell, one example
  exercise (its markdown, a solution cell with ``### BEGIN SOLUTION`` / ``### END SOLUTION``, a
  locked test cell ``check("<name>", <name>)`` worth ``EXAMPLE_POINTS``) and a ``demo``-tagged cell;
- ``source_notebooks/<id>/cases.py``: one ``Exercise`` for the example, with two known mistakes;

and appends the assignment to ``course/syllabus.toml`` (points = the example's). The example is
complete: ``autograder release <id>`` then grades its solution with full marks and the untouched
release with 0. The author replaces it with the lecture's own exercises.

Refused, with one line (a ``CourseError``: exit status 2 from the CLI) and nothing written: an id
that is malformed or already used (in the syllabus, ``source_notebooks/`` or ``release/``), and a
title that is empty or more than one line.
"""
from __future__ import annotations

import json
import re
import textwrap
import tomllib
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.course import Course, CourseError

#: Assignment ids: two digits (the lecture's place in the course), an underscore, then
#: lower-case words joined by underscores, e.g. ``12_demo`` or ``12_graph_networks``.
ID_PATTERN = re.compile(r"[0-9]{2}_[a-z][a-z0-9]*(?:_[a-z0-9]+)*")

#: The example exercise the skeleton holds.
EXAMPLE = "row_norms"
EXAMPLE_POINTS = 2

#: nbgrader's cell metadata (schema version 3, as ``nbgrader.nbgraderformat`` validates it).
_SCHEMA = 3


def _nbgrader(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = False,
              points: int | None = None) -> dict:
    """The ``nbgrader`` metadata of a cell (the keys nbgrader's own create-assignment tool writes)."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": _SCHEMA,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return dict(sorted(meta.items()))


def validate(course: Course, aid: str, title: str) -> None:
    """Raise ``CourseError`` (one line) unless ``aid`` is a well-formed, unused id and ``title`` one line."""
    if not ID_PATTERN.fullmatch(aid or ""):
        raise CourseError(f"malformed assignment id {aid!r}: use two digits, an underscore and lower-case "
                          "words joined by underscores, e.g. 12_demo")
    if not title or not title.strip():
        raise CourseError("the title is empty: give the lecture's title, e.g. autograder new 12_demo \"A demo\"")
    if "\n" in title or "\r" in title or any(ord(ch) < 32 for ch in title):
        raise CourseError("the title must be one line of text (no newlines or control characters)")
    if aid in {a.id for a in course.assignments()}:
        raise CourseError(f"assignment {aid} already exists in {course.root / 'syllabus.toml'}: choose another id")
    for folder in (course.source_dir / aid, course.release_dir / aid):
        if folder.exists():
            raise CourseError(f"{folder} already exists: choose another id (nothing was overwritten)")


def notebook(aid: str, title: str) -> nbformat.NotebookNode:
    """The skeleton notebook: intro, setup, one example exercise with its test, a demo, a summary."""
    number = aid.split("_", 1)[0]
    cells = [
        new_markdown_cell(textwrap.dedent(f"""\
            # {number} · {title}

            Say in two or three sentences what this lecture is about and why it matters. In this
            notebook you will

            1. compute the norm of every row of a matrix (the example exercise: replace it with yours),
            2. ...

            **How exercises work.** Each exercise is a function with its signature and shapes given. Replace
            `raise NotImplementedError()` with your code, run the cell, then run the check below it. A check
            runs your function on a few inputs and tells you what is probably wrong. Your grade uses the same
            checks plus hidden inputs, so code that only works on the visible examples won't score.""")),
        new_code_cell(textwrap.dedent("""\
            import numpy as np
            import torch

            from helpers import check, seed_everything

            rng = seed_everything(0)"""),
            metadata={"nbgrader": _nbgrader("setup", locked=True), "tags": ["reference"]}),
        new_markdown_cell(textwrap.dedent(f"""\
            ## 1. Row norms

            Explain the idea first: *why* we need it, then *what* to compute.

            ### Exercise 1 ({EXAMPLE_POINTS} points): the norm of every row

            Implement `{EXAMPLE}(X)`: for a matrix `X` of shape `(N, D)`, one sample per row, return the
            Euclidean norm $\\lVert \\mathbf x_i \\rVert = \\sqrt{{\\sum_j x_{{ij}}^2}}$ of every row, shape `(N,)`.
            Hint: which axis holds the features?""")),
        new_code_cell(textwrap.dedent(f'''\
            def {EXAMPLE}(X):
                """Euclidean norm of every row. X: (N, D) float array -> (N,)."""
                ### BEGIN SOLUTION
                return np.sqrt(np.sum(X * X, axis=1))
                ### END SOLUTION'''),
            metadata={"nbgrader": _nbgrader(f"{EXAMPLE}_impl", solution=True)}),
        new_code_cell(f'check("{EXAMPLE}", {EXAMPLE})',
                      metadata={"nbgrader": _nbgrader(EXAMPLE, grade=True, locked=True, points=EXAMPLE_POINTS)}),
        new_markdown_cell("Use it. A `demo` cell: students run it, the grader skips it. It must run in the released\n"
                          "notebook too, so it catches `NotImplementedError` and says what to do."),
        new_code_cell(textwrap.dedent(f"""\
            try:
                X = rng.normal(size=(5, 3))
                print("norms:", {EXAMPLE}(X).round(3))
                print("numpy:", np.linalg.norm(X, axis=1).round(3))
            except NotImplementedError:
                print("Implement {EXAMPLE} above to compare it with numpy.")"""),
            metadata={"tags": ["demo"]}),
        new_markdown_cell("## Summary\n- One line per idea the student should keep."),
    ]
    for i, cell in enumerate(cells):  # stable ids, as in the course's other notebooks
        cell["id"] = f"c{i:03d}"
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    return nb


def cases_source(aid: str) -> str:
    """The skeleton ``cases.py``: the example's inputs, a hand-picked case and two known mistakes."""
    return textwrap.dedent(f'''\
        """Graded exercises of {aid}: inputs, tolerances and known mistakes.

        Instructor-only: never released, never visible to the sandbox. The expected outputs come from the
        reference (the solution cells of {aid}.ipynb). How to write an entry: docs/authoring.md.
        """
        import numpy as np

        from autograder.authoring.exercises import Exercise


        def _{EXAMPLE}_inputs(rng):
            """One case: X (N, D) with N != D, so that a norm over the wrong axis has the wrong shape."""
            n, d = int(rng.integers(2, 6)), int(rng.integers(6, 9))
            return {{"X": rng.normal(size=(n, d))}}


        EXERCISES = [
            Exercise(
                "{EXAMPLE}",
                _{EXAMPLE}_inputs,
                fixed=({{"X": np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])}},),
                mistakes={{
                    "one norm per ROW: sum over axis=1 (the features), not axis=0":
                        lambda X: np.sqrt(np.sum(X * X, axis=0)),
                    "take the square root: the norm, not the squared norm":
                        lambda X: np.sum(X * X, axis=1),
                }},
            ),
        ]
        ''')


def syllabus_entry(aid: str, title: str, points: int) -> str:
    """The ``[[assignment]]`` table to append (the title as a TOML basic string)."""
    return f"\n[[assignment]]\nid = \"{aid}\"\ntitle = {json.dumps(title, ensure_ascii=False)}\npoints = {points}\n"


def readme_row(aid: str, title: str) -> str:
    """The row to add to the README's table of notebooks (hand-written: say what the lecture covers)."""
    return f"| `{aid}` | {title} |"


def new_assignment(course: Course, aid: str, title: str) -> list[Path]:
    """Create the skeleton of ``aid`` in ``course`` and append it to the syllabus.

    Returns the paths created or changed (the notebook, cases.py, syllabus.toml). Everything is
    checked before anything is written; no existing file is ever overwritten.
    """
    title = title.strip() if title else title
    validate(course, aid, title)
    syllabus = course.root / "syllabus.toml"
    old = syllabus.read_text()
    new = (old if old.endswith("\n") or not old else old + "\n") + syllabus_entry(aid, title, EXAMPLE_POINTS)
    try:
        tomllib.loads(new)
    except tomllib.TOMLDecodeError as e:  # pragma: no cover - the entry is built to be valid TOML
        raise CourseError(f"cannot append {aid} to {syllabus}: {e}") from e
    folder = course.source_dir / aid
    nb = notebook(aid, title)
    nbformat.validate(nb)
    from nbgrader.nbgraderformat import MetadataValidator

    MetadataValidator().validate_nb(nb)  # nbgrader's own check of every cell's metadata
    folder.mkdir(parents=True, exist_ok=False)
    nb_path, cases_path = folder / f"{aid}.ipynb", folder / "cases.py"
    with open(nb_path, "x", encoding="utf-8") as f:
        nbformat.write(nb, f)
    with open(cases_path, "x", encoding="utf-8") as f:
        f.write(cases_source(aid))
    with open(syllabus, "a", encoding="utf-8") as f:
        f.write(new[len(old):])
    return [nb_path, cases_path, syllabus]


def cmd_new(course: Course, args) -> int:
    """``autograder new <id> "title"``: scaffold, then print the next steps."""
    created = new_assignment(course, args.assignment, args.title)
    for path in created:
        print(f"{'appended to' if path.name == 'syllabus.toml' else 'created'} {path}")
    aid = args.assignment
    print(textwrap.dedent(f"""
        Next (docs/authoring.md, "Adding a lecture"):
          1. write the lecture in {created[0].name} and its exercises in cases.py (replace the example)
          2. set points in syllabus.toml to the sum of the test cells' points
          3. add this row to the README's table of notebooks (say what the lecture covers):
             {readme_row(aid, args.title.strip())}
          4. autograder release {aid}, then: python -m pytest tests/course/test_exercises.py -k {aid}"""))
    return 0
