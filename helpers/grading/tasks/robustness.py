"""14_robustness' challenge task (being written: the 14_robustness helper replaces this module)."""
from __future__ import annotations

from helpers.grading.tasks.base import Task


class AttackedDigitsClassifier(Task):
    """Placeholder so that the registry imports while 14_robustness is written."""

    name = "attacked_digits"
