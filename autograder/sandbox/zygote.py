"""The warm template: the program that runs inside the sandbox's walls and forks each submission's kernel.

This file is not imported by the grader: ``autograder.sandbox.warm`` runs its text with ``python -c``
inside bubblewrap (the template's view: the system's /usr, Python, the virtual environment and the
helpers package read-only, no network, and one host folder, the *spool*, where the grader prepares
each submission's work folder). So it uses the standard library only, plus the modules it pre-imports.

The template never runs student code and never reads a student's byte. It imports the course's
modules once (torch, numpy, matplotlib, IPython's kernel, helpers), then answers one request at a time
on its control socket: "start a kernel for this work folder, as this uid, under these limits". For each:

1. it forks ``A``, which unshares the mount, PID, network, IPC, UTS and cgroup namespaces and forks
2. ``B``, the new PID namespace's init. ``B``, still root with capabilities, builds the submission's own
   view (a fresh /proc, fresh tmpfs on /tmp, /dev/shm and the home folder, a fresh devpts; the spool
   hidden, and only this submission's kernel folder, inputs, output files and public files bound back,
   read-only where cold start binds them read-only), sets the resource limits, closes every inherited
   file descriptor, drops every capability (bounding set included) and becomes the submission's own
   uid with no_new_privs, checks in ``/proc/self/status`` that nothing privileged is left, and only
   then reports "ok" and forks
3. ``C``, the kernel: a clean environment, the working folder, fresh random seeds, then IPython's
   kernel app on the connection file the grader wrote. ``B`` reaps and exits with ``C``.

``A`` reports ``B``'s pid (a pid of the template's, i.e. the host's, namespace: the template is not in a
PID namespace of its own) and exits. The template is the child subreaper of everything it forked, and
reaps. What a child does to its copy of the template's memory stays in that copy (copy-on-write), and
the template is never touched by one: there is nothing to reset between submissions.
"""
import ctypes
import importlib
import json
import os
import random
import resource
import signal
import socket
import sys

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER = 4, 24, 36
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
O_PATH = getattr(os, "O_PATH", 0o10000000)

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _makedirs(path: str, mode: int) -> None:
    """Each missing folder of ``path`` made ``mode`` (0755 for the parents: the kernel's uid passes through)."""
    parts = path.strip("/").split("/")
    current = ""
    for i, part in enumerate(parts):
        current += "/" + part
        if not os.path.isdir(current):
            os.mkdir(current)
            os.chmod(current, mode if i == len(parts) - 1 else 0o755)


def _build_view(req: dict) -> None:
    """The submission's own mounts (in B: a new mount namespace, root with capabilities)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # What comes from the spool is opened now, before the mounts below hide the spool.
    held = []
    for source, target, read_only in req["binds"]:
        held.append((os.open(source, O_PATH | os.O_CLOEXEC), source, target, read_only))
    _check(libc.umount2(b"/proc", MNT_DETACH), "umount /proc")
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this PID namespace's only
    for path, size, mode in req["tmpfs"]:  # /tmp (and the spool under it), /dev/shm, the home folder
        _makedirs(path, 0o755)
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode={mode:o}")
    if os.path.isdir("/dev/pts"):  # a devpts of its own: no sibling's terminals
        _mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    for path, mode in req["dirs"]:
        _makedirs(path, mode)
        os.chmod(path, mode)
    for fd, source, target, read_only in held:
        parent = os.path.dirname(target)
        _makedirs(parent, 0o755)
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            if not os.path.isdir(target):
                os.mkdir(target, 0o755)
        elif not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
        _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
        if read_only:
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    _check(libc.sethostname(b"sandbox", 7), "sethostname")


def _limit(req: dict) -> None:
    for name, value in req["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    # A cold kernel maps the course's modules under its address-space limit; a warm one has them
    # already: a limit below what is mapped would let it run where a cold kernel could not start.
    size_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:"))
    if size_kb * 1024 > req["limits"]["RLIMIT_AS"]:
        raise RuntimeError(f"the kernel's address-space limit ({req['limits']['RLIMIT_AS'] >> 20} MB) is below "
                           f"what the course's modules map ({size_kb >> 10} MB)")


def _drop_privileges(uid: int) -> None:
    """No capability left (bounding set and ambient set included), the submission's uid and gid, and
    no way back (no_new_privs). Checked, not assumed."""
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to another uid: permitted and effective capabilities cleared
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")  # its own /proc files are its own, as after exec
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(status[key].strip(), 16) != 0:
            raise RuntimeError(f"{key} is not empty after dropping privileges")
    for key in ("Uid", "Gid"):
        if {int(x) for x in status[key].split()} != {uid}:
            raise RuntimeError(f"{key} is not the submission's after dropping privileges")
    if status["Groups"].strip():
        raise RuntimeError("supplementary groups left after dropping privileges")


def _kernel(req: dict) -> None:
    """C: the submission's kernel (never returns)."""
    os.environ.clear()
    os.environ.update(req["env"])
    os.chdir(req["cwd"])
    for name, module in list(sys.modules.items()):  # a module whose file this sandbox replaces is imported
        path = getattr(module, "__file__", None) or ""  # afresh, from the sandbox's view of it
        if any(path.startswith(top) for top in req.get("fresh_modules_under", [])):
            del sys.modules[name]
    random.seed()  # the template's draws are not the submission's: fresh entropy, as a new process has
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    sys.argv = [sys.executable, "-f", req["connection_file"]]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", req["connection_file"], *req["arguments"]])
    app.start()
    os._exit(0)


