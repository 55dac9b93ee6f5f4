"""Interactive demos of lecture 3 (ipywidgets). Each function returns the demo, a widget box:

    demos.lr_demo()            # a log-scale learning-rate slider on a quadratic, 2/lambda_max marked
    demos.race_demo()          # SGD, momentum, AdaGrad, RMSProp and Adam racing on one surface
    demos.momentum_map_demo()  # steps to converge for every (learning rate, momentum) pair
    demos.digits_lr_demo()     # a small network on the digits with a low, a good and a high lr

The computations are the pure, tested functions of ``helpers.surfaces``, ``helpers.descent`` and
``helpers.lr_finder``; this module only wires controls to them. How a demo draws (no ipympl
needed): each figure is a plain matplotlib ``Figure`` with an Agg canvas, created ONCE. A change
of a control updates its artists in place (``set_data``, ``set_ydata``, ``set_array``), redraws
the canvas and sends the new PNG to a ``widgets.Image``, which the browser swaps without
flicker. Nothing needs a browser: set
``demo.lr_slider.value = 0.3`` from Python and read ``demo.path_line.get_xdata()`` or
``demo.verdict_text``. Every demo shows ``rendered N`` (CSS class ``demo-rendered``; N counts the
redraws) and its verdict in words (CSS class ``demo-verdict``); the boxes have the classes
``demo-lr`` (its slider: ``demo-lr-slider``), ``demo-race``, ``demo-momentum-map`` and ``demo-digits``.
"""
from __future__ import annotations

import html
import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from helpers import descent, lr_finder, surfaces

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FigureView:
    """A matplotlib figure shown as a PNG in a ``widgets.Image``; ``refresh()`` re-renders it in place."""

    def __init__(self, figure: Figure):
        self.figure = figure
        FigureCanvasAgg(figure)  # a canvas of our own: pyplot never sees (or displays) this figure
        w, h = figure.get_size_inches() * figure.dpi
        self.image = widgets.Image(format="png", layout=widgets.Layout(width=f"{int(w)}px", max_width="100%",
                                                                      height="auto"))

    def refresh(self) -> None:
        from PIL import Image

        canvas = self.figure.canvas
        canvas.draw()  # with ipympl this would be canvas.draw_idle(); Agg renders now
        buf = io.BytesIO()
        Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
        self.image.value = buf.getvalue()


