"""Model-design challenges, as a notebook imports them: ``challenge("<name>", fit)``.

The harness itself (budgets, seeding, the graded run) is ``helpers.grading.challenges``; each kind of
challenge is a task in ``helpers.grading.tasks``. This module names what notebooks use.
"""
from helpers.grading.challenges import ChallengeError, challenge
from helpers.grading.tasks.forecast import forecast_windows

__all__ = ["ChallengeError", "challenge", "forecast_windows"]
