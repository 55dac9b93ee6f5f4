"""Hostile and broken submissions, each graded for real through the CLI (sandbox included).

Every attack below gave full marks, leaked solutions or stopped grading with stock
nbgrader (see COURSE_DESIGN.md). Here each one gets no extra points, a clear outcome,
and no effect on the other students of the same batch (two honest students are graded
in the same run, one before and one after the attackers, on 2 workers).
"""
from __future__ import annotations

import copy
import html
import json
import re
import shutil
import socket
import sqlite3
import threading

import pytest

from tests.support import submissions as subs
from tests.support.course import copy_course, run_cli

AID = "01_perceptron"
FULL = 12
EXERCISES = ["sigmoid", "softmax", "activation_derivatives", "perceptron_predict", "perceptron_update",
             "train_perceptron", "logistic_loss_and_grad"]
SECRET = "s3cr3t-grader-token-1234"
CASES_MARKER = "Instructor-only: never released"

pytestmark = pytest.mark.slow


def _all_functions(body: str, stub) -> "subs.nbformat.NotebookNode":
    """Every exercise function replaced by ``def name(*args): <body>``."""
    nb = stub
    for name in EXERCISES:
        nb = subs.replace_exercise(nb, name, f"def {name}(*args):\n    {body}\n")
    return nb


ALWAYS_EQUAL = '''
import numpy as np
class AlwaysEqual:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __array__(self, dtype=None, copy=None): return np.zeros(3)
class Sneaky(np.ndarray):
    def __eq__(self, other): return np.ones(np.shape(other), dtype=bool)
'''


