"""Figures for every lecture. Each function returns the matplotlib ``Figure``.

Functions that draw into one axes accept ``ax=`` (then they draw there and return
``ax.figure``); the others make their own grid. Nothing here calls ``plt.show()`` or changes
matplotlib's global style: Jupyter displays a returned figure by itself. Arrays may be numpy
arrays or torch tensors (detached and moved to the CPU for you).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

CLASS_COLORS = plt.get_cmap("tab10")


def _np(x: Any) -> np.ndarray:
    """numpy array from a numpy array, list or torch tensor (which may require grad / be on GPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _fig_ax(ax: Axes | None, figsize: tuple[float, float] = (5, 4)) -> tuple[Figure, Axes]:
    if ax is None:
        return plt.subplots(figsize=figsize)
    return ax.figure, ax


def _grid(n: int, ncols: int, cell: float = 1.3) -> tuple[Figure, np.ndarray]:
    """A figure with n small axes in rows of ncols; unused axes are switched off. axes: (n,)."""
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.2), squeeze=False)
    axes = axes.ravel()
    for a in axes:
        a.set_axis_off()
    return fig, axes[:n]


def _as_images(images: Any) -> np.ndarray:
    """(N, H, W), (N, 1, H, W), (N, 3, H, W), (N, H, W, 3) or (N, D) with D a square -> (N, H, W[, 3])."""
    x = _np(images).astype(np.float64)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"flat images of length {x.shape[1]} are not square; reshape them first")
        return x.reshape(-1, side, side)
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 1, -1)  # channels first (torch) -> channels last (matplotlib)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4):
        raise ValueError(f"expected images (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {x.shape}")
    if x.ndim == 4:  # colour: matplotlib wants [0, 1]; rescale each image if it is outside
        lo = x.min(axis=(1, 2, 3), keepdims=True)
        hi = x.max(axis=(1, 2, 3), keepdims=True)
        outside = (lo < 0) | (hi > 1)
        x = np.where(outside, (x - lo) / np.maximum(hi - lo, 1e-12), x)
    return x


