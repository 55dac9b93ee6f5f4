"""The gradebook on both backends: sqlite (the embedded default, with a busy timeout and WAL)
and PostgreSQL (a real server started for the module: initdb on a free port in a temp dir).

Proves: the URL is chosen as documented ($GRADEBOOK_URL, then nbgrader_config.py, then the
sqlite file); syllabus due dates reach the gradebook; 16 processes writing 480 submissions
at once through nbgrader's API lose none on either backend; and a real `autograder grade`
(sandboxed, nbgrader's autograde in worker processes) records its scores in PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import shutil

import pytest

from tests.support import pg
from tests.support import submissions as subs
from tests.support.course import copy_course, run_cli

WRITERS = 16
PER_WRITER = 30
AID = "hw"


@pytest.fixture(scope="module")
def postgres_url():
    if pg.server_bin() is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; ./run test does it as root)")
    with pg.postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path, monkeypatch):
    """(course, url): a course copy whose gradebook is on the backend named by the parameter."""
    course_dir = copy_course(tmp_path)
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        _reset_postgres(url)
        monkeypatch.setenv("GRADEBOOK_URL", url)
    else:
        monkeypatch.delenv("GRADEBOOK_URL", raising=False)
    from autograder.course import Course

    course = Course(course_dir)
    return course, course.db_url


def _reset_postgres(url: str) -> None:
    """An empty database for each test (the server is shared by the module)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()


# -- which database ----------------------------------------------------------------------------

def test_default_is_the_sqlite_file_with_a_busy_timeout(tmp_path, monkeypatch):
    from autograder.course import Course

    monkeypatch.delenv("GRADEBOOK_URL", raising=False)
    course = Course(copy_course(tmp_path))
    assert course.db_url == f"sqlite:///{course.root}/gradebook.db?timeout=60"
    assert course.config().CourseDirectory.db_url == course.db_url  # what nbgrader's apps open


def test_gradebook_url_from_the_environment_then_the_course_config(tmp_path, monkeypatch):
    from autograder.course import Course

    course = Course(copy_course(tmp_path))
    config = course.root / "nbgrader_config.py"
    config.write_text(config.read_text() + '\nc.CourseDirectory.db_url = "postgresql://u:p@db.example:5432/course"\n')
    monkeypatch.delenv("GRADEBOOK_URL", raising=False)
    assert course.db_url == "postgresql://u:p@db.example:5432/course"
    monkeypatch.setenv("GRADEBOOK_URL", "sqlite:////srv/grades.db?timeout=5")
    assert course.db_url == "sqlite:////srv/grades.db?timeout=5"  # an explicit timeout is kept
    assert course.config().CourseDirectory.db_url == "sqlite:////srv/grades.db?timeout=5"


def test_an_unsupported_or_unreachable_gradebook_is_one_clear_error(tmp_path, monkeypatch):
    course = copy_course(tmp_path)
    monkeypatch.setenv("GRADEBOOK_URL", "mysql://u:p@localhost/db")
    r = run_cli("export", course=course, timeout=120)
    assert r.returncode == 2 and "unsupported gradebook URL" in r.stderr and "Traceback" not in r.stderr
    monkeypatch.setenv("GRADEBOOK_URL", f"postgresql://u:secret@127.0.0.1:{pg.free_port()}/db")
    r = run_cli("export", course=course, timeout=120)
    assert r.returncode == 2 and "cannot open the gradebook" in r.stderr and "Traceback" not in r.stderr
    assert "secret" not in r.stderr  # the password is never printed


def test_sqlite_gradebook_uses_write_ahead_logging(tmp_path, monkeypatch):
    import sqlite3

    from autograder.store import gradebook as nbgrader_api
    from autograder.course import Course

    monkeypatch.delenv("GRADEBOOK_URL", raising=False)
    course = Course(copy_course(tmp_path))
    with nbgrader_api.gradebook(course):
        pass
    with sqlite3.connect(course.gradebook) as conn:  # WAL is a property of the file: nbgrader's connections get it
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- due dates ----------------------------------------------------------------------------------

def _set_due(course_dir, aid: str, line: str) -> None:
    path = course_dir / "syllabus.toml"
    text = path.read_text()
    marker = f'id = "{aid}"\n'
    assert marker in text
    path.write_text(text.replace(marker, marker + line + "\n"))


@pytest.mark.parametrize("line, expected", [
    ('due = "2026-12-15T23:59:00Z"', dt.datetime(2026, 12, 15, 23, 59, tzinfo=dt.timezone.utc)),
    ('due = 2026-12-16T00:59:00+01:00', dt.datetime(2026, 12, 15, 23, 59, tzinfo=dt.timezone.utc)),
])
def test_due_date_is_read_from_the_syllabus_in_utc(tmp_path, line, expected):
    from autograder.course import Course

    course_dir = copy_course(tmp_path)
    _set_due(course_dir, "01_perceptron", line)
    course = Course(course_dir)
    assert course.assignment("01_perceptron").due == expected
    assert course.assignment("02_backprop").due is None


