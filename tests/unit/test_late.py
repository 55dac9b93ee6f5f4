"""Late penalties: a share per started day, never more than the score (nbgrader's plugin interface)."""
from __future__ import annotations

import pytest

from autograder.pipeline.late import PerDayPenalty


@pytest.mark.parametrize("seconds, expected", [(0, None), (1, 1.0), (86400, 1.0), (86401, 2.0), (9 * 86400 + 1, 10.0),
                                               (40 * 86400, 10.0)])
def test_ten_percent_per_started_day(seconds, expected):
    assert PerDayPenalty().late_submission_penalty("s", 10.0, seconds) == expected


def test_zero_percent_means_no_penalty():
    assert PerDayPenalty(percent_per_day=0).late_submission_penalty("s", 10.0, 10 * 86400) is None
