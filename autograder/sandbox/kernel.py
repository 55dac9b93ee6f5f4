"""The sandbox a student's kernel runs in (Linux: bubblewrap + resource limits).

What the kernel sees: the system's /usr (read-only), the Python installation and
the virtual environment (read-only), the ``helpers`` package (read-only), its own
working folder (the assignment's public files, writable) and the grader's inputs
(read-only). It does not see the course folder, the gradebook, the source
notebooks, the reference, other students, the host's /tmp or /home, and has no
network (an empty network namespace), its own PID namespace and a clean
environment. Limits (setrlimit through ``prlimit``): address space, processes,
file size, CPU time, open files. When the grader runs as root the kernel is
started as an unused uid (one per grading process) with no capabilities, so the
process limit holds and one sandbox cannot starve another.
"""
from __future__ import annotations

import os
import secrets
import shutil
import sys
import threading
from pathlib import Path
from typing import Callable

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import List as TList
from traitlets import Integer, Unicode

import helpers
from autograder.config import SandboxPolicy
from helpers.grading.contract import HARVEST_ENV, Harvest

class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot start here."""


UNSAFE_WARNING = (
    "UNSAFE: grading without a sandbox. Student code runs as you, can read and write the "
    "course folder, the gradebook and the reference solutions, reach the network and use "
    "unlimited memory and processes. Scores are still computed outside the student's process "
    "from plain numeric outputs, but a hostile submission can tamper with files and other students.")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


HOME = "/home/student"
WORK = f"{HOME}/work"


def new_kernel_uid() -> int:
    """A fresh, unused uid for one sandboxed kernel (when grading as root), so that processes
    a submission left behind (a fork bomb) cannot use up the process budget of the next one."""
    return 200_000 + secrets.randbelow(1_000_000_000)


#: The namespaces every sandbox has of its own (besides PIDs, which cold start unshares too).
UNSHARE = ["--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]


def system_view(limits: SandboxPolicy, more_parents: list[Path] = ()) -> list[str]:
    """bubblewrap's arguments for what every sandbox sees: the system's /usr and libraries, a few
    files of /etc, /proc, /dev, size-limited tmpfs on /tmp and the home folder, and Python, the
    venv, the package folders and the helpers package read-only at their own paths (with the
    folders above them, and above ``more_parents``, made passable)."""
    mb = 1024 * 1024
    cmd = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "lib32", "sbin"):
        p = Path("/") / name
        if p.is_symlink():
            cmd += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            cmd += ["--ro-bind", str(p), str(p)]
    cmd += ["--perms", "0755", "--dir", "/etc"]
    for f in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "passwd", "group",
              "hosts", "alternatives", "fonts"):
        cmd += ["--ro-bind-try", f"/etc/{f}", f"/etc/{f}"]
    disk = str(limits.disk_mb * mb)
    cmd += ["--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", disk, "--tmpfs", "/tmp",  # before any bind under /tmp
            "--perms", "0755", "--dir", "/home"]
    cmd += ["--perms", home_mode(), "--size", disk, "--tmpfs", HOME]
    # Python, the venv, the package folders on sys.path and the helpers package, read-only, at their own paths.
    binds = sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.prefix),
                    Path(helpers.__file__).resolve().parent, *package_dirs()})
    parents = sorted({a for p in [*binds, *more_parents] for a in p.parents
                      if a not in (Path("/"), Path("/tmp"))}, key=lambda a: len(a.parts))
    for a in parents:  # folders bwrap creates are 0700 by default: the kernel's user must pass through
        cmd += ["--perms", "0755", "--dir", str(a)]
    for p in binds:
        cmd += ["--ro-bind", str(p), str(p)]
    return cmd


def home_mode() -> str:
    """The home folder's mode: writable by the kernel's own uid when grading as root."""
    return "0777" if os.geteuid() == 0 else "0755"


def write_overlays(workdir: Path, files: dict[str, bytes]) -> list[tuple[Path, Path]]:
    """Write the files a graded run sees in place of the helpers package's own (path relative to the
    package -> bytes) into ``workdir/overlay/``; return (written file, package file) pairs for
    ``sandbox_command``. A path that leaves the package or names no file of it is a ValueError (the
    plan is the course's, so this is an authoring mistake, never a student's)."""
    package = Path(helpers.__file__).resolve().parent
    pairs = []
    for i, (rel, data) in enumerate(sorted(files.items())):
        target = (package / rel).resolve()
        if package not in target.parents or not target.is_file() or target.is_symlink():
            raise ValueError(f"sandbox file {rel!r} is not a file of the helpers package")
        written = workdir / "overlay" / f"{i}-{target.name}"
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_bytes(data)
        pairs.append((written, target))
    return pairs


def sandbox_command(workdir: Path, limits: SandboxPolicy, env: dict[str, str], uid: int,
                    overlays: list[tuple[Path, Path]] = ()) -> list[str]:
    """The command prefix that starts a program in the sandbox.

    workdir: the per-notebook folder prepared by ``prepare_workdir``:
             ``kernel/`` (connection file, ipc sockets; bound read-write),
             ``work/`` (the assignment's public files; bound read-only into the
             kernel's working folder, a size-limited tmpfs),
             the grader's folder (``helpers.grading.contract.Harvest``): ``inputs/`` (read-only)
             and ``outputs/<exercise>.json`` (each file bound read-write: no new files
             can be created on the host).
    env:     the complete environment inside (everything else is cleared).
    uid:     the kernel's uid when grading as root (see ``new_kernel_uid``).
    overlays: (file in workdir, package file) pairs from ``write_overlays``: each bound read-only over
             the package's file.
    """
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: install it (Debian/Ubuntu: apt-get install bubblewrap) "
            "or pass --unsafe-no-sandbox to grade without protection")
    mb = 1024 * 1024
    cmd = ["prlimit", f"--as={limits.memory_mb * mb}", f"--nproc={limits.processes}",
           f"--fsize={limits.file_size_mb * mb}", f"--cpu={limits.cpu_seconds}",
           f"--nofile={limits.open_files}", "--core=0", "--", bwrap,
           "--unshare-pid", *UNSHARE, "--die-with-parent", "--new-session", "--hostname", "sandbox"]
    harvest = Harvest.in_workdir(workdir)
    cmd += system_view(limits, [harvest.outputs])
    for written, target in overlays:  # after the package's bind: these hide its files of the same path
        cmd += ["--ro-bind", str(written), str(target)]
    # kernel/ must be a host folder (the ipc sockets are created there and reached from outside);
    # it is the one place the kernel could create host files, bounded only by the time limits.
    cmd += ["--bind", str(workdir / "kernel"), str(workdir / "kernel"),
            "--ro-bind", str(harvest.inputs), str(harvest.inputs),
            "--perms", "1777", "--dir", WORK,  # writable by the kernel, on the size-limited tmpfs
            "--perms", "0755", "--dir", str(harvest.outputs)]
    for f in sorted(harvest.outputs.iterdir()):
        cmd += ["--bind", str(f), str(f)]
    for f in sorted((workdir / "work").iterdir()):
        cmd += ["--ro-bind", str(f), f"{WORK}/{f.name}"]
    cmd += ["--chdir", WORK, "--clearenv"]
    for k, v in env.items():
        cmd += ["--setenv", k, v]
    cmd.append("--")
    if os.geteuid() == 0:  # drop root for good: the kernel runs as an unused uid with no capabilities
        cmd += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return cmd


def package_dirs() -> set[Path]:
    """The site-packages folders Python imports from (a venv may take its packages from a folder
    outside ``sys.prefix``, e.g. a shared environment on a hub). Only folders named site-packages or
    dist-packages: never another sys.path entry, such as the repository an editable install adds
    (it holds the reference and the cases)."""
    found = set()
    for entry in sys.path:
        p = Path(entry).resolve() if entry else None
        if p is not None and p.name in ("site-packages", "dist-packages") and p.is_dir():
            found.add(p)
    return found


def prepare_workdir(workdir: Path, exercises: list[str], uid: int) -> None:
    """Create the folder layout the sandbox expects and give it to the kernel's user:
    ``work/``, ``kernel/`` and the grader's folder, with one pre-made output file per exercise.
    ``workdir`` itself is 0700, the grader's: no other user of the machine can reach anything in it."""
    harvest = Harvest.in_workdir(workdir)
    for folder in (workdir / "work", workdir / "kernel", harvest.inputs, harvest.outputs):
        folder.mkdir(parents=True, exist_ok=True)
    for name in exercises:
        harvest.output_file(name).touch()
    workdir.chmod(0o700)  # the grader's alone, always: nobody else on the machine reads inputs or outputs
    if os.geteuid() == 0:
        for path in [workdir / "kernel", *harvest.outputs.iterdir()]:
            os.chown(path, uid, uid, follow_symlinks=False)
        # Inside, what the sandbox binds must be readable by the kernel's uid (whatever the umask made
        # them): bubblewrap mounts these paths themselves, so the 0700 work folder above them, on the
        # host, stays closed to every other user.
        for path in workdir.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644 if path.parent != harvest.outputs else 0o600)


