"""Fast unit tests per grading step, in nbgrader's own style: an in-memory notebook, a temporary
gradebook, a course folder in tmp_path. No kernel, no sandbox: each step alone (two tests start
plain Python processes: a fresh interpreter's imports, a stand-in for a kernel's process tree).

collect (metadata restore, notebook problems, a submission folder), outcomes (record/read/clear,
refusals), export (rows from a gradebook + outcomes, late penalty), the contract's judge (the
verdict both the notebook and the grader give), plans as data (round trip, visible part), and
how a kernel's processes are found.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.intake import collect
from autograder.results import export
from autograder.store import outcomes
from autograder.course import Course
from autograder.authoring.plan import ExercisePlan, ExerciseSpec, plan_data, plans_from_data, visible_part
from autograder.pipeline.scoring import score_exercise
from helpers.grading.contract import (BAD_INPUT, INTERRUPTED, NOT_IMPLEMENTED, RAISED, Case, Contract, Harvest,
                              encode, encode_inputs, error_entry, judge, read_results, results_document)


# -- an in-memory released notebook -------------------------------------------------------------

def _grade_meta(gid: str, *, grade: bool = False, solution: bool = False, points: float | None = None) -> dict:
    meta = {"grade_id": gid, "grade": grade, "solution": solution, "locked": grade, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def released() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell("# Exercise"),
        new_code_cell("def f(x):\n    raise NotImplementedError()", metadata=_grade_meta("f_impl", solution=True)),
        new_code_cell('check("f", f)', metadata=_grade_meta("f", grade=True, points=2)),
    ])


def test_restore_metadata_puts_back_what_a_student_edited():
    nb = released()
    nb.cells[1].metadata["nbgrader"]["grade"] = True  # a solution cell made graded
    nb.cells[1].metadata["nbgrader"]["points"] = 100
    changes = collect.restore_metadata(nb, released())
    assert nb.cells[1].metadata == released().cells[1].metadata
    assert changes == ["restored the nbgrader metadata of cell 'f_impl'"]


def test_restore_metadata_turns_duplicates_and_unknown_graded_cells_into_plain_cells():
    nb = released()
    nb.cells.append(new_code_cell('check("f", f)', metadata=_grade_meta("f", grade=True, points=50)))
    nb.cells.append(new_code_cell("pass", metadata=_grade_meta("bonus", grade=True, points=50)))
    changes = collect.restore_metadata(nb, released())
    assert "nbgrader" not in nb.cells[3].metadata and "nbgrader" not in nb.cells[4].metadata
    assert len(changes) == 2 and all("ignored" in c for c in changes)
    assert collect.restore_metadata(released(), released()) == []  # nothing to do, nothing said


@pytest.mark.parametrize("raw, problem", [
    (b"\x00\xff not json", "not JSON"),
    (b'{"cells": 3}', "not a Jupyter notebook"),
])
def test_notebook_problem_names_a_broken_file(raw, problem):
    found = collect.notebook_problem(raw)
    assert found is not None and found.startswith("notebook unreadable") and problem in found, found


def test_notebook_problem_accepts_a_notebook():
    assert collect.notebook_problem(nbformat.writes(released()).encode()) is None


def test_a_submission_folder_is_checked_without_a_kernel(tmp_path):
    folder = tmp_path / "ada" / "01_demo"
    folder.mkdir(parents=True)
    nbformat.write(released(), folder / "01_demo.ipynb")
    sub = collect.check_submission("ada", "01_demo", folder)
    assert sub.notebook is not None and sub.problem is None
    empty = tmp_path / "bob" / "01_demo"
    empty.mkdir(parents=True)
    assert collect.check_submission("bob", "01_demo", empty).problem


# -- outcomes ---------------------------------------------------------------------------------

@pytest.fixture
def course(tmp_path) -> Course:
    root = tmp_path / "course"
    root.mkdir()
    (root / "syllabus.toml").write_text('[[assignment]]\nid = "01_demo"\ntitle = "Demo"\npoints = 2\n')
    return Course(root)


def _report(name: str, passed: int, total: int):
    cases = [Case(encode_inputs({"x": np.ones(2)}), np.ones(2), [], hidden=i >= 1) for i in range(total)]
    entries = [{"output": encode(np.ones(2))}] * passed + [error_entry(NOT_IMPLEMENTED)] * (total - passed)
    return judge(name, cases, entries, rtol=1e-4, atol=1e-6)


def test_outcomes_round_trip_and_clear(course):
    events = ["a cell timed out after 60 s\x1b[31m"]
    outcomes.record_graded(course, "01_demo", "ada", "01_demo.ipynb", 7, events, {"f": _report("f", 2, 2)},
                           {"f": 2.0})
    data = outcomes.read(course, "01_demo", "ada")
    assert data["status"] == "graded" and data["seed"] == 7 and data["score"] == 2.0
    assert data["events"] == ["a cell timed out after 60 s"]  # escape codes never stored
    outcomes.record_note(course, "01_demo", "ada", "late by 1 day")
    assert outcomes.read(course, "01_demo", "ada")["notes"] == ["late by 1 day"]
    outcomes.clear(course, "01_demo", "ada")
    assert outcomes.read(course, "01_demo", "ada") is None


def test_refusals_are_recorded_once_per_name(course):
    outcomes.record_refusal(course, "evil\x07name", "01_demo", "a symbolic link")
    outcomes.record_refusal(course, "evil\x07name", "01_demo", "a symbolic link")
    refused = outcomes.read_refusals(course)
    assert len(refused) == 1 and "\x07" not in json.dumps(list(refused.values()))


# -- export from a temporary gradebook ----------------------------------------------------------------

def test_a_new_gradebook_gets_nbgraders_alembic_head_without_a_subprocess(tmp_path, monkeypatch):
    import subprocess
    import sqlite3

    from nbgrader.api import Gradebook
    from nbgrader.dbutil import _temp_alembic_ini

    from autograder.store import gradebook as nbgrader_api

    nbgrader_api._venv_on_path()
    with _temp_alembic_ini(f"sqlite:///{tmp_path / 'probe.db'}") as ini:  # what nbgrader itself would ask
        heads = subprocess.check_output(["alembic", "-c", ini, "heads"], text=True)
    assert heads.split()[0] == nbgrader_api.alembic_head()

    def no_subprocess(*a, **k):
        raise AssertionError("a subprocess was started")

    monkeypatch.setattr(subprocess, "check_output", no_subprocess)
    with Gradebook(f"sqlite:///{tmp_path / 'new.db'}"):
        pass
    stamped = sqlite3.connect(tmp_path / "new.db").execute("SELECT version_num FROM alembic_version").fetchall()
    assert stamped == [(nbgrader_api.alembic_head(),)]


def test_importing_autograder_keeps_jsonschemas_iri_grammar_unloaded_and_notebooks_validated():
    import subprocess
    import sys

    code = ("import autograder, sys, nbformat\n"
            "from nbformat.v4 import new_notebook, new_code_cell\n"
            "assert sys.modules.get('rfc3987_syntax') is None, 'the grammar module was loaded'\n"
            "nbformat.validate(new_notebook(cells=[new_code_cell('x = 1')]))\n"
            "bad = new_notebook(); bad.cells = [{'cell_type': 'code'}]\n"
            "try:\n    nbformat.validate(bad)\nexcept nbformat.ValidationError:\n    print('invalid')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "invalid", done.stderr[-2000:]


def test_export_rows_come_from_the_gradebook_and_the_outcomes(course):
    from nbgrader.api import Gradebook

    from autograder.store.gradebook import _venv_on_path

    _venv_on_path()  # nbgrader runs alembic from PATH
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        gb.add_assignment("01_demo")
        gb.add_notebook("01_demo", "01_demo")
        gb.add_grade_cell("f", "01_demo", "01_demo", max_score=2, cell_type="code")
        for student in ("ada", "bob", "cy"):
            gb.add_student(student)
        for student, score in (("ada", 2.0), ("bob", 0.0)):
            gb.add_submission("01_demo", student)
            grade = gb.find_grade("f", "01_demo", "01_demo", student)
            grade.auto_score = score
            gb.db.commit()
        notebook = gb.find_submission_notebook("01_demo", "01_demo", "ada")
        notebook.late_submission_penalty = 0.5  # the assignment's penalty sums its notebooks'
        gb.db.commit()
        outcomes.record_graded(course, "01_demo", "ada", "01_demo.ipynb", 1, [], {"f": _report("f", 2, 2)},
                               {"f": 2.0})
        outcomes.record_not_graded(course, "01_demo", "bob", "kernel died")
        rows = export.grade_rows(course, gb)
    by = {r["student"]: r for r in rows}
    assert by["ada"]["score"] == "1.5" and "late: 0.5 point(s) off" in by["ada"]["reason"]
    assert by["bob"]["status"] == outcomes.NOT_GRADED and by["bob"]["reason"] == "kernel died"
    assert by["cy"]["status"] == "no submission" and by["cy"]["max_score"] == "2"


# -- the contract's judge -------------------------------------------------------------------------

def _cases(hidden_too: bool = True) -> list[Case]:
    x = encode_inputs({"x": np.array([1.0, 2.0, 3.0])})
    wrong = np.array([2.0, 4.0, 6.0])
    cases = [Case(x, np.array([1.0, 2.0, 3.0]), [("doubled: the factor 2 is extra", wrong)], hidden=False)]
    if hidden_too:
        cases.append(Case(x, np.array([1.0, 2.0, 3.0]), [("doubled: the factor 2 is extra", wrong)], hidden=True))
    return cases


@pytest.mark.parametrize("entry, kind, says", [
    ({"output": encode(np.array([1.0, 2.0, 3.0]))}, "passed", ""),
    ({"output": encode(np.array([2.0, 4.0, 6.0]))}, "known_mistake", "doubled"),
    ({"output": encode(np.array([1.0, 2.0]))}, "wrong", "shape"),
    (error_entry(NOT_IMPLEMENTED), "not_implemented", "not implemented"),
    (error_entry(RAISED, ValueError("bad")), "error", "ValueError"),
    (error_entry(INTERRUPTED), "error", "time limit"),
    (error_entry(BAD_INPUT), "error", "inputs"),
    ({"output": {"kind": "float", "shape": [3], "data": ["x", 1, 2]}}, "malformed", "plain numbers"),
    ("not a dict", "not_run", "not run"),
])
def test_judge_gives_each_case_a_kind_and_a_message(entry, kind, says):
    report = judge("f", _cases(False), [entry], rtol=1e-4, atol=1e-6)
    (record,) = report.cases
    assert record["kind"] == kind and says in record["message"]
    assert report.ok is (kind == "passed")


def test_judge_words_the_notebook_and_the_grader_alike():
    entries = [{"output": encode(np.array([2.0, 4.0, 6.0]))}] * 2
    grader = judge("f", _cases(), entries, rtol=1e-4, atol=1e-6)
    notebook = judge("f", _cases(False), entries[:1], rtol=1e-4, atol=1e-6, in_notebook=True)
    assert grader.problems[0] == "visible case 1: doubled: the factor 2 is extra"
    assert grader.problems[1].startswith("hidden case 2: ")
    assert notebook.problems == ["case 1: doubled: the factor 2 is extra"]
    assert "1 of 2" not in notebook.summary() and "0 of 1 visible checks passed" in notebook.summary()
    assert grader.message(3).startswith("✘ f: 0 of 2 checks passed (0 / 3 points)")


def test_judge_applies_the_contract_after_the_output():
    entry = {"output": encode(np.array([1.0, 2.0, 3.0])), "mutated": [0], "used": [0]}
    contract = Contract(pure=True, forbidden=("numpy.sum",))
    report = judge("f", _cases(False), [entry], rtol=1e-4, atol=1e-6, contract=contract)
    assert report.cases[0]["kind"] == "mutated_input" and "`x`" in report.cases[0]["message"]
    assert report.notes and "numpy.sum" in report.notes[0]  # the shortcut is named (policy "warn")
    zero = judge("f", _cases(False), [dict(entry, mutated=[])], rtol=1e-4, atol=1e-6, contract=contract,
                 shortcut_policy="zero")
    assert zero.cases[0]["kind"] == "shortcut"


def test_the_record_round_trips_through_the_harvest_layout(tmp_path):
    harvest = Harvest.in_workdir(tmp_path)
    assert harvest.input_file("f").parent == harvest.inputs and harvest.output_file("f").name == "f.json"
    text = results_document("f", [{"output": encode(np.array([1.0, 2.0, 3.0]))}])
    entries, problem = read_results(text, "f")
    assert problem is None and len(entries) == 1
    assert read_results(text, "g")[1][0] == "malformed"  # another exercise's file
    assert read_results(None, "f")[1][0] == "not_run"


# -- plans as data ------------------------------------------------------------------------------

def test_a_plan_round_trips_as_data_and_its_visible_part_is_what_students_get():
    spec = ExerciseSpec("f", "numpy", 1e-4, 1e-6, pure=True, builds_on=("g",))
    plans = {"f": ExercisePlan(spec, _cases())}
    data = plan_data(plans, "01_demo", 5, "digest")
    back = plans_from_data(json.loads(json.dumps(data)))["f"]
    assert back.exercise == spec and [c.hidden for c in back.cases] == [False, True]
    assert np.array_equal(back.cases[0].expected, [1.0, 2.0, 3.0])
    visible = visible_part(data)["exercises"]["f"]
    assert len(visible["cases"]) == 1 and "hidden" not in visible["cases"][0]
    assert visible["contract"]["pure"] is True and visible["builds_on"] == ["g"]
    sandbox = json.loads(back.sandbox_inputs())
    assert all(set(c) == {"inputs"} for c in sandbox["cases"])  # the sandbox gets inputs only
    raw = results_document("f", [{"output": encode(np.array([1.0, 2.0, 3.0]))}] * 2)
    assert score_exercise(back, raw).ok


# -- the feedback time limit, in a process's main thread and in a Dask worker's thread ---------------

def _stopped_after(limit: float) -> tuple[float, bool]:
    """Seconds until ``_time_limit(limit)`` stopped a busy Python loop, and whether anything was
    raised after the block ended (it must not be)."""
    import time

    from autograder.grading.worker import _FeedbackTooSlow, _time_limit

    start = time.monotonic()
    try:
        with _time_limit(limit):
            while time.monotonic() - start < 30:
                sum(range(1000))
    except _FeedbackTooSlow:
        pass
    took = time.monotonic() - start
    try:
        with _time_limit(0.2):
            pass
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            sum(range(1000))
    except _FeedbackTooSlow:
        return took, True
    return took, False


def test_the_feedback_limit_stops_python_code_in_the_main_thread():
    took, late = _stopped_after(0.3)
    assert took < 10 and not late


def test_the_feedback_limit_stops_python_code_in_another_thread():
    """In a fresh interpreter: the limit stops a thread's busy loop, and afterwards profiled code
    in the main thread still runs (a cleared asynchronous exception once hung it there)."""
    import subprocess
    import sys

    code = """
