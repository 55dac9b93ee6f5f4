"""Independent plausible bugs (issue 26, validity v3): caught, and told what is probably wrong.

``tests/mutants/m<assignment>.py`` holds bugs written from the released text as a student would
write them, NOT the mistakes catalogued in the assignment's ``cases.py`` (the grader never reads
``tests/mutants/``). Each file defines ``MUTANTS = [(exercise, "what the bug is", function), ...]``;
the functions take the exercise's arguments as the sandbox gives them (numpy arrays, or torch
tensors for ``framework="torch"``).

Every mutant must lose its exercise's points on a grading run (visible and hidden cases, judged by
the trusted scorer on what the sandbox harness records). The share whose first feedback line is
*specific* (it names a likely mistake, not just "N of M values differ" / "value X, expected Y" /
a bare exception) is measured per assignment and must reach ``SPECIFIC_SHARE``; run with ``-s`` to
print every mutant's first line for a human read (a specific line must also be a true one).
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from autograder.authoring.plan import grading_plan
from autograder.pipeline.scoring import score_exercise
from tests.support.course import REPO
from helpers.grading.checking import resolve_callables, run_case

MUTANTS_DIR = Path(__file__).resolve().parents[1] / "mutants"
SEED = 4242
SPECIFIC_SHARE = 0.6

#: First lines that only say that something differs, or repeat the exception: not a diagnosis.
GENERIC = (re.compile(r"\d+ of \d+ values differ"), re.compile(r"\d+ % of the values differ"),
           re.compile(r"the value is .*, expected "), re.compile(r"the value differs from the expected one"),
           re.compile(r"your function raised"), re.compile(r"the output is not plain numbers"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"mutants_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MUTANTS


def _files() -> dict[str, Path]:
    """{set name: file}: ``m<aid>.py``, or ``m<aid>__<set>.py`` for another set of the same assignment
    (e.g. one written afterwards, by someone who never read cases.py: a held-out measurement)."""
    return {p.stem[1:]: p for p in sorted(MUTANTS_DIR.glob("m*.py"))}


def _aid(key: str) -> str:
    return key.split("__")[0]


def _mutants():
    params = []
    for key, path in _files().items():
        for i, (name, what, fn) in enumerate(_load(path)):
            params.append(pytest.param(_aid(key), name, what, fn, id=f"{key}:{name}:{i}"))
    return params


_PLANS: dict[str, dict] = {}


def first_line(aid: str, name: str, fn) -> tuple[bool, str]:
    """Grade ``fn`` as exercise ``name`` of ``aid``: (passed, the first line of its feedback)."""
    if aid not in _PLANS:
        _PLANS[aid] = grading_plan(REPO / "course", aid, SEED)
    plan = _PLANS[aid][name]
    watch = resolve_callables(plan.exercise.forbidden)
    raw = json.dumps({"exercise": name, "results": [run_case(fn, c.inputs, plan.exercise.framework, watch)
                                                    for c in plan.cases]})
    result = score_exercise(plan, raw)
    line = result.problems[0] if result.problems else ""
    return result.ok, re.sub(r"^(hidden |visible )?case \d+: ", "", line)


def is_specific(line: str) -> bool:
    """Whether a first line names a likely mistake. A tuple's line has one part per wrong item
    ("item 0 of the returned tuple: ...; item 1 ..."): specific when one of its parts is."""
    parts = re.split(r"; (?=item \d+ of the returned tuple)", line)
    return any(bool(p) and not any(g.search(p) for g in GENERIC) for p in parts)


def test_the_mutant_files_name_real_assignments_and_exercises():
    from autograder.authoring.reference import load_exercises
    from tests.support.course import syllabus_ids

    assert _files(), "no mutant files"
    for key, path in _files().items():
        aid = _aid(key)
        assert aid in syllabus_ids(), path
        names = set(load_exercises(REPO / "source_notebooks" / aid / "cases.py"))
        assert {name for name, _, _ in _load(path)} <= names


@pytest.mark.parametrize("aid, name, what, fn", _mutants())
def test_every_independent_mutant_loses_the_points(aid, name, what, fn):
    ok, line = first_line(aid, name, fn)
    assert not ok, f"{aid}:{name}: full marks for a bug: {what}"
    assert line


@pytest.mark.parametrize("key", sorted(_files()))
def test_most_mutants_are_told_what_is_probably_wrong(key):
    aid = _aid(key)
    rows = [(name, what, *first_line(aid, name, fn)) for name, what, fn in _load(_files()[key])]
    specific = [r for r in rows if is_specific(r[3])]
    print(f"\n{key}: {len(specific)} of {len(rows)} mutants get a specific first line")
    for name, what, _, line in rows:
        print(f"  [{'specific' if is_specific(line) else 'generic '}] {name}: {what}\n      -> {line}")
    assert len(specific) / len(rows) >= SPECIFIC_SHARE


def test_the_generic_patterns_match_the_diagnosis_messages():
    import numpy as np

    from helpers.grading.diagnosis import compare

    scattered = np.arange(9.0).reshape(3, 3) ** 1.3
    wrong = scattered.copy()
    wrong[0, 1] += 1
    wrong[2, 0] += 2
    for hidden in (False, True):
        assert not is_specific(compare(wrong, scattered, 1e-4, 1e-6, hidden=hidden).message)
        assert not is_specific(compare(np.asarray(2.37), np.asarray(3.0), 1e-4, 1e-6, hidden=hidden).message)
    assert is_specific(compare(scattered.T.copy(), scattered, 1e-4, 1e-6).message)
