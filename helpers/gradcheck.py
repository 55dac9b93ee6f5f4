"""Gradient checking: compare an analytic gradient with centred finite differences.

    df/dx[i] ~= (f(x + h e_i) - f(x - h e_i)) / (2 h)          (error O(h^2))

numpy (CS231n style), for your own forward/backward functions:
    dx_num = numerical_gradient(lambda x: loss(x), x)               # scalar f
    dx_num = numerical_gradient_array(lambda x: layer(x), x, dout)  # array-valued f
    print(rel_error(dx, dx_num))                                    # ~1e-9 or less if right

torch, for a whole ``nn.Module`` (parameters and inputs, in float64):
    report = check_module_gradients(module, x)
    print(report)             # a table, one row per parameter / input
    assert report.passed, report

How to read the relative error (all in float64):
    rel_error(a, b) = max|a - b| / max(max|a| + max|b|, 1e-12)
- below ~1e-7: the gradients agree (typical: 1e-10 .. 1e-8 with h = 1e-5 or 1e-6)
- 1e-6 .. 1e-3: suspicious (a kink such as ReLU at 0 crossed by x +- h, or float32 used)
- above 1e-3: almost surely a bug (wrong sign, missing 1/N, transposed weight, ...)
``check_module_gradients`` passes a tensor when rel_error <= ``rtol`` (default 1e-6) or, for
gradients that are (almost) zero, when max|a - b| <= ``atol`` (default 1e-8).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import torch

RTOL = 1e-6
ATOL = 1e-8


def rel_error(a: Any, b: Any) -> float:
    """Relative error of two arrays (or tensors) of the same shape, a number >= 0.

    max|a - b| / max(max|a| + max|b|, 1e-12): scaled by the largest entries, so tiny entries
    that are only rounding noise do not dominate. 0 means identical.
    """
    a, b = _to_numpy(a), _to_numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    diff = np.max(np.abs(a - b))
    return float(diff / max(np.max(np.abs(a)) + np.max(np.abs(b)), 1e-12))


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _require_float64(x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        dtype = getattr(x, "dtype", type(x).__name__)
        raise TypeError(
            f"x must be a float64 numpy array, got {dtype}: with float32 (or ints) the finite "
            "differences drown in rounding error. Use x = x.astype(np.float64)."
        )


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Numerical gradient of a scalar function f at x, by centred differences.

    Inputs:
    - f: function of one argument, x -> float (it may read x, which is changed in place
      one entry at a time and always restored)
    - x: float64 array of any shape
    - h: step

    Returns grad: same shape as x, grad[i] = (f(x + h e_i) - f(x - h e_i)) / (2h).
    """
    _require_float64(x)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = float(f(x))
        x[i] = old - h
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Numerical gradient for an array-valued f, given the upstream gradient dout.

    Inputs:
    - f: function x -> out (any shape)
    - x: float64 array of any shape (changed in place one entry at a time, always restored)
    - dout: upstream gradient dL/dout, same shape as f(x)

    Returns dx: same shape as x, dx[i] = sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2h),
    i.e. the gradient of L = sum(f(x) * dout) -- what a layer's backward(dout) must return.
    """
    _require_float64(x)
    dout = np.asarray(dout, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        out_plus = np.array(f(x), dtype=np.float64)  # a copy: f may return a view of x
        x[i] = old - h
        out_minus = np.array(f(x), dtype=np.float64)
        x[i] = old
        if out_plus.shape != dout.shape:
            raise ValueError(f"f(x) has shape {out_plus.shape} but dout has shape {dout.shape}")
        grad[i] = np.sum((out_plus - out_minus) * dout) / (2 * h)
    return grad


@dataclass
class GradCheckReport:
    """Result of a gradient check: one row per checked tensor.

    - errors: name -> rel_error(analytic, numerical)
    - max_abs: name -> max |analytic - numerical|
    - rtol, atol: the pass thresholds (a row passes if error <= rtol or max_abs <= atol)
    """

    errors: dict[str, float] = field(default_factory=dict)
    max_abs: dict[str, float] = field(default_factory=dict)
    rtol: float = RTOL
    atol: float = ATOL

    def ok(self, name: str) -> bool:
        """Did the tensor called ``name`` pass?"""
        return self.errors[name] <= self.rtol or self.max_abs[name] <= self.atol

    @property
    def failed(self) -> list[str]:
        """Names of the tensors whose gradients disagree."""
        return [name for name in self.errors if not self.ok(name)]

    @property
    def passed(self) -> bool:
        """True when every checked tensor passed (and at least one was checked)."""
        return bool(self.errors) and not self.failed

    def __str__(self) -> str:
        width = max([len("tensor")] + [len(n) for n in self.errors])
        lines = [f"{'tensor':<{width}}  {'rel. error':>10}  {'max |diff|':>10}  result",
                 "-" * (width + 32)]
        for name, err in self.errors.items():
            result = "ok" if self.ok(name) else "FAIL"
            lines.append(f"{name:<{width}}  {err:>10.2e}  {self.max_abs[name]:>10.2e}  {result}")
        verdict = "PASSED" if self.passed else "FAILED: " + ", ".join(self.failed or ["nothing checked"])
        lines.append(f"{verdict} (pass: rel. error <= {self.rtol:g} or max |diff| <= {self.atol:g})")
        return "\n".join(lines)

    __repr__ = __str__  # a notebook cell ending in `report` shows the table


def compare_gradients(
    analytic: Mapping[str, Any], numerical: Mapping[str, Any], rtol: float = RTOL, atol: float = ATOL
) -> GradCheckReport:
    """Build a report from two dicts name -> gradient (numpy arrays or tensors, same shapes).

    Useful for your own numpy layers:
        compare_gradients({"dx": dx, "dw": dw}, {"dx": dx_num, "dw": dw_num})
    """
    missing = set(analytic) ^ set(numerical)
    if missing:
        raise ValueError(f"both dicts need the same names; these are in only one: {sorted(missing)}")
    report = GradCheckReport(rtol=rtol, atol=atol)
    for name in analytic:
        a, b = _to_numpy(analytic[name]), _to_numpy(numerical[name])
        if a.shape != b.shape:
            raise ValueError(f"{name}: analytic gradient has shape {a.shape}, numerical {b.shape}")
        report.errors[name] = rel_error(a, b)
        report.max_abs[name] = float(np.max(np.abs(a - b))) if a.size else 0.0
    return report


def _tensors_in(output: Any) -> list[torch.Tensor]:
    """All tensors in a (possibly nested) tuple/list/dict output, e.g. an LSTM's (out, (h, c))."""
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors_in(item)]
    return []