def _build(folder, course, listener_port):
    solved = subs.solved(AID)
    stub = subs.release_notebook(AID)
    course_dir = str(course)
    plans: dict[str, tuple] = {}

    def add(student, nb, expected, status="graded", words=None):
        subs.write(folder, student, AID, nb)
        plans[student] = (expected, status, words)

    add("aa_control_first", solved, FULL)
    add("always_equal", _all_functions("return AlwaysEqual()", subs.insert_code(stub, ALWAYS_EQUAL)), 0)
    add("array_trick", _all_functions("return np.zeros(3).view(Sneaky)", subs.insert_code(stub, ALWAYS_EQUAL)), 0)
    add("nan_inf", _all_functions("return np.full(5, np.nan)", stub), 0)
    add("mutating_stub", _all_functions("a = args[0]\n    a[...] = 0\n    return a", stub), 0)
    mutating = solved
    for name in ("softmax", "logistic_loss_and_grad"):  # functions no other exercise calls
        mutating = subs.insert_code(mutating, f"_orig_{name} = {name}\ndef {name}(a, *rest):\n"
                                              f"    out = _orig_{name}(a, *rest)\n    a[...] = 0.0\n    return out",
                                    after=f"{name}_impl")
    add("mutating_correct", mutating, FULL)
    add("patch_numpy", subs.insert_code(stub, "import builtins, numpy as np\nnp.allclose = lambda *a, **k: True\n"
                                              "np.isclose = lambda a, b, **k: np.ones(np.shape(a), bool)\n"
                                              "np.testing.assert_allclose = lambda *a, **k: None\n"
                                              "builtins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 0"), 0,
        # IPython itself breaks: the kernel never answers again, and is stopped after the first limit
        # (not left to use the notebook's whole time, one cell limit after another).
        words="did not answer the interrupt")
    add("patch_torch", subs.insert_code(stub, "import torch\ntorch.allclose = lambda *a, **k: True\n"
                                              "torch.equal = lambda *a, **k: True\ntorch.testing.assert_close = lambda *a, **k: None"), 0)
    add("input_transformer", subs.insert_code(stub, "ip = get_ipython()\nip.input_transformers_cleanup.append("
                                                    "lambda lines: ['print(\"passed\")\\n'] if any('check(' in l for l in lines) else lines)"), 0)
    add("ipython_hooks", subs.insert_code(stub, "ip = get_ipython()\nip.set_custom_exc((BaseException,), lambda *a, **k: None)\n"
                                                "ip.showtraceback = lambda *a, **k: None\n"
                                                "ip.events.register('post_run_cell', lambda r: setattr(r, 'error_in_exec', None))"), 0)
    add("patch_checking", subs.insert_code(stub, "import helpers, helpers.grading.checking as hc\n"
                                                 "hc.compare = lambda *a, **k: hc.Verdict(True)\n"
                                                 "hc._harvest = lambda *a, **k: print('all checks passed')\n"
                                                 "helpers.check = hc.check = check = lambda *a, **k: print('all checks passed')"), 0)
    add("forged_outputs", subs.insert_code(stub, "import os, json\nroot = os.environ.get('AUTOGRADER_HARVEST', '.')\n"
                                                 "fake = {'kind': 'float', 'shape': [], 'data': [0.5]}\n"
                                                 "for f in os.listdir(root + '/outputs'):\n"
                                                 "    name = f[:-5]\n"
                                                 "    open(root + '/outputs/' + f, 'w').write(json.dumps({'exercise': name, 'results': [{'output': fake}] * 64}))\n"
                                                 "try:\n    open(root + '/inputs/sigmoid.json', 'w').write('{}')\nexcept OSError as e:\n    print('inputs', e)"), 0)
    exits = subs.insert_code(solved, "import sys\nsys.exit(0)", after="sigmoid_impl")
    exits = subs.insert_code(exits, "raise SystemExit(3)", after="softmax_impl")
    exits = subs.insert_code(exits, "raise KeyboardInterrupt", after="activation_derivatives_impl")
    add("exits_caught", exits, FULL)
    # os._exit after perceptron_predict's check: the checks before it count (1 + 2 + 2 + 1 points)
    add("os_exit", subs.insert_code(solved, "import os\nos._exit(0)", after="perceptron_predict"), 6,
        words="kernel died")
    add("infinite_loop", subs.insert_code(solved, "while True:\n    pass", after="sigmoid_impl"), FULL,
        words="timed out")
    add("sleeper", subs.insert_code(solved, "import time\ntime.sleep(10**6)", after="softmax_impl"), FULL,
        words="timed out")
    add("big_alloc", subs.insert_code(solved, "import numpy as np\nx = np.ones(10**10 // 8)\nx[::4096] = 2"), FULL)
    add("fork_bomb", subs.insert_code(solved, "import os, time\ntry:\n    for _ in range(100000):\n"
                                              "        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n"
                                              "except OSError as e:\n    print('fork stopped:', e)", after="sigmoid_impl"), FULL)
    add("thread_bomb", subs.insert_code(solved, "import threading, time\ntry:\n    for _ in range(100000):\n"
                                                "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
                                                "except (RuntimeError, MemoryError) as e:\n    print('threads stopped:', e)",
                                        after="perceptron_update_impl"), FULL)
    add("huge_file", subs.insert_code(solved, "with open('big.bin', 'wb') as f:\n    f.write(b'0' * 300_000_000)"), FULL)
    add("fill_disk", subs.insert_code(solved, "i = 0\nwhile True:\n    with open(f'/tmp/f{i}', 'wb') as f:\n"
                                              "        f.write(b'0' * 50_000_000)\n    i += 1"), FULL)
    add("flood_stdout", subs.insert_code(solved, "for _ in range(10**8):\n    print('x' * 2000)", after="softmax_impl"),
        FULL, words="output limit")
    spy = (f"import os, glob\nfor p in ['../../../gradebook.db', '{course_dir}/gradebook.db', '{course_dir}',\n"
           f"          '{course_dir}/../source_notebooks/{AID}/cases.py', '/work', '/root', '/home', '/etc/shadow']:\n"
           "    try:\n        print(p, os.listdir(p) if os.path.isdir(p) else open(p).read()[:200])\n"
           "    except OSError as e:\n        print(p, 'refused:', type(e).__name__)\n"
           "print(dict(os.environ))\nprint(glob.glob('/tmp/*'))")
    add("read_secrets", subs.insert_code(solved, spy), FULL)
    add("sqlite_write", subs.insert_code(stub, "import sqlite3\nfor p in ['../../../gradebook.db', "
                                               f"'{course_dir}/gradebook.db']:\n    try:\n        db = sqlite3.connect(p)\n"
                                               "        db.execute('UPDATE grade SET auto_score = 100')\n        db.commit()\n"
                                               "    except Exception as e:\n        print(p, type(e).__name__, e)"), 0)
    add("network", subs.insert_code(solved, "import socket\nfor host in ['127.0.0.1', 'pypi.org']:\n    try:\n"
                                            f"        socket.create_connection((host, {listener_port}), timeout=3)\n"
                                            "        print(host, 'CONNECTED')\n    except OSError as e:\n"
                                            "        print(host, 'refused:', e)"), FULL)
    edited = subs.release_notebook(AID)
    for cell in edited.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "print('All checks passed!')"
    add("edited_tests", edited, 0)
    deleted = subs.solved(AID)
    deleted.cells = [c for c in deleted.cells if not c.metadata.get("nbgrader", {}).get("grade")]
    add("deleted_tests", deleted, FULL)
    dup = subs.solved(AID)
    dup.cells = [c for cell in dup.cells
                 for c in ([cell, copy.deepcopy(cell)] if cell.metadata.get("nbgrader", {}).get("grade") else [cell])]
    add("duplicated_tests", dup, FULL)
    moved = subs.solved(AID)  # the sigmoid check moved above everything: it runs before sigmoid exists
    moved.cells.insert(0, moved.cells.pop(next(i for i, c in enumerate(moved.cells)
                                               if c.metadata.get("nbgrader", {}).get("grade_id") == "sigmoid")))
    add("reordered_tests", moved, FULL - 1)
    meta = subs.release_notebook(AID)
    for cell in meta.cells:
        nbg = cell.metadata.get("nbgrader", {})
        if nbg.get("grade"):
            nbg.update(points=100, locked=False, checksum="0" * 32)
        if nbg.get("solution"):
            nbg.update(solution=False, grade=True, points=50)
    add("metadata_points", meta, 0)
    kernel = subs.solved(AID)
    kernel.metadata["kernelspec"] = {"name": "bash", "display_name": "Bash", "language": "bash"}
    add("kernelspec", kernel, FULL)
    subs.write(folder, "huge_notebook", AID, b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "x": "'
               + b"0" * 200_000_000 + b'"}')
    plans["huge_notebook"] = (0, "not graded", "over size limit")
    # What a student writes is data: markup and scripts in markdown and outputs.
    xss = copy.deepcopy(solved)
    url = f"http://127.0.0.1:{listener_port}"
    xss.cells.insert(1, subs.nbformat.v4.new_markdown_cell(
        f'<script>window.__xss = 1; fetch("{url}/md-script")</script>\n<img src="{url}/img" onerror="window.__xss=2">\n'
        f'![pic]({url}/md-image)\n<a href="javascript:window.__xss=6">click</a>'))
    xss = subs.insert_code(xss, "from IPython.display import display, HTML, Javascript\n"
                                f"display(HTML('<script>window.__xss = 3</script><img src={url}/html-img>'))\n"
                                "display(Javascript('window.__xss = 4'))\n"
                                "display({'image/svg+xml': '<svg xmlns=\"http://www.w3.org/2000/svg\"><script>window.__xss=5</script></svg>'}, raw=True)",
                           after="sigmoid_impl")
    add("xss", xss, FULL)
    # A function that records its (hidden) inputs, printed by a later cell; one that raises with them.
    recorder = subs.insert_code(solved, "_seen = []\n_orig_softmax = softmax\ndef softmax(Z):\n"
                                        "    _seen.append(Z.tolist())\n    return _orig_softmax(Z)", after="softmax_impl")
    add("leak_print", subs.insert_code(recorder, "print('LEAKED', _seen)", at_end=True), FULL)
    add("leak_raise", subs.replace_exercise(solved, "softmax", "def softmax(Z):\n    raise ValueError(f'LEAK {Z.tolist()}')"),
        FULL - 2)
    # Eight fresh interpreters of 600 MB each: 4.8 GB together, each far under its own address-space
    # limit (a forked child would inherit the kernel's mappings, torch's included, and could meet
    # that limit first). Each child holds its memory; only the total limit can stop them in time.
    # Bare interpreters (-I -S, no numpy) filling bytes: all eight hold their memory within about
    # 2 s even on a loaded machine (importing numpy in each took 10 s of the cell's 20 s).
    hog = ("import time\ntry:\n    a = b'x' * 600_000_000\nexcept MemoryError:\n"
           "    print('child: MemoryError', flush=True)\nelse:\n    time.sleep(60)")
    add("memory_many", subs.insert_code(solved, "import subprocess, sys\n"
                                                f"ps = [subprocess.Popen([sys.executable, '-I', '-S', '-c', {hog!r}]) for _ in range(8)]\n"
                                                "for p in ps:\n    p.wait()", at_end=True),
        FULL, words="memory limit")
    add("kernel_dir", subs.insert_code(solved, "import os\nfrom ipykernel.connect import get_connection_file\n"
                                               "d = os.path.dirname(get_connection_file())\ntry:\n"
                                               "    for i in range(2000):\n"
                                               "        with open(f'{d}/f{i}', 'w') as f:\n            f.write('x' * 1_000_000)\n"
                                               "except OSError as e:\n    print('kernel dir refused:', type(e).__name__)",
                                       at_end=True), FULL)
    add("display_flood", subs.insert_code(solved, "from IPython.display import display\nimport ipywidgets as w\n"
                                                  "h = display('start', display_id=True)\nfor i in range(20000):\n"
                                                  "    h.update('y' * 1000)\ns = w.IntSlider()\ndisplay(s)\n"
                                                  "for i in range(20000):\n    s.description = 'z' * 500",
                                          at_end=True), FULL, words="output limit")
    add("forge_malformed", subs.insert_code(solved, "import os, json\nroot = os.environ['AUTOGRADER_HARVEST'] + '/outputs/'\n"
                                                    "for i, f in enumerate(sorted(os.listdir(root))):\n"
                                                    "    with open(root + f, 'w') as out:\n"
                                                    "        if i % 3 == 0:\n            out.write('[' * 200000)\n"
                                                    "        elif i % 3 == 1:\n            out.write('1' * 20_000_000)\n"
                                                    "        else:\n            out.write(json.dumps({'exercise': f[:-5], 'results': "
                                                    "[{'output': {'kind': 'int', 'shape': [1], 'data': [10**400]}}] * 64}))",
                                            at_end=True), 0)
    add("terminal_codes", subs.insert_code(solved, "import os\nos.write(2, b'\\x1b[2J\\x1b]0;pwned\\x07Error: \\x1b[31mboom\\n')\n"
                                                   "os._exit(1)", at_end=True), FULL, words="kernel died")
    add("zz_control_last", solved, FULL)
    return plans


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    course = copy_course(tmp)
    with open(course / "nbgrader_config.py", "a") as f:  # short limits keep this test quick
        f.write("\nc.SandboxPolicy.cell_timeout = 20\nc.SandboxPolicy.notebook_timeout = 300\n")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    hits: list = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                hits.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    folder = tmp / "submissions"
    plans = _build(folder, course, server.getsockname()[1])
    import os

    os.environ["SECRET_TOKEN"] = SECRET
    try:
        result = run_cli("grade", str(folder), "--workers", "2", course=course, timeout=1500)
    finally:
        del os.environ["SECRET_TOKEN"]
        stop.set()
        thread.join(2)
        server.close()
    assert (course / "exports" / "grades.csv").exists(), (result.returncode, result.stdout[-1500:], result.stderr[-1500:])
    grades = subs.read_grades(course / "exports" / "grades.csv")
    outcomes = {s: json.loads((course / "outcomes" / AID / f"{s}.json").read_text()) for s in plans}
    yield {"course": course, "result": result, "grades": grades, "plans": plans, "hits": hits,
           "outcomes": outcomes, "folder": folder}
    shutil.rmtree(folder, ignore_errors=True)  # the 200 MB file


