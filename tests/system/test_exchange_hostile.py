"""The exchange survives its students: hostile inbound entries made by real system users.

An instructor and students are real system users (made here, removed afterwards); the exchange
has the layout ``autograder release --exchange`` gives it (inbound 3733, setgid to the
instructor's group, sticky); each student writes their own entries as themselves, and
``collect`` runs as the instructor (never as root, who could read anything). Every entry a
student controls (unreadable, a link, a link inside, a file, a forged timestamp, a name that
claims another student, an entry swapped for a link while ``collect`` runs) becomes that
entry's outcome, and everyone else is collected.
"""
from __future__ import annotations

import ctypes
import datetime as dt
import os
import pickle
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pytest

from tests.support.course import copy_course

AID = "01_perceptron"


def _why_not() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux: the test makes real system users (useradd)"
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        return "useradd/userdel are missing"
    return None


@pytest.fixture(scope="module")
def users():
    """Real system users: an instructor and the students, by role; removed afterwards."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    tag = secrets.token_hex(3)
    made: dict[str, str] = {}
    try:
        for role in ("inst", "alice", "bob", "carol", "dave", "eve", "gina", "hugo", "ivan", "mal"):
            name = f"{role}{tag}"
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                           check=True, capture_output=True)
            made[role] = name
        yield made
    finally:
        for name in made.values():
            subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def klass(users):
    """A course owned by the instructor (private) and an exchange laid out as `release --exchange`
    leaves it. Returns paths and names."""
    from autograder.exchange import instructor as exchange
    from autograder.exchange import plugins
    from autograder.course import Course

    base = Path(tempfile.mkdtemp(prefix="exchange-hostile-"))
    try:
        base.chmod(0o755)
        course = copy_course(base)
        inst = pwd.getpwnam(users["inst"])
        for path in [base / "repo", *(base / "repo").rglob("*")]:
            os.lchown(path, inst.pw_uid, inst.pw_gid)
        (base / "repo").chmod(0o700)  # the solutions and the gradebook: the instructor's only
        root = base / "exchange"
        root.mkdir()
        root.chmod(plugins.ROOT_MODE)
        course_dir = root / exchange.course_id(Course(course))
        inbound = course_dir / "inbound"
        for path, mode in [(course_dir, plugins.COURSE_MODE), (course_dir / "outbound", plugins.COURSE_MODE),
                           (inbound, plugins.INBOUND_MODE)]:
            path.mkdir()
            os.chown(path, inst.pw_uid, inst.pw_gid)
            path.chmod(mode)
        yield {"base": base, "course": course, "exchange": root, "inbound": inbound, "users": users,
               "source": Course(course).source_notebook(AID)}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _become(user: str) -> None:
    entry = pwd.getpwnam(user)
    os.setgroups(os.getgrouplist(user, entry.pw_gid))
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def as_user(user: str, fn, *args):
    """``fn(*args)`` in a child process running as the system user ``user``; its result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            _become(user)
            result = ("ok", fn(*args))
        except BaseException:
            result = ("error", traceback.format_exc())
        try:
            with os.fdopen(w, "wb") as out:
                pickle.dump(result, out)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "error":
        raise AssertionError(f"as {user}:\n{value}")
    return value


def _when(ago_s: float = 0) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=ago_s)


def _entry_name(student: str, when: dt.datetime, rnd: str = "r") -> str:
    from autograder.exchange.instructor import nbgrader_time

    return f"{student}+{AID}+{nbgrader_time(when)}+{rnd}"