@pytest.mark.parametrize("line, words", [
    ('due = "2026-12-15T23:59:00"', "has no time zone"),
    ('due = "next friday"', "is not ISO 8601"),
    ('due = 2026-12-15', "must be a date and time"),
])
def test_a_bad_due_date_is_one_clear_error(tmp_path, line, words):
    course_dir = copy_course(tmp_path)
    _set_due(course_dir, "01_perceptron", line)
    r = run_cli("feedback", "01_perceptron", course=course_dir, timeout=120)
    assert r.returncode == 2 and words in r.stderr and "01_perceptron" in r.stderr
    assert "Traceback" not in r.stderr


def test_due_dates_reach_the_gradebook(backend):
    from autograder.store import gradebook as nbgrader_api

    course, _ = backend
    _set_due(course.root, "01_perceptron", 'due = "2026-12-15T23:59:00Z"')
    nbgrader_api.set_due_dates(course, {"01_perceptron", "02_backprop"})
    with nbgrader_api.gradebook(course) as gb:
        assert gb.find_assignment("01_perceptron").duedate == dt.datetime(2026, 12, 15, 23, 59)
        assert gb.find_assignment("02_backprop").duedate is None


# -- concurrency ---------------------------------------------------------------------------------

def _writer(course_root: str, index: int, barrier, errors) -> None:
    """One worker: record PER_WRITER submissions the way nbgrader's autograde does (its own
    Gradebook connection, one submission and its grades per transaction)."""
    from pathlib import Path

    from autograder.store import gradebook as nbgrader_api
    from autograder.course import Course

    course = Course(Path(course_root))
    barrier.wait()
    try:
        for k in range(PER_WRITER):
            student = f"s{index:02d}_{k:02d}"
            with nbgrader_api.gradebook(course) as gb:
                submission = gb.add_submission(AID, student)
                for nb in submission.notebooks:
                    for grade in nb.grades:
                        grade.auto_score = (index * PER_WRITER + k) % 3
                gb.db.commit()
    except Exception as e:  # reported to the test, which fails on any
        errors.append(f"writer {index}: {type(e).__name__}: {str(e)[:300]}")


@pytest.mark.slow
def test_sixteen_parallel_writers_lose_nothing(backend):
    from autograder.store import gradebook as nbgrader_api

    course, _ = backend
    with nbgrader_api.gradebook(course) as gb:  # the coordinator registers assignment and students first
        gb.add_assignment(AID)
        gb.add_notebook("nb", AID)
        for cell in ("c1", "c2"):
            gb.add_grade_cell(cell, "nb", AID, max_score=1, cell_type="code")
        for i in range(WRITERS):
            for k in range(PER_WRITER):
                gb.add_student(f"s{i:02d}_{k:02d}")
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        barrier, errors = manager.Barrier(WRITERS), manager.list()
        procs = [ctx.Process(target=_writer, args=(str(course.root), i, barrier, errors)) for i in range(WRITERS)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
        errors = list(errors)
    assert not errors, errors[:3]
    assert all(p.exitcode == 0 for p in procs)
    with nbgrader_api.gradebook(course) as gb:
        assignment = gb.find_assignment(AID)
        assert len(assignment.submissions) == WRITERS * PER_WRITER
        scores = {s.student_id: [g.auto_score for nb in s.notebooks for g in nb.grades] for s in assignment.submissions}
    for i in range(WRITERS):
        for k in range(PER_WRITER):
            assert scores[f"s{i:02d}_{k:02d}"] == [(i * PER_WRITER + k) % 3] * 2


# -- the real grader on PostgreSQL ---------------------------------------------------------------

@pytest.mark.slow
def test_autograder_grades_into_postgresql(postgres_url, tmp_path, monkeypatch):
    """`autograder grade` (sandboxed, two workers) with GRADEBOOK_URL set: the scores are in
    PostgreSQL, and no sqlite file is created."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (Debian: apt-get install bubblewrap)")
    _reset_postgres(postgres_url)
    monkeypatch.setenv("GRADEBOOK_URL", postgres_url)
    course = copy_course(tmp_path)
    folder = tmp_path / "submissions"
    aid = "01_perceptron"
    subs.write(folder, "alice", aid, subs.solved(aid))
    subs.write(folder, "bob", aid, subs.release_notebook(aid))
    r = run_cli("grade", str(folder), "--workers", "2", course=course)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not (course / "gradebook.db").exists()
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT s.student_id, SUM(g.auto_score) FROM grade g "
            "JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment s ON n.assignment_id = s.id GROUP BY s.student_id").all()
    engine.dispose()
    assert dict((k, float(v)) for k, v in rows) == {"alice": 12.0, "bob": 0.0}
    assert os.environ["GRADEBOOK_URL"] == postgres_url
