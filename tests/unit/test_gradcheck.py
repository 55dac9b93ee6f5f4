"""Tests of helpers.gradcheck: the checker must pass right gradients and catch wrong ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers.gradcheck import (
    GradCheckReport,
    check_module_gradients,
    compare_gradients,
    numerical_gradient,
    numerical_gradient_array,
    rel_error,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ----------------------------------------------------------------------------- numpy

def test_rel_error_basics():
    a = np.array([1.0, -2.0, 3.0])
    assert rel_error(a, a) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(a, 2 * a) == pytest.approx(3.0 / 9.0)
    assert rel_error(torch.tensor(a), a + 1e-9) < 1e-9
    with pytest.raises(ValueError, match="shapes"):
        rel_error(a, a[:2])


def test_numerical_gradient_scalar_function(rng):
    x = rng.normal(size=(3, 4))
    x_before = x.copy()
    grad = numerical_gradient(lambda v: np.sum(v**3), x)
    np.testing.assert_array_equal(x, x_before)  # restored after every step
    assert grad.shape == x.shape
    assert rel_error(grad, 3 * x**2) < 1e-8
    assert rel_error(grad, 2 * x**2) > 1e-2, "a wrong gradient must stand out"


def test_numerical_gradient_array_of_linear_layer(rng):
    x, w, b = rng.normal(size=(4, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    dout = rng.normal(size=(4, 3))
    dx_num = numerical_gradient_array(lambda v: v @ w + b, x, dout)
    dw_num = numerical_gradient_array(lambda v: x @ v + b, w, dout)
    db_num = numerical_gradient_array(lambda v: x @ w + v, b, dout)
    assert rel_error(dout @ w.T, dx_num) < 1e-8
    assert rel_error(x.T @ dout, dw_num) < 1e-8
    assert rel_error(dout.sum(axis=0), db_num) < 1e-8
    # the classic mistakes are caught
    assert rel_error(dout.mean(axis=0), db_num) > 1e-2  # mean instead of sum over the batch
    assert rel_error((dout @ w.T) / 4, dx_num) > 1e-2   # a spurious 1/N


def test_numerical_gradient_array_handles_f_returning_a_view(rng):
    x = rng.normal(size=(6,))
    dout = rng.normal(size=(6,))
    dx = numerical_gradient_array(lambda v: v, x, dout)  # identity returns x itself
    assert rel_error(dx, dout) < 1e-8


def test_numerical_gradient_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda v: float(v.sum()), np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient_array(lambda v: v, np.arange(3), np.ones(3))


def test_compare_gradients_report():
    g = np.linspace(-1, 1, 10)
    report = compare_gradients({"dx": g, "dw": g}, {"dx": g + 1e-12, "dw": 1.5 * g})
    assert isinstance(report, GradCheckReport)
    assert not report.passed and report.failed == ["dw"]
    assert report.errors["dx"] < 1e-10 and report.errors["dw"] == pytest.approx(0.2)
    text = str(report)
    assert "dx" in text and "dw" in text and "FAIL" in text and "FAILED: dw" in text
    assert repr(report) == text
    assert compare_gradients({"dx": g}, {"dx": g}).passed
    assert not GradCheckReport().passed, "an empty report checked nothing and must not pass"
    with pytest.raises(ValueError, match="same names"):
        compare_gradients({"dx": g}, {"dw": g})


# ----------------------------------------------------------------------------- torch

class WrongGradLinear(torch.autograd.Function):
    """y = x W^T + b, with a backward that gets the sign of dW wrong."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, dout):
        x, weight = ctx.saved_tensors
        return dout @ weight, -(dout.T @ x), dout.sum(0)  # dW has the wrong sign


class HandLinear(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.weight = nn.Parameter(torch.randn(3, 4))
        self.bias = nn.Parameter(torch.randn(3))

    def forward(self, x):
        return self.fn.apply(x, self.weight, self.bias)


def test_check_module_gradients_passes_correct_module():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x = torch.randn(6, 4)
    report = check_module_gradients(module, x)
    assert report.passed, report
    assert list(report.errors) == ["0.weight", "0.bias", "2.weight", "2.bias", "input[0]"]
    assert max(report.errors.values()) < 1e-7
    assert "PASSED" in str(report)
    # the caller's module is not converted or changed
    assert module[0].weight.dtype == torch.float32 and x.dtype == torch.float32
    assert module[0].weight.grad is None


def test_check_module_gradients_catches_wrong_backward():
    torch.manual_seed(0)
    module = HandLinear(WrongGradLinear)
    report = check_module_gradients(module, torch.randn(5, 4))
    assert not report.passed
    assert report.failed == ["weight"], report
    assert report.errors["weight"] > 0.5
    assert "FAIL" in str(report)


def test_check_module_gradients_zero_gradient_and_custom_loss():
    torch.manual_seed(0)
    # In training mode BatchNorm removes the mean, so the Linear bias has zero gradient:
    # the numerical gradient is pure rounding noise, which atol must accept.
    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    report = check_module_gradients(module, torch.randn(8, 3))
    assert report.passed, report
    assert report.max_abs["0.bias"] < 1e-8
    report = check_module_gradients(nn.Linear(3, 2), torch.randn(4, 3), loss_fn=lambda out: (out**2).mean())
    assert report.passed, report
    with pytest.raises(ValueError, match="scalar"):
        check_module_gradients(nn.Linear(3, 2), torch.randn(4, 3), loss_fn=lambda out: out)


def test_check_module_gradients_nested_outputs_and_integer_inputs():
    torch.manual_seed(0)
    lstm = nn.LSTM(input_size=3, hidden_size=2, batch_first=True)  # returns (out, (h, c))
    report = check_module_gradients(lstm, torch.randn(2, 3, 3))
    assert report.passed, report
    assert "weight_hh_l0" in report.errors and "input[0]" in report.errors

    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 2)

        def forward(self, idx, scale):
            return self.emb(idx) * scale

    report = check_module_gradients(Embed(), (torch.tensor([0, 3, 3]), torch.randn(3, 1)))
    assert report.passed, report
    assert set(report.errors) == {"emb.weight", "input[1]"}, "integer inputs are not differentiated"
