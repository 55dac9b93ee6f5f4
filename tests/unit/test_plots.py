"""Tests of helpers.plots: every function renders headless and draws what it promises."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers import plots  # noqa: E402
from helpers.data import make_moons, make_spirals  # noqa: E402
from helpers.training import History  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_show_and_close(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("helpers.plots must not call plt.show()")

    monkeypatch.setattr(plt, "show", refuse)
    yield
    plt.close("all")


def render(fig: Figure) -> Figure:
    assert isinstance(fig, Figure)
    fig.canvas.draw()  # the real test that it renders
    return fig


def scatters(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def contours(ax):
    return [c for c in ax.collections if isinstance(c, ContourSet)]


def n_images(fig):
    return sum(len(ax.images) for ax in fig.axes)


def labelled_lines(ax):
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


# ----------------------------------------------------------------------------- 2-D data

def test_plot_2d_data_one_scatter_per_class():
    X, y = make_spirals(n=90, n_classes=3, seed=0)
    fig = render(plots.plot_2d_data(X, y, title="spirals"))
    ax = fig.axes[0]
    assert len(scatters(ax)) == 3
    assert sum(len(c.get_offsets()) for c in scatters(ax)) == 90
    assert ax.get_title() == "spirals"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1", "class 2"]
    assert len(scatters(render(plots.plot_2d_data(torch.tensor(X))).axes[0])) == 1


def test_plot_2d_data_draws_into_given_axes():
    fig, (a, b) = plt.subplots(1, 2)
    X, y = make_moons(n=20, seed=0)
    assert plots.plot_2d_data(X, y, ax=b) is fig
    assert len(scatters(b)) == 2 and len(scatters(a)) == 0
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.plot_2d_data(np.zeros((5, 3)), None)


def test_decision_boundary_with_probabilities_draws_half_contour():
    X, y = make_moons(n=60, seed=0)
    predict = lambda P: 1 / (1 + np.exp(-(P[:, 0] - P[:, 1])))  # noqa: E731
    fig = render(plots.plot_decision_boundary(predict, X, y, title="p", resolution=50))
    ax = fig.axes[0]
    filled = [c for c in contours(ax) if c.filled]
    lines = [c for c in contours(ax) if not c.filled]
    assert len(filled) == 1 and len(lines) == 1
    assert list(lines[0].levels) == [0.5]
    assert len(scatters(ax)) == 2
    assert ax.get_xlim()[0] == pytest.approx(X[:, 0].min() - 0.5)


def test_decision_boundary_with_labels_scores_and_tensors():
    X, y = make_spirals(n=60, n_classes=3, seed=0)
    labels = lambda P: (np.arctan2(P[:, 1], P[:, 0]) > 0).astype(int) + (P[:, 0] > 0.5)  # noqa: E731
    ax = render(plots.plot_decision_boundary(labels, X, y, resolution=40)).axes[0]
    assert len(contours(ax)) == 1 and contours(ax)[0].filled
    assert len(scatters(ax)) == 3
    # (M, K) class scores from a torch model: argmax is taken
    model = torch.nn.Linear(2, 3)
    ax = render(plots.plot_decision_boundary(lambda P: model(torch.tensor(P, dtype=torch.float32)),
                                             X, y, resolution=40)).axes[0]
    assert len(contours(ax)) == 1
    # raw scores w.x + b (outside [0, 1]): class 1 where positive
    ax = render(plots.plot_decision_boundary(lambda P: 3 * P[:, 0] - 1, X, (y > 0).astype(int),
                                             resolution=40)).axes[0]
    assert len(contours(ax)) == 1 and len(contours(ax)[0].levels) == 3  # two classes: 3 edges


# ----------------------------------------------------------------------------- curves

def test_plot_history_from_history_and_dict():
    h = History(train_loss=[1.0, 0.5, 0.3], val_loss=[1.1, 0.7, 0.6],
                train_metrics={"accuracy": [0.5, 0.7, 0.9]}, val_metrics={"accuracy": [0.4, 0.6, 0.8]})
    fig = render(plots.plot_history(h))
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax in fig.axes:
        assert [line.get_label() for line in labelled_lines(ax)] == ["training", "validation"]
    np.testing.assert_array_equal(labelled_lines(fig.axes[0])[1].get_ydata(), [1.1, 0.7, 0.6])
    np.testing.assert_array_equal(labelled_lines(fig.axes[0])[0].get_xdata(), [1, 2, 3])
    fig = render(plots.plot_history({"loss": [3, 2, 1]}))
    assert len(fig.axes) == 1 and len(labelled_lines(fig.axes[0])) == 1
    fig = render(plots.plot_history(h, metrics=["accuracy"]))
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="f1"):
        plots.plot_history(h, metrics=["f1"])


def test_plot_activation_function_and_derivative():
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    dsigmoid = lambda x: sigmoid(x) * (1 - sigmoid(x))  # noqa: E731
    ax = render(plots.plot_activation(sigmoid, dsigmoid, name="sigmoid")).axes[0]
    lines = labelled_lines(ax)
    assert [line.get_label() for line in lines] == ["sigmoid(x)", "sigmoid'(x)"]
    assert ax.get_title() == "sigmoid"
    x, d = lines[1].get_data()
    assert x.min() == -5 and x.max() == 5
    assert np.max(d) == pytest.approx(0.25, abs=1e-3)
    # torch functions, a numerical derivative, a constant derivative
    ax = render(plots.plot_activation(torch.tanh, "numerical")).axes[0]
    x, d = labelled_lines(ax)[1].get_data()
    np.testing.assert_allclose(d[5:-5], 1 - np.tanh(x[5:-5]) ** 2, atol=1e-3)
    ax = render(plots.plot_activation(lambda x: x, lambda x: 1.0, name="linear", x_range=(-2, 2))).axes[0]
    np.testing.assert_array_equal(labelled_lines(ax)[1].get_ydata(), 1.0)
    assert len(labelled_lines(render(plots.plot_activation(np.tanh)).axes[0])) == 1


# ----------------------------------------------------------------------------- images

def test_plot_image_grid_titles_and_wrong_predictions_in_red():
    rng = np.random.default_rng(0)
    images = rng.random((10, 28, 28))
    labels = np.arange(10)
    preds = labels.copy()
    preds[[2, 7]] = 0
    fig = render(plots.plot_image_grid(images, labels, preds, ncols=4))
    assert n_images(fig) == 10
    assert len(fig.axes) == 12  # 3 rows of 4, two axes unused
    titled = [ax for ax in fig.axes if ax.images]
    red = [ax.get_title() for ax in titled if ax.title.get_color() == "red"]
    assert red == ["0 (true 2)", "0 (true 7)"]
    assert titled[3].get_title() == "3" and titled[3].title.get_color() == "black"


@pytest.mark.parametrize("shape", [(6, 784), (6, 1, 28, 28), (6, 3, 32, 32), (6, 32, 32, 3)])
def test_plot_image_grid_layouts(shape):
    images = torch.rand(shape) * 4 - 2  # also outside [0, 1], and a tensor
    fig = render(plots.plot_image_grid(images, labels=list(range(6)), class_names="abcdef"))
    assert n_images(fig) == 6
    assert fig.axes[1].get_title() == "b"
    array = fig.axes[0].images[0].get_array()
    assert array.shape[:2] in ((28, 28), (32, 32))
    if len(shape) == 4 and 3 in (shape[1], shape[3]):
        assert array.shape == (32, 32, 3) and array.min() >= 0 and array.max() <= 1


def test_plot_filters_feature_maps_and_reconstructions():
    rng = np.random.default_rng(0)
    fig = render(plots.plot_filters(torch.nn.Conv2d(1, 6, 5).weight))
    assert n_images(fig) == 6
    ims = [ax.images[0] for ax in fig.axes if ax.images]
    assert all(im.get_clim() == ims[0].get_clim() for im in ims), "one colour scale for all filters"
    assert ims[0].get_clim()[0] == -ims[0].get_clim()[1]
    rgb = rng.normal(size=(4, 3, 3, 3))  # 3x3 RGB filters: the channel axis must not be confused
    fig = render(plots.plot_filters(rgb))
    assert n_images(fig) == 4
    shown = fig.axes[0].images[0].get_array()
    f0 = np.moveaxis(rgb[0], 0, -1)
    np.testing.assert_allclose(shown, (f0 - f0.min()) / (f0.max() - f0.min()))
    assert n_images(render(plots.plot_filters(rng.normal(size=(100, 1, 3, 3))))) == 64
    assert n_images(render(plots.plot_filters(rng.normal(size=(4, 2, 3, 3))))) == 8
    with pytest.raises(ValueError, match="F, C, kH, kW"):
        plots.plot_filters(rng.normal(size=(4, 3, 3)))

    fig = render(plots.plot_feature_maps(rng.random((5, 12, 12)), ncols=3))
    assert n_images(fig) == 5 and fig.axes[4].get_title() == "channel 4"
    assert n_images(render(plots.plot_feature_maps(torch.rand(1, 3, 8, 8)))) == 3

    originals, recon = rng.random((10, 784)), rng.random((10, 784))
    fig = render(plots.plot_reconstructions(originals, recon, n=4))
    assert n_images(fig) == 8
    assert fig.axes[0].images[0].get_array().shape == (28, 28)
    np.testing.assert_allclose(fig.axes[4].images[0].get_array(), recon[0].reshape(28, 28))
    with pytest.raises(ValueError, match="differ"):
        plots.plot_reconstructions(originals, recon[:, :100])


def test_plot_attention_and_latent_space():
    w = torch.softmax(torch.randn(4, 5), dim=-1)
    fig = render(plots.plot_attention(w, x_labels=list("abcde"), y_labels=list("wxyz")))
    ax = fig.axes[0]
    assert len(ax.images) == 1 and ax.images[0].get_array().shape == (4, 5)
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcde")
    assert [t.get_text() for t in ax.get_yticklabels()] == list("wxyz")
    assert len(fig.axes) == 2  # the heat map and its colour bar
    fig = render(plots.plot_attention(np.random.default_rng(0).random((3, 4, 4))))
    assert n_images(fig) == 3 and [a.get_title() for a in fig.axes if a.images] == ["head 0", "head 1", "head 2"]

    z, labels = np.random.default_rng(0).normal(size=(50, 2)), np.arange(50) % 10
    ax = render(plots.plot_latent_2d(z, labels)).axes[0]
    assert len(scatters(ax)) == 10 and ax.get_xlabel() == "$z_1$"


def test_import_sets_no_global_style(tmp_path):
    code = (
        "import matplotlib; matplotlib.use('Agg')\n"
        "before = dict(matplotlib.rcParams)\n"
        "import helpers.plots\n"
        "changed = [k for k, v in matplotlib.rcParams.items() if before[k] != v]\n"
        "assert not changed, changed\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLCONFIGDIR": str(tmp_path)},
                            timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
