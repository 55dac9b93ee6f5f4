"""Warm kernels (``autograder.sandbox.warm``): forked from a template, each in a sandbox of its own.

Real bubblewrap, a real template and real IPython kernels (root only, as warm kernels are). Each test
runs hostile code in one kernel and checks what it could reach: the template, a sibling kernel forked
from the same template, what the next submission inherits. The whole CLI path (grading with warm
kernels, and with the fallback) is in ``test_grading_e2e`` and ``test_hostile``, unchanged."""
from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

import pytest

STORE = True

from autograder.config import SandboxPolicy
from autograder.sandbox import kernel as sandbox
from autograder.sandbox import processes, warm

pytestmark = pytest.mark.skipif(warm.unsafe_host() is not None, reason=f"no warm kernels here: {warm.unsafe_host()}")


class Kernel:
    """One submission's warm kernel: a work folder in the template's spool, a kernel, a client."""

    def __init__(self, template: warm.Template, files: dict[str, str] | None = None,
                 replaced: dict[str, bytes] | None = None):
        self.template = template
        self.workdir = Path(tempfile.mkdtemp(prefix="autograder-", dir=template.spool))
        (self.workdir / "work").mkdir()
        for name, text in (files or {}).items():
            (self.workdir / "work" / name).write_text(text)
        self.uid = sandbox.new_kernel_uid()
        overlays = sandbox.write_overlays(self.workdir, replaced or {})
        sandbox.prepare_workdir(self.workdir, ["ex"], self.uid)
        km = sandbox.SandboxedKernelManager(transport="ipc", ip=str(self.workdir / "kernel" / "ipc"))
        km.client_class = "autograder.sandbox.kernel.BoundedKernelClient"
        km.connection_file = str(self.workdir / "kernel" / "connection.json")
        km.log_path = str(self.workdir / "kernel.log")
        km.uid = self.uid
        km.warm = template
        km.warm_request = warm.kernel_request(self.workdir, SandboxPolicy(), sandbox.kernel_env(self.workdir),
                                              self.uid, overlays, Path(km.connection_file), template.spool)
        self.km = km
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(km.start_kernel())
        self.kc = km.client()
        self.kc.start_channels()
        self.loop.run_until_complete(self.kc.wait_for_ready(timeout=60))

    def run(self, code: str, timeout: float = 60) -> str:
        """stdout of ``code`` (an error's name and value too)."""
        out: list[str] = []

        def hook(msg):
            c = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(c["text"])
            elif msg["msg_type"] == "error":
                out.append(f"{c['ename']}: {c['evalue']}\n")

        self.loop.run_until_complete(self.kc.execute_interactive(code, timeout=timeout, output_hook=hook, store_history=STORE))
        return "".join(out)

    def json(self, code: str) -> object:
        """The value the code prints last as JSON."""
        return json.loads(self.run(code).strip().splitlines()[-1])

    def alive(self) -> bool:
        return self.loop.run_until_complete(self.km.is_alive())

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.kc.stop_channels()
        self.loop.run_until_complete(self.km.shutdown_kernel(now=True))
        processes.kill_uid(self.uid)
        self.loop.close()


@pytest.fixture(scope="module")
def template():
    t = warm.template(SandboxPolicy(), None)
    assert t is not None, warm.fallback_reason()
    yield t


@pytest.fixture
def kernel(template):
    made: list[Kernel] = []

    def make(**kw) -> Kernel:
        made.append(Kernel(template, **kw))
        return made[-1]

    yield make
    for k in made:
        k.stop()


def test_the_kernel_is_in_a_sandbox_of_its_own(kernel, template):
    k = kernel(files={"data.csv": "1,2\n"})
    seen = k.json("""
import json, os, socket, sys
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2); net = "open"
except OSError as e:
    net = type(e).__name__
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(json.dumps({"uid": os.getuid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "cwd": os.getcwd(), "files": sorted(os.listdir(".")), "tmp": os.listdir("/tmp"),
    "caps": [status[k].strip() for k in ("CapPrm", "CapEff", "CapBnd", "CapAmb")],
    "nnp": status["NoNewPrivs"].strip(), "net": net, "torch": "torch" in sys.modules,
    "hostname": socket.gethostname()}))""")
    assert seen["uid"] == k.uid and seen["uid"] != 0
    assert seen["pids"] == [1, 2], "only its own PID namespace: its init and itself"
    assert seen["cwd"] == sandbox.WORK and seen["files"] == ["data.csv"]
    assert seen["tmp"] == [template.spool.name], "the spool shows this submission's folder only"
    assert seen["caps"] == ["0000000000000000"] * 4 and seen["nnp"] == "1"
    assert seen["net"] != "open" and seen["hostname"] == "sandbox"
    assert seen["torch"], "the template's imports are the kernel's"
    assert k.run("import os; print(sorted(os.listdir(os.path.dirname(os.environ['AUTOGRADER_HARVEST']))))"
                 ).strip() == "['grader', 'kernel']"
    assert "Read-only file system" in k.run("open('data.csv', 'w').write('x')")