def kernel_env(workdir: Path, harvest: bool = True) -> dict[str, str]:
    """The whole environment of the sandboxed kernel: nothing of the grader's leaks in."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": HOME,
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{HOME}/.mpl",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "TQDM_DISABLE": "1",
    }
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # machine quirks numpy relies on
        if k in os.environ:
            env[k] = os.environ[k]
    if harvest:
        env[HARVEST_ENV] = str(Harvest.in_workdir(workdir).root)
    return env


class BoundedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse any message over ``SandboxPolicy.message_mb``: the
    trusted process never holds a huge message (ZeroMQ drops the connection instead)."""

    def _create_connected_socket(self, channel: str, identity: bytes | None = None):
        sock = super()._create_connected_socket(channel, identity)
        sock.setsockopt(zmq.MAXMSGSIZE, SandboxPolicy(parent=self).message_mb * 1024 * 1024)
        return sock


def lock_kernel_dir(workdir: Path) -> None:
    """Once the kernel is up (its sockets exist), take the kernel folder back from its uid: it can no
    longer create, grow or replace any file there (root only; otherwise the watchdog bounds it)."""
    if os.geteuid() != 0:
        return
    kernel = workdir / "kernel"
    os.chown(kernel, 0, 0)
    kernel.chmod(0o755)
    conn = kernel / "connection.json"
    if conn.exists():
        os.chown(conn, 0, 0, follow_symlinks=False)
        conn.chmod(0o644)