def submit(inbound: Path, name: str, notebook: bytes, stamp: str) -> None:
    """What ``nbgrader submit`` (autograder.exchange.plugins.PrivateSubmit) leaves, written by the student."""
    entry = inbound / name
    entry.mkdir(0o750)  # group and setgid from the inbound
    for fname, data in [(f"{AID}.ipynb", notebook), ("timestamp.txt", stamp.encode()),
                        ("submission_secret.txt", secrets.token_hex(64).encode())]:
        fd = os.open(entry / fname, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def _notebook(who: str) -> bytes:
    return ('{"cells": [], "metadata": {"author": "%s"}, "nbformat": 4, "nbformat_minor": 5}' % who).encode()


def run_collect(course: str, root: str):
    """``exchange.collect`` (as whoever calls it): what was taken, refused, and installed."""
    from autograder.exchange import instructor as exchange
    from autograder.course import Course

    taken, refused = exchange.collect(Course(Path(course)), root, AID)
    installed = {c.student: (c.folder / f"{AID}.ipynb").read_bytes() for c in taken}
    return taken, refused, installed


def cli(argv: list[str]) -> subprocess.CompletedProcess:
    """The instructor's command line (``autograder ARGV``) in this process, as a finished process:
    its exit status and output (an uncaught exception: status 1 and a traceback, as python -m
    gives). The interpreter here may sit where the instructor cannot run it (a root-only
    pyenv), so the test runs the CLI's own ``main`` as the instructor's user instead."""
    import contextlib
    import io

    from autograder import cli as cli_module

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli_module.main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except Exception:
            traceback.print_exc()
            rc = 1
    return subprocess.CompletedProcess(argv, rc, out.getvalue(), err.getvalue())


# -- one student's entry is unreadable: the class is still collected (the real CLI) ---------------

def test_an_unreadable_entry_is_that_students_outcome_and_the_class_is_collected(klass):
    u, inbound = klass["users"], klass["inbound"]
    alice, bob = u["alice"], u["bob"]
    from autograder.exchange.instructor import nbgrader_time

    now = _when(5)
    as_user(alice, submit, inbound, _entry_name(alice, now), _notebook("alice"), nbgrader_time(now))
    as_user(bob, submit, inbound, _entry_name(bob, now), _notebook("bob"), nbgrader_time(now))
    as_user(bob, os.chmod, inbound / _entry_name(bob, now), 0o700)  # his own entry: he may
    r = as_user(u["inst"], cli, ["--course", str(klass["course"]), "collect", "--exchange", str(klass["exchange"]),
                                 "--assignment", AID])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stdout + r.stderr  # something was collected: status 0, refusals on stderr
    assert f"collected {alice}/{AID}" in r.stdout
    (line,) = [x for x in r.stderr.splitlines() if x.startswith(f"refused '{bob}+")]
    assert "unreadable" in line and "permission denied" in line, line
    collected = klass["course"] / "inbound"
    assert (collected / alice / AID / f"{AID}.ipynb").read_bytes() == _notebook("alice")
    assert not (collected / bob).exists()


# -- every kind of hostile entry at once --------------------------------------------------------------

def test_each_hostile_entry_is_its_own_outcome_and_everyone_else_is_collected(klass):
    from autograder.exchange.instructor import CLOCK_TOLERANCE_S, utc_time, nbgrader_time

    u, inbound, source = klass["users"], klass["inbound"], klass["source"]
    now = _when(5)
    early = _when(3 * 86400)
    name = {role: _entry_name(u[role], now) for role in u}
    # alice: an honest submission (mallory will claim her name with a newer one)
    as_user(u["alice"], submit, inbound, _entry_name(u["alice"], _when(60)), _notebook("alice"),
            nbgrader_time(_when(60)))
    # bob: his entry is a link to the instructor's source folder
    as_user(u["bob"], os.symlink, source.parent, inbound / name["bob"])
    # carol: her notebook is a link to the instructor's source notebook
    as_user(u["carol"], submit, inbound, name["carol"], b"{}", nbgrader_time(now))
    as_user(u["carol"], os.unlink, inbound / name["carol"] / f"{AID}.ipynb")
    as_user(u["carol"], os.symlink, source, inbound / name["carol"] / f"{AID}.ipynb")
    # dave: his name and timestamp.txt claim three days ago; his files are written now
    as_user(u["dave"], submit, inbound, _entry_name(u["dave"], early), _notebook("dave"), nbgrader_time(early))
    # eve: an older honest submission, and a newer entry she made unreadable
    as_user(u["eve"], submit, inbound, _entry_name(u["eve"], _when(120)), _notebook("eve-old"),
            nbgrader_time(_when(120)))
    as_user(u["eve"], submit, inbound, name["eve"], _notebook("eve-new"), nbgrader_time(now))
    as_user(u["eve"], os.chmod, inbound / name["eve"], 0o700)
    # gina: her notebook is unreadable (mode 000)
    as_user(u["gina"], submit, inbound, name["gina"], _notebook("gina"), nbgrader_time(now))
    as_user(u["gina"], os.chmod, inbound / name["gina"] / f"{AID}.ipynb", 0)
    # hugo: his whole entry is unreadable (0700)
    as_user(u["hugo"], submit, inbound, name["hugo"], _notebook("hugo"), nbgrader_time(now))
    as_user(u["hugo"], os.chmod, inbound / name["hugo"], 0o700)
    # ivan: a file where the folder should be
    as_user(u["ivan"], lambda p: p.write_bytes(_notebook("ivan")), inbound / name["ivan"])
    # mallory: a newer submission in alice's name
    forged = _entry_name(u["alice"], now, "m")
    as_user(u["mal"], submit, inbound, forged, _notebook("mallory"), nbgrader_time(now))

    taken, refused, installed = as_user(u["inst"], run_collect, str(klass["course"]), str(klass["exchange"]))
    got = {c.student: c for c in taken}
    reasons = {r.name: r.reason for r in refused}
    assert sorted(got) == sorted([u["alice"], u["dave"], u["eve"]]), (sorted(got), reasons)
    assert installed[u["alice"]] == _notebook("alice")  # her own, not mallory's
    assert f"submitted by {u['mal']}, not by {u['alice']}" in reasons[forged]
    assert "symbolic link" in reasons[name["bob"]]
    assert "symbolic link" in reasons[name["carol"]]
    assert "unreadable" in reasons[name["eve"]] and installed[u["eve"]] == _notebook("eve-old")
    assert "unreadable" in reasons[name["gina"]] and repr(f"{AID}.ipynb") in reasons[name["gina"]]
    assert "unreadable" in reasons[name["hugo"]]
    assert "not a folder" in reasons[name["ivan"]]
    # dave's claimed time does not count: his files were changed (written) now
    dave = got[u["dave"]]
    assert abs((utc_time(dave.timestamp) - now).total_seconds()) < CLOCK_TOLERANCE_S, dave.timestamp
    assert any("changed after the recorded submission time" in n for n in dave.notes)
    assert (dave.folder / "timestamp.txt").read_text() == dave.timestamp
    # nothing of the instructor's was installed anywhere
    secret = source.read_bytes()
    assert all(p.read_bytes() != secret for p in (klass["course"] / "inbound").rglob("*") if p.is_file())
    assert sorted(p.name for p in (klass["course"] / "inbound").iterdir()) == sorted(got)


def test_a_file_of_another_user_inside_an_entry_is_refused(klass):
    """What a hard link to the instructor's file looks like once the student has removed the
    link again (one link left, after collect opened it): a file in the entry that the entry's
    owner does not own is refused; the owner is read from the opened file's handle."""
    from autograder.exchange.instructor import nbgrader_time

    u, inbound = klass["users"], klass["inbound"]
    now = _when(5)
    as_user(u["alice"], submit, inbound, _entry_name(u["alice"], now), _notebook("alice"), nbgrader_time(now))
    name = _entry_name(u["dave"], now)
    as_user(u["dave"], submit, inbound, name, _notebook("dave"), nbgrader_time(now))
    inst = pwd.getpwnam(u["inst"])
    os.chown(inbound / name / f"{AID}.ipynb", inst.pw_uid, inst.pw_gid)  # (as root: the end state of the race)
    taken, refused, installed = as_user(u["inst"], run_collect, str(klass["course"]), str(klass["exchange"]))
    assert [c.student for c in taken] == [u["alice"]]
    (reason,) = [r.reason for r in refused if r.name == name]
    assert f"belongs to {u['inst']}" in reason, reason


# -- a racing student swaps their entry for a link while collect runs ---------------------------------

RENAME_EXCHANGE = 2


def race(a: str, b: str, ready: int, seconds: float) -> None:
    """Swap ``a`` and ``b`` (a folder and a link) in a tight loop, atomically where the kernel
    has renameat2(RENAME_EXCHANGE), else by three renames."""
    libc = ctypes.CDLL(None, use_errno=True)
    exchange_fn = getattr(libc, "renameat2", None)
    at_fdcwd = -100
    tmp = a + ".tmp"
    os.write(ready, b"x")
    os.close(ready)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(1000):
            if exchange_fn is not None:
                exchange_fn(at_fdcwd, a.encode(), at_fdcwd, b.encode(), RENAME_EXCHANGE)
            else:
                os.rename(a, tmp)
                os.rename(b, a)
                os.rename(tmp, b)


def collect_many(course: str, root: str, racer: str, honest: str, real: bytes, secret: bytes,
                 rounds: int, seconds: float) -> dict:
    """``rounds`` collects (at most ``seconds``): the racer's outcome of each, checked."""
    from autograder.exchange import instructor as exchange
    from autograder.course import Course

    c = Course(Path(course))
    seen = {"collected": 0, "refused": 0, "stolen": 0, "wrong": [], "honest_missing": 0, "reasons": set()}
    deadline = time.monotonic() + seconds
    for _ in range(rounds):
        if time.monotonic() > deadline:
            break
        taken, refused = exchange.collect(c, root, AID)
        got = {t.student: t for t in taken}
        if honest not in got:
            seen["honest_missing"] += 1
        mine = [r.reason for r in refused if r.student == racer]
        if racer in got:
            data = (got[racer].folder / f"{AID}.ipynb").read_bytes()
            seen["collected"] += 1
            if data != real and data != secret:
                seen["wrong"].append(data[:80])
        elif mine:
            seen["refused"] += 1
            seen["reasons"].update(mine)
        else:
            seen["wrong"].append("neither collected nor refused")
        folder = Path(course) / "inbound" / racer / AID  # this collect's copy, or the last one's
        if folder.is_dir() and any(p.read_bytes() == secret for p in folder.iterdir()):
            seen["stolen"] += 1
    return seen


@pytest.mark.slow
def test_a_student_racing_collect_with_a_link_never_gets_the_instructors_file(klass):
    """The issue's attack: 39 of 150 collects took the instructor's source notebook as the
    racer's submission when the entry was checked once and read again through its path."""
    from autograder.exchange.instructor import nbgrader_time

    u, inbound, source = klass["users"], klass["inbound"], klass["source"]
    racer, honest = u["eve"], u["alice"]
    now = _when(5)
    as_user(honest, submit, inbound, _entry_name(honest, now), _notebook("alice"), nbgrader_time(now))
    real = _notebook("eve")
    entry = inbound / _entry_name(racer, now)
    as_user(racer, submit, inbound, entry.name, real, nbgrader_time(now))
    link = inbound / ".swap"
    as_user(racer, os.symlink, source.parent, link)  # the instructor's source folder (holds AID.ipynb)

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the racing student
        try:
            os.close(r)
            _become(racer)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            race(str(entry), str(link), w, 90)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"x", "the racing student did not start"
        time.sleep(0.2)
        seen = as_user(u["inst"], collect_many, str(klass["course"]), str(klass["exchange"]), racer, honest,
                       real, source.read_bytes(), 150, 45)
    finally:
        os.close(r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    rounds = seen["collected"] + seen["refused"] + len(seen["wrong"])
    print(f"\n{rounds} collects: {seen['collected']} collected the real submission, {seen['refused']} refused "
          f"({sorted(seen['reasons'])}), {seen['stolen']} took the instructor's file", file=sys.stderr)
    assert seen["stolen"] == 0, seen
    assert seen["wrong"] == [], seen
    assert seen["honest_missing"] == 0, seen
    assert rounds >= 50, seen
    assert seen["refused"] > 0 and seen["collected"] > 0, f"the race did not interleave with collect: {seen}"
    assert all("symbolic link" in reason or "swapped" in reason for reason in seen["reasons"]), seen["reasons"]