import sys, threading
from tests.course.test_units import _stopped_after
found = []
thread = threading.Thread(target=lambda: found.append(_stopped_after(0.3)))
thread.start(); thread.join(60)
calls = []
sys.setprofile(lambda frame, event, arg: calls.append(event) if event == "call" else None)
for _ in range(3):
    threading.setprofile(None)
sys.setprofile(None)
took, late = found[0]
print(took < 10, late, len(calls) >= 3)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2],
                         timeout=60)
    assert out.stdout.split() == ["True", "False", "True"], out.stdout + out.stderr[-2000:]


def test_a_kernels_number_is_used_only_while_it_names_the_kernel():
    """The kernel's tree is found from its pid and start time: once the kernel is gone (or its number
    names a later process), no process is taken for it, and none is killed for it."""
    import subprocess
    import sys
    import time

    from autograder.sandbox import processes
    from autograder.pipeline.execute import SandboxedExecute

    kernel = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"])
    try:
        started = processes.start_time(kernel.pid)
        assert isinstance(started, int) and processes.start_time(kernel.pid) == started
        ex = SandboxedExecute()
        ex._unsafe = True
        ex._kernel_process = (kernel.pid, started)
        for _ in range(100):  # until its child is running
            pids = ex._kernel_pids()
            if len(pids) == 2:
                break
            time.sleep(0.05)
        assert kernel.pid in pids and len(pids) == 2, pids
        ex._kernel_process = (kernel.pid, started + 1)  # the same number, a later process
        assert ex._kernel_pids() == set()
        ex._kernel_process = None  # not launched yet
        assert ex._kernel_pids() == set()
    finally:
        for pid in processes.descendants(kernel.pid):
            os.kill(pid, signal.SIGKILL)
        kernel.kill()
        kernel.wait()
    assert processes.start_time(kernel.pid) is None  # exited and reaped
    ex._kernel_process = (kernel.pid, started)
    assert ex._kernel_pids() == set()