def plot_2d_data(X: Any, y: Any = None, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Scatter 2-D points, one colour (and one legend entry) per class.

    X: (N, 2); y: (N,) integer labels, or None for a single colour.
    """
    X = _np(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (N, 2), got {X.shape}")
    fig, ax = _fig_ax(ax)
    if y is None:
        ax.scatter(X[:, 0], X[:, 1], s=15, color=CLASS_COLORS(0), edgecolors="k", linewidths=0.3)
    else:
        y = _np(y).ravel()
        for k, c in enumerate(np.unique(y)):
            mask = y == c
            ax.scatter(X[mask, 0], X[mask, 1], s=15, color=CLASS_COLORS(k % 10),
                       edgecolors="k", linewidths=0.3, label=f"class {c}")
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return fig


def plot_decision_boundary(
    predict: Callable[[np.ndarray], Any],
    X: Any,
    y: Any,
    ax: Axes | None = None,
    title: str | None = None,
    resolution: int = 200,
    padding: float = 0.5,
) -> Figure:
    """Colour the plane by the model's prediction, then scatter the data on top.

    - predict: maps grid points (M, 2) float64 to (M,) integer labels, (M,) probabilities of
      class 1 in [0, 1], (M,) real scores such as w.x + b (class 1 where positive), or
      (M, K) class scores (the argmax is taken). It may return a tensor or an (M, 1) array.
    - X: (N, 2), y: (N,) labels; the grid covers X plus ``padding`` on every side.
    Probabilities are shaded continuously with the 0.5 contour drawn as a black line;
    labels give flat colour regions.
    """
    X = _np(X)
    fig, ax = _fig_ax(ax)
    (x0, y0), (x1, y1) = X.min(axis=0) - padding, X.max(axis=0) + padding
    xx, yy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    out = _np(predict(grid))
    if out.ndim == 2 and out.shape[1] > 1:
        out = out.argmax(axis=1)
    out = out.reshape(xx.shape).astype(np.float64)
    is_labels = bool(np.all(out == np.round(out)))
    if not is_labels and out.min() >= 0 and out.max() <= 1:  # probabilities of class 1
        ax.contourf(xx, yy, out, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.35)
        ax.contour(xx, yy, out, levels=[0.5], colors="k", linewidths=1.5)
    else:
        if not is_labels:  # real-valued scores (w.x + b): class 1 where the score is positive
            out = (out > 0).astype(np.float64)
        # Index the classes 0..K-1 in sorted order, so colours match plot_2d_data's.
        classes = np.unique(np.concatenate([out.ravel(), _np(y).ravel().astype(np.float64)]))
        index = np.searchsorted(classes, out)
        colors = [CLASS_COLORS(k % 10) for k in range(len(classes))]
        ax.contourf(xx, yy, index, levels=np.arange(len(classes) + 1) - 0.5, colors=colors, alpha=0.25)
    plot_2d_data(X, y, ax=ax, title=title)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    return fig


def plot_history(history: Any, metrics: Sequence[str] | None = None) -> Figure:
    """Learning curves, one panel per metric, training solid and validation dashed.

    history: a ``helpers.training.History`` or a dict of per-epoch lists with keys such as
    "train_loss", "val_loss", "train_accuracy", "val_accuracy" (a key without prefix, e.g.
    "loss", counts as training). metrics: which to plot, default all ("loss" first).
    """
    data: Mapping[str, Sequence[float]] = history.to_dict() if hasattr(history, "to_dict") else history
    curves: dict[str, dict[str, Sequence[float]]] = {}
    for key, values in data.items():
        split, _, name = key.partition("_") if key.startswith(("train_", "val_")) else ("train", "", key)
        if len(values):
            curves.setdefault(name, {})[split] = values
    if metrics is None:
        metrics = sorted(curves, key=lambda m: (m != "loss", m))
    missing = [m for m in metrics if m not in curves]
    if missing or not metrics:
        raise ValueError(f"no curves for {missing or 'anything'}; history has {sorted(data)}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        for split, style in (("train", "-"), ("val", "--")):
            if split in curves[name]:
                values = curves[name][split]
                ax.plot(np.arange(1, len(values) + 1), values, style, marker=".",
                        label="training" if split == "train" else "validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_image_grid(
    images: Any,
    labels: Any = None,
    predictions: Any = None,
    ncols: int = 8,
    cmap: str = "gray",
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Images in a grid, titled with their label and/or prediction.

    - images: (N, H, W), (N, 1, H, W), (N, 3, H, W), (N, H, W, 3) or flat (N, 784)
    - labels, predictions: (N,) ints, optional; a wrong prediction gets a red title
      "pred (true label)", a right one a black title
    - class_names: optional names for the integer classes
    """
    x = _as_images(images)
    n = len(x)
    labels = None if labels is None else _np(labels).ravel()
    predictions = None if predictions is None else _np(predictions).ravel()
    name = (lambda k: class_names[int(k)]) if class_names is not None else (lambda k: str(int(k)))
    fig, axes = _grid(n, ncols)
    for i, ax in enumerate(axes):
        ax.imshow(x[i], cmap=None if x.ndim == 4 else cmap)
        if predictions is not None and labels is not None:
            wrong = predictions[i] != labels[i]
            text = f"{name(predictions[i])} (true {name(labels[i])})" if wrong else name(labels[i])
            ax.set_title(text, color="red" if wrong else "black", fontsize=8)
        elif labels is not None or predictions is not None:
            ax.set_title(name((labels if labels is not None else predictions)[i]), fontsize=8)
    fig.tight_layout()
    return fig


def plot_filters(weights: Any, ncols: int = 8, cmap: str = "RdBu_r", max_filters: int = 64) -> Figure:
    """Convolution filters, e.g. ``conv.weight``: weights (F, C, kH, kW).

    C = 3: one colour image per filter (each rescaled to [0, 1]). Otherwise one image per
    (filter, channel) pair, row by row, on a shared colour scale symmetric around 0
    (red positive, blue negative), so that the sizes of weights can be compared.
    Only the first ``max_filters`` filters are shown.
    """
    w = _np(weights).astype(np.float64)
    if w.ndim != 4:
        raise ValueError(f"weights must be (F, C, kH, kW), got shape {w.shape}")
    w = w[:max_filters]
    F, C = w.shape[:2]
    if C == 3:  # channels last for matplotlib; _as_images rescales each filter to [0, 1]
        return plot_image_grid(np.moveaxis(w, 1, -1), ncols=ncols)
    tiles = w.reshape(F * C, *w.shape[2:])
    vmax = np.abs(tiles).max() or 1.0
    fig, axes = _grid(len(tiles), C if C > 1 else ncols, cell=1.0)
    for i, ax in enumerate(axes):
        ax.imshow(tiles[i], cmap=cmap, vmin=-vmax, vmax=vmax)
        if C > 1 and i % C == 0:
            ax.set_title(f"filter {i // C}", fontsize=7, loc="left")
    fig.suptitle(f"{F} filters x {C} channel{'s' if C > 1 else ''} ({w.shape[2]}x{w.shape[3]})")
    return fig


def plot_feature_maps(maps: Any, ncols: int = 8, cmap: str = "viridis", max_maps: int = 64) -> Figure:
    """Feature maps of one image: maps (C, H, W), or (1, C, H, W). One panel per channel
    (the first ``max_maps``), each with its own colour scale."""
    m = _np(maps).astype(np.float64)
    if m.ndim == 4 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 3:
        raise ValueError(f"maps must be (C, H, W) (one image), got shape {m.shape}")
    m = m[:max_maps]
    fig, axes = _grid(len(m), ncols)
    for c, ax in enumerate(axes):
        ax.imshow(m[c], cmap=cmap)
        ax.set_title(f"channel {c}", fontsize=7)
    fig.tight_layout()
    return fig


def plot_attention(
    weights: Any,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Attention weights as a heat map: rows are queries, columns keys.

    weights: (Tq, Tk), or (heads, Tq, Tk) for one panel per head (then ``ax`` must be None).
    x_labels: Tk key labels (e.g. input tokens); y_labels: Tq query labels.
    """
    w = _np(weights).astype(np.float64)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3:
        raise ValueError(f"weights must be (Tq, Tk) or (heads, Tq, Tk), got shape {w.shape}")
    if ax is not None and len(w) > 1:
        raise ValueError("several heads need their own figure: leave ax=None")
    if ax is None:
        fig, axes = plt.subplots(1, len(w), figsize=(4 * len(w) + 1, 4), squeeze=False)
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax]
    for h, a in enumerate(axes):
        image = a.imshow(w[h], cmap="viridis", vmin=0, aspect="auto")
        a.set_xlabel("key")
        a.set_ylabel("query")
        if x_labels is not None:
            long = max((len(str(t)) for t in x_labels), default=0) > 2
            a.set_xticks(range(len(x_labels)), labels=list(x_labels), rotation=90 if long else 0)
        if y_labels is not None:
            a.set_yticks(range(len(y_labels)), labels=list(y_labels))
        a.set_title(title if title and len(w) == 1 else (f"head {h}" if len(w) > 1 else "attention"))
        fig.colorbar(image, ax=a, fraction=0.046, pad=0.04)
    return fig


def plot_reconstructions(originals: Any, reconstructions: Any, n: int = 8, cmap: str = "gray") -> Figure:
    """The first n originals (top row) above their reconstructions (bottom row).

    originals, reconstructions: same shape, any image layout ``plot_image_grid`` accepts.
    """
    a, b = _as_images(originals), _as_images(reconstructions)
    if a.shape != b.shape:
        raise ValueError(f"originals {a.shape} and reconstructions {b.shape} differ in shape")
    n = min(n, len(a))
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3), squeeze=False)
    for i in range(n):
        for row, imgs in enumerate((a, b)):
            axes[row, i].imshow(imgs[i], cmap=None if imgs.ndim == 4 else cmap)
            axes[row, i].set_axis_off()
    axes[0, 0].set_title("original", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def plot_latent_2d(z: Any, labels: Any = None, ax: Axes | None = None, title: str | None = "latent space") -> Figure:
    """A 2-D latent space: z (N, 2) codes, coloured by labels (N,) if given."""
    fig = plot_2d_data(z, labels, ax=ax, title=title)
    ax = fig.axes[0] if ax is None else ax
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return fig


def plot_activation(
    fn: Callable,
    dfn: Callable | str | None = None,
    name: str | None = None,
    x_range: tuple[float, float] = (-5.0, 5.0),
    ax: Axes | None = None,
    n: int = 401,
) -> Figure:
    """An activation function and its derivative on ``x_range``.

    - fn: numpy or torch function, e.g. ``np.tanh`` or ``torch.sigmoid`` (called on a float64 array
      or tensor of shape (n,))
    - dfn: its derivative (same kind of function), "numerical" for a finite-difference
      derivative, or None for the function alone
    """
    x = np.linspace(x_range[0], x_range[1], n)
    name = name or getattr(fn, "__name__", "f")
    fig, ax = _fig_ax(ax)
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    y = _call(fn, x)
    ax.plot(x, y, lw=2, label=f"{name}(x)")
    if isinstance(dfn, str):
        if dfn != "numerical":
            raise ValueError(f'dfn must be a function, "numerical" or None, got {dfn!r}')
        ax.plot(x, np.gradient(y, x), "--", lw=2, label=f"{name}'(x) (numerical)")
    elif dfn is not None:
        ax.plot(x, _call(dfn, x), "--", lw=2, label=f"{name}'(x)")
    ax.set_xlabel("x")
    ax.set_title(name)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def _call(fn: Callable, x: np.ndarray) -> np.ndarray:
    """fn(x) for a numpy function, or for a torch function (retried with a tensor)."""
    try:
        out = fn(x)
    except TypeError:  # e.g. torch.sigmoid refuses numpy arrays
        import torch

        out = fn(torch.from_numpy(x))
    out = _np(out).astype(np.float64)
    return np.broadcast_to(out, x.shape)  # a constant derivative such as lambda x: 1.0 works too