STUDENTS = ["aa_control_first", "always_equal", "array_trick", "nan_inf", "mutating_stub", "mutating_correct",
            "patch_numpy", "patch_torch", "input_transformer", "ipython_hooks", "patch_checking", "forged_outputs",
            "exits_caught", "os_exit", "infinite_loop", "sleeper", "big_alloc", "fork_bomb", "thread_bomb",
            "huge_file", "fill_disk", "flood_stdout", "read_secrets", "sqlite_write", "network", "edited_tests",
            "deleted_tests", "duplicated_tests", "reordered_tests", "metadata_points", "kernelspec", "huge_notebook",
            "xss", "leak_print", "leak_raise", "memory_many", "kernel_dir", "display_flood", "forge_malformed",
            "terminal_codes", "zz_control_last"]


def test_batch_finishes(hostile):
    assert hostile["result"].returncode == 0, hostile["result"].stderr[-3000:]
    assert set(STUDENTS) == set(hostile["plans"])


@pytest.mark.parametrize("student", STUDENTS)
def test_no_extra_points_and_a_clear_outcome(hostile, student):
    expected, status, words = hostile["plans"][student]
    row = hostile["grades"][(student, AID)]
    assert float(row["max_score"]) == FULL, "the maximum comes from the gradebook, not the submission"
    assert float(row["score"]) == expected, (row, hostile["outcomes"][student])
    assert row["status"] == status
    if words:
        assert any(w in row["reason"] for w in (words if isinstance(words, tuple) else (words,))), (
            f"{row['status']}: {row['reason']!r}", hostile["outcomes"][student])


