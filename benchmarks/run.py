"""Benchmarks: how fast the course runs, how well its models learn, how fast it grades.

    python benchmarks/run.py [--quick] [--only notebooks,ops,grading,report,cluster]

Prints a table per part and writes ``benchmarks/results/<date>.md`` and ``.json``
(with the machine's description). Figures are compared with their targets and
printed as such; nothing here fails for being slow.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests.support package

NOTEBOOK_TARGET_S = 60.0
TOTAL_TARGET_S = 360.0
OVERHEAD_TARGET_S = 2.0


def machine() -> dict:
    import torch

    return {"date": dt.date.today().isoformat(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu": _cpu_name(), "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "platform": platform.platform()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _syllabus() -> list[str]:
    from autograder.course import Course

    return [a.id for a in Course(REPO / "course").assignments()]


# -- 1 & 2: notebooks: wall time, peak memory, the figures they report ----------------------

EXECUTE_ONE = r"""
import json, resource, sys, time
import nbformat
from nbclient import NotebookClient
path, out = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
start = time.monotonic()
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[3]}}).execute()
elapsed = time.monotonic() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
nbformat.write(nb, out)
print(json.dumps({"seconds": elapsed, "peak_mb": peak}))
"""


def bench_notebooks(aids: list[str]) -> dict:
    from helpers.metrics import METRIC_MIMETYPE

    rows = []
    for aid in aids:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / aid
            shutil.copytree(REPO / "source_notebooks" / aid, work)
            out = Path(tmp) / "executed.ipynb"
            proc = subprocess.run([sys.executable, "-c", EXECUTE_ONE, str(work / f"{aid}.ipynb"), str(out), str(work)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                rows.append({"assignment": aid, "error": proc.stderr.strip().splitlines()[-1][:200]})
                continue
            stats = json.loads(proc.stdout.strip().splitlines()[-1])
            import nbformat

            nb = nbformat.read(out, as_version=4)
            metrics = [o["data"][METRIC_MIMETYPE] for c in nb.cells if c.cell_type == "code"
                       for o in c.get("outputs", []) if METRIC_MIMETYPE in o.get("data", {})]
            rows.append({"assignment": aid, **stats, "metrics": metrics})
        print(f"  {aid}: {rows[-1].get('seconds', float('nan')):.1f} s", flush=True)
    return {"rows": rows, "total_seconds": sum(r.get("seconds", 0) for r in rows)}


# -- 3: from-scratch reference ops vs torch -------------------------------------------------

def _timeit(fn, repeat: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_ops() -> list[dict]:
    """Each reference op (from its source notebook's solution) against torch, same inputs."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from autograder.course import Course
    from autograder.authoring.reference import load_reference

    course = Course(REPO / "course")
    rng = np.random.default_rng(0)
    rows = []

    def ref(aid: str, name: str):
        path = course.source_notebook(aid)
        if not path.exists():
            return None
        return load_reference(path).get(name)

    x = rng.normal(size=(8, 3, 28, 28))
    w = rng.normal(size=(6, 3, 5, 5))
    b = rng.normal(size=6)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    torch_conv = lambda: F.conv2d(xt, wt, bt, stride=1, padding=2)  # noqa: E731
    for name in ("conv2d_naive", "conv2d_im2col"):
        fn = ref("04_cnn", name)
        if fn is not None:
            rows.append(_op_row(name, lambda fn=fn: fn(x, w, b, 1, 2), torch_conv, "F.conv2d", "(8,3,28,28) * (6,3,5,5)"))
    fn = ref("05_pooling", "maxpool_forward")
    if fn is not None:
        rows.append(_op_row("maxpool_forward", lambda: fn(x, 2, 2), lambda: F.max_pool2d(xt, 2, 2),
                            "F.max_pool2d", "(8,3,28,28), 2x2"))
    q, k, v = (rng.normal(size=(16, 32, 64)) for _ in range(3))
    qt, kt, vt = (torch.from_numpy(a) for a in (q, k, v))
    fn = ref("08_attention", "attention")  # written with tensor ops: same tensors for both
    if fn is not None:
        rows.append(_op_row("attention", lambda: fn(qt, kt, vt), lambda: F.scaled_dot_product_attention(qt, kt, vt),
                            "F.scaled_dot_product_attention", "(16,32,64)"))
    fn = ref("07_rnn", "lstm_cell")
    if fn is not None:
        cell = torch.nn.LSTMCell(32, 64).double()
        xs, hs, cs = rng.normal(size=(64, 32)), rng.normal(size=(64, 64)), rng.normal(size=(64, 64))
        W_ih, W_hh = cell.weight_ih.detach().numpy(), cell.weight_hh.detach().numpy()
        b_ih, b_hh = cell.bias_ih.detach().numpy(), cell.bias_hh.detach().numpy()
        xt_, ht_, ct_ = (torch.from_numpy(a) for a in (xs, hs, cs))
        rows.append(_op_row("lstm_cell", lambda: fn(xs, hs, cs, W_ih, W_hh, b_ih, b_hh),
                            lambda: cell(xt_, (ht_, ct_)), "nn.LSTMCell", "batch 64, 32 -> 64"))
    return rows


def _op_row(name, ours, theirs, torch_name, shape) -> dict:
    import torch

    with torch.no_grad():
        t_ref, t_torch = _timeit(ours), _timeit(theirs)
    return {"op": name, "shape": shape, "reference_ms": t_ref * 1e3, "torch": torch_name,
            "torch_ms": t_torch * 1e3, "ratio": t_ref / t_torch}


# -- 4: grading throughput ------------------------------------------------------------------

def bench_grading(aids: list[str], n_submissions: int = 20) -> dict:
    from tests.support import submissions as subs
    from tests.support.course import copy_course

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "class"
        for i in range(n_submissions):
            aid = aids[i % len(aids)]
            nb = subs.solved(aid) if i % 2 == 0 else subs.release_notebook(aid)
            subs.write(folder, f"student{i:02d}", aid, nb)
        runs = [("workers_1", 1, []), ("workers_n", os.cpu_count() or 2, []),
                ("workers_1_unsafe", 1, ["--unsafe-no-sandbox"])]
        for key, workers, extra in runs:
            course = copy_course(tmp / key)
            # the gradebook knows the assignments before timing starts (as after `autograder release`)
            subprocess.run([sys.executable, "-m", "autograder", "--course", str(course), "release"],
                           capture_output=True, check=True)
            start = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "autograder", "--course", str(course), "grade", str(folder),
                                   "--workers", str(workers), *extra], capture_output=True, text=True)
            elapsed = time.monotonic() - start
            results[key] = {"workers": workers, "sandbox": not extra, "seconds": elapsed,
                            "per_submission": elapsed / n_submissions, "ok": proc.returncode == 0}
        results["plain_execution"] = _plain_execution_seconds(aids, tmp)
    results["overhead_per_notebook"] = results["workers_1"]["per_submission"] - results["plain_execution"]
    results["speedup"] = results["workers_1"]["seconds"] / results["workers_n"]["seconds"]
    results["n"] = n_submissions
    return results


