"""Peak memory of a grading run's whole process tree against the batch size (it must stay flat).

Grades batches of 01_perceptron submissions (half solved, half untouched) through the real
CLI with 2 workers, sampling every 0.2 s the resident memory of the CLI and all its
descendants (workers, sandboxes, kernels) and the number of live kernels.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests.support package

AID = "01_perceptron"


def _sandboxes(pids: set[int]) -> set[str]:
    """Live kernels: as root, one uid per sandbox (``new_kernel_uid``: 200,000 and up), whether the
    kernel started cold (bubblewrap's processes and the kernel) or was forked from a warm template;
    otherwise one per per-notebook folder named on a cold kernel's command line."""
    import os

    from autograder.sandbox import processes

    if os.geteuid() == 0:
        table = processes.all_processes()
        return {str(table[p][1]) for p in pids if p in table and table[p][1] >= 200_000}
    found = set()
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ipykernel" in cmdline:
            found |= set(re.findall(r"/autograder-[^/ ]+", cmdline))
    return found


def bench_memory(sizes: tuple[int, ...] = (10, 40, 100), workers: int = 2) -> list[dict]:
    from tests.support import submissions as subs
    from tests.support.course import copy_course

    from autograder.sandbox import processes

    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            course = copy_course(tmp)
            folder = tmp / "class"
            solved, stub = subs.solved(AID), subs.release_notebook(AID)
            for i in range(n):
                subs.write(folder, f"s{i:04d}", AID, solved if i % 2 == 0 else stub)
            start = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "autograder", "--course", str(course), "grade",
                                     str(folder), "--workers", str(workers)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            peak = kernels = 0
            while proc.poll() is None:
                tree = processes.descendants(proc.pid) | {proc.pid}
                peak = max(peak, processes.rss_bytes(tree))
                kernels = max(kernels, len(_sandboxes(tree)))
                time.sleep(0.2)
            rows.append({"submissions": n, "seconds": time.monotonic() - start, "peak_mb": peak / 2**20,
                         "kernels_at_once": kernels, "ok": proc.returncode == 0})
    return rows


def render(rows: list[dict], workers: int = 2) -> str:
    lines = [f"## Memory against batch size ({AID}, {workers} workers, sandboxed)", "",
             "| submissions | total (s) | peak memory of the process tree (MB) | kernels alive at once | exit 0 |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['submissions']} | {r['seconds']:.0f} | {r['peak_mb']:.0f} | {r['kernels_at_once']} | {r['ok']} |"
              for r in rows]
    return "\n".join(lines + [""])


if __name__ == "__main__":
    sizes = tuple(int(x) for x in sys.argv[1:]) or (10, 40, 100)
    print(render(bench_memory(sizes)))
