"""Detection does not depend on the seed (issue 16, item 3).

Every known mistake of every exercise of the syllabus must lose the exercise's points, and be
named, whatever seed the grading run uses, and its visible cases must flag it whatever draw the
generator made for them. For each of ``SEEDS`` seeds (200 unless ``MANY_SEEDS`` says otherwise):

- grading run: the exercise's visible cases (fixed + the shipped draw) and the hidden cases drawn
  from the seed, judged by the trusted scorer on what the sandbox harness records (outputs and
  contract facts): the mistake must not pass, and its message must appear;
- visible draw: the fixed cases and visible cases drawn from the seed instead of the shipped one,
  judged alike: the mistake must fail there too (so a student sees it before submitting, and a
  change to an exercise's name, which reseeds its visible draw, cannot hide it).

Outputs are cached per exercise (the reference and every mistake run at most once per distinct
case), and seeds whose verdict is implied by the fixed or shipped cases are not scored again (see
the test), so the whole syllabus takes about a minute of CPU: still ``slow``.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any

import pytest

from autograder.course import Course
from autograder.authoring.plan import ExercisePlan, PlannedCase
from autograder.authoring.reference import load_exercises, reference_function
from autograder.pipeline.scoring import score_exercise
from tests.support.course import REPO, mistake_params
from helpers.grading.checking import EncodingError, decode, resolve_callables, run_case
from helpers.grading.contract import encode_inputs

COURSE = Course(REPO / "course")
SEEDS = range(int(os.environ.get("MANY_SEEDS", "200")))

pytestmark = pytest.mark.slow


class _Runs:
    """Every function of one exercise (reference, mistakes) run at most once per distinct case.

    The reference runs on every case drawn (it must return an output on all of them); the mistakes
    run on a case only when a verdict needs it (``verdict``)."""

    def __init__(self, aid: str, name: str):
        self.ex = load_exercises(COURSE.cases_file(aid))[name]
        self.reference = reference_function(COURSE.source_notebook(aid), name)
        self.watch = resolve_callables(self.ex.forbidden)
        self._expected: dict[str, tuple[list, Any]] = {}
        self._wrong: dict[str, tuple[list, dict]] = {}
        self._draws: dict[tuple[str, int | None], list[str]] = {}

    def case(self, inputs: dict) -> str:
        """The key of one case's inputs; the reference runs on it (once) and must give an output."""
        enc = encode_inputs(inputs)
        key = json.dumps(enc)
        if key not in self._expected:
            ref = run_case(self.reference, enc, self.ex.framework, self.watch)
            assert "output" in ref, f"the reference fails on a case: {ref.get('error')}"
            self._expected[key] = (enc, decode(ref["output"]))
        return key

    def mistakes_on(self, key: str) -> tuple[list, dict]:
        """([(mistake, decoded output)], {mistake: entry}) on one case: every mistake runs once."""
        if key not in self._wrong:
            enc = self._expected[key][0]
            wrong = {m: run_case(f, enc, self.ex.framework, self.watch) for m, f in self.ex.mistakes.items()}
            known = []
            for m, entry in wrong.items():
                try:
                    if "output" in entry:
                        known.append((m, decode(entry["output"])))
                except EncodingError:
                    continue
            self._wrong[key] = (known, wrong)
        return self._wrong[key]

    def draw(self, kind: str, seed: int | None = None) -> list[str]:
        """The case keys of one draw, memoised: "fixed" (the hand-written cases), "shipped" (the
        visible cases as released), "hidden" (a grading run's, from ``seed``) or "visible" (a visible
        draw from ``seed``)."""
        key = (kind, seed)
        if key not in self._draws:
            if kind == "fixed":
                cases = [dict(c) for c in self.ex.fixed]
            elif kind == "shipped":
                cases = self.ex.visible_cases()
            elif kind == "hidden":
                cases = self.ex.hidden_cases(seed)
            else:
                cases = self.ex.visible_cases(seed)
            self._draws[key] = [self.case(inputs) for inputs in cases]
        return self._draws[key]

    def verdict(self, keys: list[str], hidden: list[bool], message: str):
        """The trusted scorer's result for the mistake ``message`` on these cases."""
        planned, results = [], []
        for key, is_hidden in zip(keys, hidden):
            enc, expected = self._expected[key]
            known, wrong = self.mistakes_on(key)
            planned.append(PlannedCase(enc, expected, known, is_hidden))
            results.append(wrong[message])
        plan = ExercisePlan(self.ex, planned)
        return score_exercise(plan, json.dumps({"exercise": self.ex.name, "results": results}))


@functools.lru_cache(maxsize=4)
def _runs(aid: str, name: str) -> _Runs:
    return _Runs(aid, name)


@pytest.mark.parametrize("aid, name, message", mistake_params())
def test_every_mistake_fails_and_is_named_under_every_seed(aid, name, message):
    runs = _runs(aid, name)
    # The scorer judges each case on its own (problems in case order, none dropped), so a verdict on
    # more cases keeps every failure of a verdict on fewer: a mistake the shipped visible cases already
    # fail AND name fails and is named under every grading seed, and one the fixed cases fail fails
    # every visible draw (which always starts with them). Those seeds need no further scoring; the
    # reference still runs on every case of every seed (it must give an output on all of them).
    fixed, shipped = runs.draw("fixed"), runs.draw("shipped")
    caught_by_fixed = bool(fixed) and not runs.verdict(fixed, [False] * len(fixed), message).ok
    first = runs.verdict(shipped, [False] * len(shipped), message)
    named_by_shipped = not first.ok and any(message in p for p in first.problems)
    passed, unnamed, unseen = [], [], []
    for seed in SEEDS:
        hidden = runs.draw("hidden", seed)
        if not named_by_shipped:
            result = runs.verdict(shipped + hidden, [False] * len(shipped) + [True] * len(hidden), message)
            if result.ok:
                passed.append(seed)
            elif not any(message in p for p in result.problems):
                unnamed.append(seed)
        drawn = runs.draw("visible", seed)
        if not caught_by_fixed and runs.verdict(drawn, [False] * len(drawn), message).ok:
            unseen.append(seed)
    n = len(SEEDS)
    assert not passed, f"passes every case under {len(passed)} of {n} seeds (e.g. {passed[:5]}): {message!r}"
    assert not unnamed, f"not named under {len(unnamed)} of {n} seeds (e.g. {unnamed[:5]}): {message!r}"
    assert not unseen, (f"the visible cases miss it under {len(unseen)} of {n} visible draws "
                        f"(e.g. {unseen[:5]}): add a fixed case: {message!r}")
