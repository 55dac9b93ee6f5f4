"""Late penalties: a share of the score per started day late (nbgrader's plugin interface).

nbgrader itself offers only "none" and "zero". ``PerDayPenalty`` takes ``percent_per_day`` of
the notebook's score for every started day after the due date (set per assignment in
``course/syllabus.toml``), up to the whole score. The lateness it is given is nbgrader's
``SubmittedAssignment.total_seconds_late``: past the submission's own ``duedate``, the due date
plus the student's extension (``autograder extend`` and the roster's accommodations write it:
``autograder.store.extensions``), so a submission in time thanks to an extension costs nothing.
Configure in ``course/nbgrader_config.py``::

    c.AssignLatePenalties.plugin_class = "autograder.pipeline.late.PerDayPenalty"
    c.PerDayPenalty.percent_per_day = 10      # 0 turns penalties off
"""
from __future__ import annotations

import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float


class PerDayPenalty(LateSubmissionPlugin):
    """``percent_per_day`` % of the score per started day late (a minute late costs one day)."""

    percent_per_day = Float(10.0, min=0.0, max=100.0,
                            help="Share of the score taken per started day late (%).").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        if not total_seconds_late or total_seconds_late <= 0 or self.percent_per_day == 0:
            return None
        days = math.ceil(total_seconds_late / 86400)
        return round(min(score, score * self.percent_per_day / 100 * days), 6)
