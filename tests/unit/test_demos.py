"""The widget demos of helpers.demos, driven headless from Python (no browser, no kernel).

Each test moves a control the way a lecturer would, then asserts on what is plotted (the
artists' data), on the words under the figure and on the render counter; the figure must be
updated in place, never re-created.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402

from helpers import demos, descent, lr_finder, surfaces  # noqa: E402


def snapshot(demo):
    """What must not change between redraws: the figure, its axes, the image widget, the children."""
    return id(demo.figure), [id(a) for a in demo.figure.axes], id(demo.view.image), [id(c) for c in demo.children]


def assert_rendered(demo, n):
    assert demo.render_count == n
    assert demo.rendered.value == f"rendered {n}"
    assert bytes(demo.view.image.value).startswith(demos.PNG_MAGIC)


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before, "demos must not create pyplot figures (they would be shown twice)"


# -- the learning-rate slider ----------------------------------------------------------------------


def test_lr_demo_draws_the_path_loss_and_lr_marker_and_says_the_regime():
    demo = demos.lr_demo(eigenvalues=(1.0, 10.0), lr=0.02, steps=50)
    assert_rendered(demo, 1)
    assert "demo-rendered" in demo.rendered._dom_classes and "demo-verdict" in demo.verdict._dom_classes
    assert {"dl-demo", "demo-lr"} <= set(demo._dom_classes) and "demo-lr-slider" in demo.lr_slider._dom_classes
    assert demo.verdict_text.startswith("too slow: lr 0.02 < 2/λmax = 0.2")
    shape = snapshot(demo)
    first_png = bytes(demo.view.image.value)

    demo.lr_slider.value = 0.31
    assert_rendered(demo, 2)
    assert snapshot(demo) == shape and bytes(demo.view.image.value) != first_png
    assert demo.verdict_text.startswith("diverging: lr 0.31 > 2/λmax = 0.2")
    assert "blew up" in demo.verdict_text and "diverging" in demo.verdict.value
    np.testing.assert_allclose(demo.path_line.get_xdata(), demo.path.points[:, 0])
    np.testing.assert_allclose(demo.path_line.get_ydata(), demo.path.points[:, 1])
    assert demo.path.diverged and len(demo.path_line.get_xdata()) < 51
    np.testing.assert_allclose(demo.loss_line.get_ydata(), np.maximum(demo.path.gaps, 1e-16))
    assert list(demo.lr_marker.get_xdata()) == [0.31, 0.31]
    expected = descent.descent_path(surfaces.Quadratic((1.0, 10.0)), "sgd", lr=0.31, steps=50)
    np.testing.assert_array_equal(demo.path.points, expected.points)

    demo.lr_slider.value = 0.19
    assert demo.verdict_text.startswith("oscillating: lr 0.19 < 2/λmax = 0.2")
    demo.lr_slider.value = 0.1
    assert demo.verdict_text.startswith("converging: lr 0.1 < 2/λmax")
    assert len(demo.path_line.get_xdata()) == 51
    demo.lr_slider.value = 1.5  # beyond the slider: clamped to its maximum, 1
    assert demo.lr_slider.value == 1.0 and demo.verdict_text.startswith("diverging: lr 1 > 2/λmax = 0.2")
    assert_rendered(demo, 5)


def test_lr_demo_steps_and_held_updates_render_once():
    demo = demos.lr_demo(lr=0.05, steps=20)
    with demo.hold():
        demo.steps_slider.value = 80
        demo.lr_slider.value = 0.15
    assert_rendered(demo, 2)
    assert len(demo.loss_line.get_xdata()) == 81 and demo.ax_loss.get_xlim() == (0, 80)


def test_lr_demo_marks_the_stability_limit_of_its_quadratic():
    demo = demos.lr_demo(eigenvalues=(2.0, 4.0), lr=0.6)
    assert demo.limit == pytest.approx(0.5)
    assert "2/λmax = 0.5" in " ".join(t.get_text() for t in demo.ax_lr.texts)
    assert demo.verdict_text.startswith("diverging: lr 0.6 > 2/λmax = 0.5")


# -- the race ----------------------------------------------------------------------------------------


def test_race_demo_runs_every_optimiser_with_its_own_controls():
    demo = demos.race_demo(steps=200)
    assert_rendered(demo, 1)
    assert "demo-race" in demo._dom_classes
    assert set(demo.controls) == {"SGD", "momentum", "AdaGrad", "RMSProp", "Adam"}
    for name, path in demo.paths.items():
        np.testing.assert_allclose(demo.lines[name].get_xdata(), path.points[:, 0])
        np.testing.assert_allclose(demo.end_markers[name].get_ydata(), path.points[-1:, 1])
        assert len(demo.loss_lines[name].get_xdata()) == path.steps + 1
    adam = demo.paths["Adam"]
    expected = descent.descent_path(demo.surface, "adam", lr=demo.controls["Adam"]["lr"].value, steps=200,
                                beta1=demo.controls["Adam"]["extra"].value)
    np.testing.assert_array_equal(adam.points, expected.points)
    shape = snapshot(demo)

    demo.controls["SGD"]["lr"].value = 0.01  # far above 2 / lambda_max in the valley
    assert "SGD: diverged at step" in demo.verdict_text and demo.paths["SGD"].diverged
    demo.controls["Adam"]["extra"].value = 0.0  # beta1 = 0: RMSProp-like Adam
    assert not np.array_equal(demo.paths["Adam"].points, adam.points)
    demo.controls["momentum"]["on"].value = False
    assert demo.paths["momentum"] is None and len(demo.lines["momentum"].get_xdata()) == 0
    assert "momentum" not in demo.verdict_text.split("\n")[1]
    assert_rendered(demo, 4)
    assert snapshot(demo) == shape


def test_race_demo_switches_surface_in_place():
    demo = demos.race_demo(steps=100)
    contours = [c for c in demo.ax_path.get_children() if isinstance(c, ContourSet)]
    shape = snapshot(demo)
    demo.surface_dropdown.value = "quadratic, condition number 20"
    assert_rendered(demo, 2)  # one redraw for the surface and all the new default learning rates
    assert isinstance(demo.surface, surfaces.Quadratic)
    now = [c for c in demo.ax_path.get_children() if isinstance(c, ContourSet)]
    assert len(now) == 1 and now[0] is not contours[0]
    assert demo.controls["SGD"]["lr"].value == pytest.approx(0.15)
    assert demo.verdict_text.startswith("winner:")
    assert snapshot(demo) == shape
    for name in demo.controls:
        demo.controls[name]["on"].value = False
    assert demo.verdict_text == "switch on at least one optimiser"


# -- the (lr, momentum) map ---------------------------------------------------------------------------


def test_momentum_map_demo_shows_the_map_the_point_and_its_path():
    demo = demos.momentum_map_demo(condition=10, lr=0.5, momentum=0.5)
    assert_rendered(demo, 1)
    assert "demo-momentum-map" in demo._dom_classes
    np.testing.assert_array_equal(np.ma.filled(demo.mesh.get_array(), np.nan).ravel(), demo.map.steps.ravel())
    assert demo.map.steps.shape == (len(demo.momenta), len(demo.lrs))
    assert list(demo.point_marker.get_xdata()) == [0.5] and list(demo.point_marker.get_ydata()) == [0.5]
    star = descent.heavy_ball_optimum(0.1, 1.0)
    np.testing.assert_allclose([demo.optimum_marker.get_xdata()[0], demo.optimum_marker.get_ydata()[0]], star)
    assert demo.verdict_text.startswith(f"lr 0.5, momentum 0.50: converges in {demo.steps} steps")
    assert demo.map.steps_at(0.5, 0.5) == pytest.approx(demo.steps, rel=0.15)  # nearest grid point, not the same pair
    np.testing.assert_allclose(demo.path_line.get_xdata(), demo.path.points[:, 0])
    shape = snapshot(demo)

    demo.momentum_slider.value = 0.2
    demo.lr_slider.value = 3.0  # > 2 (1 + 0.2) / lambda_max = 2.4
    assert "diverges (lr 3 > 2(1 + momentum)/λmax = 2.4)" in demo.verdict_text
    assert demo.path.diverged
    old = np.ma.filled(demo.mesh.get_array(), np.nan).copy()
    demo.condition_slider.value = 100
    assert_rendered(demo, 4)
    new = np.ma.filled(demo.mesh.get_array(), np.nan)
    assert not np.array_equal(np.nan_to_num(old), np.nan_to_num(new))
    np.testing.assert_array_equal(new.ravel(), demo.map.steps.ravel())
    assert "condition number 100" in demo.verdict_text and demo.surface.condition_number == pytest.approx(100)
    assert snapshot(demo) == shape


def test_momentum_helps_most_on_ill_conditioned_maps():
    demo = demos.momentum_map_demo(condition=100)
    best_lr, best_momentum, best_steps = demo.map.best()
    assert best_momentum > 0.5
    plain = demo.map.steps[0]  # momentum 0
    assert np.nanmin(plain) > 3 * best_steps


# -- digits -----------------------------------------------------------------------------------------


def test_digits_demo_trains_low_good_and_high(monkeypatch):
    calls = []
    real = lr_finder.digits_loss_curve

    def counted(lr, **kw):
        calls.append(lr)
        return real(lr, **kw)
    monkeypatch.setattr(lr_finder, "digits_loss_curve", counted)
    demo = demos.DigitsLRDemo(lrs=(1e-4, 0.1, 10.0), steps=25)
    assert_rendered(demo, 1)
    assert "demo-digits" in demo._dom_classes
    assert calls == [1e-4, 0.1, 10.0]
    for label, curve in demo.curves.items():
        np.testing.assert_allclose(demo.lines[label].get_ydata(), curve.smoothed())
        assert demo.bars[label].get_height() == pytest.approx(0.0 if np.isnan(curve.val_accuracy) else curve.val_accuracy)
    assert demo.ax_acc.get_title() == "validation accuracy"  # learning rates are compared on validation data
    lines = demo.verdict_text.split("\n")
    assert all("validation accuracy" in line and "test" not in line for line in lines[:2])
    assert lines[0].startswith("low lr 0.0001: stuck")
    assert lines[1].startswith("good lr 0.1: ")
    assert lines[2].startswith(("high lr 10: unstable", "high lr 10: diverged"))
    shape = snapshot(demo)
    demo.good_slider.value = 0.3
    assert calls[-1] == pytest.approx(0.3) and len(calls) == 4  # only the moved slider retrains
    demo.good_slider.value = 0.1
    assert len(calls) == 4  # cached
    assert_rendered(demo, 3)
    assert snapshot(demo) == shape