def test_a_kernel_cannot_reach_the_template_or_a_sibling(kernel, template):
    sibling = kernel()
    sibling.run("import os; open('/dev/shm/mine', 'w').write('sibling'); open('/tmp/mine', 'w').write('s')")
    attacker = kernel()
    out = attacker.json(r"""
import ctypes, json, os, signal, socket, stat
found = {}
# signals: every pid it can name (its namespace has two) and the low host pids
sent = []
for pid in list(range(1, 4000)):
    try:
        os.kill(pid, 0); sent.append(pid)
    except OSError:
        pass
found["signalable"] = sent
found["own"] = sorted(int(t) for p in os.listdir("/proc") if p.isdigit() for t in os.listdir(f"/proc/{p}/task"))
found["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
# shared memory: the sibling's /dev/shm and /tmp files, a System V segment
found["shm"] = os.listdir("/dev/shm") + os.listdir("/tmp")
libc = ctypes.CDLL(None, use_errno=True)
found["sysv"] = libc.shmget(0x5EED, 4096, 0o1000 | 0o666)
# inherited descriptors: none but its own; no SEQPACKET socket (the template's control socket)
kinds = []
for fd in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue
    if target.startswith("socket:"):
        s = socket.socket(fileno=os.dup(int(fd)))
        kinds.append(int(s.type)); s.detach()
    elif target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
        kinds.append(target)
found["fds"] = kinds
# the template's way: new namespaces, mounts, becoming root
found["unshare"] = libc.unshare(0x00020000 | 0x20000000 | 0x40000000)
found["mount"] = libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None)
try:
    os.setuid(0); found["setuid"] = "root"
except PermissionError:
    found["setuid"] = "refused"
print(json.dumps(found))""")
    assert out["pids"] == [1, 2] and out["signalable"] == out["own"], \
        "it can signal only its own init and itself (and its threads)"
    assert out["shm"] == [template.spool.name], "it sees no sibling's /dev/shm or /tmp files"
    assert out["sysv"] >= 0  # its own IPC namespace: a fresh segment, nobody else's
    assert socket_seqpacket() not in [k for k in out["fds"] if isinstance(k, int)]
    assert not [k for k in out["fds"] if isinstance(k, str) and "kernel.log" not in k
                and not k.startswith(sandbox.HOME + "/")], "no file but its log and its own home's"
    assert out["unshare"] == -1 and out["mount"] == -1 and out["setuid"] == "refused"
    assert sibling.alive() and template.alive()
    assert sibling.run("print(open('/dev/shm/mine').read())").strip() == "sibling"
    assert sibling.run("import ctypes; print(ctypes.CDLL(None).shmget(0x5EED, 4096, 0o666))").strip() == "-1", \
        "the attacker's System V segment is not in the sibling's IPC namespace"


def socket_seqpacket() -> int:
    import socket

    return int(socket.SOCK_SEQPACKET)


def test_nothing_a_submission_does_reaches_the_next_one(kernel):
    first = kernel()
    first.run("""
import builtins, os, sys, torch, numpy, helpers.grading.contract as contract
torch.nn.functional.relu = lambda x: x * 0
torch.manual_seed(1234)
contract.MAX_ELEMENTS = 1
builtins.LEFT_BEHIND = True
sys.modules["left_behind"] = sys
os.environ["LEFT_BEHIND"] = "1"
open(os.path.expanduser("~/left_behind"), "w").write("x")
open("/tmp/left_behind", "w").write("x")
""")
    first.stop()
    second = kernel()
    seen = second.json("""
import builtins, json, os, sys, torch, helpers.grading.contract as contract
print(json.dumps({"relu": float(torch.nn.functional.relu(torch.ones(1))[0]), "max": contract.MAX_ELEMENTS > 1,
    "builtin": hasattr(builtins, "LEFT_BEHIND"), "module": "left_behind" in sys.modules,
    "env": "LEFT_BEHIND" in os.environ,
    "files": [f for top in ("/tmp", os.path.expanduser("~")) for r, d, fs in os.walk(top) for f in fs
              if f == "left_behind"]}))""")
    assert seen == {"relu": 1.0, "max": True, "builtin": False, "module": False, "env": False, "files": []}