class Demo(widgets.VBox):
    """Controls, then the figure, the verdict (``demo-verdict``) and ``rendered N`` (``demo-rendered``).

    The box has the CSS classes ``dl-demo`` and the demo's own ``css_class``.
    Subclasses build ``self.figure`` and their controls, then call ``self._start(rows)``;
    ``_draw()`` updates the artists and returns the verdict (plain text).
    """

    #: CSS class of the demo's box (besides ``dl-demo``), e.g. "demo-lr": a browser test's handle.
    css_class = "demo"

    def _start(self, figure: Figure, rows: Sequence[widgets.Widget], watch: Sequence[widgets.Widget]) -> None:
        self.figure = figure
        self.view = FigureView(figure)
        self.verdict = widgets.HTML(value="")
        self.verdict.add_class("demo-verdict")
        self.rendered = widgets.HTML(value="rendered 0")
        self.rendered.add_class("demo-rendered")
        self.render_count = 0
        self.verdict_text = ""
        self._held = 0
        self.children = [*rows, self.view.image, self.verdict, self.rendered]
        self.add_class("dl-demo")
        self.add_class(self.css_class)
        for w in watch:
            w.observe(self._changed, names="value")
        self.update()

    def _changed(self, change: Any = None) -> None:
        if not self._held:
            self.update()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Change several controls with one redraw: ``with demo.hold(): demo.lr_slider.value = ...``."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held:
                self.update()

    def update(self) -> None:
        """Recompute from the controls, update the artists in place, redraw, count the redraw."""
        self.verdict_text = self._draw()
        self.view.refresh()
        self.render_count += 1
        self.verdict.value = "<br>".join(html.escape(line) for line in self.verdict_text.split("\n"))
        self.rendered.value = f"rendered {self.render_count}"

    def _draw(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


def _log_slider(value: float, lo: float, hi: float, description: str, continuous: bool = True) -> widgets.FloatLogSlider:
    return widgets.FloatLogSlider(value=value, base=10, min=math.log10(lo), max=math.log10(hi), step=0.01,
                                  description=description, readout_format=".3g", continuous_update=continuous,
                                  style={"description_width": "initial"}, layout=widgets.Layout(width="420px"))


def _set_log_ylim(ax: Any, values: np.ndarray, floor: float = 1e-16, cap: float = 1e12) -> None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return
    ax.set_ylim(max(v.min() / 3, floor), min(v.max() * 3, cap))


# --------------------------------------------------------------------------------------------- #
# 1. The learning rate on a quadratic
# --------------------------------------------------------------------------------------------- #


class LearningRateDemo(Demo):
    """Gradient descent on a quadratic with known eigenvalues, driven by a log-scale lr slider.

    Controls: ``lr_slider``, ``steps_slider``. Plotted: ``path_line`` (the descent path on the
    contour plot), ``loss_line`` (loss per step, log scale), ``lr_marker`` (the current lr on the
    lr axis, where 1/lambda_max and 2/lambda_max are marked). Results: ``path``, ``regime``.
    CSS: the box ``demo-lr``, the slider ``demo-lr-slider``.
    """

    css_class = "demo-lr"

    def __init__(self, eigenvalues: Sequence[float] = (1.0, 10.0), lr: float = 0.02, steps: int = 50,
                 lr_range: tuple[float, float] = (1e-3, 1.0), angle: float = 30.0):
        super().__init__()
        self.surface = surfaces.Quadratic(eigenvalues, angle=angle)
        self.limit = self.surface.stability_limit
        self.lr_slider = _log_slider(lr, *lr_range, "learning rate")
        self.lr_slider.add_class("demo-lr-slider")
        self.steps_slider = widgets.IntSlider(value=steps, min=5, max=200, step=5, description="steps")
        fig = Figure(figsize=(10, 5.2), dpi=90)
        gs = fig.add_gridspec(2, 2, height_ratios=[5, 1], hspace=0.45)
        self.ax_path, self.ax_loss, self.ax_lr = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1]), fig.add_subplot(gs[1, :])
        surfaces.draw_surface(self.ax_path, self.surface)
        self.ax_path.set_title(self.surface.name)
        (self.path_line,) = self.ax_path.plot([], [], ".-", color="C3", lw=1.5, markersize=4)
        self.ax_path.plot(*self.surface.start, "o", color="C3", markersize=6)
        (self.loss_line,) = self.ax_loss.semilogy([1.0], [1.0], color="C3", lw=1.5)
        self.ax_loss.set_xlabel("step")
        self.ax_loss.set_ylabel("loss (minimum 0)")
        self.ax_loss.grid(alpha=0.3)
        self.ax_loss.set_title("loss")
        # The lr axis: where lr sits relative to the stability limit.
        lo, hi = lr_range
        one = 1.0 / self.surface.lambda_max
        ax = self.ax_lr
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.set_yticks([])
        for a, b, color, text in ((lo, one, "#d9f0d3", "each direction shrinks monotonically"),
                                  (one, self.limit, "#fee8c8", "steep direction zig-zags"),
                                  (self.limit, hi, "#fcbba1", "diverges")):
            if b > a:
                ax.axvspan(a, b, color=color)
                ax.text(math.sqrt(a * b), 0.5, text, ha="center", va="center", fontsize=8)
        ax.axvline(self.limit, color="C3", lw=1.5, ls="--")
        ax.text(self.limit, 1.08, f"2/λmax = {self.limit:.3g}", ha="center", va="bottom", fontsize=9,
                color="C3", transform=ax.get_xaxis_transform())
        ax.text(one, 1.08, f"1/λmax = {one:.3g}", ha="center", va="bottom", fontsize=8,
                transform=ax.get_xaxis_transform())
        self.lr_marker = ax.axvline(lr, color="k", lw=3)
        ax.set_xlabel("learning rate")
        fig.subplots_adjust(left=0.07, right=0.97, top=0.93, bottom=0.1, wspace=0.3)
        self.path: descent.Path | None = None
        self.regime: descent.Regime | None = None
        self._start(fig, [widgets.HBox([self.lr_slider, self.steps_slider])], [self.lr_slider, self.steps_slider])

    def _draw(self) -> str:
        lr, steps = float(self.lr_slider.value), int(self.steps_slider.value)
        self.path = descent.descent_path(self.surface, "sgd", lr=lr, steps=steps)
        self.regime = descent.classify_path(self.path)
        pts = self.path.points
        self.path_line.set_data(pts[:, 0], pts[:, 1])
        gaps = np.maximum(self.path.gaps, 1e-16)
        self.loss_line.set_data(np.arange(len(gaps)), gaps)
        self.ax_loss.set_xlim(0, steps)
        _set_log_ylim(self.ax_loss, gaps)
        self.lr_marker.set_xdata([lr, lr])
        if math.isclose(lr, self.limit, rel_tol=1e-3):
            cmp = "="
        else:
            cmp = ">" if lr > self.limit else "<"
        return f"{self.regime.kind}: lr {lr:.3g} {cmp} 2/λmax = {self.limit:.3g}; {self.regime.words}"


