"""nbgrader's own API, configured for a course (one place builds it)."""
from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config

from autograder.course import Course


def course_config(course: Course, **overrides: dict[str, Any]) -> Config:
    """The course's nbgrader_config.py, plus ``{Section: {trait: value}}`` overrides."""
    config = course.config()
    extra = Config()
    for section, values in overrides.items():
        for k, v in values.items():
            extra[section][k] = v
    config.merge(extra)
    return config


def _venv_on_path() -> None:
    """nbgrader runs `alembic` (its gradebook migrations) from PATH: make the venv's visible."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def gradebook(course: Course) -> Gradebook:
    """nbgrader's gradebook of the course (use as a context manager)."""
    _venv_on_path()
    return Gradebook(course.db_url)


def api(course: Course, config: Config | None = None) -> NbGraderAPI:
    _venv_on_path()
    config = config if config is not None else course.config()
    level = logging.getLogger().getEffectiveLevel()
    logging.getLogger("traitlets").setLevel(level)  # nbgrader's apps log there (e.g. its exchange listing)
    coursedir = CourseDirectory(config=config)
    nb_api = NbGraderAPI(coursedir=coursedir, config=config)
    nb_api.log.setLevel(level)
    return nb_api


def failure_reason(result: dict) -> str:
    """The most telling line of a failed nbgrader API call's log."""
    text = (result.get("log") or "") + "\n" + (result.get("error") or "")
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    errors = [l for l in lines if re.match(r"^[\w.]*(Error|Exception|Exit)\b.*:", l)
              and "Please see the the above traceback" not in l]
    return (errors[0] if errors else (lines[-1] if lines else "unknown error"))[:300]


def check_result(result: dict, what: str) -> None:
    """Raise a one-line error when an nbgrader API call failed."""
    from autograder.course import CourseError

    if not result.get("success", False):
        raise CourseError(f"{what} failed: {failure_reason(result)}")
