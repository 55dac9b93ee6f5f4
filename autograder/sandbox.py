"""The sandbox a student's kernel runs in (Linux: bubblewrap + resource limits).

What the kernel sees: the system's /usr (read-only), the Python installation and
the virtual environment (read-only), the ``helpers`` package (read-only), its own
working folder (the assignment's public files, writable) and the grader's inputs
(read-only). It does not see the course folder, the gradebook, the source
notebooks, the reference, other students, the host's /tmp or /home, and has no
network (an empty network namespace), its own PID namespace and a clean
environment. Limits (setrlimit through ``prlimit``): address space, processes,
file size, CPU time, open files. When the grader runs as root the kernel is
started as uid 65534 (nobody) with no capabilities, so the process limit holds.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import List as TList
from traitlets import Unicode

import helpers

NOBODY = 65534


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot start here."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed kernel."""

    memory_mb: int = 6144      # address space (torch alone maps about 1.5 GB)
    processes: int = 128       # per uid: a fork bomb stops here
    file_size_mb: int = 64     # largest file the kernel may write
    cpu_seconds: int = 900     # CPU time of the kernel process
    open_files: int = 512


UNSAFE_WARNING = (
    "UNSAFE: grading without a sandbox. Student code runs as you, can read and write the "
    "course folder, the gradebook and the reference solutions, reach the network and use "
    "unlimited memory and processes. Scores are still computed outside the student's process "
    "from plain numeric outputs, but a hostile submission can tamper with files and other students.")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def sandbox_command(workdir: Path, limits: Limits, env: dict[str, str]) -> list[str]:
    """The command prefix that starts a program in the sandbox.

    workdir: the per-notebook folder, bound read-write at the same path (the
             kernel's connection file and ipc sockets live in it).
    env:     the complete environment inside (everything else is cleared).
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
           "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
           "--die-with-parent", "--new-session", "--hostname", "sandbox",
           "--ro-bind", "/usr", "/usr"]
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
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    # Python, the venv and the helpers package, read-only, at their own paths.
    binds = sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.prefix),
                    Path(helpers.__file__).resolve().parent})
    parents = sorted({a for p in [*binds, workdir] for a in p.parents if a != Path("/")}, key=lambda a: len(a.parts))
    for a in parents:  # folders bwrap creates are 0700 by default: the kernel's user must pass through
        if a != Path("/tmp"):
            cmd += ["--perms", "0755", "--dir", str(a)]
    for p in binds:
        cmd += ["--ro-bind", str(p), str(p)]
    cmd += ["--bind", str(workdir), str(workdir),
            "--ro-bind", str(workdir / "grader" / "inputs"), str(workdir / "grader" / "inputs"),
            "--chdir", str(workdir / "work"), "--clearenv"]
    for k, v in env.items():
        cmd += ["--setenv", k, v]
    cmd.append("--")
    if os.geteuid() == 0:  # drop root for good: the kernel runs as nobody with no capabilities
        cmd += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return cmd


def prepare_workdir(workdir: Path) -> None:
    """Create the folder layout the sandbox expects and give it to the kernel's user."""
    for sub in ("work", "home", "kernel", "grader/inputs", "grader/outputs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for path in [workdir, *workdir.rglob("*")]:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
        os.chmod(workdir / "grader" / "inputs", 0o555)


def kernel_env(workdir: Path, harvest: bool = True) -> dict[str, str]:
    """The whole environment of the sandboxed kernel: nothing of the grader's leaks in."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir / "home"),
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(workdir / "home" / ".mpl"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
    }
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # machine quirks numpy relies on
        if k in os.environ:
            env[k] = os.environ[k]
    if harvest:
        env["AUTOGRADER_HARVEST"] = str(workdir / "grader")
    return env


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
        return list(self.command_prefix) + cmd

    log_path = Unicode("", help="File receiving the kernel process's own stdout/stderr.")

    async def _async_pre_start_kernel(self, **kw):
        if self.log_path:  # keep the kernel's console chatter out of the grader's terminal
            handle = open(self.log_path, "ab")  # noqa: SIM115 - owned by the kernel process
            kw.setdefault("stdout", handle)
            kw.setdefault("stderr", handle)
        return await super()._async_pre_start_kernel(**kw)

    def write_connection_file(self, **kwargs) -> tuple[str, dict]:
        result = super().write_connection_file(**kwargs)
        if os.geteuid() == 0 and self.command_prefix and "setpriv" in self.command_prefix:
            os.chown(self.connection_file, NOBODY, NOBODY)  # the kernel (uid nobody) must read it
        return result