def check_module_gradients(
    module: torch.nn.Module,
    inputs: torch.Tensor | tuple[torch.Tensor, ...],
    loss_fn: Callable[[Any], torch.Tensor] | None = None,
    eps: float = 1e-6,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> GradCheckReport:
    """Check autograd's gradients of ``module`` against finite differences, in float64.

    Inputs:
    - module: the nn.Module to check. A float64 deep copy is checked; yours is not changed.
      It must be deterministic: call ``module.eval()`` first if it has dropout.
    - inputs: a tensor, or a tuple of the module's positional inputs. Floating-point inputs
      are converted to float64 and checked too (rows "input[0]", ...); others (e.g. token
      indices) are passed through unchanged.
    - loss_fn: output -> scalar tensor. Default: sum(output * R) with a fixed random R
      (seeded, so the report is reproducible; scaled so the loss is about 1, which keeps
      the rounding noise of the finite differences near 1e-10), which checks every output entry.
    - eps: finite-difference step; rtol, atol: pass thresholds (module docstring).

    Returns a GradCheckReport with one row per parameter (by ``named_parameters`` name) and
    per floating-point input. Costs two forward passes per checked number: keep it small.
    """
    import torch

    module = copy.deepcopy(module).double()
    inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    inputs = [
        x.detach().clone().double().requires_grad_(True) if torch.is_floating_point(x) else x
        for x in inputs
    ]
    checked = dict(module.named_parameters())
    checked = {name: p for name, p in checked.items() if p.requires_grad}
    checked.update({f"input[{i}]": x for i, x in enumerate(inputs) if torch.is_tensor(x) and x.requires_grad})

    if loss_fn is None:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            outs = _tensors_in(module(*inputs))
        scale = max(sum(o.numel() for o in outs), 1) ** -0.5  # keeps the loss near 1 in size
        weights = [scale * torch.randn(o.shape, generator=generator, dtype=torch.float64) for o in outs]

        def loss_fn(output: Any) -> torch.Tensor:
            return sum((o * w).sum() for o, w in zip(_tensors_in(output), weights))

    loss = loss_fn(module(*inputs))
    if not (torch.is_tensor(loss) and loss.numel() == 1):
        raise ValueError(f"loss_fn must return a scalar tensor, got {type(loss).__name__}")
    tensors = list(checked.values())
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    analytic = {name: (torch.zeros_like(t) if g is None else g)
                for (name, t), g in zip(checked.items(), grads)}

    numerical = {}
    with torch.no_grad():
        for name, t in checked.items():
            flat, grad = t.view(-1), torch.zeros(t.numel(), dtype=torch.float64)
            for i in range(t.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                plus = loss_fn(module(*inputs)).item()
                flat[i] = old - eps
                minus = loss_fn(module(*inputs)).item()
                flat[i] = old
                grad[i] = (plus - minus) / (2 * eps)
            numerical[name] = grad.view(t.shape)
    return compare_gradients(analytic, numerical, rtol=rtol, atol=atol)
