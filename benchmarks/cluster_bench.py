"""Grading throughput: stock nbgrader vs ours (local pool, Dask cluster), the cluster path at
scale, and the per-submission cost against its floor.

    python benchmarks/cluster_bench.py [--class-size 8] [--scale 10,30,100] [--budget 600]
    (or: ./run bench --only cluster)

(a) One class of 01_perceptron submissions (solved, untouched, one wrong exercise), graded by
    stock nbgrader (``nbgrader autograde`` + ``generate_feedback`` on a course whose test cells
    are ordinary asserts generated from the source notebook and checks.json: every cell runs,
    no sandbox, one process), and by ``autograder grade`` with 1 and 2 local workers and on a
    ``distributed.LocalCluster`` of 2 worker processes.
(b) Synthetic classes of growing size on the cluster path: wall time, the coordinator's peak
    resident memory (the CLI process alone: the workers are not its children), seconds per
    submission. Sizes whose projected time does not fit the budget are skipped, and say so.
(c) The floor: a bare sandboxed kernel started with the notebook's setup cell (the course's
    imports) and stopped, through the grader's own SandboxedExecute; the same without the
    sandbox; then one submission graded in this process with each step timed (kernel and
    cells, trusted scoring, nbgrader's other autograde steps, feedback HTML, the worker's
    packing and the coordinator's writing).

The machine's load average (1 min, at the start and the end of each figure) is printed next
to it: on a shared machine a figure taken under load is not a quiet one. Nothing here fails
for being slow. Writes ``benchmarks/results/cluster.md`` and ``.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests.support package
sys.path.insert(0, str(REPO))

AID = "01_perceptron"
SEED = 11
WRONG_SOFTMAX = "def softmax(Z):\n    return np.exp(Z) / np.exp(Z).sum(axis=0, keepdims=True)\n"


def _env() -> dict[str, str]:
    """The environment of the commands run here: nbgrader finds ``alembic`` on PATH (its gradebook
    migrations), so the virtual environment's bin folder comes first."""
    bin_dir = str(Path(sys.executable).parent)
    return dict(os.environ, PYTHONWARNINGS="ignore", PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))


def load() -> float:
    return round(os.getloadavg()[0], 2)


def write_class(folder: Path, n: int) -> None:
    """``n`` submissions: solved, untouched, solved, one wrong exercise (repeating)."""
    from tests.support import submissions as subs

    solved, stub = subs.solved(AID), subs.release_notebook(AID)
    wrong = subs.replace_exercise(solved, "softmax", WRONG_SOFTMAX)
    for i in range(n):
        subs.write(folder, f"s{i:04d}", AID, [solved, stub, solved, wrong][i % 4])


class PeakRSS:
    """Peak resident memory (MB) of one process, sampled every 0.1 s in a thread."""

    def __init__(self, pid: int):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(pid), 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss / 2**20)
            except Exception:  # noqa: BLE001 - the process ended
                return
            time.sleep(0.1)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def _cli(course: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "--course", str(course), *args]


