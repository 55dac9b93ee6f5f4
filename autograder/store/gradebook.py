"""nbgrader's own API, configured for a course (one place builds it)."""
from __future__ import annotations

import functools
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import nbgrader.api
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


@functools.cache
def alembic_head() -> str:
    """The revision nbgrader stamps a new gradebook with: the head of its own migration scripts,
    read in this process. nbgrader asks a subprocess (``alembic heads``: 3 s) for every new
    gradebook, the course's and each batch's template; this gives the same answer at once."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", ALEMBIC_DIR)  # what nbgrader's alembic.ini names
    return ScriptDirectory.from_config(cfg).get_current_head()


nbgrader.api.get_alembic_version = alembic_head  # looked up when a Gradebook finds its database new


def _venv_on_path() -> None:
    """nbgrader runs `alembic` (its gradebook migrations) from PATH: make the venv's visible."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def gradebook(course: Course) -> Gradebook:
    """nbgrader's gradebook of the course (use as a context manager).

    The URL is :attr:`Course.db_url`: PostgreSQL when configured, else the sqlite file with a
    busy timeout, switched to write-ahead logging (WAL: readers never block the writer; the
    setting is stored in the file, so nbgrader's own connections use it too).
    """
    from sqlalchemy.exc import OperationalError

    from autograder.course import CourseError

    _venv_on_path()
    url = course.db_url
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1].split("?", 1)[0]
        if not Path(path).parent.is_dir():
            raise CourseError(f"the gradebook's folder {Path(path).parent} does not exist")
    try:
        gb = Gradebook(url)
    except ModuleNotFoundError as e:  # the driver of a configured database
        raise CourseError(f"cannot open the gradebook {_redacted(url)}: {e} (pip install psycopg2-binary "
                          "for PostgreSQL)") from None
    except OperationalError as e:
        raise CourseError(f"cannot open the gradebook {_redacted(url)}: {str(e.orig).strip()[:200]}") from None
    if gb.engine.dialect.name == "sqlite":
        with gb.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            if str(mode).lower() != "wal":
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    return gb


def set_due_dates(course: Course, aids: set[str]) -> None:
    """Each assignment's due date in the gradebook becomes the syllabus's (none: nothing is late).

    nbgrader's late-submission check (AssignLatePenalties) compares a submission's timestamp
    with this date; the gradebook stores naive UTC datetimes. Assignments not yet in the
    gradebook are created. The submissions already there then get the extensions of
    ``course/extensions.json`` (``autograder.store.extensions.apply_to_gradebook``)."""
    with gradebook(course) as gb:
        for a in course.assignments():
            if a.id in aids:
                due = a.due.replace(tzinfo=None) if a.due else None
                gb.update_or_create_assignment(a.id, duedate=due)
    from autograder.store import extensions as course_extensions

    course_extensions.apply_to_gradebook(course, aids)  # each submission's extension follows the due date


def _redacted(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


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


# -- a batch's private gradebooks (the coordinator's template, a worker's copy) -----------------------


def template_gradebook(course: Course, aids: list[str], path: Path) -> None:
    """A sqlite gradebook at ``path`` with only what autograde needs of ``aids``: each
    assignment (due date, course id), its notebooks and their cells, copied from the course's
    gradebook through nbgrader's API."""
    import warnings

    with gradebook(course) as src:
        with Gradebook(f"sqlite:///{path}", course_id=course.course_id()) as dst, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for aid in aids:
                a = src.find_assignment(aid)
                dst.update_or_create_assignment(aid, duedate=a.duedate)
                for nb in a.notebooks:
                    dst.update_or_create_notebook(nb.name, aid, kernelspec=nb.kernelspec)
                    for c in nb.grade_cells:
                        dst.update_or_create_grade_cell(c.name, nb.name, aid, max_score=c.max_score,
                                                        cell_type=c.cell_type)
                    for c in nb.solution_cells:
                        dst.update_or_create_solution_cell(c.name, nb.name, aid)
                    for c in nb.task_cells:
                        dst.update_or_create_task_cell(c.name, nb.name, aid, max_score=c.max_score,
                                                       cell_type=c.cell_type)
                    for c in nb.source_cells:
                        dst.update_or_create_source_cell(c.name, nb.name, aid, cell_type=c.cell_type,
                                                         locked=c.locked, source=c.source, checksum=c.checksum)


def extensions(course: Course, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """The extensions (seconds) of these (assignment, student) pairs, about to be graded: those of
    ``course/extensions.json`` (``autograder extend`` and the roster's accommodations) for the pairs
    it decides, else what the gradebook holds (an extension set there by hand).

    A pair with an extension from the file and no submission in the gradebook yet gets its
    submission entry now, with that extension (``set_due_dates`` has updated the others): the
    course's gradebook then says the same as the worker that computes the late penalty
    (nbgrader's ``duedate`` and ``total_seconds_late`` of the submission, read by the report)."""
    import datetime as dt

    from nbgrader.api import MissingEntry

    from autograder.store import extensions as course_extensions

    keys = list(keys)
    decided = course_extensions.known(course, keys)
    found = course_extensions.extension_seconds(course, decided)
    with gradebook(course) as gb:
        for aid, student in keys:
            if (aid, student) in decided:
                if (aid, student) in found:
                    try:
                        gb.find_submission(aid, student)
                    except MissingEntry:
                        gb.update_or_create_student(student)
                        gb.update_or_create_submission(aid, student, extension=dt.timedelta(seconds=found[(aid, student)]))
                continue
            try:
                ext = gb.find_submission(aid, student).extension
            except MissingEntry:
                continue
            if ext is not None and ext.total_seconds() > 0:
                found[(aid, student)] = ext.total_seconds()
    return found


def add_student(db_url: str, course_id: str, student: str, aid: str, extension_s: float | None) -> None:
    """The student (with any extension for ``aid``, seconds) in a worker's private gradebook."""
    import datetime as dt

    with Gradebook(db_url, course_id=course_id) as gb:
        gb.update_or_create_student(student)
        if extension_s:
            gb.update_or_create_submission(aid, student, extension=dt.timedelta(seconds=extension_s))


def submission_entries(db_url: str, course_id: str, aid: str, student: str) -> dict[str, Any]:
    """What autograde wrote for one submission in a worker's private gradebook, as plain data:
    ``{"timestamp": ISO text or None, "notebooks": {name: {"late_submission_penalty", "grades": {cell:
    [auto_score, needs_manual_grade]}, "comments": {cell: text}}}}`` (``autograder.run.jobs.Result.gradebook``)."""
    from nbgrader.api import MissingEntry

    entries: dict[str, Any] = {"timestamp": None, "notebooks": {}}
    with Gradebook(db_url, course_id=course_id) as gb:
        try:
            sub = gb.find_submission(aid, student)
        except MissingEntry:
            return entries
        entries["timestamp"] = sub.timestamp.isoformat() if sub.timestamp else None
        for nb in sub.notebooks:
            entries["notebooks"][nb.name] = {
                "late_submission_penalty": nb.late_submission_penalty,
                "grades": {g.name: [g.auto_score, bool(g.needs_manual_grade)] for g in nb.grades},
                "comments": {c.name: c.auto_comment for c in nb.comments}}
    return entries
