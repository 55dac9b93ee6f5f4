"""Grading validity (issue 16): stated contracts are graded, messages name the bug, cascades and
library shortcuts are named, partial credit is an option. Fast: no kernels, no notebooks run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from autograder.course import Course
from autograder.authoring.exercises import Exercise
from autograder.authoring.plan import ExercisePlan, PlannedCase, grading_plan
from autograder.authoring.reference import load_exercises, load_reference
from autograder.pipeline.scoring import ExerciseResult, TrustedScores, name_cascades, score_exercise
from helpers.grading.contract import CASE_KINDS
from tests.support.course import REPO, syllabus_ids
from helpers.grading.checking import Contract, decode, encode, resolve_callables, run_case, run_visible_checks
from helpers.grading.contract import contract_problems, encode_inputs
from helpers.grading.diagnosis import compare

COURSE = Course(REPO / "course")
SEED = 4242


def _raw(plan: ExercisePlan, fn, watch=()) -> str:
    """What the sandbox harness writes for ``fn`` on every planned case."""
    return json.dumps({"exercise": plan.exercise.name,
                       "results": [run_case(fn, c.inputs, plan.exercise.framework, watch) for c in plan.cases]})


def _score(aid: str, name: str, fn, **kw) -> ExerciseResult:
    plan = grading_plan(COURSE.root, aid, SEED)[name]
    return score_exercise(plan, _raw(plan, fn, resolve_callables(plan.exercise.forbidden)), **kw)


def _reference(aid: str, name: str):
    return load_reference(COURSE.source_notebook(aid))[name]


def _checks(tmp_path, fn, inputs_list, contract=None, builds_on=None, name="ex", extra=None):
    cases = [{"inputs": encode_inputs(i), "expected": encode(fn(*i.values())), "mistakes": []} for i in inputs_list]
    spec = {"framework": "numpy", "rtol": 1e-4, "atol": 1e-6, "cases": cases}
    if contract:
        spec["contract"] = contract.as_data()
    if builds_on:
        spec["builds_on"] = list(builds_on)
    path = tmp_path / "checks.json"
    path.write_text(json.dumps({"exercises": {name: spec, **(extra or {})}}))
    return path


# -- 1. contracts: inputs modified in place ------------------------------------------------------

def test_modifying_w_in_place_loses_the_points_and_says_so():
    def update_in_place(w, b, x, y, lr):  # right values, but w is changed in place
        err = y - int(x @ w + b >= 0)
        w += lr * err * x
        return w, b + lr * err

    result = _score("01_perceptron", "perceptron_update", update_in_place)
    assert not result.ok
    kinds = {c["kind"] for c in result.cases}
    assert "mutated_input" in kinds and kinds <= {"passed", "mutated_input"}
    assert any("modified `w` in place" in p for p in result.problems)


def test_a_copy_first_is_fine():
    def update_copy(w, b, x, y, lr):
        w = w.copy()
        err = y - int(x @ w + b >= 0)
        w += lr * err * x
        return w, b + lr * err

    assert _score("01_perceptron", "perceptron_update", update_copy).ok


def test_mutation_is_not_judged_where_the_text_does_not_forbid_it(tmp_path):
    def double_in_place(x):
        x *= 2
        return x

    path = _checks(tmp_path, lambda x: x * 2, [{"x": np.arange(3.0)}])
    assert run_visible_checks("ex", double_in_place, path=path).ok
    path = _checks(tmp_path, lambda x: x * 2, [{"x": np.arange(3.0)}], contract=Contract(pure=True))
    report = run_visible_checks("ex", double_in_place, path=path)
    assert not report.ok and "modified `x` in place" in report.problems[0]


def test_torch_inputs_modified_in_place_are_noticed():
    inputs = encode_inputs({"a": np.ones(3), "b": np.ones(2)})
    entry = run_case(lambda a, b: b.add_(1), inputs, "torch")
    assert entry["mutated"] == [1]
    assert contract_problems(entry, Contract(pure=True), ["a", "b"])[0][1].startswith("modified `b` in place")


# -- 1. contracts: silent / numerically stable ---------------------------------------------------

def _sigmoid_where(z):  # computes both branches: right values, overflow warnings on the other branch
    return np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))


@pytest.mark.parametrize("fn", [lambda z: 1 / (1 + np.exp(-z)), _sigmoid_where], ids=["naive", "both-branches"])
def test_a_sigmoid_that_warns_loses_the_points(fn):
    result = _score("01_perceptron", "sigmoid", fn)
    assert not result.ok and any(c["kind"] == "warning" for c in result.cases)
    assert any("raised RuntimeWarning" in p and "stable" in p for p in result.problems)


def test_a_warning_passes_where_the_text_asks_for_no_silence(tmp_path):
    import warnings

    def noisy(x):
        warnings.warn("harmless", UserWarning)
        return x + 1

    assert run_visible_checks("ex", noisy, path=_checks(tmp_path, lambda x: x + 1, [{"x": np.ones(2)}])).ok


def test_hidden_warning_verdicts_name_the_category_only():
    entry = {"output": encode(np.ones(2)), "warnings": [["RuntimeWarning", "overflow at LEAK-42"]]}
    (kind, message), = contract_problems(entry, Contract(silent=True), ["z"], hidden=True)
    assert kind == "warning" and "RuntimeWarning" in message and "LEAK" not in message
    forged = {"warnings": [["<script>alert(1)</script>", "x"]]}
    assert "script" not in contract_problems(forged, Contract(silent=True), ["z"], hidden=True)[0][1]


@pytest.mark.parametrize("facts", [{"mutated": "x" * 1000}, {"mutated": [10 ** 9, -1, "0", None]},
                                   {"warnings": [1, 2]}, {"warnings": "x"}, {"used": [7.5, -3, 99]},
                                   {"used": {"a": 1}}])
def test_forged_contract_facts_never_break_the_scorer(facts):
    plan = grading_plan(COURSE.root, "01_perceptron", SEED)["perceptron_update"]
    ref = _reference("01_perceptron", "perceptron_update")
    results = [{**run_case(ref, c.inputs, "numpy"), **facts} for c in plan.cases]
    result = score_exercise(plan, json.dumps({"exercise": plan.exercise.name, "results": results}))
    assert len(result.cases) == len(plan.cases) and all(c["kind"] in CASE_KINDS for c in result.cases)


# -- 1. contracts: optional arguments, broadcasting, leading axes -----------------------------

def _attention_cases():
    plan = grading_plan(COURSE.root, "08_attention", SEED)["attention"]
    forms = set()
    for case in plan.cases:
        q, mask = case.inputs[0][1], case.inputs[3][1]
        forms.add(("ndim", len(q["shape"])))
        forms.add(("mask", "none" if mask == {"none": True} else
                   ("broadcast" if mask["shape"][-2] == 1 and q["shape"][-2] > 1 else "full")))
    return plan, forms


def test_attention_cases_cover_the_docstring():
    _, forms = _attention_cases()
    assert {("ndim", 2), ("ndim", 3), ("ndim", 4)} <= forms
    assert {("mask", "none"), ("mask", "full"), ("mask", "broadcast")} <= forms


def _attention_3d_only(Q, K, V, mask=None):
    scores = Q @ K.transpose(1, 2) / Q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, dim=-1)
    return w @ V, w


def _attention_mask_required(Q, K, V, mask=None):
    scores = (Q @ K.transpose(-2, -1) / Q.shape[-1] ** 0.5).masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, dim=-1)
    return w @ V, w


@pytest.mark.parametrize("fn", [_attention_3d_only, _attention_mask_required], ids=["3d-only", "mask-required"])
def test_attention_that_ignores_the_docstring_forms_loses_the_points(fn):
    plan = grading_plan(COURSE.root, "08_attention", SEED)["attention"]
    result = score_exercise(plan, _raw(plan, fn))
    assert not result.ok and any(c["kind"] == "error" for c in result.cases)
    visible = [c for c, p in zip(result.cases, plan.cases) if not p.hidden]
    assert any(not c["ok"] for c in visible), "the visible cases must show it too"


# -- 4. messages ----------------------------------------------------------------------------------

def test_swapped_tuple_items_are_recognised():
    a, b, c = np.arange(3.0), np.arange(4.0) + 10, np.ones((2, 2))
    v = compare((b, a, c), (a, b, c), 1e-4, 1e-6)
    assert not v.ok and "wrong order" in v.message and "item 0 holds item 1" in v.message
    v = compare((c, a, b), (a, b, c), 1e-4, 1e-6, hidden=True)
    assert "wrong order" in v.message


def test_every_wrong_tuple_item_is_reported():
    a, b, c = np.arange(1.0, 4.0), np.arange(1.0, 5.0), np.arange(1.0, 6.0)
    v = compare((a, 2 * b, c + 0.5), (a, b, c), 1e-4, 1e-6)
    assert not v.ok and "item 1" in v.message and "item 2" in v.message and "item 0" not in v.message
    assert "factor" in v.message and "constant" in v.message


@pytest.mark.parametrize("got, expected, words", [(6.0, 3.0, "2x"), (1.0, 3.0, "1/3x"), (0.125, 1.0, "1/8x")])
def test_scalars_get_the_factor_diagnosis(got, expected, words):
    v = compare(np.asarray(got), np.asarray(expected), 1e-4, 1e-6)
    assert not v.ok and "factor" in v.message and words in v.message
    hidden = compare(np.asarray(got), np.asarray(expected), 1e-4, 1e-6, hidden=True)
    assert "factor" in hidden.message and words not in hidden.message


def test_an_arbitrary_scalar_is_not_given_a_factor():
    v = compare(np.asarray(2.37), np.asarray(3.0), 1e-4, 1e-6, hidden=True)
    assert not v.ok and "factor" not in v.message and "2.37" not in v.message


def test_chance_matches_on_tiny_outputs_are_not_claimed():
    zero = np.asarray(0.0)
    v = compare(zero, np.asarray(0.7), 1e-4, 1e-6, [("you forgot the loop", np.asarray(0.0))])
    assert v.mistake is None and "forgot" not in v.message
    both = [("mistake A", np.asarray(0.5)), ("mistake B", np.asarray(0.5))]
    assert compare(np.asarray(0.5), np.asarray(0.7), 1e-4, 1e-6, both).mistake is None
    one = [("mistake A", np.asarray(0.5))]
    assert compare(np.asarray(0.5), np.asarray(0.7), 1e-4, 1e-6, one).mistake == "mistake A"
    big = [("you forgot the loop", np.zeros(6))]
    assert compare(np.zeros(6), np.ones(6), 1e-4, 1e-6, big).mistake == "you forgot the loop"


# -- 5. cascades ----------------------------------------------------------------------------------

def test_builds_on_names_only_exercises_of_the_same_notebook():
    for aid in syllabus_ids():
        exercises = load_exercises(COURSE.cases_file(aid))
        for ex in exercises.values():
            assert set(ex.builds_on) <= set(exercises) - {ex.name}, (aid, ex.name, ex.builds_on)


def test_a_failing_dependency_is_named_first():
    plans = grading_plan(COURSE.root, "08_attention", SEED)
    results = {"attention": ExerciseResult("attention", passed=1, total=3, problems=["x"]),
               "multi_head_attention": ExerciseResult("multi_head_attention", passed=0, total=3, problems=["y"]),
               "encoder_block": ExerciseResult("encoder_block", passed=3, total=3)}
    name_cascades(results, {n: plans[n] for n in results})
    assert results["multi_head_attention"].problems[0] == \
        "uses your `attention`, which fails its checks: fix that first"
    assert results["encoder_block"].problems == []  # it passes: nothing to say


def test_visible_checks_name_a_failing_dependency(tmp_path):
    deps = {"dep": {"framework": "numpy", "rtol": 1e-4, "atol": 1e-6,
                    "cases": [{"inputs": encode_inputs({"x": np.ones(2)}), "expected": encode(np.ones(2) * 3),
                               "mistakes": []}]}}
    path = _checks(tmp_path, lambda x: x * 3 + 1, [{"x": np.ones(2)}], builds_on=("dep",), extra=deps)
    namespace: dict = {}
    exec("def dep(x):\n    return x * 2\n\ndef ex(x):\n    return dep(x) + 1\n", namespace)
    report = run_visible_checks("ex", namespace["ex"], path=path)
    assert not report.ok and report.problems[0] == "uses your `dep`, which fails its checks: fix that first"


# -- 6. library shortcuts ------------------------------------------------------------------------

def _conv_with_torch(x, w, b, stride, padding):
    from torch.nn.functional import conv2d  # an alias: still noticed

    out = conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=stride, padding=padding)
    return out.numpy()


def test_a_library_shortcut_is_named_and_the_policy_decides_the_points():
    warned = _score("04_cnn", "conv2d_naive", _conv_with_torch)
    assert warned.ok and any("torch.nn.functional.conv2d" in n and "by hand" in n for n in warned.notes)
    assert "torch.nn.functional.conv2d" in warned.message(2.0)
    zero = _score("04_cnn", "conv2d_naive", _conv_with_torch, shortcut_policy="zero")
    assert not zero.ok and {c["kind"] for c in zero.cases} == {"shortcut"}
    with pytest.raises(ValueError):
        _score("04_cnn", "conv2d_naive", _conv_with_torch, shortcut_policy="maybe")


def test_lstm_cell_from_torch_is_noticed():
    import torch.nn  # noqa: F401 - the watch looks in imported modules only

    watch = resolve_callables(["torch.nn.LSTMCell"])

    def with_module(x):
        cell = torch.nn.LSTMCell(2, 3).double()
        return cell(x)[0].detach()

    entry = run_case(with_module, encode_inputs({"x": np.ones((1, 2))}), "torch", watch)
    assert entry.get("used") == [0]


@pytest.mark.parametrize("aid", syllabus_ids())
def test_the_reference_uses_no_call_it_forbids_and_keeps_its_contracts(aid):
    for name, plan in grading_plan(COURSE.root, aid, SEED).items():
        result = score_exercise(plan, _raw(plan, _reference(aid, name),
                                           resolve_callables(plan.exercise.forbidden)), shortcut_policy="zero")
        assert result.ok and not result.notes, (name, result.problems[:2])


# -- 7. partial credit ----------------------------------------------------------------------------

def test_partial_credit_is_an_option_and_all_or_nothing_the_default():
    r = ExerciseResult("ex", passed=3, total=4)
    assert r.score(2.0) == 0.0 and r.score(2.0, partial_credit=True) == 1.5
    assert "(1.5 / 2 points)" in r.message(2.0, partial_credit=True)
    assert TrustedScores().partial_credit is False and TrustedScores().shortcut_policy == "warn"
    own = ExerciseResult("ex", passed=3, total=4, partial_credit=False)
    assert own.score(2.0, partial_credit=True) == 0.0  # the exercise's own setting wins
    assert ExerciseResult("ex", passed=4, total=4).score(2.0) == 2.0


def test_exercise_partial_credit_reaches_the_result():
    ex = Exercise("ex", lambda rng: {"x": rng.normal(size=3)}, partial_credit=True)
    plan = ExercisePlan(ex, [PlannedCase(encode_inputs({"x": np.ones(3)}), np.ones(3), [], False),
                             PlannedCase(encode_inputs({"x": np.ones(3)}), np.zeros(3), [], True)])
    result = score_exercise(plan, _raw(plan, lambda x: x))
    assert result.passed == 1 and result.score(4.0) == 2.0


# -- inputs: None is an input --------------------------------------------------------------------

def test_none_inputs_round_trip():
    enc = encode_inputs({"x": np.ones(2), "mask": None})
    assert enc[1][1] == {"none": True}
    seen = []
    run_case(lambda x, mask: seen.append(mask) or x, enc, "torch")
    assert seen == [None]
    with pytest.raises(Exception):
        decode({"none": True})  # never a valid output


# -- 6. validity v3 (issue 26): non-finite values, dtype contracts, coincidences, rearrangements ----

from helpers.grading.contract import Case, Contract as _Contract, judge  # noqa: E402


def _entries(*outputs):
    return [{"output": encode(o)} for o in outputs]


def test_an_infinite_expected_value_accepts_only_itself():
    e = np.array([0.5, -np.inf, 2.0])
    assert not compare(np.array([0.5, -1e9, 2.0]), e, 1e-4, 1e-6).ok       # tolerance was infinite there
    assert not compare(np.array([0.5, np.inf, 2.0]), e, 1e-4, 1e-6).ok
    assert compare(np.array([0.5, -np.inf, 2.0]), e, 1e-4, 1e-6).ok
    v = compare(np.array([0.5, -1e9, 2.0]), e, 1e-4, 1e-6, hidden=True)
    assert "-inf" in v.message and "1e" not in v.message
    assert compare(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), 1e-4, 1e-6).ok


def test_an_infinite_known_mistake_does_not_match_any_wrong_answer():
    overflow = [("log(sigmoid(l)) overflows: use a stable form", np.array([np.inf, 1.0, -np.inf]))]
    # a wrong but finite answer used to "match" the overflowing mistake (|g - inf| <= inf)
    v = compare(np.array([3.0, 1.5, -2.0]), np.array([3.0, 1.0, -2.0]), 1e-4, 1e-6, overflow)
    assert v.mistake is None and "overflow" not in v.message
    assert compare(np.array([np.inf, 1.0, -np.inf]), np.array([3.0, 1.0, -2.0]), 1e-4, 1e-6, overflow).mistake


def _int_case(expected, mistakes=()):
    return Case([["x", encode(np.array([1.0]))]], expected, list(mistakes))


def test_an_integer_contract_fails_floats_with_the_right_values_and_says_why():
    cases = [_int_case(np.array([3, 1, 2]))]
    floats = judge("argmax_tokens", cases, _entries(np.array([3.0, 1.0, 2.0])), rtol=1e-4, atol=1e-6,
                   contract=_Contract(dtype="int"))
    assert not floats.ok and floats.cases[0]["kind"] == "wrong_dtype"
    assert "integers" in floats.problems[0] and ".long()" in floats.problems[0]
    ints = judge("argmax_tokens", cases, _entries(np.array([3, 1, 2], dtype=np.int32)), rtol=1e-4, atol=1e-6,
                 contract=_Contract(dtype="int"))
    assert ints.ok
    torch_long = judge("argmax_tokens", cases, _entries(torch.tensor([3, 1, 2])), rtol=1e-4, atol=1e-6,
                       contract=_Contract(dtype="int"))
    assert torch_long.ok
    no_contract = judge("argmax_tokens", cases, _entries(np.array([3.0, 1.0, 2.0])), rtol=1e-4, atol=1e-6)
    assert no_contract.ok  # where the text names no dtype, floats with the right values pass as before


def test_a_tuple_contract_judges_each_item():
    cases = [_int_case((np.array([2, 0]), np.array([-0.5, -1.25])))]
    contract = _Contract(dtype=("int", "float"))
    bad = judge("beam", cases, [{"output": encode((np.array([2.0, 0.0]), np.array([-0.5, -1.25])))}],
                rtol=1e-4, atol=1e-6, contract=contract)
    assert not bad.ok and "item 0 of the returned tuple" in bad.problems[0]
    good = judge("beam", cases, [{"output": encode((torch.tensor([2, 0]), torch.tensor([-0.5, -1.25])))}],
                 rtol=1e-4, atol=1e-6, contract=contract)
    assert good.ok
    assert _Contract.from_data(contract.as_data()) == contract
    assert "dtype" not in _Contract(pure=True).as_data()  # checks.json of other exercises unchanged


def test_a_dtype_contract_is_validated_and_the_reference_must_keep_it():
    with pytest.raises(ValueError):
        Exercise("x", lambda rng: {}, dtype="integer")
    from autograder.course import CourseError
    from autograder.authoring.plan import _plan_case
    ex = Exercise("f", lambda rng: {"x": np.ones(3)}, dtype="int")
    with pytest.raises(CourseError, match="dtype"):
        _plan_case("00_x", ex, lambda x: x * 2.0, {"x": np.ones(3)}, hidden=False)
    assert _plan_case("00_x", ex, lambda x: (x * 2).astype(np.int64), {"x": np.ones(3)}, hidden=False)


def test_a_known_mistake_contradicted_by_another_case_is_not_named():
    # the mistake "forgot the loop" gives zeros on case 1 (by chance the student's too) and ones on case 2,
    # where the student's output is something else: the student does not have that mistake
    m = "you forgot the loop"
    cases = [Case([], np.arange(1.0, 7.0), [(m, np.zeros(6))]), Case([], np.arange(2.0, 8.0), [(m, np.ones(6))])]
    report = judge("f", cases, _entries(np.zeros(6), np.full(6, 5.0)), rtol=1e-4, atol=1e-6)
    assert not report.ok and all(m not in p for p in report.problems)
    assert all(c["kind"] == "wrong" for c in report.cases)
    consistent = judge("f", cases, _entries(np.zeros(6), np.ones(6)), rtol=1e-4, atol=1e-6)
    assert all(c["mistake"] == m for c in consistent.cases)
    # a match on a varied output stays named when another case differs: the student has that
    # mistake and a second bug (carol's softmax: over the wrong axis and without the max shift)
    axis = "softmax over the wrong axis"
    varied = [Case([], np.array([0.1, 0.2, 0.7]) * np.arange(1, 7).reshape(2, 3), [(axis, np.arange(6.0).reshape(2, 3))]),
              Case([], np.array([[0.5, 0.5, 0.0]] * 2), [(axis, np.array([[0.2, 0.3, 0.5]] * 2))])]
    two_bugs = judge("softmax", varied, _entries(np.arange(6.0).reshape(2, 3), np.full((2, 3), np.nan)),
                     rtol=1e-4, atol=1e-6)
    assert two_bugs.cases[0]["mistake"] == axis and axis in two_bugs.problems[0]


@pytest.mark.parametrize("make, words", [
    (lambda e: e[::-1].copy(), "reverse order along axis 0"),
    (lambda e: np.roll(e, 1, axis=1), "shifted by one position along axis 1"),
])
def test_rearranged_outputs_are_named_without_values(make, words):
    e = np.arange(1.0, 13.0).reshape(3, 4) ** 1.5
    got = make(e)
    for hidden in (False, True):
        v = compare(got, e, 1e-4, 1e-6, hidden=hidden)
        assert words in v.message and "12" not in v.message


def test_transposed_permuted_complement_and_edge_outputs_are_named():
    rng = np.random.default_rng(0)
    sq = rng.uniform(0.05, 0.95, size=(4, 4))
    assert "transposed" in compare(sq.T.copy(), sq, 1e-4, 1e-6, hidden=True).message
    assert "wrong places" in compare(rng.permutation(sq.reshape(-1)).reshape(4, 4), sq, 1e-4, 1e-6).message
    assert "1 minus" in compare(1 - sq, sq, 1e-4, 1e-6).message
    returns = np.array([3.0, 2.5, 1.75, 1.0])
    last = returns.copy()
    last[-1] = 0.0
    assert "last position along axis 0" in compare(last, returns, 1e-4, 1e-6).message
    # a constant answer: no rearrangement is claimed, and scattered errors get the count
    assert "wrong places" not in compare(np.ones(5), np.full(5, 2.0), 1e-4, 1e-6).message
    scattered = sq.copy()
    scattered[1, 2] += 1
    scattered[2, 1] += 1
    assert "values differ" in compare(scattered, sq, 1e-4, 1e-6).message