def _init(req: dict, log_fd: int, report: int) -> None:
    """B: builds the sandbox, reports, forks the kernel, reaps, exits with it (never returns)."""
    try:
        os.setsid()
        _build_view(req)
        _limit(req)
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        for fd in (1, 2):
            os.dup2(log_fd, fd)
        os.closerange(3, report)
        os.closerange(report + 1, 1 << 16)  # nothing inherited reaches the submission: no socket, no file
        _drop_privileges(int(req["uid"]))
    except BaseException as e:  # noqa: BLE001 - whatever failed, the grader hears why and no kernel runs
        os.write(report, f"error {type(e).__name__}: {e}\n".encode()[:4000])
        os._exit(126)
    os.write(report, b"ok\n")
    os.close(report)
    kernel = os.fork()
    if kernel == 0:
        try:
            _kernel(req)
        finally:
            os._exit(1)
    while True:  # the namespace's init: reap orphans; end with the kernel (which ends everything in it)
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == kernel:
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status)
                     else 128 + os.WTERMSIG(status))


def _spawn(req: dict, log_fd: int) -> dict:
    """Fork A (and through it B); return {"pid": B} or {"error": why}."""
    if len(os.listdir("/proc/self/task")) != 1:  # a fork copies one thread: the template must have only one
        return {"error": "the template has more than one thread"}
    read_end, write_end = os.pipe()
    a = os.fork()
    if a == 0:
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # A and B wait for their own children
            os.close(read_end)
            _check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
                                | CLONE_NEWCGROUP), "unshare")
            b = os.fork()
            if b == 0:
                _init(req, log_fd, write_end)
            os.write(write_end, f"pid {b}\n".encode())
        except BaseException as e:  # noqa: BLE001
            os.write(write_end, f"error {type(e).__name__}: {e}\n".encode()[:4000])
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):  # until A and B have both closed it
        chunks.append(chunk)
    os.close(read_end)
    try:
        os.waitpid(a, 0)
    except ChildProcessError:  # the SIGCHLD handler reaped it first
        pass
    lines = b"".join(chunks).decode(errors="replace").splitlines()
    pid = next((int(l.split()[1]) for l in lines if l.startswith("pid ")), None)
    errors = [l[6:] for l in lines if l.startswith("error ")]
    if errors or pid is None or "ok" not in lines:
        return {"error": "; ".join(errors) or "the sandbox did not start", "pid": pid}
    return {"pid": pid}


def _reap(*_signal) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> None:
    config = json.loads(sys.argv[1])
    control = socket.socket(fileno=int(config["fd"]))
    for name in config["preload"]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module the course lacks is simply imported by the kernel later
            pass
    _check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "subreaper")
    signal.signal(signal.SIGCHLD, _reap)  # an ended sandbox leaves no zombie behind (its uid would linger)
    threads = len(os.listdir("/proc/self/task"))
    control.sendall(json.dumps({"ready": threads == 1, "threads": threads, "pid": os.getpid()}).encode())
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, 1 << 20, 1)
        except OSError:
            os._exit(0)
        if not message:  # the grader is gone
            os._exit(0)
        try:
            req = json.loads(message)
            reply = _spawn(req, fds[0]) if fds else {"error": "no log file descriptor"}
        except Exception as e:  # noqa: BLE001
            reply = {"error": f"{type(e).__name__}: {e}"}
        for fd in fds:
            os.close(fd)
        req = message = None  # nothing of this submission stays in the template for the next child
        control.sendall(json.dumps(reply).encode())


if __name__ == "__main__":
    main()
