"""Tests of helpers.descent (descent paths, regimes, maps, mini-batch noise, schedules: the computations
behind notebook 03 and its demos), and of notebook 03's reference solutions against torch.optim and
torch.optim.lr_scheduler."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tests.support.course import REPO  # noqa: E402
from helpers import descent, surfaces  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")



# -- descent paths -------------------------------------------------------------------------------


def test_sgd_path_on_a_quadratic_is_the_closed_form():
    q = surfaces.Quadratic((1.0, 10.0))
    path = descent.descent_path(q, "sgd", lr=0.15, steps=12)
    p0 = np.array(q.start)
    expected = [np.linalg.matrix_power(np.eye(2) - 0.15 * q.A, t) @ p0 for t in range(13)]
    np.testing.assert_allclose(path.points, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(path.losses, q(np.array(expected)), rtol=1e-10)
    assert path.steps == 12 and not path.diverged


def test_descent_path_accepts_hyper_parameters_and_optimizer_factories():
    r = surfaces.Rosenbrock()
    a = descent.descent_path(r, "adam", lr=0.05, steps=30, beta1=0.5)
    b = descent.descent_path(r, lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.5, 0.999)), steps=30)
    np.testing.assert_array_equal(a.points, b.points)
    c = descent.descent_path(r, "momentum", lr=1e-3, steps=30, momentum=0.5)
    d = descent.descent_path(r, lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.5), steps=30)
    np.testing.assert_array_equal(c.points, d.points)
    with pytest.raises(ValueError, match="unknown optimiser"):
        descent.descent_path(r, "lbfgs2")


def test_divergence_is_detected_and_the_path_stops():
    q = surfaces.Quadratic((1.0, 10.0))
    path = descent.descent_path(q, "sgd", lr=0.5, steps=100)
    assert path.diverged and path.diverged_at == path.steps < 100
    assert path.gaps[-1] > 1e6 * path.gaps[0]
    regime = descent.classify_path(path)
    assert regime.kind == "diverging" and f"step {path.diverged_at}" in regime.words


@pytest.mark.parametrize("lr, kind", [(0.005, "too slow"), (0.1, "converging"), (0.19, "oscillating"),
                                      (0.21, "diverging"), (1.0, "diverging")])
def test_regimes_on_the_quadratic_match_the_theory(lr, kind):
    q = surfaces.Quadratic((1.0, 10.0))  # 1/lambda_max = 0.1, 2/lambda_max = 0.2
    regime = descent.classify_path(descent.descent_path(q, "sgd", lr=lr, steps=50))
    assert regime.kind == kind, regime


def test_converged_means_staying_below_the_tolerance():
    gaps = np.array([1.0, 0.5, 1e-4, 0.2, 1e-4, 1e-5])
    pts = np.cumsum(np.ones((6, 2)), axis=0)  # a straight line: no reversals
    regime = descent.classify_path(descent.Path(pts, gaps))
    assert regime.converged and regime.steps_to_tol == 4
    regime = descent.classify_path(descent.Path(pts[:4], gaps[:4]))
    assert not regime.converged and regime.kind == "too slow"


# -- hand-written rules against torch ------------------------------------------------------------


def _momentum_rule(lr, mu):
    def rule(p, g, v, t):  # written here, in the test: helpers.descent must not contain update rules
        v = mu * v + g
        return p - lr * v, v
    return rule


def test_run_update_rule_and_compare_with_torch():
    r = surfaces.Rosenbrock()
    cmp = descent.compare_with_torch(_momentum_rule(1e-3, 0.9), "momentum", r, steps=100, lr=1e-3, momentum=0.9)
    assert cmp.worst < 1e-12 and len(cmp.hand.points) == 101
    wrong = descent.compare_with_torch(_momentum_rule(1e-3, 0.8), "momentum", r, steps=100, lr=1e-3, momentum=0.9)
    assert wrong.worst > 1e-3
    with pytest.raises(ValueError, match="state"):
        descent.run_update_rule(r, lambda p, g, v, t: p - g, steps=2)  # forgot to return the state


def test_run_update_rule_counts_state_arrays_and_steps():
    seen = []

    def rule(p, g, m, v, t):
        seen.append((t, m.shape, v.shape))
        return p - 0.01 * g, m + 1, v
    path = descent.run_update_rule(surfaces.Quadratic(), rule, steps=3)
    assert seen == [(1, (2,), (2,)), (2, (2,), (2,)), (3, (2,), (2,))] and path.steps == 3


@pytest.fixture(scope="module")
def reference():
    from autograder.authoring.reference import load_reference

    return load_reference(REPO / "source_notebooks" / "03_optimisation" / "03_optimisation.ipynb")


def _torch_run(opt_factory, p0, grads):
    p = torch.tensor(p0, requires_grad=True)
    opt = opt_factory([p])
    out = []
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out)


def _hand_run(step, p0, grads, n_state):
    p, state, out = p0.copy(), [np.zeros_like(p0) for _ in range(n_state)], []
    for t, g in enumerate(grads, 1):
        res = step(p, g, *state, t)
        p, state = res[0], list(res[1:])
        out.append(p.copy())
    return np.array(out)


@pytest.mark.parametrize("name", ["sgd_momentum_step", "adagrad_step", "rmsprop_step", "adam_step"])
def test_reference_update_rules_match_torch_optim_over_many_steps(reference, name):
    rng = np.random.default_rng(1)
    p0, grads = rng.normal(size=(3, 4)), rng.normal(size=(25, 3, 4)) * rng.uniform(0.01, 10, size=(25, 1, 1))
    f = reference[name]
    cases = {
        "sgd_momentum_step": (lambda p, g, v, t: f(p, g, v, 0.05, 0.9), lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), 1),
        "adagrad_step": (lambda p, g, G, t: f(p, g, G, 0.3, 1e-10), lambda ps: torch.optim.Adagrad(ps, lr=0.3), 1),
        "rmsprop_step": (lambda p, g, s, t: f(p, g, s, 0.01, 0.9, 1e-8), lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9), 1),
        "adam_step": (lambda p, g, m, v, t: f(p, g, m, v, t, 0.02, 0.8, 0.99, 1e-3),
                      lambda ps: torch.optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-3), 2),
    }
    step, factory, n_state = cases[name]
    np.testing.assert_allclose(_hand_run(step, p0, grads, n_state), _torch_run(factory, p0, grads), rtol=1e-12, atol=1e-12)


def test_reference_schedule_matches_torch_lr_scheduler(reference):
    for base, warm, total, low in [(0.1, 10, 100, 0.0), (1.0, 3, 40, 0.05), (0.02, 1, 7, 0.001)]:
        torch_curve = descent.schedule_curve("warmup_cosine", base, total, warmup=warm, min_lr=low)
        np.testing.assert_allclose(reference["warmup_cosine_lr"](np.arange(total), base, warm, total, low),
                                   torch_curve, rtol=1e-9, atol=1e-9 * base)


def test_reference_stability_limit_matches_measured_descent(reference):
    q = surfaces.Quadratic((0.5, 4.0), angle=10)
    lr_max, _ = reference["gd_stability"](q.A, 0.1)
    assert lr_max == pytest.approx(0.5)
    assert not descent.descent_path(q, "sgd", lr=0.99 * lr_max, steps=3000).diverged
    assert descent.classify_path(descent.descent_path(q, "sgd", lr=1.01 * lr_max, steps=3000)).kind == "diverging"
    for lr in (0.1, 0.3, 0.48):  # one mode dominates late in the run
        _, rate = reference["gd_stability"](q.A, lr)
        path = descent.descent_path(q, "sgd", lr=lr, steps=150, blowup=1e30)
        assert math.sqrt(path.gaps[-1] / path.gaps[-2]) == pytest.approx(rate, rel=1e-6)


# -- the (lr, momentum) map ------------------------------------------------------------------------


def test_convergence_map_agrees_with_single_runs_and_the_stability_limit():
    q = surfaces.Quadratic((0.1, 1.0))
    lrs, moms = np.geomspace(0.05, 4.0, 9), np.array([0.0, 0.5, 0.9])
    cmap = descent.convergence_map(q, lrs, moms, tol=1e-6, max_steps=200)
    assert cmap.steps.shape == (3, 9)
    for i, m in enumerate(moms):
        for j, lr in enumerate(lrs):
            path = descent.descent_path(q, "momentum", lr=float(lr), momentum=float(m), steps=200)
            regime = descent.classify_path(path, tol=1e-6)
            if regime.kind == "diverging":
                assert np.isnan(cmap.steps[i, j]), (lr, m)
            elif regime.converged:
                assert abs(cmap.steps[i, j] - regime.steps_to_tol) <= 1, (lr, m)  # lr folded in: rounding
            stable = lr < descent.momentum_stability_limit(1.0, m)
            if not math.isclose(lr, float(descent.momentum_stability_limit(1.0, m)), rel_tol=0.05):
                assert stable != bool(np.isnan(cmap.steps[i, j])), (lr, m)
    best_lr, best_m, best_steps = cmap.best()
    assert best_steps == np.nanmin(cmap.steps) and cmap.steps_at(best_lr, best_m) == best_steps


def test_momentum_beats_gradient_descent_on_an_ill_conditioned_quadratic():
    q = surfaces.Quadratic((0.01, 1.0))
    lr_star, m_star = descent.heavy_ball_optimum(0.01, 1.0)
    assert (lr_star, m_star) == pytest.approx((4 / 1.1 ** 2, (0.9 / 1.1) ** 2))
    heavy = descent.classify_path(descent.descent_path(q, "momentum", lr=lr_star, momentum=m_star, steps=400), tol=1e-6)
    gd = descent.classify_path(descent.descent_path(q, "sgd", lr=2 / 1.01, steps=400), tol=1e-6)
    assert heavy.converged and gd.converged
    assert heavy.steps_to_tol * 5 < gd.steps_to_tol  # theory: rate 0.82 vs 0.98 per step


# -- mini-batches ----------------------------------------------------------------------------------


def test_full_batch_minibatch_path_is_gradient_descent():
    ls = surfaces.LeastSquares(n=60, seed=2)
    a = descent.minibatch_path(ls, lr=0.2, batch_size=60, steps=20)
    b = descent.descent_path(ls, "sgd", lr=0.2, steps=20)
    np.testing.assert_allclose(a.points, b.points, rtol=1e-10, atol=1e-12)


def test_minibatch_path_is_seeded_and_takes_a_schedule():
    ls = surfaces.LeastSquares(n=60, seed=2)
    a, b = (descent.minibatch_path(ls, lr=0.1, batch_size=1, steps=30, seed=5) for _ in range(2))
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, descent.minibatch_path(ls, lr=0.1, batch_size=1, steps=30, seed=6).points)
    still = descent.minibatch_path(ls, lr=np.zeros(30), batch_size=1, steps=30)
    np.testing.assert_array_equal(still.points, np.tile(ls.start, (31, 1)))
    state = np.random.get_state()[1].copy()
    descent.minibatch_path(ls, batch_size=3, steps=5)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched


def test_gradient_noise_shrinks_like_one_over_sqrt_batch():
    ls = surfaces.LeastSquares(n=400, seed=0)
    noise = descent.gradient_noise(ls, ls.minimum, [1, 4, 16], draws=400, seed=0)
    assert noise[0] > noise[1] > noise[2]
    assert noise[0] / noise[2] == pytest.approx(4.0, rel=0.25)


# -- schedules -------------------------------------------------------------------------------------


def test_schedule_curves_are_torch_schedules():
    t = np.arange(30)
    np.testing.assert_allclose(descent.schedule_curve("constant", 0.1, 30), 0.1)
    np.testing.assert_allclose(descent.schedule_curve("step", 0.1, 30, step_size=10, gamma=0.5), 0.1 * 0.5 ** (t // 10))
    np.testing.assert_allclose(descent.schedule_curve("exponential", 0.1, 30, gamma=0.9), 0.1 * 0.9 ** t)
    np.testing.assert_allclose(descent.schedule_curve("cosine", 0.1, 30, min_lr=0.01),
                               0.01 + 0.045 * (1 + np.cos(np.pi * t / 30)), rtol=1e-9)
    warm = descent.schedule_curve("warmup_cosine", 0.1, 30, warmup=5, min_lr=0.0)
    np.testing.assert_allclose(warm[:5], 0.1 * t[:5] / 5, atol=1e-12)
    np.testing.assert_allclose(warm[5:], 0.05 * (1 + np.cos(np.pi * (t[5:] - 5) / 25)), rtol=1e-9)
    np.testing.assert_allclose(descent.schedule_curve("warmup_cosine", 0.1, 30, warmup=0),
                               descent.schedule_curve("cosine", 0.1, 30))
    with pytest.raises(ValueError, match="unknown schedule"):
        descent.schedule_curve("linear")


# -- plots -----------------------------------------------------------------------------------------


def test_plots_return_figures_that_render():
    q = surfaces.Quadratic()
    paths = {"a": descent.descent_path(q, "sgd", lr=0.1, steps=5), "b": descent.descent_path(q, "sgd", lr=0.5, steps=20)}
    fig = descent.plot_paths(q, paths)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) >= 2
    cmap = descent.convergence_map(q, np.geomspace(0.01, 0.5, 4), [0.0, 0.5], max_steps=20)
    fig2 = descent.plot_convergence_map(cmap, lambda_max=q.lambda_max)
    for f in (fig, fig2):
        assert isinstance(f, Figure)
        f.canvas.draw()