def lr_demo(eigenvalues: Sequence[float] = (1.0, 10.0), lr: float = 0.02, steps: int = 50,
            lr_range: tuple[float, float] = (1e-3, 1.0)) -> LearningRateDemo:
    """Gradient descent on the quadratic with the given eigenvalues; drag the learning rate."""
    return LearningRateDemo(eigenvalues, lr, steps, lr_range)


# --------------------------------------------------------------------------------------------- #
# 2. Optimisers racing on one surface
# --------------------------------------------------------------------------------------------- #

#: name -> (key of helpers.descent.OPTIMIZERS, extra hyper-parameter (name, min, max) or None)
RACERS: dict[str, tuple[str, tuple[str, float, float] | None]] = {
    "SGD": ("sgd", None),
    "momentum": ("momentum", ("momentum", 0.0, 0.99)),
    "AdaGrad": ("adagrad", None),
    "RMSProp": ("rmsprop", ("alpha", 0.5, 0.999)),
    "Adam": ("adam", ("beta1", 0.0, 0.99)),
}

#: Surfaces of the race with each racer's starting (lr, extra) there.
RACE_SURFACES: dict[str, tuple[Any, dict[str, tuple[float, float | None]]]] = {
    "Rosenbrock (banana)": (lambda: surfaces.Rosenbrock(start=(-1.2, 1.0)),
                            {"SGD": (1.5e-3, None), "momentum": (1e-3, 0.9), "AdaGrad": (1.0, None),
                             "RMSProp": (0.03, 0.99), "Adam": (0.2, 0.9)}),
    "quadratic, condition number 20": (lambda: surfaces.Quadratic((0.5, 10.0), angle=-30.0),
                                       {"SGD": (0.15, None), "momentum": (0.05, 0.8), "AdaGrad": (0.5, None),
                                        "RMSProp": (0.05, 0.99), "Adam": (0.1, 0.9)}),
}