def test_a_pool_workers_result_crosses_the_pipe_as_a_short_path(tmp_path):
    """The message a local pool worker sends back is a path, short enough to be written to a pipe at
    once (a worker killed while answering leaves no half message); the file holds the whole result."""
    import pickle
    import select

    from autograder.grading.answers import believed
    from autograder.run.jobs import Job, Result
    from autograder.run.pools import _answer_in_a_file, _read_answer

    job = Job("01_perceptron", "alice", {}, {})
    big = Result("01_perceptron", "alice", {"status": "graded", "score": 1.0}, zero=False,
                 autograded={"a.ipynb": b"x" * 5_000_000})
    path = _answer_in_a_file(lambda bundle, job: big, str(tmp_path), None, job)
    assert len(pickle.dumps(path, protocol=pickle.HIGHEST_PROTOCOL)) + 4 < select.PIPE_BUF
    assert [p.suffix for p in tmp_path.iterdir()] == [".result"]
    assert _read_answer(job, path, believed).autograded == big.autograded
    assert list(tmp_path.iterdir()) == []


def test_a_canary_with_partial_points_says_which_exercise_lost_them_and_why():
    """The canary's message names each exercise below its points, with the first failing case's
    message, or its points when it has none (a challenge's partial score)."""
    from autograder.store import outcomes
    from autograder.run.jobs import Result
    from autograder.course import Course
    from autograder.grading.canary import canary_problem
    from tests.support.course import REPO

    course = Course(REPO / "course")
    worth = course.assignment("07_rnn").points
    outcome = {"status": outcomes.GRADED, "score": worth - 1.5, "events": [], "exercises": {
        "rnn_cell": {"points": 2.0, "max_points": 2.0, "cases": [{"ok": True, "message": ""}]},
        "sine_forecast": {"points": 3.5, "max_points": 5.0, "cases": [{"ok": True, "message": ""}]}}}
    text = canary_problem(course, Result("07_rnn", "_reference_canary", outcome))
    assert "sine_forecast: 3.5 of 5 points" in text and "rnn_cell" not in text
    outcome["exercises"]["rnn_cell"] = {"points": 0.0, "max_points": 2.0,
                                        "cases": [{"ok": False, "message": "output has the wrong shape"}]}
    assert "rnn_cell: output has the wrong shape" in canary_problem(course, Result("07_rnn", "_reference_canary", outcome))
