"""The course's settings and every limit a submission is graded under, in one place.

Configured like the rest of nbgrader, in the course's ``nbgrader_config.py``::

    c.GradingSettings.seed = 7               # the run's seed, the cluster, the unsafe switch
    c.SandboxPolicy.cell_timeout = 60        # seconds per cell
    c.SandboxPolicy.total_memory_mb = 4096   # all of a submission's processes together

The sandbox (``autograder.sandbox.kernel``), the execute step (``autograder.pipeline.execute``), the scorer
(``autograder.pipeline.scoring``) and the feedback step (``autograder.grading.batch``) read their limits from
here; the README's table of limits is checked against these defaults and the course's config
(``tests/unit/test_readme_limits.py``). The limits on encoded values themselves (``MAX_ELEMENTS``,
``MAX_DEPTH``) are part of the data format: ``helpers.grading.contract``.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from traitlets import Bool, Integer, Unicode
from traitlets.config import Configurable

from autograder.course import Course
from helpers.grading.contract import MAX_RESULTS_BYTES

#: Collecting: the largest notebook (or other file) read from a submission, and the largest zip (MB).
MAX_NOTEBOOK_MB = 50
MAX_ZIP_MB = 2000

class GradingSettings(Configurable):
    """The run's seed and the explicit unsafe switch."""

    seed = Integer(None, allow_none=True,
                   help="Seed of the hidden cases. Default: the course's recorded seed "
                        "(course/.grading_seed, created on first use).").tag(config=True)
    unsafe_no_sandbox = Bool(False, help="Run kernels without bubblewrap (unsafe).").tag(config=True)
    cluster = Unicode("", help="Address of a Dask scheduler (tls://host:8786, or a scheduler file) that grades "
                               "the submissions; empty: a local process pool (`autograder grade --cluster`).").tag(config=True)
    cluster_certs = Unicode("", help="Folder of the cluster's certificates (`autograder cluster-certs DIR`): its "
                                     "ca.pem, client.pem and client-key.pem authenticate this process to a tls:// "
                                     "scheduler; empty: Dask's own distributed.comm.tls settings.").tag(config=True)
    warm_kernels = Bool(True, help="Fork each submission's sandboxed kernel from a template that imported the "
                                   "course's modules once (autograder.sandbox.warm); where that is not safe "
                                   "(not root, no bubblewrap) kernels start cold, and the grader says so once.").tag(config=True)
    insecure_cluster = Bool(False, help="Accept a cluster address without TLS (tcp://): anyone who reaches the "
                                        "scheduler can join it (`autograder grade --insecure-cluster`).").tag(config=True)

    def resolved_seed(self, course: Course) -> int:
        """The explicit seed, else the course's recorded one (created once, then reused)."""
        if self.seed is not None:
            return int(self.seed)
        return course_seed(course)


def course_seed(course: Course) -> int:
    """The course's recorded seed, created on first use (atomically: concurrent first runs agree)."""
    path = course.root / ".grading_seed"
    if not path.exists():
        tmp = path.with_name(f".grading_seed.{os.getpid()}")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:  # secret: the grader's only
            f.write(str(secrets.randbelow(2**31)))
        try:
            os.link(tmp, path)  # fails if another run created it first: then theirs is used
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return int(path.read_text().strip())


def course_from_config(config) -> Course:
    return Course(Path(config.CourseDirectory.root))


def _mb(default: int, help: str) -> Integer:
    return Integer(default, help=help).tag(config=True)