class OptimizerRaceDemo(Demo):
    """Several torch.optim optimisers from the same start on the same surface.

    Controls: ``surface_dropdown``, ``steps_slider`` and, per racer, ``controls[name]``: a dict
    with "on" (Checkbox), "lr" (FloatLogSlider) and, for momentum/RMSProp/Adam, "extra"
    (momentum, alpha, beta1). Plotted: ``lines[name]`` (paths), ``end_markers[name]`` (where each
    path ends), ``loss_lines[name]``.
    Results: ``paths[name]`` (None when switched off). CSS: the box ``demo-race``.
    """

    css_class = "demo-race"

    def __init__(self, surface: str = "Rosenbrock (banana)", steps: int = 500,
                 racers: Sequence[str] = tuple(RACERS)):
        super().__init__()
        if surface not in RACE_SURFACES:
            raise ValueError(f"unknown surface {surface!r}; known: {list(RACE_SURFACES)}")
        self.surface_dropdown = widgets.Dropdown(options=list(RACE_SURFACES), value=surface, description="surface")
        self.steps_slider = widgets.IntSlider(value=steps, min=10, max=1000, step=10, description="steps",
                                              continuous_update=False)
        defaults = RACE_SURFACES[surface][1]
        self.controls: dict[str, dict[str, widgets.Widget]] = {}
        rows = [widgets.HBox([self.surface_dropdown, self.steps_slider])]
        watch: list[widgets.Widget] = [self.steps_slider]
        for name in racers:
            key, extra = RACERS[name]
            lr, extra_value = defaults[name]
            c = {"on": widgets.Checkbox(value=True, description=name, indent=False, layout=widgets.Layout(width="110px")),
                 "lr": _log_slider(lr, 1e-4, 3.0, "lr")}
            row = [c["on"], c["lr"]]
            if extra is not None:
                c["extra"] = widgets.FloatSlider(value=extra_value, min=extra[1], max=extra[2], step=0.01,
                                                 description=extra[0], readout_format=".3g")
                row.append(c["extra"])
            self.controls[name] = c
            rows.append(widgets.HBox(row))
            watch += list(c.values())
        fig = Figure(figsize=(10, 4.4), dpi=90)
        self.ax_path, self.ax_loss = fig.subplots(1, 2)
        self.surface = RACE_SURFACES[surface][0]()
        self._contours = self._draw_surface()
        self.lines, self.end_markers, self.loss_lines, self.paths = {}, {}, {}, {}
        for i, name in enumerate(racers):
            color = f"C{i}"
            (self.lines[name],) = self.ax_path.plot([], [], "-", color=color, lw=1.6, label=name)
            (self.end_markers[name],) = self.ax_path.plot([], [], "o", color=color, markersize=6,
                                                          markeredgecolor="k")
            (self.loss_lines[name],) = self.ax_loss.semilogy([1.0], [1.0], color=color, lw=1.5, label=name)
            self.paths[name] = None
        self.ax_path.legend(fontsize="small", loc="lower right")
        self.ax_loss.set_xlabel("step")
        self.ax_loss.set_ylabel("loss - minimum")
        self.ax_loss.grid(alpha=0.3)
        self.ax_loss.set_title("loss")
        fig.subplots_adjust(left=0.07, right=0.97, top=0.92, bottom=0.12, wspace=0.3)
        self.surface_dropdown.observe(self._surface_changed, names="value")
        self._start(fig, rows, watch)

    def _draw_surface(self) -> list:
        artists_before = len(self.ax_path.lines)
        cs = surfaces.draw_surface(self.ax_path, self.surface)
        self.ax_path.set_title(self.surface.name)
        self.ax_path.plot(*self.surface.start, "o", color="k", markersize=5)
        return [cs, *self.ax_path.lines[artists_before:]]

    def _surface_changed(self, change: Any) -> None:
        for artist in self._contours:  # replace the contour lines; the figure and paths stay
            artist.remove()
        self.surface = RACE_SURFACES[change["new"]][0]()
        self._contours = self._draw_surface()
        with self.hold():
            for name, (lr, extra) in RACE_SURFACES[change["new"]][1].items():
                if name in self.controls:
                    self.controls[name]["lr"].value = lr
                    if extra is not None and "extra" in self.controls[name]:
                        self.controls[name]["extra"].value = extra

    def _draw(self) -> str:
        steps = int(self.steps_slider.value)
        results = []
        all_gaps = []
        for name, c in self.controls.items():
            key, extra = RACERS[name]
            if not c["on"].value:
                self.paths[name] = None
                self.lines[name].set_data([], [])
                self.end_markers[name].set_data([], [])
                self.loss_lines[name].set_data([], [])
                continue
            hyper = {extra[0]: float(c["extra"].value)} if extra is not None else {}
            path = descent.descent_path(self.surface, key, lr=float(c["lr"].value), steps=steps, **hyper)
            self.paths[name] = path
            self.lines[name].set_data(path.points[:, 0], path.points[:, 1])
            self.end_markers[name].set_data(path.points[-1:, 0], path.points[-1:, 1])
            gaps = np.maximum(path.gaps, 1e-16)
            self.loss_lines[name].set_data(np.arange(len(gaps)), gaps)
            all_gaps.append(gaps)
            hit = np.flatnonzero(path.gaps < 1e-3)
            results.append((name, path, int(hit[0]) if hit.size else None))
        self.ax_loss.set_xlim(0, steps)
        if all_gaps:
            _set_log_ylim(self.ax_loss, np.concatenate(all_gaps))
        if not results:
            return "switch on at least one optimiser"
        ranked = sorted(results, key=lambda r: (r[1].diverged, r[2] if r[2] is not None else math.inf,
                                                float(r[1].gaps[-1])))
        parts = []
        for name, path, hit in ranked:
            if path.diverged:
                parts.append(f"{name}: diverged at step {path.diverged_at}")
            elif hit is not None:
                parts.append(f"{name}: loss < 1e-3 at step {hit}")
            else:
                parts.append(f"{name}: loss {float(path.gaps[-1]):.2g} after {steps} steps")
        leader, path, hit = ranked[0]
        if path.diverged:
            head = "every optimiser diverged: lower the learning rates"
        elif hit is not None:
            head = f"winner: {leader}, first below loss 1e-3 (step {hit})"
        else:
            head = f"nobody reached loss 1e-3 in {steps} steps; closest: {leader}"
        return head + "\n" + " · ".join(parts)


