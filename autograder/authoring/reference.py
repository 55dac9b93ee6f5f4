"""The reference solution, read from where it lives: the source notebook.

The reference of an exercise is the function of the same name defined by the
source notebook's solution cells. To build it we execute, in a fresh namespace of
the trusted process, the code cells that are nbgrader solution cells or carry the
tag ``reference`` (imports and small helpers the solutions use); demos, training
and plots are skipped.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import nbformat

from autograder.course import CourseError
from autograder.authoring.exercises import Exercise

REFERENCE_TAG = "reference"


def is_reference_cell(cell: Any) -> bool:
    """A code cell that belongs to the reference: a solution cell or tagged ``reference``."""
    if cell.cell_type != "code":
        return False
    meta = cell.get("metadata", {})
    return bool(meta.get("nbgrader", {}).get("solution")) or REFERENCE_TAG in meta.get("tags", [])


@functools.lru_cache(maxsize=32)
def load_reference(notebook: Path) -> dict[str, Any]:
    """Execute the reference cells of ``notebook``; return the resulting namespace."""
    nb = nbformat.read(str(notebook), as_version=4)
    namespace: dict[str, Any] = {"__name__": f"reference_{notebook.stem}"}
    for i, cell in enumerate(nb.cells):
        if is_reference_cell(cell):
            try:
                exec(compile(cell.source, f"{notebook.name}[cell {i}]", "exec"), namespace)
            except Exception as e:
                raise CourseError(f"the reference cell {i} of {notebook} fails: {type(e).__name__}: {e}") from e
    return namespace


@functools.lru_cache(maxsize=32)
def load_exercises(cases_file: Path) -> dict[str, Exercise]:
    """Import an assignment's cases.py and return its exercises by name."""
    if not cases_file.is_file():
        raise CourseError(f"{cases_file} is missing: every assignment needs its cases.py")
    spec = importlib.util.spec_from_file_location(f"cases_{cases_file.parent.name}", cases_file)
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exercises = {ex.name: ex for ex in module.EXERCISES}
    if len(exercises) != len(module.EXERCISES):
        raise CourseError(f"{cases_file} defines an exercise name twice")
    return exercises


def reference_function(notebook: Path, name: str) -> Callable:
    fn = load_reference(notebook).get(name)
    if not callable(fn):
        raise CourseError(f"{notebook} defines no reference function {name!r} in its solution cells")
    return fn
