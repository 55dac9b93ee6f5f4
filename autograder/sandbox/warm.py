"""Warm kernels: each submission's kernel is forked from a template that imported the course's modules once.

A cold sandboxed kernel costs about 2.8 s before the first graded cell (bubblewrap, Python, importing
torch, matplotlib and IPython, then stopping it: benchmarks/results/cluster.md). Here each grading
process keeps one *template* (``zygote.py``, run inside the sandbox's walls by bubblewrap) that has
imported those modules and never runs student code; for each submission it forks a child that enters
a sandbox of its own before any student byte is read (its own mount, PID, network, IPC, UTS and cgroup
namespaces, fresh tmpfs, its own uid, no capabilities, no_new_privs, the same rlimits; see
``zygote.py`` for the steps), and becomes that submission's kernel. The watchdog, the output and memory
caps and everything after the kernel starts are the same as for a cold kernel.

Used when it is safe: grading as root (each kernel its own uid), bubblewrap present, Linux pidfds; the
template must start and have one thread. Otherwise, or with ``c.GradingSettings.warm_kernels = False``,
each kernel starts cold, and the grading process says so once, in one line (``fallback_reason``).

The template is replaced when what it imported may have changed (the helpers package's files, the
preloaded modules, this code or the sandbox's sizes: ``_key``), and a forked grading process never uses
its parent's template (it starts its own).
"""
from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import helpers
from autograder.config import SandboxPolicy
from autograder.sandbox.kernel import (HOME, KERNEL_ARGUMENTS, UNSHARE, WORK, bwrap_path, home_mode, kernel_env, system_view)
from helpers.grading.contract import Harvest

ZYGOTE = Path(__file__).with_name("zygote.py")
#: What the template imports once (what a graded run of the course's notebooks imports; a module that
#: is missing is skipped). Plotting too: a notebook's non-demo cells may import it.
PRELOAD = ("numpy", "scipy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils.data",
           "matplotlib", "matplotlib.pyplot", "tqdm", "helpers", "helpers.grading.contract",
           "helpers.grading.checking", "helpers.grading.challenges", "IPython", "ipykernel.kernelapp",
           "ipykernel.ipkernel")
START_SECONDS = 180  # the template's imports, on a busy host
LOG = "template.log"  # in the spool: what the template itself prints (a kernel's /tmp hides the spool)
SPAWN_SECONDS = 60


class WarmUnavailable(RuntimeError):
    """The template cannot start or fork here: grade with cold kernels."""


def unsafe_host() -> str | None:
    """Why this host cannot fork sandboxed kernels from a template, or None."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() != 0:
        return "not grading as root (each kernel needs a uid of its own)"
    if bwrap_path() is None:
        return "bubblewrap is not installed"
    if not hasattr(os, "pidfd_open") or not hasattr(socket, "send_fds"):
        return "this Python has no pidfd_open or send_fds"
    return None


def _key(limits: SandboxPolicy) -> str:
    """What the template depends on: the helpers package's files (path, size, modification time), the
    preloaded modules, the template's own code, the interpreter and the sandbox's sizes."""
    h = hashlib.sha256()
    package = Path(helpers.__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            st = path.stat()
            h.update(f"{path.relative_to(package)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(json.dumps([PRELOAD, sys.executable, limits.disk_mb]).encode())
    h.update(ZYGOTE.read_bytes())
    return h.hexdigest()


class _QuietFallback(logging.Filter):
    """jupyter_client logs a failed start with its traceback; a template's refusal is a fallback that
    the grader reports in one line (``_give_up``), not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not isinstance(record.msg, WarmUnavailable) and not (
            record.exc_info and isinstance(record.exc_info[1], WarmUnavailable))


def kernel_log(parent: logging.Logger | logging.LoggerAdapter) -> logging.Logger:
    """The logger of a warm kernel's manager: ``parent``'s, without the fallback's traceback."""
    base = parent.logger if isinstance(parent, logging.LoggerAdapter) else parent
    log = logging.getLogger(f"{base.name}.warm")
    if not any(isinstance(f, _QuietFallback) for f in log.filters):
        log.addFilter(_QuietFallback())
    return log


