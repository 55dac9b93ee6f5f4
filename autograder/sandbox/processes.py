"""No process outlives its grading: find, stop and reap what a submission started.

Linux only (reads ``/proc``). A grading process marks itself a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``), so that processes a kernel leaves behind —
even ones that daemonise with a double fork — are re-parented to it instead of to
init; after each submission every new descendant is killed and reaped. When the
sandbox gives each kernel its own uid, every process of that uid is killed too.
"""
from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path
from typing import Callable

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children (so they can be found and reaped)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat_field(pid: int, field: int) -> int | None:
    """Field ``field`` (numbered as in proc(5): 4 is the parent pid) of ``/proc/<pid>/stat``, or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return int(text[text.rindex(")") + 2:].split()[field - 3])
    except (OSError, ValueError, IndexError):
        return None


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, real uid) of a process, or None if it is gone."""
    ppid = _stat_field(pid, 4)
    try:
        return (ppid, Path(f"/proc/{pid}").stat().st_uid) if ppid is not None else None
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """When the process ``pid`` started (clock ticks after boot: ``/proc/<pid>/stat`` field 22), or None if it
    is gone. With the pid it names one process: a later process that reuses the number has a later start."""
    return _stat_field(pid, 22)


def all_processes() -> dict[int, tuple[int, int]]:
    """{pid: (parent pid, uid)} of every visible process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info:
                out[int(entry)] = info
    return out


def descendants(pid: int | None = None) -> set[int]:
    """Every process below ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for p, (ppid, _uid) in all_processes().items():
        children.setdefault(ppid, []).append(p)
    found: set[int] = set()
    stack = [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in found:
                found.add(c)
                stack.append(c)
    return found


def _kill_until_gone(find: Callable[[], set[int]]) -> int:
    """SIGKILL what ``find`` returns, reap, and repeat (a dying process may still fork). Returns how many."""
    killed = 0
    for _ in range(5):
        pids = find()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        reap()
    return killed


def kill_new_descendants(before: set[int], keep: set[int] = frozenset()) -> int:
    """SIGKILL every descendant of this process not in ``before`` nor in ``keep`` (a warm template's
    own processes), then reap them. Returns how many."""
    return _kill_until_gone(lambda: descendants() - before - keep)


def kill_uid(uid: int) -> int:
    """SIGKILL every process of ``uid`` (a sandbox's own, never-reused uid). Returns how many."""
    if uid <= 0:
        return 0
    return _kill_until_gone(lambda: {p for p, (_ppid, u) in all_processes().items() if u == uid})


def reap() -> None:
    """Collect the exit status of finished children (re-parented orphans included)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def rss_bytes(pids: set[int]) -> int:
    """Memory these processes use together (bytes): the sum of their proportional set sizes
    (``Pss`` in ``/proc/<pid>/smaps_rollup``: a page shared by n processes counts 1/n in each, so
    a fork bomb's copy-on-write children are not counted n times), or resident sizes where the
    kernel gives no ``Pss``."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
            else:
                raise ValueError("no Pss")
        except (OSError, ValueError, IndexError):
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            except (OSError, ValueError, IndexError):
                continue
    return total


def cpu_seconds(pids: set[int]) -> float:
    """CPU time (user + system, seconds) of these processes and of their children that have ended and
    been waited for: fields 14-17 of ``/proc/<pid>/stat`` (utime, stime, cutime, cstime; every thread
    of a process is in its utime/stime, ended threads included). Processes that are gone count 0."""
    ticks = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
            ticks += sum(int(v) for v in text[text.rindex(")") + 2:].split()[11:15])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """The CPU time of a process tree, from outside it, sampled (``sample``) while it runs.

    The total is the sum of the increases of ``cpu_seconds(tree)`` between samples. A process that
    ends is waited for by its parent (or the sandbox's init), whose cutime/cstime then hold its time,
    so the sum grows without a gap; a process whose parent does not wait for it (SIGCHLD ignored)
    takes its time away when it ends: what it used up to the sample before stays counted. What is
    missed: the time since the last sample of a process ended that way (at most one interval each)."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._last = 0.0
        self.total = 0.0

    def sample(self, pids: set[int]) -> float:
        with self._lock:
            now = cpu_seconds(pids)
            self.total += max(0.0, now - self._last)
            self._last = now
            return self.total
