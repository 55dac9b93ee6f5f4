"""Seeding and set-up: one call makes Python, NumPy and PyTorch repeatable, and sane on a shared CPU.

    rng = seed_everything(0)        # the first line of every notebook's setup cell

Besides the seeds, ``seed_everything`` sets how many threads torch and NumPy's BLAS may use
(``configure_threads``). Their defaults, one thread per core, are made for one big job on an
idle machine; the course's models are small, and on a busy laptop or a JupyterHub node the
threads of one kernel wait for each other while another process holds a core (measured in
``benchmarks/threads.py``: results in ``benchmarks/results/``). The policy:

- ``DL_COURSE_THREADS=N`` in the environment: N threads (an instructor's or student's override);
- else, if ``OMP_NUM_THREADS`` is set: nothing is changed (torch and BLAS already follow it);
- else: half of the CPUs this process may use (its affinity mask and, in a container, its
  cgroup CPU quota), at least 1 and at most 4.

Nothing is seeded or configured at import time: call ``seed_everything`` at the top of a notebook.
"""
from __future__ import annotations

import math
import os
import random
import sys
from pathlib import Path

import numpy as np

#: The most threads the automatic policy gives a notebook: the course's models (MLPs and small
#: CNNs on 28 x 28 digits, batches of 64) gain little beyond this, and lose a lot under load.
MAX_AUTO_THREADS = 4

THREADS_ENV = "DL_COURSE_THREADS"


def seed_everything(seed: int = 0, deterministic_torch: bool = True,
                    threads: int | str | None = "auto") -> np.random.Generator:
    """Seed ``random``, NumPy's legacy global RNG and torch (when installed); set the thread count.

    - seed: the seed of every generator
    - deterministic_torch: ask torch for deterministic algorithms (a warning, not an error,
      where one has none)
    - threads: "auto" (the policy of ``configure_threads``), an int (exactly that many), or
      None (leave the thread counts alone)

    Returns a fresh ``numpy.random.Generator`` seeded with ``seed``, the RNG that
    course code should prefer over the legacy global state.
    """
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses started later
    if threads is not None:
        configure_threads(None if threads == "auto" else threads)
    if "torch" in sys.modules or _torch_importable():
        import torch

        torch.manual_seed(seed)
        if deterministic_torch:
            _deterministic_torch(torch)
    return np.random.default_rng(seed)


def _deterministic_torch(torch) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, without its cost at start-up.

    That call also imports the compiler's configuration (``torch._inductor.config``, about 1.1 s:
    a third of a notebook's start, and of every graded submission's). Eager code reads only
    the flag that ``torch._C._set_deterministic_algorithms`` sets, and so do most of the
    compiler's choices (``torch.are_deterministic_algorithms_enabled()``); the compiler's own
    flag, which skips benchmarking kernels on a GPU, is set only where its configuration is
    already loaded. The course compiles nothing.
    """
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if set_flag is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
        return
    set_flag(True, warn_only=True)


def available_cpus() -> int:
    """How many CPUs this process may really use: its affinity mask, capped by a cgroup quota.

    A JupyterHub pod often sees all of the host's cores (``os.cpu_count()`` = 64) while its
    quota (``/sys/fs/cgroup/cpu.max`` = "200000 100000") allows 2: the quota wins.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def default_threads() -> int | None:
    """The thread count the policy chooses, or None when ``OMP_NUM_THREADS`` decides.

    Raises ValueError with a readable message when ``DL_COURSE_THREADS`` is not a positive integer.
    """
    override = os.environ.get(THREADS_ENV, "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f"{THREADS_ENV}={override!r}: expected a positive whole number of threads, e.g. "
                             f"{THREADS_ENV}=2 (or unset it for the automatic choice)")
        return int(override)
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    return max(1, min(MAX_AUTO_THREADS, available_cpus() // 2))


def configure_threads(n: int | None = None) -> int | None:
    """Limit torch's intra-op threads and NumPy's BLAS threads to ``n`` (None: ``default_threads()``).

    Returns the number set, or None when nothing was changed (``OMP_NUM_THREADS`` is set).
    Safe to call again: the last call wins. torch's inter-op pool (used only by ``torch.jit``
    forks) is left alone, since it can be sized only before its first use.
    """
    if n is None:
        n = default_threads()
        if n is None:
            return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive int, got {n!r}")
    if "torch" in sys.modules or _torch_importable():
        import torch

        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an environment without it keeps BLAS's default
        pass
    else:
        threadpool_limits(limits=n, user_api="blas")
    return n


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max``, or v1's ``cfs_quota_us / cfs_period_us``), or None."""
    try:
        text = (root / "cpu.max").read_text().split()
        if len(text) == 2 and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _torch_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None