def ours(tmp: Path, folder: Path, n: int, label: str, *flags: str) -> dict:
    """``autograder grade`` on ``folder`` in a fresh course copy (released first, as in practice)."""
    from tests.support.course import copy_course

    course = copy_course(tmp / label)
    subprocess.run(_cli(course, "release", AID), capture_output=True, check=True)
    env = _env()
    before, start = load(), time.monotonic()
    proc = subprocess.Popen(_cli(course, "grade", str(folder), "--seed", str(SEED), *flags),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    rss = PeakRSS(proc.pid)
    out, err = proc.communicate()
    seconds = time.monotonic() - start
    peak = rss.stop()
    from tests.support import submissions as subs

    rows = subs.read_grades(course / "exports" / "grades.csv") if proc.returncode == 0 else {}
    rows = {k: r for k, r in rows.items() if k[1] == AID}  # the CSV lists every assignment of the syllabus
    graded = sum(r["status"] == "graded" for r in rows.values())
    return {"label": label, "n": n, "seconds": seconds, "per_submission": seconds / n, "ok": proc.returncode == 0,
            "graded": graded, "coordinator_peak_mb": peak, "load_before": before, "load_after": load(),
            "scores": {s: r["score"] for (s, _a), r in sorted(rows.items())},
            "error": "" if proc.returncode == 0 else err.strip().splitlines()[-1][:300] if err.strip() else "failed"}


# -- stock nbgrader ---------------------------------------------------------------------------

def _literal(enc: dict, framework: str) -> str:
    """Python source for an encoded value (``helpers.grading.checking`` encoding: arrays, tuples, scalars)."""
    if "tuple" in enc:
        return "(" + "".join(_literal(e, framework) + ", " for e in enc["tuple"]) + ")"
    if "data" in enc and "shape" in enc:
        arr = f"np.array({enc['data']!r}, dtype={enc['dtype']!r}).reshape({tuple(enc['shape'])!r})"
        return f"torch.from_numpy({arr})" if framework == "torch" else arr
    return repr(enc)


def _asserts(name: str, spec: dict) -> str:
    """An ordinary assert-style test cell: every visible case of checks.json, compared with allclose."""
    lines = ["import numpy as np", "import torch", "",
             "def _same(got, want):",
             "    if isinstance(want, tuple):",
             "        return isinstance(got, tuple) and len(got) == len(want) and all(map(_same, got, want))",
             "    got = got.detach().numpy() if hasattr(got, 'detach') else np.asarray(got)",
             "    want = want.detach().numpy() if hasattr(want, 'detach') else np.asarray(want)",
             f"    return got.shape == want.shape and np.allclose(got, want, rtol={spec['rtol']!r}, atol={spec['atol']!r})",
             ""]
    for i, case in enumerate(spec["cases"]):
        args = ", ".join(_literal(v, spec["framework"]) for _n, v in case["inputs"])
        lines.append(f"assert _same({name}({args}), {_literal(case['expected'], spec['framework'])}), "
                     f"'{name}: visible case {i + 1}'")
    return "\n".join(lines) + "\n"


def stock_course(root: Path) -> Path:
    """A plain nbgrader course of 01_perceptron: its test cells asserts, nbgrader's defaults."""
    import nbformat

    root.mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(
        "from pathlib import Path\nc = get_config()  # noqa: F821\nHERE = Path(__file__).resolve().parent\n"
        "c.CourseDirectory.root = str(HERE)\nc.CourseDirectory.course_id = 'stock'\n"
        "c.CourseDirectory.db_url = f'sqlite:///{HERE}/gradebook.db'\nc.Execute.timeout = 60\n")
    src = REPO / "source_notebooks" / AID
    dest = root / "source" / AID
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("cases.py", "*.ipynb", ".ipynb_checkpoints", "__pycache__"))
    checks = json.loads((src / "checks.json").read_text())["exercises"]
    nb = nbformat.read(src / f"{AID}.ipynb", as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and meta.get("grade_id") in checks:
            cell.source = _asserts(meta["grade_id"], checks[meta["grade_id"]])
    nbformat.write(nb, dest / f"{AID}.ipynb")
    for cmd in (["db", "assignment", "add", AID], ["generate_assignment", AID, "--force"]):
        subprocess.run([sys.executable, "-m", "nbgrader", *cmd], cwd=root, capture_output=True, check=True, env=_env())
    return root


def stock(tmp: Path, folder: Path, n: int) -> dict:
    """Stock ``nbgrader autograde`` then ``generate_feedback`` (one process, no sandbox, all cells)."""
    from nbgrader.api import Gradebook

    root = stock_course(tmp / "stock")
    shutil.copytree(folder, root / "submitted")
    env = _env()
    before, start = load(), time.monotonic()
    auto = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", AID, "--force"], cwd=root, env=env,
                          capture_output=True, text=True)
    t_auto = time.monotonic() - start
    feedback = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", AID, "--force"], cwd=root,
                              env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    scores = {}
    with Gradebook(f"sqlite:///{root}/gradebook.db", course_id="stock") as gb:
        for sub in gb.assignment_submissions(AID):
            scores[sub.student.id] = f"{sub.score:g}"
    return {"label": "stock nbgrader", "n": n, "seconds": seconds, "per_submission": seconds / n,
            "autograde_seconds": t_auto, "feedback_seconds": seconds - t_auto,
            "ok": auto.returncode == 0 and feedback.returncode == 0, "graded": len(scores),
            "load_before": before, "load_after": load(), "scores": dict(sorted(scores.items())),
            "error": "" if auto.returncode == 0 else auto.stderr.strip().splitlines()[-1][:300]}


