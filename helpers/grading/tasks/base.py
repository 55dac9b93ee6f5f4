"""The protocol every challenge task follows (``Task``), with the defaults most tasks keep.

Who calls what:

- at home and in the sandbox (``helpers.grading.challenges``): ``fit_arguments`` (what ``fit`` gets),
  ``validation`` (home only), ``outputs`` (the model on some inputs: a forward pass by default),
  ``output_shape``, ``score`` (home only: the validation figure), ``describe``, ``advice``;
- on the trusted side only (``autograder.authoring.challenges``, ``autograder.authoring.heldout``):
  ``heldout`` (the instructor's held-out arrays -> the sandbox's inputs and the targets kept outside)
  and ``score`` on the held-out targets; ``build_heldout`` when the task has a held-out file of its own.

Inputs given to the sandbox are numpy arrays (or a tuple of them): uint8 and int64 travel exactly,
floats rounded to 6 significant digits. Outputs come back as float64 rounded to 4 decimals, so a task
whose outputs are integers (actions, labels) gets them back exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

Inputs = np.ndarray | tuple  # one array, or a tuple of arrays passed as that many arguments


class Task:
    """One kind of challenge. Subclasses set the class attributes and the methods marked required."""

    name: str = ""
    #: the figure scored, as the text names it ("accuracy", "mse", "mean IoU", "mean return")
    metric: str = ""
    higher_is_better: bool = True
    #: one sentence of direction shown when the validation figure is short of full marks (never a model)
    advice: str = ""
    #: purpose string of the trusted side's random draws for this task (``heldout``), from the secret
    heldout_purpose: str = ""
    #: what one held-out input is called in a verdict ("on 1,000 held-out samples", "... episodes")
    items: str = "samples"

    # -- required ---------------------------------------------------------------------------------
    def fit_arguments(self) -> tuple:
        """What ``fit(*args)`` receives (the students' training and validation data, as tensors)."""
        raise NotImplementedError

    def validation(self) -> tuple[Inputs, Any]:
        """(validation inputs, validation targets): what the notebook scores the model on at home."""
        raise NotImplementedError

    def output_shape(self, n: int) -> tuple[int, ...]:
        """The shape ``outputs`` must have for ``n`` inputs."""
        raise NotImplementedError

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        """The metric of ``outputs`` (shape ``output_shape(n)``, finite) against the targets."""
        raise NotImplementedError

    def heldout(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[Inputs, Any]:
        """Trusted side: the held-out file's arrays -> (the sandbox's inputs, the targets kept here).
        ``rng`` is drawn from the instructor's secret (``heldout_purpose``)."""
        raise NotImplementedError

    # -- defaults ---------------------------------------------------------------------------------
    def outputs(self, model: Any, inputs: Inputs, batch: int = 250) -> np.ndarray:
        """The model's outputs on ``inputs`` (N, ...) in eval mode, without gradients, batch by batch.
        A tuple of arrays is passed as that many arguments."""
        import torch

        parts = inputs if isinstance(inputs, tuple) else (inputs,)
        model.eval()
        outs = []
        with torch.no_grad():
            for i in range(0, len(parts[0]), batch):
                out = model(*(torch.from_numpy(np.ascontiguousarray(a[i:i + batch])) for a in parts))
                outs.append(out.detach().float().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out))
        return np.concatenate(outs) if outs else np.zeros((0,))

    def describe(self, value: float) -> str:
        """A metric value as the report prints it."""
        return f"{value * 100:.1f} %" if self.metric == "accuracy" else f"{value:.4f}"

    def heldout_file(self) -> tuple[str, Any] | None:
        """``(file name, build)`` when the task has a held-out file of its own, written by
        ``python -m autograder.authoring.heldout build``: ``build(digits, labels, seed_for) -> {name: array}``
        gets the instructor's held-out digits ((N, 28, 28) uint8, perturbed; (N,) labels) and
        ``seed_for(purpose) -> int``, a seed drawn from the instructor's secret for that purpose
        (``numpy.random.default_rng(seed_for("<file>: what"))``). Only the secret makes the file.
        ``build`` may be a ``"module:function"`` string naming it on the trusted side, for a builder
        that must not ship to students (14's surrogate training). None (the default): the task reads a
        file another task or the digits build."""
        return None

    def sandbox_files(self) -> dict[str, bytes]:
        """Trusted side: files the graded sandbox sees **in place of** the helpers package's own, by
        path relative to the package (``{"datasets/mnist9k.npz": <bytes of an .npz>}``), each bound
        read-only over the original for the whole graded run of the assignment. For a challenge whose
        rules withhold data the package ships (15's: only 100 labels): the graded run cannot read what
        the student has at home. Each path must name a file the package has. Default: none."""
        return {}

    def valid(self, outputs: np.ndarray, n: int) -> bool:
        """Outputs of the right shape and finite (what every task needs before ``score``)."""
        return outputs.shape == self.output_shape(n) and bool(np.all(np.isfinite(outputs)))
