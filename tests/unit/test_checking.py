"""Unit tests of the checking API (helpers.grading.checking): encoding, comparison, messages."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.grading.checking import CheckFailed, EncodingError, check, decode, encode, run_visible_checks
from helpers.grading.contract import encode_inputs, to_numpy
from helpers.grading.diagnosis import compare


def _checks_file(tmp_path, expected_fn, inputs_list, rtol=1e-4, atol=1e-6, mistakes=(), framework="numpy"):
    cases = []
    for inputs in inputs_list:
        enc = encode_inputs(inputs)
        cases.append({"inputs": enc, "expected": encode(expected_fn(*inputs.values())),
                      "mistakes": [{"message": m, "output": encode(f(*inputs.values()))} for m, f in mistakes]})
    path = tmp_path / "checks.json"
    path.write_text(json.dumps({"exercises": {"ex": {"framework": framework, "rtol": rtol, "atol": atol,
                                                      "cases": cases}}}))
    return path


def _softmax(Z):
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- encoding -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [np.arange(6.0).reshape(2, 3), np.array([1, 2, 3]), np.array([True, False]),
                                   3.5, 7, np.float32(2.5), np.array([np.nan, np.inf, -np.inf])])
def test_encode_decode_round_trip(value):
    back = decode(json.loads(json.dumps(encode(value))))
    np.testing.assert_array_equal(back, np.asarray(value))


def test_encode_torch_tensor_and_tuple():
    t = torch.arange(4.0, requires_grad=True) * 2
    back = decode(encode((t, np.eye(2))))
    assert isinstance(back, tuple) and back[0].tolist() == [0, 2, 4, 6] and back[1].shape == (2, 2)


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __array__(self, dtype=None, copy=None):
        return np.zeros(3)


class SneakyArray(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), dtype=bool)


@pytest.mark.parametrize("bad", [None, "0.5", AlwaysEqual(), {"a": 1}, np.array(["x"]), object()])
def test_non_numeric_outputs_are_refused(bad):
    with pytest.raises(EncodingError):
        encode(bad)


def test_numpy_subclass_is_reduced_to_plain_data():
    sneaky = np.zeros(3).view(SneakyArray)
    plain = to_numpy(sneaky)
    assert type(plain) is np.ndarray
    assert not compare(decode(encode(sneaky)), np.ones(3), 1e-4, 1e-6).ok


@pytest.mark.parametrize("bad", [{"kind": "float", "shape": [2], "data": [1.0]},
                                 {"kind": "float", "shape": [1], "data": ["__import__('os')"]},
                                 {"kind": "object", "shape": [], "data": [1]},
                                 {"kind": "int", "shape": [-1], "data": []},
                                 ["not", "a", "dict"]])
def test_decode_rejects_malformed_data(bad):
    with pytest.raises(EncodingError):
        decode(bad)


# -- comparison and its diagnoses -----------------------------------------------------------

def test_float32_and_reordered_computation_pass():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(5, 4)) * 3
    expected = _softmax(Z)
    got32 = _softmax(Z.astype(np.float32))
    other_way = np.exp(Z) / np.exp(Z).sum(axis=1)[:, None]
    assert compare(got32.astype(np.float32), expected, 1e-4, 1e-6).ok
    assert compare(other_way, expected, 1e-4, 1e-6).ok


@pytest.mark.parametrize("got, expected, words", [
    (np.ones((3, 2)), np.ones((2, 3)), "transposed"),
    (np.ones(4), np.ones((4, 1)), "keepdims"),
    (np.ones(3), np.ones((3, 4)), "summed away"),
    (-np.arange(1.0, 5.0), np.arange(1.0, 5.0), "sign"),
    (np.arange(1.0, 5.0) * 8, np.arange(1.0, 5.0), "factor"),
    (np.arange(1.0, 5.0) + 0.5, np.arange(1.0, 5.0), "constant"),
    (np.array([np.nan, 1.0]), np.array([0.5, 1.0]), "NaN"),
])
def test_failure_messages_name_the_likely_mistake(got, expected, words):
    verdict = compare(got, expected, 1e-4, 1e-6)
    assert not verdict.ok and words in verdict.message


def test_known_mistake_is_named():
    Z = np.random.default_rng(1).normal(size=(3, 4))
    wrong = np.exp(Z) / np.exp(Z).sum(axis=0, keepdims=True)
    v = compare(wrong, _softmax(Z), 1e-4, 1e-6, [("softmax over the wrong axis", wrong)])
    assert v.message == "softmax over the wrong axis"


def test_tuple_outputs_are_compared_item_by_item():
    v = compare((np.ones(2), np.zeros(2)), (np.ones(2), np.ones(2)), 1e-4, 1e-6)
    assert not v.ok and "item 1" in v.message


# -- check() in a student's notebook --------------------------------------------------------

def test_check_passes_a_correct_function(tmp_path, capsys):
    rng = np.random.default_rng(2)
    path = _checks_file(tmp_path, _softmax, [{"Z": rng.normal(size=(3, 4))} for _ in range(3)])
    assert check("ex", lambda Z: _softmax(Z.astype(np.float32)), path=path) is None
    assert "all 3 visible checks passed" in capsys.readouterr().out
    report = run_visible_checks("ex", lambda Z: _softmax(Z.astype(np.float32)), path=path)
    assert report.ok and report.passed == 3


def test_check_reports_not_implemented_without_a_traceback_wall(tmp_path):
    path = _checks_file(tmp_path, _softmax, [{"Z": np.eye(3)}])

    def stub(Z):
        raise NotImplementedError()

    with pytest.raises(CheckFailed) as info:
        check("ex", stub, path=path)
    rendered = info.value._render_traceback_()
    assert len(rendered) == 1 and "not implemented yet" in rendered[0]


def test_check_names_the_mistake(tmp_path):
    wrong = lambda Z: np.exp(Z) / np.exp(Z).sum(axis=0, keepdims=True)  # noqa: E731
    path = _checks_file(tmp_path, _softmax, [{"Z": np.arange(12.0).reshape(3, 4) / 5}],
                        mistakes=[("softmax over the wrong axis", wrong)])
    with pytest.raises(CheckFailed, match="wrong axis"):
        check("ex", wrong, path=path)


def test_check_reports_student_exceptions(tmp_path):
    path = _checks_file(tmp_path, _softmax, [{"Z": np.eye(2)}])
    with pytest.raises(CheckFailed, match="ZeroDivisionError"):
        check("ex", lambda Z: 1 / 0, path=path)


def test_check_gives_fresh_inputs_so_mutation_cannot_leak(tmp_path):
    path = _checks_file(tmp_path, lambda x: x * 2, [{"x": np.ones(3)}, {"x": np.ones(3)}])

    def mutating(x):
        out = x * 2
        x[:] = 100
        return out

    assert run_visible_checks("ex", mutating, path=path).ok


def test_harvest_mode_only_records_outputs(tmp_path, monkeypatch):
    (tmp_path / "inputs").mkdir()
    (tmp_path / "outputs").mkdir()
    spec = {"exercise": "ex", "framework": "numpy", "cases": [{"inputs": encode_inputs({"x": np.arange(3.0)})}]}
    (tmp_path / "inputs" / "ex.json").write_text(json.dumps(spec))
    monkeypatch.setenv("AUTOGRADER_HARVEST", str(tmp_path))
    assert check("ex", lambda x: x + 1) is None
    data = json.loads((tmp_path / "outputs" / "ex.json").read_text())
    assert decode(data["results"][0]["output"]).tolist() == [1.0, 2.0, 3.0]


def test_torch_framework_gets_tensors(tmp_path):
    path = _checks_file(tmp_path, lambda x: x * 3, [{"x": np.arange(3.0)}], framework="torch")
    seen = []

    def f(x):
        seen.append(type(x))
        return x * 3

    assert run_visible_checks("ex", f, path=path).ok and seen == [torch.Tensor]