@contextlib.contextmanager
def local_cluster(workers: int = 2):
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def part_a(tmp: Path, n: int) -> list[dict]:
    folder = tmp / "class-a"
    write_class(folder, n)
    rows = [stock(tmp, folder, n)]
    print(_row_text(rows[-1]), flush=True)
    for label, flags in (("ours, 1 worker, cold kernels", ("--workers", "1", "--cold-kernels")),
                         ("ours, 1 worker", ("--workers", "1")),
                         ("ours, 2 workers, cold kernels", ("--workers", "2", "--cold-kernels")),
                         ("ours, 2 workers", ("--workers", "2"))):
        rows.append(ours(tmp, folder, n, label.replace(" ", "").replace(",", "-"), *flags))
        rows[-1]["label"] = label
        print(_row_text(rows[-1]), flush=True)
    with local_cluster(2) as address:
        # the benchmark's own cluster on 127.0.0.1, plain tcp (--insecure-cluster): TLS is measured elsewhere
        rows.append(ours(tmp, folder, n, "cluster-2", "--cluster", address, "--insecure-cluster"))
        rows[-1]["label"] = "ours, Dask LocalCluster of 2 worker processes"
    print(_row_text(rows[-1]), flush=True)
    return rows


def part_b(tmp: Path, sizes: list[int], budget: float) -> list[dict]:
    rows: list[dict] = []
    spent, per = 0.0, None
    with local_cluster(2) as address:
        for n in sizes:
            projected = per * n if per else None
            if projected is not None and spent + projected > budget:
                rows.append({"n": n, "skipped": f"projected {projected:.0f} s; {budget - spent:.0f} s of the "
                                                 f"{budget:.0f} s budget left"})
                print(f"  {n}: skipped ({rows[-1]['skipped']})", flush=True)
                continue
            folder = tmp / f"class-b-{n}"
            write_class(folder, n)
            row = ours(tmp, folder, n, f"scale-{n}", "--cluster", address, "--insecure-cluster")
            row.pop("scores")
            rows.append(row)
            spent += row["seconds"]
            per = row["per_submission"]
            shutil.rmtree(folder, ignore_errors=True)
            print(_row_text(row), flush=True)
    return rows


# -- (c): the floor and where the time goes ---------------------------------------------------

def _timed(cls, name: str, sink: dict[str, list[float]]):
    """Wrap ``cls.name`` so that each call's duration is appended to ``sink[label]``."""
    original = getattr(cls, name)

    def wrapper(*args, **kwargs):
        start = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            sink.setdefault(f"{cls.__name__}.{name}", []).append(time.monotonic() - start)

    setattr(cls, name, wrapper)
    return original


