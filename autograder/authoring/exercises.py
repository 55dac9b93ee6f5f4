"""How an instructor describes a graded exercise: data, not prose.

Each assignment's ``source_notebooks/<id>/cases.py`` (instructor-only: it is never
released, and the sandbox cannot read it) defines ``EXERCISES``, a list of
``Exercise``. The expected outputs are never written here: they come from the
reference solution, the solution cells of the source notebook.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from helpers.grading.checking import Contract
from helpers.grading.contract import check_dtype_spec

#: Tolerances used unless an exercise says otherwise. Chosen so that a correct
#: answer computed in float32, or in another (stable) order, passes, while the
#: smallest plausible mistake (a missing term, a wrong axis) is far outside.
DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-6


@dataclass(frozen=True)
class Exercise:
    """One graded exercise.

    name:      the exercise's name; equals the nbgrader ``grade_id`` of its test
               cell and the first argument of ``check(name, func)``.
    inputs:    ``rng -> {arg_name: value}``: one case's inputs, in the order of the
               function's parameters (values: numbers or numpy arrays).
    fixed:     hand-written cases (same form), run first and shown to students.
    visible:   number of generated cases shipped to students in checks.json.
    hidden:    number of cases generated at grading time from the run's seed.
    framework: "numpy" or "torch": what the student's function receives.
    mistakes:  {diagnosis: wrong_implementation}: plausible wrong versions with
               the same signature. Their outputs name the mistake in feedback,
               and tests prove each of them loses the exercise's points (under
               many seeds: tests/course/test_mistakes_many_seeds.py).
    pure:      the text says the inputs must not be modified: a case whose call
               changes an argument in place fails ("modified `w` in place").
    silent:    the text asks for a silent / numerically stable computation: a case
               whose call raises a warning fails.
    forbidden: dotted names of library calls the exercise asks students to write by
               hand (``"torch.nn.functional.conv2d"``); their use is noticed during
               the call and named; points per the course's ``shortcut_policy``.
    builds_on: names of earlier exercises of the notebook that the reference (and
               the student's version) calls: when one fails, this one's verdict
               says so first.
    partial_credit: None: the course's setting (default all or nothing); True:
               points in proportion to the cases passed; False: all or nothing.
    dtype:     the kind of number the text promises: None (any: outputs are compared as
               float64), "int", "float" or "bool", or a tuple with one of those (or None) per
               item of a tuple output. A case whose values are right but whose kind is not
               (floats where the text says token indices) fails and says so. Say the dtype in
               the exercise's text; the reference's output must have it (checked when planning).
    """

    name: str
    inputs: Callable[[np.random.Generator], dict[str, Any]]
    fixed: tuple[dict[str, Any], ...] = ()
    visible: int = 2
    hidden: int = 6
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    framework: str = "numpy"
    mistakes: dict[str, Callable[..., Any]] = field(default_factory=dict)
    pure: bool = False
    silent: bool = False
    forbidden: tuple[str, ...] = ()
    builds_on: tuple[str, ...] = ()
    partial_credit: bool | None = None
    dtype: str | tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:
        check_dtype_spec(self.dtype)

    def contract(self) -> Contract:
        """What the text promises beyond the outputs, as judged by ``helpers.grading.checking``."""
        return Contract(pure=self.pure, silent=self.silent, forbidden=tuple(self.forbidden), dtype=self.dtype)

    def visible_cases(self, seed: int | None = None) -> list[dict[str, Any]]:
        """The fixed cases then ``visible`` generated ones (a fixed seed per exercise).

        seed: draw the generated ones from another seed instead (tests: detection must not
        depend on the particular draw shipped to students)."""
        rng = np.random.default_rng(_seed_for(self.name, "visible" if seed is None else f"visible-{seed}"))
        return [dict(c) for c in self.fixed] + [self.inputs(rng) for _ in range(self.visible)]

    def hidden_cases(self, run_seed: int) -> list[dict[str, Any]]:
        """``hidden`` cases drawn from the grading run's seed (same for every student)."""
        rng = np.random.default_rng(_seed_for(self.name, f"hidden-{run_seed}"))
        return [self.inputs(rng) for _ in range(self.hidden)]


def _seed_for(name: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}/{salt}".encode()).digest()[:8], "little")
