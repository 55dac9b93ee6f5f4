"""15_few_labels' challenge task (being written: the 15_few_labels helper replaces this module)."""
from __future__ import annotations

from helpers.grading.tasks.base import Task


class FewLabelDigitsClassifier(Task):
    """Placeholder so that the registry imports while 15_few_labels is written."""

    name = "few_label_digits"