def race_demo(surface: str = "Rosenbrock (banana)", steps: int = 500) -> OptimizerRaceDemo:
    """SGD, momentum, AdaGrad, RMSProp and Adam (torch.optim) racing on one surface."""
    return OptimizerRaceDemo(surface, steps)


# --------------------------------------------------------------------------------------------- #
# 3. The (learning rate, momentum) map
# --------------------------------------------------------------------------------------------- #


class MomentumMapDemo(Demo):
    """Steps to converge on a quadratic (lambda_max = 1, lambda_min = 1 / condition number) for every
    (lr, momentum) on a grid, with the chosen pair's path beside it.

    Controls: ``condition_slider`` (recomputes the map), ``lr_slider``, ``momentum_slider``.
    Plotted: ``mesh`` (the map; ``mesh.get_array()``), ``point_marker`` (the chosen pair),
    ``optimum_marker`` (Polyak's optimum), ``path_line``. Results: ``map``, ``path``, ``steps``.
    CSS: the box ``demo-momentum-map``.
    """

    css_class = "demo-momentum-map"

    def __init__(self, condition: float = 10, lr: float = 0.5, momentum: float = 0.5,
                 n_lr: int = 36, n_momentum: int = 20, max_steps: int = 300, tol: float = 1e-6):
        super().__init__()
        options = sorted({2, 5, 10, 20, 50, 100, 200, 500, int(condition)})
        self.condition_slider = widgets.SelectionSlider(options=options, value=int(condition),
                                                        description="condition number", continuous_update=False,
                                                        style={"description_width": "initial"})
        self.lrs = np.geomspace(0.01, 4.0, n_lr)
        self.momenta = np.linspace(0.0, 0.98, n_momentum)
        self.max_steps, self.tol = max_steps, tol
        self.lr_slider = _log_slider(lr, 0.01, 4.0, "learning rate")
        self.momentum_slider = widgets.FloatSlider(value=momentum, min=0.0, max=0.98, step=0.01,
                                                   description="momentum")
        self._maps: dict[int, descent.ConvergenceMap] = {}
        fig = Figure(figsize=(10, 4.4), dpi=90)
        self.ax_map, self.ax_path = fig.subplots(1, 2)
        self.surface = self._surface(int(condition))
        self.map = self._map(int(condition))
        self.mesh = descent.draw_convergence_map(self.ax_map, self.map, lambda_max=1.0)
        fig.colorbar(self.mesh, ax=self.ax_map, label=f"steps to shrink the loss {1 / tol:.0e}x".replace("e+0", "e"))
        self.ax_map.set_title("steps to converge (grey: diverges; dashed: 2(1+β)/λmax)", fontsize=9)
        (self.optimum_marker,) = self.ax_map.plot([], [], "*", color="cyan", markersize=12, markeredgecolor="k")
        (self.point_marker,) = self.ax_map.plot([], [], "o", color="w", markersize=8, markeredgecolor="k")
        self._contours = self._draw_surface()
        (self.path_line,) = self.ax_path.plot([], [], ".-", color="C3", lw=1.2, markersize=3)
        fig.subplots_adjust(left=0.07, right=0.97, top=0.92, bottom=0.12, wspace=0.35)
        self.path: descent.Path | None = None
        self.steps: int | None = None
        self.condition_slider.observe(self._condition_changed, names="value")
        self._start(fig, [self.condition_slider, widgets.HBox([self.lr_slider, self.momentum_slider])],
                    [self.lr_slider, self.momentum_slider])

    @staticmethod
    def _surface(kappa: int) -> surfaces.Quadratic:
        return surfaces.Quadratic((1.0 / kappa, 1.0), angle=30.0)

    def _map(self, kappa: int) -> descent.ConvergenceMap:
        if kappa not in self._maps:
            self._maps[kappa] = descent.convergence_map(self._surface(kappa), self.lrs, self.momenta,
                                                    tol=self.tol, max_steps=self.max_steps)
        return self._maps[kappa]

    def _draw_surface(self) -> list:
        before = len(self.ax_path.lines)
        cs = surfaces.draw_surface(self.ax_path, self.surface)
        self.ax_path.plot(*self.surface.start, "o", color="C3", markersize=5)
        return [cs, *self.ax_path.lines[before:]]

    def _condition_changed(self, change: Any) -> None:
        kappa = int(change["new"])
        self.surface = self._surface(kappa)
        self.map = self._map(kappa)
        self.mesh.set_array(np.ma.masked_invalid(self.map.steps).ravel())
        for artist in self._contours:
            artist.remove()
        self._contours = self._draw_surface()
        self.update()

    def _draw(self) -> str:
        lr, mom = float(self.lr_slider.value), float(self.momentum_slider.value)
        kappa = int(self.condition_slider.value)
        self.point_marker.set_data([lr], [mom])
        opt_lr, opt_mom = descent.heavy_ball_optimum(self.surface.lambda_min, self.surface.lambda_max)
        self.optimum_marker.set_data([opt_lr], [opt_mom])
        self.path = descent.descent_path(self.surface, "momentum", lr=lr, momentum=mom, steps=self.max_steps)
        regime = descent.classify_path(self.path, tol=self.tol)
        self.steps = regime.steps_to_tol
        pts = self.path.points
        self.path_line.set_data(pts[:, 0], pts[:, 1])
        limit = float(descent.momentum_stability_limit(1.0, mom))
        if self.path.diverged or regime.kind == "diverging":
            what = f"diverges (lr {lr:.3g} > 2(1 + momentum)/λmax = {limit:.3g})"
        elif self.steps is not None:
            what = f"converges in {self.steps} steps"
        else:
            what = f"has not converged after {self.max_steps} steps"
        self.ax_path.set_title(f"lr {lr:.3g}, momentum {mom:.2f}: {what.split(' (')[0]}", fontsize=10)
        best_lr, best_mom, best_steps = self.map.best()
        plain = self.map.steps[0]
        plain_best = int(np.nanmin(plain)) if np.any(self.map.converged[0]) else None
        gd = f"{plain_best} steps" if plain_best is not None else f"more than {self.max_steps} steps"
        return (f"lr {lr:.3g}, momentum {mom:.2f}: {what}.\n"
                f"condition number {kappa}: fastest on the map lr {best_lr:.3g}, momentum {best_mom:.2f} "
                f"({best_steps} steps); without momentum at best {gd}; "
                f"theory (star): lr {opt_lr:.3g}, momentum {opt_mom:.2f}")