class WarmKernel:
    """A forked kernel as jupyter_client's local provisioner sees a process (``subprocess.Popen``'s
    ``pid``, ``poll``, ``wait``, ``kill``, ``terminate``, ``send_signal``), through a pidfd: the pid is
    the sandbox's init (``B``), whose end is the kernel's; it is not this process's child, so its
    exit status is not known: ``returncode`` is -9 when it was killed from here, else 1."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._fd: int | None = os.pidfd_open(pid)
        self._killed = False

    def _ended(self, timeout: float) -> bool:
        if self._fd is None:
            return True
        if select.select([self._fd], [], [], timeout)[0]:
            os.close(self._fd)
            self._fd = None
            self.returncode = -signal.SIGKILL if self._killed else 1
            return True
        return False

    def poll(self) -> int | None:
        self._ended(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended(timeout if timeout is not None else 1e9):
            raise subprocess.TimeoutExpired("warm kernel", timeout)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        # Only SIGKILL reaches a PID namespace's init from outside it; any other request to stop is that.
        if self._fd is not None:
            self._killed = True
            try:
                signal.pidfd_send_signal(self._fd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    terminate = kill


class Template:
    """One grading process's template: a bubblewrap sandbox running ``zygote.py``."""

    def __init__(self, limits: SandboxPolicy, key: str, base: str | None):
        self.key, self.owner = key, os.getpid()
        self.spool = Path(tempfile.mkdtemp(prefix="autograder-warm-", dir=base))
        self.spool.chmod(0o700)
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        env = kernel_env(self.spool, harvest=False)
        cmd = [bwrap_path(), *UNSHARE, "--die-with-parent", "--new-session", "--hostname", "sandbox",
               "--cap-add", "ALL", *system_view(limits, [self.spool]),
               "--bind", str(self.spool), str(self.spool), "--chdir", "/", "--clearenv"]
        for k, v in env.items():
            cmd += ["--setenv", k, v]
        cmd += ["--", sys.executable, "-c", ZYGOTE.read_text(),
                json.dumps({"fd": theirs.fileno(), "preload": list(PRELOAD)})]
        self._log = open(self.spool / LOG, "ab")  # noqa: SIM115 - the template's (hidden from every kernel)
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=self._log, close_fds=True)
        finally:
            theirs.close()
        ready = self._receive(START_SECONDS)
        if not ready or not ready.get("ready"):
            self.close()
            raise WarmUnavailable("the template did not start" if not ready else
                                  f"the template has {ready.get('threads')} threads after its imports")
        self.pid = int(ready["pid"]) if "pid" in ready else None

    def _receive(self, timeout: float) -> dict | None:
        if not select.select([self._sock], [], [], timeout)[0]:
            return None
        data = self._sock.recv(1 << 16)
        return json.loads(data) if data else None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pids(self) -> set[int]:
        """The template's own processes (bubblewrap and the template): never a submission's."""
        from autograder.sandbox import processes

        own = {self.proc.pid} | ({self.pid} if self.pid else set())
        own |= {p for p, (ppid, uid) in processes.all_processes().items() if ppid == self.proc.pid and uid == 0}
        return own

    def spawn(self, request: dict, log_fd: int) -> WarmKernel:
        """Fork a kernel for one submission (``request``: see ``kernel_request``)."""
        with self._lock:
            socket.send_fds(self._sock, [json.dumps(request).encode()], [log_fd])
            reply = self._receive(SPAWN_SECONDS)
        if reply is None:
            self.close()
            raise WarmUnavailable("the template did not answer")
        if "error" in reply:
            if reply.get("pid"):
                try:
                    os.kill(int(reply["pid"]), signal.SIGKILL)
                except OSError:
                    pass
            raise WarmUnavailable(f"the template could not start a sandboxed kernel: {reply['error']}")
        return WarmKernel(int(reply["pid"]))

    def close(self) -> None:
        if self.owner != os.getpid():
            return  # a forked grading process's copy: the template is its parent's
        try:
            self._sock.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._log.close()
        shutil.rmtree(self.spool, ignore_errors=True)


_template: Template | None = None
_unavailable: str | None = None
_state_lock = threading.Lock()


