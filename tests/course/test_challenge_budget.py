"""A challenge's budget is enforced by the grader, from outside the student's code (issue 27 §1).

Every way around the old budget (measured inside the student's process, around ``fit`` only,
counting ``nn.Parameter``s only) that reached full marks is graded here through the real CLI, in
one batch, on 07's forecaster with a small budget in a copy of the course (6 CPU s of training +
4 s for the rest of the run; 20,000 numbers), so that each cheat costs seconds, not minutes:

- training in an ordinary cell before the challenge cell, in a child process that ``fit`` forks
  (waited for, or left to the kernel with SIGCHLD ignored), in a thread, lazily on the first
  forward, and with the process's own timers patched: the whole run's CPU time, measured from
  outside, is over its budget;
- weights held as buffers, a lookup table held as plain tensor attributes: the model holds more
  numbers than the budget.

An honest small model in the same batch (also the copy's reference, which the grader grades first)
gets full marks (the copy's thresholds: mean squared error 0.4 for full marks, 0.75 for none), and what the measuring adds to it (the
run's CPU time outside its fit) is well inside the allowance.

    python -m pytest tests/course/test_challenge_budget.py   (slow: about 2 minutes)
"""
from __future__ import annotations

import html
import re

import nbformat
import pytest

from tests.support import submissions as subs
from tests.support.course import copy_course, run_cli

AID, FIT, NAME, BASE = "07_rnn", "fit_forecaster", "sine_forecast", 12  # 12: 07's points without the challenge
CPU, ALLOWANCE, NUMBERS = 6, 4, 20_000
FULL, ZERO = 0.4, 0.75  # in the copy: full marks for the honest small GRU below (0.23) (repeating the last value: 0.78)

COMMON = '''import time as _time

def _model():  # 3,274 parameters
    return nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 10))

def _train(model, X, y, seconds):
    """Adam on (X, y) until this thread has used ``seconds`` of CPU time."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = _time.thread_time()
    while _time.thread_time() - start < seconds:
        for i in range(0, len(X), 64):
            loss = F.mse_loss(model(X[i:i + 64]), y[i:i + 64])
            optimizer.zero_grad(); loss.backward(); optimizer.step()
    return model
'''

CHEATS = {
    # trains in the exercise cell itself, before the challenge cell runs; fit returns the result
    "early_cell": COMMON + '''
from helpers.grading.tasks import get_task
_X, _y, _, _ = get_task("sine_forecaster").fit_arguments()
_trained = _train(_model(), _X, _y, 12)

def fit_forecaster(X_train, y_train, X_val, y_val):
    return _trained
''',
    # fit forks a child that trains and hands the weights back; the parent waits without using CPU
    "child_process": COMMON + '''
def fit_forecaster(X_train, y_train, X_val, y_val):
    import os
    model = _model()
    pid = os.fork()
    if pid == 0:
        try:
            _train(model, X_train, y_train, 12)
            torch.save(model.state_dict(), "/tmp/weights.pt")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    model.load_state_dict(torch.load("/tmp/weights.pt"))
    return model
''',
    # the same, but nobody waits for the child (SIGCHLD ignored): its time never reaches a parent's cutime
    "child_unwaited": COMMON + '''
def fit_forecaster(X_train, y_train, X_val, y_val):
    import os, signal
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    model = _model()
    if os.fork() == 0:
        try:
            _train(model, X_train, y_train, 12)
            torch.save(model.state_dict(), "/tmp/weights.pt")
            os.rename("/tmp/weights.pt", "/tmp/done.pt")
        finally:
            os._exit(0)
    while not os.path.exists("/tmp/done.pt"):
        _time.sleep(0.05)
    model.load_state_dict(torch.load("/tmp/done.pt"))
    return model
''',
    # a thread trains while fit waits, with the harness's CPU timer disarmed and process_time patched
    "thread": COMMON + '''
def fit_forecaster(X_train, y_train, X_val, y_val):
    import signal, threading, time
    signal.setitimer(signal.ITIMER_PROF, 0)
    time.process_time = lambda: 0.0
    model = _model()
    worker = threading.Thread(target=_train, args=(model, X_train, y_train, 12))
    worker.start()
    worker.join()
    return model
''',
    # trains in the main thread with every clock of the process patched
    "patched_timers": COMMON + '''
def fit_forecaster(X_train, y_train, X_val, y_val):
    import resource, signal, time
    signal.setitimer(signal.ITIMER_PROF, 0)
    signal.setitimer = lambda *a, **k: (0.0, 0.0)
    time.process_time = lambda: 0.0
    resource.getrusage = lambda *a: resource.struct_rusage((0.0,) * 16)
    return _train(_model(), X_train, y_train, 12)
''',
    # fit returns at once; the model trains itself on its first forward (the grader's predictions)
    "lazy_forward": COMMON + '''
_DATA = []

class Lazy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net, self.ready = _model(), False

    def forward(self, x):
        if not self.ready:
            self.ready = True
            with torch.enable_grad():
                _train(self.net, *_DATA, 12)
        return self.net(x)

def fit_forecaster(X_train, y_train, X_val, y_val):
    _DATA[:] = [X_train, y_train]
    return Lazy()
''',
    # a 30,610-number network whose weights are buffers: no nn.Parameter at all
    "weights_as_buffers": COMMON + '''
class Frozen(nn.Module):
    def __init__(self, net):
        super().__init__()
        for i, p in enumerate(net.parameters()):
            self.register_buffer(f"w{i}", p.detach().clone())

    def forward(self, x):
        return torch.relu(x @ self.w0.T + self.w1) @ self.w2.T + self.w3

def fit_forecaster(X_train, y_train, X_val, y_val):
    net = nn.Sequential(nn.Linear(40, 600), nn.ReLU(), nn.Linear(600, 10))
    return Frozen(_train(net, X_train, y_train, 1))
''',
    # the training windows as plain tensor attributes: answer with the nearest window's future
    "lookup_table": '''class Nearest(nn.Module):
    def __init__(self, X, y):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.X, self.y = X, y  # 64,000 + 16,000 numbers, no parameter

    def forward(self, x):
        return self.y[torch.cdist(x, self.X).argmin(1)] * self.scale

def fit_forecaster(X_train, y_train, X_val, y_val):
    return Nearest(X_train, y_train)
''',
}
OVER_CPU = f"the graded run of your notebook used [\\d.]+ CPU s .* over its budget of {CPU + ALLOWANCE} s"
OVER_NUMBERS = f"the model holds [\\d,]+ numbers .* over the budget of {NUMBERS:,}"
REASONS = {"early_cell": OVER_CPU, "child_process": OVER_CPU, "child_unwaited": OVER_CPU, "thread": OVER_CPU,
           "patched_timers": OVER_CPU, "lazy_forward": OVER_CPU,
           "weights_as_buffers": "the model holds 30,610 numbers .* over the budget of 20,000",
           "lookup_table": "the model holds 80,001 numbers .* over the budget of 20,000"}

