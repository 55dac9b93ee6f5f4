"""Notebooks under load: one notebook top to bottom, idle and beside a CPU-heavy process,
with torch's and BLAS's default thread counts ("before") and with the course's policy ("after").

    python benchmarks/threads.py [--notebook 06_deep_training] [--load-procs 1] [--timeout 900]

"before" runs the notebook with ``DL_COURSE_THREADS`` set to the thread count torch picks by
itself in a fresh process (one per physical core), which is what every notebook used before
``seed_everything`` set the thread count; BLAS then gets the same number (its own default is one
per CPU, at least as many). "after" runs it with the policy of ``helpers.seeding`` (half the
CPUs this process may use, at least 1, at most 4). The load is ``--load-procs`` processes, each
multiplying 768 x 768 matrices in a loop with torch's default threads: another kernel training a
model, a second user on the same JupyterHub node, a compile on the laptop.

Prints a table and writes ``benchmarks/results/<date>-threads-<notebook>.md`` and ``.json``. Nothing here
fails for being slow; a run over ``--timeout`` seconds is recorded as such.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from run import EXECUTE_ONE, machine  # noqa: E402  (the same executor and machine record as run.py)

LOAD = r"""
import torch
a = torch.randn(768, 768)
while True:
    a = torch.tanh(a @ a) * 0.1 + torch.randn(768, 768) * 0.01
"""


def torch_default_threads() -> int:
    """torch's own choice in a fresh process with no thread settings in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DL_COURSE_THREADS")}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                         capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip())


def policy_threads() -> int:
    from helpers.seeding import default_threads

    env_backup = {k: os.environ.pop(k) for k in ("OMP_NUM_THREADS", "DL_COURSE_THREADS") if k in os.environ}
    try:
        n = default_threads()
    finally:
        os.environ.update(env_backup)
    assert n is not None
    return n


def run_notebook(aid: str, threads: int, timeout: float) -> dict:
    """Execute source_notebooks/<aid> in a temporary copy with DL_COURSE_THREADS=threads."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["DL_COURSE_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / aid
        shutil.copytree(REPO / "source_notebooks" / aid, work)
        start = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-c", EXECUTE_ONE, str(work / f"{aid}.ipynb"),
                                   str(Path(tmp) / "executed.ipynb"), str(work)],
                                  capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"seconds": None, "timed_out": True, "wall": time.monotonic() - start}
        if proc.returncode != 0:
            return {"seconds": None, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
        return {"seconds": json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]}


def start_load(n: int) -> list[subprocess.Popen]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    procs = [subprocess.Popen([sys.executable, "-c", LOAD], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(n)]
    time.sleep(3.0)  # let them import torch and start multiplying
    return procs


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default="06_deep_training")
    parser.add_argument("--load-procs", type=int, default=1, help="CPU-heavy processes beside the notebook")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is recorded as timed out")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    before, after = torch_default_threads(), policy_threads()
    print(f"{args.notebook}: before = {before} thread(s) (torch's default), after = {after} (the course's policy); "
          f"load = {args.load_procs} process(es) multiplying matrices with torch's default threads", flush=True)
    rows = []
    for loaded in (False, True):
        for label, threads in (("before", before), ("after", after)):
            procs = start_load(args.load_procs) if loaded else []
            la = loadavg()
            try:
                result = run_notebook(args.notebook, threads, args.timeout)
            finally:
                stop_load(procs)
            rows.append({"condition": "under load" if loaded else "no extra load", "setting": label,
                         "threads": threads, "loadavg_at_start": la, **result})
            shown = f"{result['seconds']:.1f} s" if result.get("seconds") is not None else \
                ("timed out" if result.get("timed_out") else result.get("error"))
            print(f"  {rows[-1]['condition']:>13}, {label:>6} ({threads} thread(s)): {shown}", flush=True)
            time.sleep(2.0)

    table = _table(rows, args)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{dt.date.today().isoformat()}-threads-{args.notebook}"
    info = machine()
    stem.with_suffix(".json").write_text(json.dumps({"machine": info, "notebook": args.notebook,
                                                     "load_procs": args.load_procs, "rows": rows}, indent=1) + "\n")
    stem.with_suffix(".md").write_text(
        f"# Notebooks under load, {info['date']}\n\n"
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; Python {info['python']}, "
        f"torch {info['torch']}.\n\n"
        f"Command: `python benchmarks/threads.py --notebook {args.notebook} --load-procs {args.load_procs}`.\n\n"
        + table + "\n")
    print(f"\nwritten: {stem.with_suffix('.md').relative_to(REPO)}, {stem.with_suffix('.json').relative_to(REPO)}")
    return 0


def _table(rows: list[dict], args: argparse.Namespace) -> str:
    def secs(r: dict) -> str:
        if r.get("seconds") is not None:
            return f"{r['seconds']:.1f}"
        return f"> {args.timeout:.0f} (timed out)" if r.get("timed_out") else f"error: {r.get('error')}"

    lines = [f"Notebook `{args.notebook}`, top to bottom (wall time of the kernel's work, seconds).",
             "", "| condition | setting | threads (torch and BLAS) | wall time (s) | 1-min load average at start |",
             "|---|---|---|---|---|"]
    for r in rows:
        la = "" if r["loadavg_at_start"] is None else f"{r['loadavg_at_start']:.1f}"
        lines.append(f"| {r['condition']} | {r['setting']} | {r['threads']} | {secs(r)} | {la} |")
    by = {(r["condition"], r["setting"]): r.get("seconds") for r in rows}
    lines.append("")
    for cond in ("no extra load", "under load"):
        b, a = by.get((cond, "before")), by.get((cond, "after"))
        if b and a:
            lines.append(f"- {cond}: after / before = {a / b:.2f} ({b:.1f} s -> {a:.1f} s)")
    b0, b1, a0, a1 = (by.get(k) for k in (("no extra load", "before"), ("under load", "before"),
                                          ("no extra load", "after"), ("under load", "after")))
    if b0 and b1:
        lines.append(f"- slowdown from the load, before: {b1 / b0:.2f}x")
    if a0 and a1:
        lines.append(f"- slowdown from the load, after: {a1 / a0:.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
