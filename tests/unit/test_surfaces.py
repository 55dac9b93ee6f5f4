"""Tests of helpers.surfaces: the 2-D loss surfaces of notebook 03 (values, gradients, minima, drawing)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import surfaces  # noqa: E402

SURFACES = [surfaces.Quadratic((1.0, 10.0)), surfaces.Quadratic((0.3, 2.0), angle=-50, center=(0.5, -1.0)),
            surfaces.Rosenbrock(), surfaces.Rosenbrock(a=0.5, b=10.0), surfaces.LeastSquares(n=50, seed=3)]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")



# -- surfaces ------------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
def test_gradients_match_autograd_for_numpy_and_torch(surface):
    pts = np.random.default_rng(0).uniform(-1.5, 1.5, size=(7, 2))
    p = torch.tensor(pts, requires_grad=True)
    surface(p).sum().backward()
    np.testing.assert_allclose(surface.gradient(pts), p.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(surface.gradient(torch.from_numpy(pts)).numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert surface(pts).shape == (7,)


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
def test_minimum_is_a_stationary_point_with_the_stated_value(surface):
    m = np.array(surface.minimum)
    np.testing.assert_allclose(surface.gradient(m), 0.0, atol=1e-9)
    assert float(surface(m)) == pytest.approx(surface.min_value, abs=1e-12)
    X, Y, Z = surface.grid(30)
    assert Z.shape == (30, 30) and Z.min() >= surface.min_value - 1e-12


def test_quadratic_has_the_eigenvalues_it_was_built_with():
    q = surfaces.Quadratic((2.0, 0.5), angle=70)
    np.testing.assert_allclose(np.linalg.eigvalsh(q.A), [0.5, 2.0])
    assert q.lambda_max == 2.0 and q.condition_number == 4.0 and q.stability_limit == 1.0
    with pytest.raises(ValueError, match="positive"):
        surfaces.Quadratic((1.0, -1.0))


def test_least_squares_batch_gradient_of_all_samples_is_the_gradient():
    ls = surfaces.LeastSquares(n=40, seed=1)
    w = np.array([0.3, -0.7])
    np.testing.assert_allclose(ls.batch_gradient(w, np.arange(40)), ls.gradient(w), rtol=1e-12, atol=1e-12)
    full = 0.5 * np.mean((ls.X @ w - ls.y) ** 2)
    assert float(ls(w)) == pytest.approx(full, rel=1e-12)


def test_draw_surface_draws_contours_the_minimum_and_the_view():
    q = surfaces.Quadratic((1.0, 10.0))
    fig, ax = plt.subplots()
    cs = surfaces.draw_surface(ax, q, n=40, levels=9)
    assert len(cs.levels) == 9 and np.all(np.diff(cs.levels) > 0) and cs.levels[0] > q.min_value
    (star,) = ax.lines
    assert tuple(star.get_xydata()[0]) == pytest.approx(q.minimum)
    assert ax.get_xlim() == pytest.approx(q.xlim) and ax.get_ylim() == pytest.approx(q.ylim)
    fig.canvas.draw()