# honest: a small GRU trained for a few epochs, well within 6 CPU s
HONEST = '''def fit_forecaster(X_train, y_train, X_val, y_val):
    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(1, 16, batch_first=True)
            self.head = nn.Linear(16, 10)
        def forward(self, x):
            return self.head(self.gru(x.unsqueeze(-1))[1][-1])
    model = Small()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(4):
        for i in range(0, len(X_train), 32):
            loss = F.mse_loss(model(X_train[i:i + 32]), y_train[i:i + 32])
            optimizer.zero_grad(); loss.backward(); optimizer.step()
    return model
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("budget")
    course = copy_course(tmp)
    cases = course.parent / "source_notebooks" / AID / "cases.py"
    text, n = re.subn(r"full=0.03, zero=0.14, max_parameters=20_000, cpu_seconds=40,\s*allowance_seconds=10\)",
                      f"full={FULL}, zero={ZERO}, max_parameters={NUMBERS}, cpu_seconds={CPU}, "
                      f"allowance_seconds={ALLOWANCE})", cases.read_text())
    assert n == 1
    cases.write_text(text)
    # the grader grades the reference first (a canary): in this copy, the honest small model is the reference
    source = course.parent / "source_notebooks" / AID / f"{AID}.ipynb"
    nb = nbformat.read(source, as_version=4)
    head, body = HONEST.split("\n", 1)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == f"{FIT}_impl")
    cell.source = f"{head}\n    ### BEGIN SOLUTION\n{body}    ### END SOLUTION\n"
    nbformat.write(nb, source)
    folder = tmp / "submissions"
    solved = subs.solved(AID)
    for student, source in {**CHEATS, "honest": HONEST}.items():
        subs.write(folder, student, AID, subs.replace_exercise(solved, FIT, source))
    result = run_cli("grade", str(folder), "--workers", "2", course=course, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]

    def verdict(student: str) -> str:
        page = (course / "feedback" / student / AID / f"{AID}.html").read_text()
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        found = text[text.index(f"{NAME}:"):]
        return found[:found.index("\n\n")]

    return {"grades": subs.read_grades(course / "exports" / "grades.csv"), "verdict": verdict}


@pytest.mark.slow
@pytest.mark.parametrize("student", sorted(CHEATS))
def test_every_way_around_the_budget_gets_zero_challenge_points(graded, student):
    row = graded["grades"][(student, AID)]
    text = graded["verdict"](student)
    assert (row["score"], row["status"]) == (str(BASE), "graded"), (row, text)  # every exercise right, challenge 0
    assert "0 / 5 points" in text and re.search(REASONS[student], text.replace("\n", " ")), text
    if REASONS[student] == OVER_CPU:  # control: the fit's own clock, the old graded figure, was fooled
        own = re.search(r"your fit by its own clock: ([\d.]+) s", text)  # absent: negative (process_time patched)
        assert (own is None) == (student in ("thread", "patched_timers")) and (own is None or float(own[1]) < CPU), text


@pytest.mark.slow
def test_an_honest_model_keeps_its_points_and_the_measuring_costs_it_little(graded):
    """The honest model is scored on its metric, within budget; the run's CPU time outside its fit (the
    kernel's start, imports, the exercises' checks, the predictions) is far below the 4 s allowed."""
    row = graded["grades"][("honest", AID)]
    text = graded["verdict"]("honest")
    assert (row["score"], row["status"]) == (str(BASE + 5), "graded") and "5 / 5 points" in text, (row, text)
    m = re.search(r"holds ([\d,]+) numbers .*graded run used ([\d.]+) CPU s .*by its own clock: ([\d.]+) s",
                  text.replace("\n", " "))
    assert m, text
    held, run, fit = int(m[1].replace(",", "")), float(m[2]), float(m[3])
    assert held == 3 * 16 * (1 + 16) + 2 * 3 * 16 + 16 * 10 + 10  # the GRU's and the head's parameters only
    print(f"honest run: {run:.1f} CPU s, its fit {fit:.1f} s: {run - fit:.1f} s besides (allowance {ALLOWANCE} s)")
    assert fit <= run < CPU + ALLOWANCE and run - fit < ALLOWANCE / 2, text