def _plain_execution_seconds(aids: list[str], tmp: Path) -> float:
    """Mean time to run a solved notebook's graded part (demo cells left out) with plain nbclient."""
    from nbclient import NotebookClient

    from tests.support import submissions as subs

    times = []
    for aid in aids:
        nb = subs.solved(aid)
        nb.cells = [c for c in nb.cells if "demo" not in c.metadata.get("tags", [])]
        work = tmp / f"plain-{aid}"
        shutil.copytree(REPO / "release" / aid, work)
        start = time.monotonic()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
        times.append(time.monotonic() - start)
    return sum(times) / len(times)


# -- report ---------------------------------------------------------------------------------

def render(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Benchmarks {m['date']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}, "
             f"torch {m['torch']}; {m['platform']}.", ""]
    if "notebooks" in result:
        nbs = result["notebooks"]
        lines += ["## Solution notebooks, top to bottom", "",
                  f"| notebook | wall time (s) | target ≤ {NOTEBOOK_TARGET_S:.0f} s | peak memory (MB) |", "|---|---|---|---|"]
        for r in nbs["rows"]:
            if "error" in r:
                lines.append(f"| {r['assignment']} | error: {r['error']} | | |")
                continue
            ok = "met" if r["seconds"] <= NOTEBOOK_TARGET_S else "**NOT met**"
            lines.append(f"| {r['assignment']} | {r['seconds']:.1f} | {ok} | {r['peak_mb']:.0f} |")
        ok = "met" if nbs["total_seconds"] <= TOTAL_TARGET_S else "**NOT met**"
        lines += ["", f"Total: {nbs['total_seconds']:.0f} s (target ≤ {TOTAL_TARGET_S:.0f} s: {ok}).", "",
                  "## Figures the notebooks reach", "", "| notebook | figure | value | target | training time (s) |",
                  "|---|---|---|---|---|"]
        for r in nbs["rows"]:
            for f in r.get("metrics", []):
                target = "" if f["target"] is None else \
                    f"{'≥' if f['higher_is_better'] else '≤'} {f['target']:g}: {'met' if f['met'] else '**NOT met**'}"
                secs = "" if f.get("seconds") is None else f"{f['seconds']:.1f}"
                lines.append(f"| {r['assignment']} | {f['name']} | {f['value']:.4g}{f.get('unit', '')} | {target} | {secs} |")
        lines.append("")
    if "ops" in result:
        lines += ["## From-scratch reference ops vs torch (same inputs, best of 5, float64)", "",
                  "| op | shape | reference (ms) | torch | torch (ms) | ratio |", "|---|---|---|---|---|---|"]
        for r in result["ops"]:
            lines.append(f"| {r['op']} | {r['shape']} | {r['reference_ms']:.2f} | {r['torch']} | {r['torch_ms']:.3f} | "
                         f"{r['ratio']:.1f}x |")
        lines.append("")
    if "grading" in result:
        g = result["grading"]
        cores = m["cores"]
        ok = "met" if g["overhead_per_notebook"] <= OVERHEAD_TARGET_S else "**NOT met**"
        lines += [f"## Grading a synthetic class of {g['n']} submissions (every notebook; half solved, half untouched)", "",
                  "| workers | sandbox | total (s) | per submission (s) | all graded |", "|---|---|---|---|---|",
                  *[f"| {w['workers']} | {'bubblewrap' if w['sandbox'] else 'none (--unsafe-no-sandbox)'} | "
                    f"{w['seconds']:.1f} | {w['per_submission']:.2f} | {w['ok']} |"
                    for w in (g["workers_1"], g["workers_n"], g["workers_1_unsafe"])], "",
                  f"Speed-up with {cores} workers: {g['speedup']:.2f}x. Plain execution of a notebook's graded part "
                  f"(nbclient, no sandbox): {g['plain_execution']:.2f} s; overhead per notebook beyond it: "
                  f"{g['overhead_per_notebook']:.2f} s (target ≤ {OVERHEAD_TARGET_S:g} s: {ok}).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="notebooks,ops,grading", help="comma-separated parts")
    parser.add_argument("--submissions", type=int, default=20)
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    aids = _syllabus()
    result: dict = {"machine": machine()}
    if "notebooks" in parts:
        print("executing solution notebooks...", flush=True)
        result["notebooks"] = bench_notebooks(aids)
    if "ops" in parts:
        print("timing reference ops against torch...", flush=True)
        result["ops"] = bench_ops()
    if "grading" in parts:
        print(f"grading {args.submissions} submissions with 1 and {os.cpu_count()} workers...", flush=True)
        result["grading"] = bench_grading(aids, args.submissions)
    text = render(result)
    if "report" in parts:  # `autograder report` on a large synthetic class (benchmarks/report_bench.py)
        from report_bench import bench_report, render_report

        print("timing autograder report on 300 synthetic submissions...", flush=True)
        result["report"] = bench_report(300)
        text += "\n" + render_report(result["report"])
    if "cluster" in parts:  # stock nbgrader vs ours, the cluster path at scale, the floor (cluster_bench.py)
        from cluster_bench import main as cluster_main

        cluster_main([])  # writes benchmarks/results/cluster.md and .json itself
        if parts == {"cluster"}:
            return 0
    print("\n" + text)
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = out / result["machine"]["date"]
    stem.with_suffix(".md").write_text(text + "\n")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"\nwritten: {stem.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
