"""Challenge tasks: one class per kind of challenge (``base.Task``), one module per family.

A task says what ``fit`` receives, what the model maps, how its outputs are produced (a forward pass,
or episodes played) and scored, and how the instructor's held-out set becomes the sandbox's inputs and
the targets the trusted side keeps. ``helpers.grading.challenges`` (the student's harness) and
``autograder.authoring.challenges`` (the trusted side) read tasks only through ``get_task``.

A new task: a class in a module of this package, and one line in ``TASKS`` below (modules are
imported when their task is first asked for, so a task's libraries load only where it is used).
"""
from __future__ import annotations

import importlib

from helpers.grading.tasks.base import Task

#: Every task by name: "module:Class" in this package.
TASKS: dict[str, str] = {
    "digits_classifier": "digits:DigitsClassifier",
    "digits_denoiser": "digits:DigitsDenoiser",
    "sine_forecaster": "forecast:SineForecaster",
    "scenes_segmenter": "segmentation:ScenesSegmenter",  # 12_segmentation
    "cartpole_policy": "cartpole:CartPolePolicy",        # 13_reinforcement
    "attacked_digits": "robustness:AttackedDigitsClassifier",  # 14_robustness
    "few_label_digits": "fewlabels:FewLabelDigitsClassifier",  # 15_few_labels
}

_MADE: dict[str, Task] = {}


def get_task(name: str) -> Task:
    """The task called ``name`` (one instance per process); ValueError if there is none."""
    if name not in TASKS:
        raise ValueError(f"unknown challenge task {name!r} (one of {', '.join(sorted(TASKS))})")
    if name not in _MADE:
        module, cls = TASKS[name].split(":")
        _MADE[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return _MADE[name]
