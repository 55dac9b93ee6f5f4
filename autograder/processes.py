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


def kill_new_descendants(before: set[int]) -> int:
    """SIGKILL every descendant of this process not in ``before``, then reap them. Returns how many."""
    return _kill_until_gone(lambda: descendants() - before)


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