def part_c(tmp: Path, repeats: int = 3) -> dict:
    """The floor (a bare sandboxed kernel with the course's imports), and one submission's steps."""
    import nbformat
    from nbclient import NotebookClient
    from nbgrader.apps import NbGraderAPI

    from tests.support import submissions as subs
    from autograder.grading import worker
    from autograder.run import jobs as cluster
    from autograder.store.results import apply_result
    from autograder.grading import batch as grading
    from autograder.store import gradebook as nbgrader_api
    from autograder.pipeline import sanitize
    from autograder.course import Course
    from autograder.pipeline.execute import SandboxedExecute
    from autograder.pipeline.scoring import TrustedScores
    from tests.support.course import copy_course

    course = Course(copy_course(tmp / "floor"))
    grading.ensure_in_gradebook(course, {AID})
    opts = grading.GradeOptions(workers=1, seed=SEED)
    solved = subs.solved(AID)
    setup = copy.deepcopy(solved)
    setup.cells = [c for c in setup.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup"]
    result: dict = {"load_before": load()}
    with grading._workers(course, [AID], opts, None) as pool:
        staged = Course(worker.staged(pool.bundle))
        for mode in ("warm", "cold"):
            settings = {**grading._settings(opts), **({"warm_kernels": False} if mode == "cold" else {})}
            config = nbgrader_api.course_config(staged, GradingSettings=settings)
            floor, plain = [], []
            for _ in range(repeats + 1):  # the first warm one starts the template: not counted
                start = time.monotonic()
                SandboxedExecute(config=config).preprocess(copy.deepcopy(setup), {"nbgrader": {
                    "assignment": AID, "student": "floor", "notebook": AID}})
                floor.append(time.monotonic() - start)
            result[f"floor_{mode}"] = statistics.median(floor[1:])
            steps: dict[str, list[float]] = {}
            originals = [(SandboxedExecute, "preprocess", _timed(SandboxedExecute, "preprocess", steps)),
                         (TrustedScores, "preprocess", _timed(TrustedScores, "preprocess", steps)),
                         (NbGraderAPI, "autograde", _timed(NbGraderAPI, "autograde", steps)),
                         (NbGraderAPI, "generate_feedback", _timed(NbGraderAPI, "generate_feedback", steps))]
            total, apply = [], []
            try:
                # one unmeasured grading first: what a worker does once (the template's start, compiling
                # the feedback templates) is not a per-submission cost
                worker.grade_job(pool.bundle, cluster.Job(AID, f"warmup{mode}", {
                    f"{AID}.ipynb": nbformat.writes(solved).encode()}, settings, "bench"))
                for key in list(steps):
                    steps[key].clear()
                for i in range(repeats):
                    job = cluster.Job(AID, f"bench{mode}{i}", {f"{AID}.ipynb": nbformat.writes(solved).encode()},
                                      settings, "bench")
                    start = time.monotonic()
                    res = worker.grade_job(pool.bundle, job)
                    total.append(time.monotonic() - start)
                    assert res.outcome.get("status") == "graded", res.outcome.get("reason")
                    start = time.monotonic()
                    apply_result(course, res, grading.zero_scores)
                    apply.append(time.monotonic() - start)
            finally:
                for cls, name, original in originals:
                    setattr(cls, name, original)
            med = {k: statistics.median(v) for k, v in steps.items()}
            execute, scoring = med["SandboxedExecute.preprocess"], med["TrustedScores.preprocess"]
            autograde, feedback = med["NbGraderAPI.autograde"], med["NbGraderAPI.generate_feedback"]
            whole = statistics.median(total)
            result[f"steps_{mode}"] = [
                ("sandboxed kernel: start, the graded cells, stop", execute),
                ("trusted scoring (TrustedScores: compare, gradebook rows, outcome)", scoring),
                ("nbgrader's other autograde steps (copy, restore cells, other preprocessors, write)",
                 autograde - execute - scoring),
                ("feedback HTML (nbgrader generate_feedback + hardening)", feedback),
                ("worker's packing (private gradebook, install, result as data, clean-up)", max(0.0, statistics.median(
                    t - a - f for t, a, f in zip(total, steps["NbGraderAPI.autograde"],
                                                 steps["NbGraderAPI.generate_feedback"])))),
                ("coordinator writes the result (gradebook, folders, outcome)", statistics.median(apply)),
            ]
            result[f"per_submission_{mode}"] = whole + statistics.median(apply)
        plain = []
        for _ in range(repeats):
            work = tmp / "plain-work"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(REPO / "release" / AID, work)
            start = time.monotonic()
            NotebookClient(copy.deepcopy(setup), timeout=120, kernel_name="python3",
                           resources={"metadata": {"path": str(work)}}).execute()
            plain.append(time.monotonic() - start)
        result["floor_plain"] = statistics.median(plain)
    # the names earlier results used: the default (warm) figures
    result["floor_sandboxed"], result["steps"] = result["floor_warm"], result["steps_warm"]
    result["per_submission"] = result["per_submission_warm"]
    result["load_after"] = load()
    _ = sanitize  # the hardening is inside generate_feedback's wrapper time
    return result


# -- report -------------------------------------------------------------------------------------

#: What was cut from the per-submission cost, with the figures this benchmark's part (c) gave
#: before and after on the same quiet machine (load below 1), one run each.
CUTS = [
    ("`seed_everything` (the setup cell of every notebook) called `torch.use_deterministic_algorithms`, "
     "which imports torch's compiler configuration (`torch._inductor.config`, 1.1 s). It now sets the "
     "same flag of eager torch without that import (`helpers/seeding.py`).",
     "floor 4.43 → 3.07 s; one submission 5.88 → 4.17 s (2026-12-01, before and after commit 'seeding: "
     "deterministic torch without importing the compiler')"),
    ("Every new gradebook (the course's, and each batch's template for the workers) ran nbgrader's "
     "`alembic heads` in a subprocess to stamp its version; the same head is now read in-process "
     "(`autograder.store.gradebook.alembic_head`). And jsonschema, imported with nbformat by every "
     "grading process, built the RFC 3987 grammar for its \"iri\" format at import; no notebook schema "
     "uses it, and it is no longer loaded (`autograder/__init__.py`).",
     "`alembic heads` 3 s → 0.15 s per new gradebook, the import 1.2 s → 0 per process; (a) ours with "
     "1 worker 46.3 → 36.2 s, 2 workers 29.7 → 23.2 s, the cluster 38.3 → 27.9 s (2026-12-01, 18:40 "
     "and 22:02 runs, both quiet)"),
    ("Each kernel is forked from a warm template (`autograder/sandbox/warm.py`) that imported torch, "
     "matplotlib, IPython and the helpers once per worker, inside the sandbox's walls.",
     "the kernel, its cells and its stop 1.92 → 0.67 s, one submission 2.28 → 1.23 s (2026-12-06, the "
     "cold and warm columns of (c) in one run)"),
    ("nbgrader renders each feedback page with a new nbconvert exporter, whose Jinja environment compiled "
     "the page's nine templates every time; they are now compiled once per process (an in-memory bytecode "
     "cache checked against each template's source: `autograder/pipeline/templates.py`).",
     "generate_feedback on one 01_perceptron submission, median of 5 after the first: 0.20 → 0.14 s "
     "(2026-12-06, cProfile script, quiet)"),
]

class PeakPSS:
    """Peak proportional set size (MB) of a process and all its descendants together, sampled every
    0.2 s: pages shared with a warm template count once, split among their sharers."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> set[int]:
        from autograder.sandbox import processes

        return processes.descendants(self.pid) | {self.pid}

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in self._tree():
                try:
                    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
                except OSError:
                    continue
            self.peak = max(self.peak, total / 1024)
            time.sleep(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def part_d(tmp: Path, n: int) -> list[dict]:
    """A batch of ``n`` on 2 local workers, warm and cold: wall time and the peak PSS of every
    process of the run together (coordinator, workers, templates, kernels)."""
    folder = tmp / "class-d"
    write_class(folder, n)
    rows = []
    for label, flags in (("warm kernels", ()), ("cold kernels", ("--cold-kernels",))):
        from tests.support.course import copy_course

        course = copy_course(tmp / f"d-{len(rows)}")
        subprocess.run(_cli(course, "release", AID), capture_output=True, check=True)
        before, start = load(), time.monotonic()
        proc = subprocess.Popen(_cli(course, "grade", str(folder), "--seed", str(SEED), "--workers", "2", *flags),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        pss = PeakPSS(proc.pid)
        _out, err = proc.communicate()
        seconds = time.monotonic() - start
        rows.append({"label": label, "n": n, "seconds": seconds, "per_submission": seconds / n,
                     "ok": proc.returncode == 0, "peak_pss_mb": pss.stop(), "load_before": before,
                     "load_after": load(), "error": "" if proc.returncode == 0 else err.strip()[-300:]})
        print(_row_text(rows[-1]), f"peak PSS {rows[-1]['peak_pss_mb']:.0f} MB", flush=True)
    return rows


def _row_text(r: dict) -> str:
    return f"  {r['label']}: {r['seconds']:.1f} s ({r['per_submission']:.2f} s/submission), ok={r['ok']}, " \
           f"load {r['load_before']}->{r['load_after']} {r.get('error', '')}"


def render(res: dict) -> str:
    m = res["machine"]
    lines = [f"# Grading throughput: stock nbgrader, the local pool, a Dask cluster ({m['date']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}. "
             "Load: the 1-minute load average before → after each figure. **This machine is shared** "
             "with other engineers' test runs: a load above the core count means the figure is a loaded one, "
             "not a quiet one (ratios taken in the same minutes are the more telling).", ""]
    a = res.get("a")
    if a:
        n = a[0]["n"]
        lines += [f"## (a) One class of {n} submissions of {AID} (solved, untouched, solved, one wrong exercise)", "",
                  f"Measured from {res.get('a_started', res['started'])}.", "",
                  "| grader | total (s) | per submission (s) | graded | load | scores |", "|---|---|---|---|---|---|"]
        for r in a:
            scores = " ".join(r["scores"].values()) if r.get("scores") else r.get("error", "")
            lines.append(f"| {r['label']} | {r['seconds']:.1f} | {r['per_submission']:.2f} | {r['graded']}/{n} | "
                         f"{r['load_before']} → {r['load_after']} | {scores} |")
        base = a[0]["seconds"]
        by = {r["label"]: r for r in a}
        one, two = by.get("ours, 1 worker"), by.get("ours, 2 workers")
        dask = a[-1]
        lines += ["", "Ratios (time / stock nbgrader's time): " + ", ".join(
            f"{r['label']}: {r['seconds'] / base:.2f}" for r in a[1:]) + "."]
        if two:
            lines.append(f"Cluster of 2 vs local pool of 2: {dask['seconds'] / two['seconds']:.2f}x the time.")
        if one and two:
            lines.append(f"2 local workers vs 1: {one['seconds'] / two['seconds']:.2f}x the speed.")
        for k in ("1 worker", "2 workers"):
            warm_row, cold_row = by.get(f"ours, {k}"), by.get(f"ours, {k}, cold kernels")
            if warm_row and cold_row:
                lines.append(f"Warm vs cold kernels, {k}: {cold_row['per_submission']:.2f} → "
                             f"{warm_row['per_submission']:.2f} s per submission ({cold_row['seconds'] / warm_row['seconds']:.2f}x "
                             f"the speed); {base / warm_row['seconds']:.2f}x faster than stock nbgrader.")
        st = a[0]
        lines += ["", f"Stock nbgrader: autograde {st['autograde_seconds']:.1f} s + feedback "
                      f"{st['feedback_seconds']:.1f} s, every cell run (the demo cells too), no sandbox, "
                      "visible cases only (its asserts), one process. Ours: the hidden cases too, each "
                      "submission in its own bubblewrap sandbox with limits, demo cells skipped, trusted "
                      "scoring outside the kernel, the reference graded first as a canary (once per worker "
                      "on the cluster), and the coordinator's single-writer step. The scores column lists "
                      "each student's score in order (the wrong softmax fails a visible case too, so "
                      "stock and ours should agree on this class: compare the columns).", ""]
    b = res.get("b")
    if b:
        lines += ["## (b) Synthetic classes on the cluster path (LocalCluster, 2 worker processes)", "",
                  f"Measured from {res.get('b_started', res['started'])}.", "",
                  "| submissions | total (s) | per submission (s) | coordinator peak RSS (MB) | graded | load |",
                  "|---|---|---|---|---|---|"]
        for r in b:
            if "skipped" in r:
                lines.append(f"| {r['n']} | not run: {r['skipped']} | | | | |")
                continue
            lines.append(f"| {r['n']} | {r['seconds']:.1f} | {r['per_submission']:.2f} | {r['coordinator_peak_mb']:.0f} | "
                         f"{r['graded']}/{r['n']} | {r['load_before']} → {r['load_after']} |")
        done = [r for r in b if "skipped" not in r]
        if len(done) >= 2:
            lo, hi = done[0], done[-1]
            lines.append("")
            lines.append(f"From {lo['n']} to {hi['n']} submissions the cost per submission went "
                         f"{lo['per_submission']:.2f} → {hi['per_submission']:.2f} s and the coordinator's peak memory "
                         f"{lo['coordinator_peak_mb']:.0f} → {hi['coordinator_peak_mb']:.0f} MB.")
        lines.append("")
    c = res.get("c")
    if c:
        lines += ["## (c) One submission against the floor (a solved notebook, graded in this process; medians)", "",
                  f"Measured from {res.get('c_started', res['started'])}.", ""]
        modes = [m for m in ("warm", "cold") if f"steps_{m}" in c] or [None]
        head = "| step | " + " | ".join(f"{m} kernels (s) | share" for m in modes if m) + " |" if modes[0] else \
            "| step | seconds | share |"
        lines += [head, "|---|" + "---|---|" * len(modes)]
        tables = [c[f"steps_{m}"] if m else c["steps"] for m in modes]
        totals = [c[f"per_submission_{m}"] if m else c["per_submission"] for m in modes]
        for i, (name, _sec) in enumerate(tables[0]):
            lines.append(f"| {name} | " + " | ".join(f"{t[i][1]:.2f} | {100 * t[i][1] / tot:.0f} %"
                                                   for t, tot in zip(tables, totals)) + " |")
        lines.append("| **per submission** | " + " | ".join(f"**{tot:.2f}** | " for tot in totals) + "|")
        floors = ", ".join(f"{m}: {c[f'floor_{m}']:.2f} s" for m in modes if m) if modes[0] else \
            f"{c['floor_sandboxed']:.2f} s"
        lines += ["", f"Floor: a bare sandboxed kernel with the course's imports (the setup cell), started and stopped "
                      f"through SandboxedExecute ({floors}); the same kernel without the sandbox "
                      f"(plain nbclient): {c['floor_plain']:.2f} s. Load {c['load_before']} → {c['load_after']}.", "",
                  "What was cut:", ""]
        lines += [f"- {what} Measured: {figures}." for what, figures in CUTS]
        lines += ["", "Warm kernels (`autograder/sandbox/warm.py`): the kernel is forked from a template that "
                      "imported the course's modules once, so the setup cell's imports (torch 1.3 s, matplotlib "
                      "0.5 s) are no longer paid per submission. Not cut: the feedback page is nbgrader's own "
                      "exporter.", ""]
    d = res.get("d")
    if d:
        lines += [f"## (d) A batch of {d[0]['n']} submissions of {AID}, 2 local workers: warm against cold kernels", "",
                  f"Measured from {res.get('d_started', res['started'])}.", "",
                  "| kernels | total (s) | per submission (s) | peak PSS of the whole run (MB) | ok | load |",
                  "|---|---|---|---|---|---|"]
        for r in d:
            lines.append(f"| {r['label']} | {r['seconds']:.1f} | {r['per_submission']:.2f} | {r['peak_pss_mb']:.0f} | "
                         f"{r['ok']} | {r['load_before']} → {r['load_after']} |")
        lines += ["", "PSS (proportional set size) counts a page shared by k processes as 1/k in each: the template's "
                      "imported modules, shared copy-on-write with every kernel forked from it, count once.", ""]
    return "\n".join(lines)


def merged(path: Path, res: dict, parts: set[str]) -> dict:
    """``res`` with the parts not run this time taken from the last results file (so that parts can
    be measured one at a time, each when the machine is quiet); each part keeps its own start time."""
    for part in parts:
        if part in res:
            res[part + "_started"] = res["started"]
    if not path.exists():
        return res
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return res
    for part in ("a", "b", "c", "d"):
        if part not in parts and part in old:
            res[part] = old[part]
            res[part + "_started"] = old.get(part + "_started", old.get("started"))
    return res


def main(argv: list[str] | None = None) -> int:
    from run import machine  # benchmarks/run.py

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--class-size", type=int, default=8, help="(a): submissions in the class")
    p.add_argument("--scale", default="10,30,100,300,1000", help="(b): class sizes on the cluster path")
    p.add_argument("--budget", type=float, default=600, help="(b): seconds for all sizes together")
    p.add_argument("--batch", type=int, default=100, help="(d): submissions in the warm/cold batch")
    p.add_argument("--only", default="a,b,c,d")
    args = p.parse_args(argv)
    parts = set(args.only.split(","))
    res: dict = {"machine": machine(), "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "c" in parts:
            print("(c) the floor and one submission's steps...", flush=True)
            res["c"] = part_c(tmp)
        if "a" in parts:
            print(f"(a) a class of {args.class_size}: stock nbgrader, 1 and 2 workers, a cluster of 2...", flush=True)
            res["a"] = part_a(tmp, args.class_size)
        if "d" in parts:
            print(f"(d) a batch of {args.batch} on 2 workers, warm and cold kernels...", flush=True)
            res["d"] = part_d(tmp, args.batch)
        if "b" in parts:
            print(f"(b) classes of {args.scale} on the cluster path (budget {args.budget:.0f} s)...", flush=True)
            res["b"] = part_b(tmp, [int(x) for x in args.scale.split(",")], args.budget)
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    res = merged(out / "cluster.json", res, parts)
    text = render(res)
    print("\n" + text)
    (out / "cluster.md").write_text(text + "\n")
    (out / "cluster.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(f"written: {out / 'cluster.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