def template(limits: SandboxPolicy, base: str | None) -> Template | None:
    """This grading process's template (started or replaced when needed), or None: grade cold, and
    the reason has been said once (``fallback_reason``)."""
    global _template, _unavailable
    with _state_lock:
        if _unavailable is None and (why := unsafe_host()):
            _give_up(why)
        if _unavailable is not None:
            return None
        key = _key(limits)
        current = _template
        if current is not None and (current.owner != os.getpid() or current.key != key or not current.alive()):
            current.close()
            _template = current = None
        if current is None:
            try:
                _template = current = Template(limits, key, base)
            except (WarmUnavailable, OSError) as e:
                _give_up(str(e))
                return None
        return current


def _give_up(why: str) -> None:
    global _unavailable
    _unavailable = why
    print(f"autograder: warm kernels are off here ({why}): each submission starts its own sandboxed kernel "
          "(cold start, about 2.5 s more each)", file=sys.stderr, flush=True)


def fallback_reason() -> str | None:
    """Why this process grades with cold kernels (None: warm, or not tried yet)."""
    return _unavailable


def disable(why: str) -> None:
    """Stop using the template in this process (e.g. it failed to start a kernel); say so once."""
    global _template
    with _state_lock:
        if _template is not None:
            _template.close()
            _template = None
        if _unavailable is None:
            _give_up(why)


def kept_pids() -> set[int]:
    """This process's template's own processes: what cleaning up after a submission must not kill."""
    current = _template
    return current.pids() if current is not None and current.owner == os.getpid() and current.alive() else set()


@atexit.register
def _close() -> None:
    if _template is not None:
        _template.close()


def kernel_request(workdir: Path, limits: SandboxPolicy, env: dict[str, str], uid: int,
                   overlays: list[tuple[Path, Path]], connection_file: Path, spool: Path) -> dict:
    """What the template's child builds for one submission: the same view, limits and uid as
    ``kernel.sandbox_command`` gives a cold kernel.

    binds:  [host path, path inside, read-only]: the kernel folder (read-write: the ipc sockets), the
            grader's inputs (read-only), each pre-made output file (read-write), each public file into
            the working folder (read-only), and the task's replaced package files (read-only);
    tmpfs:  [path, bytes, mode]: /tmp (which hides the spool), /dev/shm and the home folder;
    dirs:   [path, mode]: the working folder (1777) and the outputs folder (0755);
    limits: setrlimit names and values."""
    mb = 1024 * 1024
    harvest = Harvest.in_workdir(workdir)
    binds = [[str(workdir / "kernel"), str(workdir / "kernel"), False],
             [str(harvest.inputs), str(harvest.inputs), True]]
    binds += [[str(f), str(f), False] for f in sorted(harvest.outputs.iterdir())]
    binds += [[str(f), f"{WORK}/{f.name}", True] for f in sorted((workdir / "work").iterdir())]
    binds += [[str(written), str(target), True] for written, target in overlays]
    disk = limits.disk_mb * mb
    tmpfs = [["/tmp", disk, 0o1777], ["/dev/shm", disk, 0o1777], [HOME, disk, int(home_mode(), 8)]]
    if Path("/tmp") not in spool.parents:
        tmpfs.append([str(spool), mb, 0o755])  # hides every other submission's folder
    return {"uid": uid, "binds": binds, "tmpfs": tmpfs,
            "dirs": [[WORK, 0o1777], [str(harvest.outputs), 0o755]],
            "limits": {"RLIMIT_AS": limits.memory_mb * mb, "RLIMIT_NPROC": limits.processes,
                       "RLIMIT_FSIZE": limits.file_size_mb * mb, "RLIMIT_CPU": limits.cpu_seconds,
                       "RLIMIT_NOFILE": limits.open_files, "RLIMIT_CORE": 0},
            "env": env, "cwd": WORK, "connection_file": str(connection_file), "arguments": list(KERNEL_ARGUMENTS),
            # a task replaced files of the helpers package (15's withheld labels): none of the template's
            # helpers modules is kept, so that what the kernel imports is what its sandbox shows
            "fresh_modules_under": [str(Path(helpers.__file__).resolve().parent) + "/"] if overlays else []}