class SandboxPolicy(Configurable):
    """The limits of one graded submission: its kernel's resources, its time, its output."""

    # -- the kernel process (setrlimit through prlimit) ------------------------------------
    memory_mb = _mb(6144, "Address space of the kernel process (MB); torch alone maps about 1.5 GB.")
    processes = Integer(128, help="Processes of the kernel's uid: a fork bomb stops here.").tag(config=True)
    file_size_mb = _mb(64, "Largest file the kernel may write (MB).")
    cpu_seconds = Integer(900, help="CPU time of the kernel process (s).").tag(config=True)
    open_files = Integer(512, help="Open files of the kernel process.").tag(config=True)
    disk_mb = _mb(256, "Size of each writable tmpfs in the sandbox (/tmp, the working folder) (MB).")

    # -- the whole submission (watched every 0.2 s) --------------------------------------
    total_memory_mb = _mb(4096, "Resident memory (proportional set size) of all the submission's "
                                "processes together (MB).")
    kernel_dir_files = Integer(64, help="Files in the host-backed kernel folder (sockets, "
                                        "connection file).").tag(config=True)
    kernel_dir_mb = _mb(16, "Bytes in the host-backed kernel folder (MB).")

    # -- time --------------------------------------------------------------------------------
    cell_timeout = Integer(60, help="Wall-clock limit of one cell (s); the cell is interrupted.").tag(config=True)
    notebook_timeout = Integer(600, help="Wall-clock limit of a whole notebook (s); later cells "
                                         "are not run.").tag(config=True)
    interrupt_timeout = Integer(10, help="After a cell's time limit, how long the kernel has to answer "
                                       "the interrupt (s); one that does not is stopped and the later "
                                       "cells are not run.").tag(config=True)
    feedback_seconds = Integer(120, help="Longest the feedback page of one submission may take to "
                                         "render (s); past it the submission keeps its score and its "
                                         "outcome says the page was not made.").tag(config=True)

    # -- what comes back from the kernel ---------------------------------------------------------
    output_bytes = Integer(2_000_000, help="Output kept per notebook (streams, rich output, display "
                                           "updates, widget messages); the rest is dropped.").tag(config=True)
    message_mb = _mb(64, "Largest single message the trusted side accepts from the kernel (MB).")
    results_bytes = Integer(MAX_RESULTS_BYTES, help="Largest recorded-results file parsed per "
                                                    "exercise (bytes).").tag(config=True)


def default(name: str) -> int:
    """The default of one limit (for documentation and tests)."""
    return SandboxPolicy.class_traits()[name].default_value


# --------------------------------------------------------------------------- #
# The README's table of limits is generated from this class.
# --------------------------------------------------------------------------- #

README_BEGIN = "<!-- limits: generated by `python -m autograder.config --readme`; do not edit -->"
README_END = "<!-- /limits -->"


def _shown(name: str, value: int) -> str:
    if name.endswith("_mb"):
        return f"{value} MB"
    if name.endswith("_bytes"):
        return f"{value / 1_000_000:g} MB"
    if name.endswith("_seconds") or name.endswith("_timeout"):
        return f"{value} s"
    return str(value)


def readme_block() -> str:
    """The README's table of every limit (defaults), between its markers."""
    from helpers.grading import contract

    rows = ["| `c.SandboxPolicy.` | default | what it bounds |", "|---|---|---|"]
    for name, trait in SandboxPolicy.class_traits(config=True).items():
        rows.append(f"| `{name}` | {_shown(name, trait.default_value)} | {trait.help} |")
    fixed = (f"Fixed by the data format (`helpers/grading/contract.py`): at most "
             f"{contract.MAX_ELEMENTS // 1_000_000} million numbers per value, tuples nested at most "
             f"{contract.MAX_DEPTH} deep. Collecting (`autograder/intake/collect.py`): at most "
             f"{MAX_NOTEBOOK_MB} MB per file, {MAX_ZIP_MB} MB in all for a zip.")
    return "\n".join([README_BEGIN, *rows, "", fixed, README_END])


def update_readme(path: Path) -> bool:
    """Rewrite the generated block of ``path``; True if it changed."""
    text = path.read_text()
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    new = text[:start] + readme_block() + text[end:]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--readme"]:
        from autograder.course import REPO

        readme = REPO / "README.md"
        print("README.md updated" if update_readme(readme) else "README.md already up to date")
    else:
        print(readme_block())