def test_gradebook_holds_only_honest_scores(hostile):
    db = sqlite3.connect(hostile["course"] / "gradebook.db")
    assert db.execute("SELECT MAX(auto_score) FROM grade").fetchone()[0] <= 2
    assert db.execute("SELECT SUM(max_score) FROM grade_cells").fetchone()[0] == FULL


def _graded_text(hostile, student: str) -> str:
    """What the instructor sees: the autograded notebook's outputs (feedback shows no outputs)."""
    nb = json.loads((hostile["course"] / "autograded" / student / AID / f"{AID}.ipynb").read_text())
    return "\n".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                     for c in nb["cells"] for o in c.get("outputs", []) if "text" in o) + "\n" + "\n".join(
        f"{o.get('ename', '')}: {o.get('evalue', '')}" for c in nb["cells"] for o in c.get("outputs", [])
        if o.get("output_type") == "error")


def _feedback_text(hostile, student: str) -> str:
    page = (hostile["course"] / "feedback" / student / AID / f"{AID}.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_sandbox_saw_no_secrets_and_no_network(hostile):
    assert hostile["hits"] == [], "a submission reached a socket on the host"
    text = _graded_text(hostile, "read_secrets") + _feedback_text(hostile, "read_secrets")
    assert "refused" in text  # the spy ran and reported
    assert SECRET not in text and CASES_MARKER not in text and "SQLite format" not in text
    assert "root:" not in text  # /etc/shadow or passwd of root... shadow must not be readable
    net = _graded_text(hostile, "network")
    assert "127.0.0.1 refused" in net and "127.0.0.1 CONNECTED" not in net


def test_feedback_shows_no_output_of_the_students_cells(hostile):
    """Outputs can carry hidden inputs (a function that records its arguments, printed later)."""
    printed = re.compile(r"refused: [A-Z]\w*Error")  # the spy's output (its source says 'refused:', type...)
    assert printed.search(_graded_text(hostile, "read_secrets"))
    assert not printed.search(_feedback_text(hostile, "read_secrets"))
    assert "passed" in _feedback_text(hostile, "read_secrets")  # the trusted verdicts are there


def test_resource_attacks_were_stopped_by_the_limits(hostile):
    page = lambda s: _graded_text(hostile, s)  # noqa: E731
    assert "fork stopped" in page("fork_bomb")
    assert "threads stopped" in page("thread_bomb")
    assert "MemoryError" in page("big_alloc")
    assert "File too large" in page("huge_file") or "Errno 27" in page("huge_file")
    assert "No space left" in page("fill_disk")


def test_submissions_left_untouched(hostile):
    assert (hostile["folder"] / "huge_notebook" / AID / f"{AID}.ipynb").stat().st_size > 200_000_000


def test_student_markup_is_inert_in_the_graded_notebook_and_the_feedback(hostile):
    nb = json.loads((hostile["course"] / "autograded" / "xss" / AID / f"{AID}.ipynb").read_text())
    assert "widgets" not in nb["metadata"]
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            assert "<script" not in cell["source"] and "<img" not in cell["source"] and "](http" not in cell["source"]
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            assert not {"application/javascript", "image/svg+xml"} & set(data), data.keys()
            assert "<script" not in str(data.get("text/html", ""))
    page = (hostile["course"] / "feedback" / "xss" / AID / f"{AID}.html").read_text()
    assert 'http-equiv="Content-Security-Policy"' in page
    # escaped text such as "&lt;img onerror=...&gt;" is inert (a URL in it may become a link, which
    # requests nothing unless clicked); no real tag may load or run the payload
    assert not re.search(r"<(script|img|iframe|svg|video|audio|source|link|object|embed)\b[^>]*(window\.__xss|127\.0\.0\.1)", page)
    assert not re.search(r"""href=["']?\s*javascript:""", page, re.IGNORECASE)
    assert not re.search(r"<script[^>]*>[^<]*window\.__xss", page)


def test_hidden_inputs_never_reach_the_feedback(hostile):
    assert "LEAKED [[" in _graded_text(hostile, "leak_print")  # the instructor sees the printed inputs ...
    assert "LEAKED [[" not in _feedback_text(hostile, "leak_print")  # ... the student does not
    cases = hostile["outcomes"]["leak_raise"]["exercises"]["softmax"]["cases"]
    assert any(not c["hidden"] and "LEAK" in c["message"] for c in cases)  # visible inputs are public
    assert all(c["message"] == "your function raised ValueError" for c in cases if c["hidden"])
    hidden_text = _feedback_text(hostile, "leak_raise")
    assert hidden_text.count("LEAK [[") <= sum(1 for c in cases if not c["hidden"])


def test_every_resource_is_bounded_per_submission(hostile):
    import os

    text = _graded_text(hostile, "kernel_dir")
    if os.geteuid() == 0:
        assert "kernel dir refused: PermissionError" in text
    else:
        assert "disk limit of the kernel folder" in hostile["outcomes"]["kernel_dir"]["reason"]
    assert hostile["outcomes"]["forge_malformed"]["status"] == "graded"
    assert "internal error" not in hostile["outcomes"]["forge_malformed"]["reason"]


def test_no_control_character_reaches_the_table_or_the_csv(hostile):
    text = (hostile["course"] / "exports" / "grades.csv").read_text()
    assert not any(ch in text for ch in "\x1b\x07\x00\u202e")
    assert "\x1b" not in hostile["result"].stdout
    assert "kernel died" in hostile["grades"][("terminal_codes", AID)]["reason"]


def test_the_notebook_time_limit_stops_a_run_of_slow_cells(tmp_path):
    """Cells that each use their whole limit (and answer the interrupt): once the notebook's time
    is used, the later cells are not run (the exercises after the fourth slow cell score nothing),
    and the outcome says so."""
    course = copy_course(tmp_path)
    with open(course / "nbgrader_config.py", "a") as f:
        f.write("\nc.SandboxPolicy.cell_timeout = 15\nc.SandboxPolicy.notebook_timeout = 40\n")  # 3 x 15 > 40
    slow = subs.solved(AID)
    for name in ("sigmoid", "softmax", "activation_derivatives", "perceptron_predict"):  # the last starts past 40 s
        slow = subs.insert_code(slow, "import time\ntime.sleep(100)", after=f"{name}_impl")
    folder = tmp_path / "subs"
    subs.write(folder, "slow_cells", AID, slow)
    result = run_cli("grade", str(folder), "--workers", "1", course=course)
    assert result.returncode == 0, result.stderr[-2000:]
    row = subs.read_grades(course / "exports" / "grades.csv")[("slow_cells", AID)]
    assert row["status"] == "graded" and float(row["score"]) < FULL, (row["score"], row["reason"])
    assert "notebook time limit (40 s) reached" in row["reason"], row["reason"]
    assert "did not answer the interrupt" not in row["reason"], row["reason"]