def momentum_map_demo(condition: float = 10, lr: float = 0.5, momentum: float = 0.5) -> MomentumMapDemo:
    """The (learning rate, momentum) map of convergence speed on a quadratic."""
    return MomentumMapDemo(condition, lr, momentum)


# --------------------------------------------------------------------------------------------- #
# 4. A real model on the digits: low, good and high learning rates
# --------------------------------------------------------------------------------------------- #


class DigitsLRDemo(Demo):
    """Training-loss curves of ``helpers.lr_finder.small_mlp`` on the digits for three learning rates.

    Controls: ``sliders`` = {"low": ..., "good": ..., "high": ...} (also ``low_slider``,
    ``good_slider``, ``high_slider``); each run trains ``steps`` mini-batches from the same
    initial weights and batch order. Plotted: ``lines[label]`` (smoothed loss per step) and
    ``bars[label]`` (accuracy on the validation split, held out of the training split).
    Results: ``curves[label]`` (``TrainCurve``).
    CSS: the box ``demo-digits``.
    """

    css_class = "demo-digits"

    def __init__(self, lrs: Sequence[float] = (0.003, 0.1, 3.0), steps: int = 100, hidden: int = 64,
                 optimizer: str = "sgd"):
        super().__init__()
        self.steps, self.hidden, self.optimizer = steps, hidden, optimizer
        labels = ("low", "good", "high")
        self.sliders = {label: _log_slider(lr, 1e-4, 10.0, f"{label} lr", continuous=False)
                        for label, lr in zip(labels, lrs)}
        self.low_slider, self.good_slider, self.high_slider = (self.sliders[k] for k in labels)
        self._cache: dict[float, lr_finder.TrainCurve] = {}
        fig = Figure(figsize=(10, 4.0), dpi=90)
        gs = fig.add_gridspec(1, 2, width_ratios=[3, 1])
        self.ax_loss, self.ax_acc = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
        colors = {"low": "C0", "good": "C2", "high": "C3"}
        self.lines = {k: self.ax_loss.plot([], [], color=colors[k], lw=1.8, label=k)[0] for k in labels}
        self.ax_loss.set_xlim(0, steps)
        self.ax_loss.set_ylim(0, 3.5)
        self.ax_loss.set_xlabel("step (mini-batch of 64)")
        self.ax_loss.set_ylabel("training loss (smoothed)")
        self.ax_loss.grid(alpha=0.3)
        self.ax_loss.legend(fontsize="small", loc="upper right")
        self.ax_loss.set_title(f"MLP 784-{hidden}-10 on the digits, {optimizer}")
        bars = self.ax_acc.bar(list(labels), [0, 0, 0], color=[colors[k] for k in labels])
        self.bars = dict(zip(labels, bars))
        self.ax_acc.set_ylim(0, 1)
        self.ax_acc.set_title("validation accuracy")
        self.ax_acc.grid(alpha=0.3, axis="y")
        fig.subplots_adjust(left=0.07, right=0.97, top=0.9, bottom=0.14, wspace=0.25)
        self.curves: dict[str, lr_finder.TrainCurve] = {}
        self._start(fig, [widgets.HBox(list(self.sliders.values()))], list(self.sliders.values()))

    def _curve(self, lr: float) -> lr_finder.TrainCurve:
        key = round(float(lr), 12)
        if key not in self._cache:
            self._cache[key] = lr_finder.digits_loss_curve(key, steps=self.steps, hidden=self.hidden,
                                                           optimizer=self.optimizer)
        return self._cache[key]

    def _draw(self) -> str:
        lines = []
        for label, slider in self.sliders.items():
            curve = self._curve(slider.value)
            self.curves[label] = curve
            s = curve.smoothed()
            self.lines[label].set_data(np.arange(1, len(s) + 1), s)
            acc = curve.val_accuracy
            self.bars[label].set_height(0.0 if math.isnan(acc) else acc)
            lines.append(f"{label} lr {curve.lr:.3g}: {curve.describe()}")
        return "\n".join(lines)


def digits_lr_demo(lrs: Sequence[float] = (0.003, 0.1, 3.0), steps: int = 100) -> DigitsLRDemo:
    """Loss curves of a small network on the digits for a low, a good and a high learning rate."""
    return DigitsLRDemo(lrs, steps)


__all__ = ["Demo", "DigitsLRDemo", "FigureView", "LearningRateDemo", "MomentumMapDemo", "OptimizerRaceDemo",
           "RACERS", "RACE_SURFACES", "digits_lr_demo", "lr_demo", "momentum_map_demo", "race_demo"]