def test_each_kernel_draws_fresh_random_numbers(kernel):
    draws = [kernel().run("import random, numpy; print(random.random(), numpy.random.rand())") for _ in range(2)]
    assert draws[0] != draws[1]


def test_a_kernel_that_kills_itself_or_forks_ends_with_its_sandbox(kernel, template):
    k = kernel()
    k.run("import os, time\nfor _ in range(5):\n    if os.fork() == 0:\n        time.sleep(600)\n")
    assert len({p for p, (_pp, u) in processes.all_processes().items() if u == k.uid}) >= 7
    try:
        k.run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", timeout=5)
    except TimeoutError:
        pass  # it never answers: it is dead
    for _ in range(50):
        if not k.alive():
            break
        import time
        time.sleep(0.1)
    assert not k.alive()
    import time
    time.sleep(0.5)
    assert not {p for p, (_pp, u) in processes.all_processes().items() if u == k.uid}, \
        "the namespace's init ends with the kernel: its forks go with it"
    assert template.alive()


def test_the_template_is_replaced_when_the_helpers_change(tmp_path, monkeypatch):
    fake = tmp_path / "helpers"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "data.py").write_text("x = 1\n")
    monkeypatch.setattr(warm.helpers, "__file__", str(fake / "__init__.py"))
    policy = SandboxPolicy()
    before = warm._key(policy)
    assert warm._key(policy) == before
    (fake / "data.py").write_text("x = 22\n")
    assert warm._key(policy) != before


def test_where_it_is_not_safe_grading_falls_back_and_says_so_once(monkeypatch, capsys):
    monkeypatch.setattr(warm, "_unavailable", None)
    monkeypatch.setattr(warm, "_template", None)
    monkeypatch.setattr(warm, "unsafe_host", lambda: "not grading as root (each kernel needs a uid of its own)")
    assert warm.template(SandboxPolicy(), None) is None
    assert warm.template(SandboxPolicy(), None) is None
    err = capsys.readouterr().err
    assert err.count("warm kernels are off here (not grading as root") == 1
    assert warm.fallback_reason().startswith("not grading as root")


def test_a_template_that_cannot_start_is_a_fallback_not_a_failure(monkeypatch, capsys):
    monkeypatch.setattr(warm, "_unavailable", None)
    monkeypatch.setattr(warm, "_template", None)
    monkeypatch.setattr(warm, "ZYGOTE", Path(os.devnull))  # an empty program: it never says it is ready
    monkeypatch.setattr(warm, "START_SECONDS", 5)
    assert warm.template(SandboxPolicy(), None) is None
    assert "the template did not start" in capsys.readouterr().err


def test_a_replaced_package_file_is_what_the_kernel_imports(kernel):
    """A task's replaced files (15's withheld labels) reach a warm kernel too, even a module the
    template had imported from the original."""
    original = (Path(sandbox.helpers.__file__).parent / "grading" / "contract.py").read_bytes()
    k = kernel(replaced={"grading/contract.py": original + b"\nMARK = 'replaced'\n"})
    assert k.run("import helpers.grading.contract as c; print(getattr(c, 'MARK', 'original'))").strip() == "replaced"
    plain = kernel()
    assert plain.run("import helpers.grading.contract as c; print(getattr(c, 'MARK', 'original'))").strip() == "original"


def test_a_long_temporary_folder_keeps_the_kernels_sockets_short(monkeypatch):
    """A Dask worker's TMPDIR can be long: the spool then goes to /tmp, so that
    <spool>/<workdir>/kernel/ipc-N stays under the 107 bytes of a unix socket's path."""
    from autograder.pipeline.execute import _workdir_base

    long_tmp = "/tmp/" + "t" * 50  # 55 characters: short enough for a cold kernel's folders
    monkeypatch.setattr(tempfile, "tempdir", long_tmp)
    assert _workdir_base() is None
    assert _workdir_base(extra=len("/autograder-warm-XXXXXXXX")) == "/tmp"
    worst = f"/tmp/autograder-warm-{'x' * 8}/autograder-{'x' * 8}/kernel/ipc-16"
    assert len(worst) < 107
