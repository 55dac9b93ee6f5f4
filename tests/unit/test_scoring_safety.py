"""The trusted side is total, and verdicts on hidden cases leak nothing (fast: no kernels)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from autograder.course import Course
from autograder.store.outcomes import clean_text
from autograder.authoring.plan import grading_plan
from autograder.authoring.reference import load_exercises, load_reference
from autograder.pipeline.sanitize import FEEDBACK_CSP, harden_feedback_html, neutralise_images
from autograder.pipeline.scoring import score_exercise
from helpers.grading.contract import CASE_KINDS
from helpers.grading.contract import MAX_RESULTS_BYTES as MAX_OUTPUT_BYTES
from tests.support.course import REPO
from helpers.grading.checking import call_case, encode

COURSE = Course(REPO / "course")
AID, NAME = "01_perceptron", "softmax"


@pytest.fixture(scope="module")
def plan():
    return grading_plan(COURSE.root, AID, 777)[NAME]


def _outputs(plan, entry_for_case) -> str:
    return json.dumps({"exercise": NAME, "results": [entry_for_case(c) for c in plan.cases]})


def deep(n: int) -> dict:
    value: dict = {"kind": "float", "shape": [], "data": [1.0]}
    for _ in range(n):
        value = {"tuple": [value]}
    return value


MALFORMED = {
    "deep tuple": lambda c: {"output": deep(50)},
    "huge shape": lambda c: {"output": {"kind": "float", "shape": [10**9, 10**9], "data": []}},
    "negative shape": lambda c: {"output": {"kind": "float", "shape": [-1], "data": []}},
    "strings": lambda c: {"output": {"kind": "float", "shape": [2], "data": ["1", "2"]}},
    "huge number": lambda c: {"output": {"kind": "int", "shape": [1], "data": [10**400]}},
    "object": lambda c: {"output": {"kind": "object", "shape": [], "data": [1]}},
    "not a dict": lambda c: [1, 2, 3],
    "error object": lambda c: {"error": {"nested": ["x" * 10]}},
}


@pytest.mark.parametrize("what", list(MALFORMED))
def test_malformed_outputs_fail_the_case_never_the_grader(plan, what):
    result = score_exercise(plan, _outputs(plan, MALFORMED[what]))
    assert not result.ok and result.passed == 0
    assert len(result.cases) == len(plan.cases) and all(c["kind"] in CASE_KINDS for c in result.cases)


@pytest.mark.parametrize("raw", ["[" * 100_000, "{" * 5 + "}", "1e999", "x" * (MAX_OUTPUT_BYTES + 1), "",
                                 json.dumps({"exercise": "other", "results": []})],
                         ids=["deep", "braces", "number", "huge", "empty", "other-exercise"])
def test_unreadable_output_files_are_a_failure(plan, raw):
    result = score_exercise(plan, raw)
    assert not result.ok and {c["kind"] for c in result.cases} == {"malformed"}


def test_hidden_verdicts_name_the_exception_type_only(plan):
    marker = "LEAK-1234"
    result = score_exercise(plan, _outputs(plan, lambda c: {"error": "raised", "detail": f"ValueError: {marker} {c.inputs}"}))
    for case, verdict in zip(plan.cases, result.cases):
        assert verdict["kind"] == "error"
        assert (marker in verdict["message"]) is (not case.hidden), verdict
        if case.hidden:
            assert verdict["message"] == "your function raised ValueError"
    forged = score_exercise(plan, _outputs(plan, lambda c: {"error": "raised", "detail": "<script>alert(1)</script>: x"}))
    assert all("script" not in v["message"] for c, v in zip(plan.cases, forged.cases) if c.hidden)
    # An error code the contract does not know is an error of that case; its text is never shown.
    odd = score_exercise(plan, _outputs(plan, lambda c: {"error": f"ValueError: {marker}", "detail": 7}))
    assert all(v["kind"] == "error" and marker not in v["message"] for v in odd.cases)


def test_hidden_verdicts_give_no_shapes_or_values(plan):
    def transposed(case):
        ref = load_reference(COURSE.source_notebook(AID))[NAME]
        return {"output": encode(np.asarray(call_case(ref, case.inputs, "numpy")).T.copy())}

    result = score_exercise(plan, _outputs(plan, transposed))
    for case, verdict in zip(plan.cases, result.cases):
        if case.hidden and not verdict["ok"]:
            assert "(" not in verdict["message"].split(":")[0], verdict["message"]


def test_known_mistakes_are_recorded_per_case(plan):
    ex = load_exercises(COURSE.cases_file(AID))[NAME]  # the mistakes' code (plans hold their outputs)
    message, wrong = next(iter(ex.mistakes.items()))
    raw = _outputs(plan, lambda c: {"output": encode(call_case(wrong, c.inputs, ex.framework))})
    result = score_exercise(plan, raw)
    assert any(v["kind"] == "known_mistake" and v["mistake"] == message for v in result.cases)


@pytest.mark.parametrize("text", ["\x1b[31mred\x1b[0m", "a\x00b\x07c", "bidi\u202eevil", "osc\x1b]0;title\x07x",
                                  "line\nbreak\r\x9b2J"])
def test_control_characters_never_survive(text):
    cleaned = clean_text(text)
    assert cleaned.isprintable() and "\x1b" not in cleaned


def test_remote_markdown_images_become_text():
    md = "![a](http://127.0.0.1:9/x.png) ![b](<https://e.org/y>) ![c][ref] ![ok](data:image/png;base64,AAAA)"
    out = neutralise_images(md)
    assert "http" not in out and "[image: a]" in out and "[image: c]" in out and "data:image/png" in out


def test_feedback_pages_get_a_policy_first(tmp_path):
    page = tmp_path / "f.html"
    page.write_text("<!DOCTYPE html><html><head><script src='http://x/y.js'></script></head><body></body></html>")
    harden_feedback_html(page)
    harden_feedback_html(page)  # idempotent
    text = page.read_text()
    assert text.count(FEEDBACK_CSP) == 1 and text.index(FEEDBACK_CSP) < text.index("<script")
    assert "script-src" not in FEEDBACK_CSP and "default-src 'none'" in FEEDBACK_CSP