def folder_usage(folder: Path, limit_files: int) -> tuple[int, int]:
    """(files, bytes) under ``folder``, counting stops after ``limit_files + 1`` files."""
    files = size = 0
    for root, dirs, names in os.walk(folder):
        for n in names + dirs:
            files += 1
            try:
                size += os.lstat(os.path.join(root, n)).st_size
            except OSError:
                pass
            if files > limit_files:
                return files, size
    return files, size


class Watchdog(threading.Thread):
    """Polls a running submission: the resident memory of all its processes and the size of its
    host-backed kernel folder. Over a limit, it kills every process and says why (``reason``). It also
    meters the CPU time of all the submission's processes, from outside them (``cpu``, issue 27 §1)."""

    def __init__(self, limits: SandboxPolicy, workdir: Path, pids: Callable[[], set[int]],
                 kill: Callable[[], None], interval: float = 0.2):
        super().__init__(daemon=True, name="sandbox-watchdog")
        self.limits, self.workdir, self.pids, self.kill, self.interval = limits, workdir, pids, kill, interval
        self.reason: str | None = None
        from autograder.sandbox.processes import CpuMeter

        self.cpu = CpuMeter()
        self._stop_event = threading.Event()

    def run(self) -> None:
        from autograder.sandbox.processes import rss_bytes

        mb = 1024 * 1024
        while not self._stop_event.wait(self.interval):
            pids = self.pids()
            self.cpu.sample(pids)
            rss = rss_bytes(pids)
            files, size = folder_usage(self.workdir / "kernel", self.limits.kernel_dir_files)
            if rss > self.limits.total_memory_mb * mb:
                self.reason = (f"memory limit ({self.limits.total_memory_mb} MB for all the submission's "
                               "processes together) reached: the kernel was stopped")
            elif files > self.limits.kernel_dir_files or size > self.limits.kernel_dir_mb * mb:
                self.reason = "disk limit of the kernel folder reached: the kernel was stopped"
            if self.reason:
                self.kill()
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(2)


#: IPython settings of every grading kernel, cold or warm. No command history: nobody reads it, and
#: IPython restarts its history thread after every fork a cell makes, so a cell after a fork bomb
#: (the processes limit reached) would fail only for wanting that thread.
KERNEL_ARGUMENTS = ("--HistoryManager.enabled=False",)


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel behind ``command_prefix``.

    The connection uses the ``ipc`` transport (unix sockets in the bound work
    folder): a new network namespace has its own loopback, so TCP cannot cross.
    Interrupts are sent as messages (a signal would stop at bubblewrap).
    """

    command_prefix = TList([])

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        assert self.kernel_spec is not None
        self.kernel_spec.interrupt_mode = "message"
        cmd = super().format_kernel_cmd(extra_arguments)
        if cmd and Path(cmd[0]).name.startswith("python"):
            cmd[0] = sys.executable  # the venv's python, visible inside the sandbox
        return list(self.command_prefix) + cmd + list(KERNEL_ARGUMENTS)

    log_path = Unicode("", help="File receiving the kernel process's own stdout/stderr.")
    uid = Integer(0, help="The kernel's uid inside the sandbox (when grading as root).")
    #: A warm template (``autograder.sandbox.warm.Template``) and the request it forks the kernel for;
    #: None: the kernel starts cold, behind ``command_prefix``.
    warm = None
    warm_request: dict | None = None

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        if self.warm is None:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        prov = self.provisioner
        with open(self.log_path or os.devnull, "ab") as log:  # the kernel's console, as for a cold one
            process = self.warm.spawn(self.warm_request, log.fileno())
        prov.process, prov.pid, prov.pgid = process, process.pid, None
        self._reconcile_connection_info(prov.connection_info)

    async def _async_pre_start_kernel(self, **kw):
        if self.log_path and self.warm is None:  # keep the kernel's console out of the grader's terminal
            # (a warm kernel gets the same file from _async_launch_kernel)
            handle = open(self.log_path, "ab")  # noqa: SIM115 - owned by the kernel process
            kw.setdefault("stdout", handle)
            kw.setdefault("stderr", handle)
        return await super()._async_pre_start_kernel(**kw)

    def write_connection_file(self, **kwargs) -> tuple[str, dict]:
        result = super().write_connection_file(**kwargs)
        if os.geteuid() == 0 and (self.warm is not None or (self.command_prefix and "setpriv" in self.command_prefix)):
            os.chown(self.connection_file, self.uid, self.uid)  # the kernel (uid nobody) must read it
        return result
