"""nbgrader's exchange on a shared machine (JupyterHub): publish, collect, return feedback.

The exchange is a folder every user reaches (``NBGRADER_EXCHANGE``, else the course config's
``c.Exchange.root``)::

    <root>/                      1777  anyone may create a course folder; nobody may move another's
    <root>/<course>/             0755  the instructor's
    <root>/<course>/outbound/    0755  released assignments, readable by all
    <root>/<course>/inbound/     3733  setgid + sticky, write-only: students drop submissions in,
                                       cannot list it, cannot rename or delete another's entry
    <root>/<course>/inbound/<student>+<assignment>+<time>+<random>/
                                 0750, files 0640 (group: the instructor's, from the inbound)
    <root>/<course>/feedback/    0711  feedback files named by an HMAC of the submission's secret

What stock nbgrader 0.9.6 creates differs, and leaks: it resets the root to 0777 on every
release (any student can then rename the course folder away and put a readable one in its
place), and leaves each submission folder 0777 with 0644 files (anyone who learns its name can
read or change it). The classes below are nbgrader's own exchange with those permissions fixed;
they are selected through ``ExchangeFactory`` in the students', the instructor's and this
tool's configuration (students' servers need nothing but nbgrader and this module).

Collection trusts nothing a student wrote: a submission counts for the student who owns its
folder (a folder named for another student is refused), only regular files are read (no
symbolic or hard link, at any level), and the submission time is nbgrader's ``timestamp.txt``
unless the files were changed later than that (their inode change time, which a user cannot
set back): then the later time is used and the outcome says so. Every entry is read through
a handle opened relative to the inbound's handle (``openat``, no link followed, owner and type
checked with ``fstat`` of that handle), and what is installed is the bytes read through it, so
an entry swapped for a link while ``collect`` runs is refused, never followed. An entry that
cannot be taken (unreadable, a link, owned by another user, changed while read) is refused
with its reason, the student's newest entry that can be taken is collected, and every other
student is collected as usual.
"""
from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import pwd
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from autograder.exchange.plugins import FACTORY
from autograder.intake.collect import Refusal

#: Files read from a submission besides its notebooks.
TIMESTAMP, SECRET = "timestamp.txt", "submission_secret.txt"
MAX_FILE_BYTES = 50 * 2**20
MAX_SUBMISSION_BYTES = 200 * 2**20
#: A submission changed this long after its recorded time counts as submitted when it changed (s).
CLOCK_TOLERANCE_S = 120


# --------------------------------------------------------------------------- #
# The instructor's side: publish, collect, return.
# --------------------------------------------------------------------------- #


@dataclass
class Collected:
    """The submission taken for one (student, assignment): where it was copied, its time."""

    student: str
    assignment: str
    folder: Path
    timestamp: str                     # nbgrader's format, UTC ("2026-12-01 10:00:00.000000 UTC")
    notes: list[str] = field(default_factory=list)
    earlier: int = 0                   # older submissions of the same student, not taken


def exchange_root(course, override: str | os.PathLike | None = None) -> Path:
    """The exchange folder: ``override``, else $NBGRADER_EXCHANGE, else the course config's."""
    root = override or os.environ.get("NBGRADER_EXCHANGE") or course.config().Exchange.root
    return Path(root).resolve()


def exchange_config(course, root: str | os.PathLike | None = None, **overrides):
    """The course's nbgrader config with the private exchange classes and ``root``."""
    from autograder.store import gradebook as nbgrader_api

    return nbgrader_api.course_config(course, Exchange={"root": str(exchange_root(course, root))},
                                      ExchangeFactory=dict(FACTORY), **overrides)


def course_id(course) -> str:
    return str(course.config().CourseDirectory.course_id)


def publish(course, aids: list[str], root: str | os.PathLike | None = None) -> Path:
    """``nbgrader release_assignment`` of each assignment (from release/) into the exchange,
    replacing an earlier release; sets each one's due date in the gradebook. Returns outbound/."""
    from autograder.store import gradebook as nbgrader_api
    from autograder.course import CourseError

    config = exchange_config(course, root, ExchangeReleaseAssignment={"force": True})
    nb_api = nbgrader_api.api(course, config)
    for aid in aids:
        course.assignment(aid)
        if not (course.release_dir / aid / f"{aid}.ipynb").is_file():
            raise CourseError(f"{course.release_dir / aid} has no {aid}.ipynb: run `autograder release {aid}` first")
        nbgrader_api.check_result(nb_api.release_assignment(aid), f"release_assignment {aid}")
    nbgrader_api.set_due_dates(course, set(aids))
    return exchange_root(course, root) / course_id(course) / "outbound"


def collected_dir(course) -> Path:
    """Where ``collect`` copies submissions (the instructor's; ``autograder grade`` reads it)."""
    return course.root / "inbound"


def _parse_name(name: str) -> tuple[str, str, str] | None:
    """(student, assignment, timestamp) of an inbound entry ``student+aid+time[+random]``."""
    parts = name.split("+")
    if len(parts) not in (3, 4) or not all(parts[:3]):
        return None
    return parts[0], parts[1], parts[2]


def utc_time(text: str) -> dt.datetime | None:
    from nbgrader.utils import parse_utc

    try:
        value = parse_utc(text.strip())
    except (ValueError, OverflowError, TypeError):
        return None
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def nbgrader_time(value: dt.datetime) -> str:
    """A time in the format nbgrader writes to ``timestamp.txt``."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


# Everything read from the inbound is opened relative to a folder handle already checked
# (``openat``): never through a symbolic link (O_NOFOLLOW), never by resolving a path again, and
# checked with ``fstat`` of the handle itself. What is installed is the bytes read through it.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: Folders nested in one submission, and files and folders in it, at most.
MAX_DEPTH = 16
MAX_ENTRIES = 10_000


class _Refuse(Exception):
    """An inbound entry that cannot be taken; the message is its recorded reason."""


def _os_reason(e: OSError, what: str, parent: int | None = None, name: str = "") -> str:
    """Why opening or reading ``what`` (``name`` in the folder handle ``parent``) failed, for
    the entry's outcome. Opening a link with O_DIRECTORY | O_NOFOLLOW fails with ENOTDIR, not
    ELOOP: a second look (for the message only) tells a link from a file."""
    if e.errno == errno.ENOTDIR and parent is not None:
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            e = OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        elif stat.S_ISDIR(mode):  # a folder again: something else was in its place a moment ago
            return f"refused: {what} was swapped for a link or a file while it was being collected"
    if e.errno == errno.ELOOP:
        return f"refused: {what} is a symbolic link; only regular files and folders are read"
    if e.errno == errno.ENOTDIR:
        return f"refused: {what} is not a folder (a file or a link)"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"refused: {what} is unreadable (permission denied to the collecting user)"
    if e.errno == errno.ENOENT:
        return f"refused: {what} was removed or renamed while it was being collected"
    return f"refused: {what} cannot be read ({e.strerror or type(e).__name__})"


def _owned(st: os.stat_result, owner: int | None, what: str) -> None:
    if owner is not None and st.st_uid != owner:
        raise _Refuse(f"refused: {what} belongs to {_owner_name(st.st_uid)}, not to the submission's owner")


def _read_fd(fd: int, limit: int, name: str) -> bytes:
    chunks, size = [], 0
    while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _Refuse(f"refused: {name!r} is larger than {limit // 2**20} MB")
    return b"".join(chunks)


class _Scan:
    """One submission folder, read through the handle ``fd`` (opened and checked by the caller)."""

    def __init__(self, owner: int | None, dev: int):
        self.owner = owner                     # the uid every file in it must belong to (None: any)
        self.dev = dev                         # the file system everything in it must be on
        self.files: dict[str, bytes] = {}      # top-level notebooks and metadata files, as read
        self.latest = 0.0                      # the latest inode change time seen
        self.total = self.count = 0

    def folder(self, fd: int, rel: str, depth: int) -> None:
        self.latest = max(self.latest, os.fstat(fd).st_ctime)
        try:
            names = sorted(os.listdir(fd))
        except OSError as e:
            raise _Refuse(_os_reason(e, repr(rel or ".")))
        for name in names:
            self.count += 1
            if self.count > MAX_ENTRIES:
                raise _Refuse(f"refused: the submission holds more than {MAX_ENTRIES} files and folders")
            path = f"{rel}/{name}" if rel else name
            what = repr(path)[:80]
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as e:
                raise _Refuse(_os_reason(e, what))
            if stat.S_ISLNK(st.st_mode):
                raise _Refuse(f"refused: {what} is a symbolic link; only regular files are read")
            if stat.S_ISDIR(st.st_mode):
                if depth + 1 > MAX_DEPTH:
                    raise _Refuse(f"refused: folders nested deeper than {MAX_DEPTH} levels")
                sub = self._open(fd, name, _DIR_FLAGS, st, what)
                try:
                    self.folder(sub, path, depth + 1)
                finally:
                    os.close(sub)
            elif stat.S_ISREG(st.st_mode):
                if st.st_nlink != 1:
                    raise _Refuse(f"refused: {what} is a hard link; only regular files are read")
                _owned(st, self.owner, what)
                self.latest = max(self.latest, st.st_ctime)
                self.total += st.st_size
                if self.total > MAX_SUBMISSION_BYTES:
                    raise _Refuse(f"refused: the submission is larger than {MAX_SUBMISSION_BYTES // 2**20} MB")
                if depth == 0 and (name.endswith(".ipynb") or name in (TIMESTAMP, SECRET)):
                    self.files[name] = self._read(fd, name, st, what)
            else:
                raise _Refuse(f"refused: {what} is not a regular file")
        self.latest = max(self.latest, os.fstat(fd).st_ctime)  # renamed in or out while listed

    def _open(self, parent: int, name: str, flags: int, st: os.stat_result, what: str) -> int:
        """``name`` in ``parent``, not followed, and the same file as ``st`` (else it was swapped)."""
        try:
            fd = os.open(name, flags, dir_fd=parent)
        except OSError as e:
            raise _Refuse(_os_reason(e, what, parent, name))
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or stat.S_IFMT(now.st_mode) != stat.S_IFMT(st.st_mode):
            os.close(fd)
            raise _Refuse(f"refused: {what} was replaced while it was being collected")
        if now.st_dev != self.dev:
            os.close(fd)
            raise _Refuse(f"refused: {what} is on another file system (a mount) than the exchange")
        try:
            _owned(now, self.owner, what)
        except _Refuse:
            os.close(fd)
            raise
        return fd

    def _read(self, parent: int, name: str, st: os.stat_result, what: str) -> bytes:
        fd = self._open(parent, name, _FILE_FLAGS, st, what)
        try:
            data = _read_fd(fd, MAX_FILE_BYTES, name)
            after = os.fstat(fd)  # after reading: a change made while it was read shows here
        except OSError as e:
            raise _Refuse(_os_reason(e, what))
        finally:
            os.close(fd)
        if after.st_nlink != 1:
            raise _Refuse(f"refused: {what} is a hard link; only regular files are read")
        _owned(after, self.owner, what)
        self.latest = max(self.latest, after.st_ctime)
        return data


def _read_entry(inbound_fd: int, name: str, student: str, check_owner: bool) -> tuple[dict[str, bytes], float]:
    """The files of the inbound entry ``name`` and the latest change time in it, read through a
    handle of the entry itself (opened without following a link, its owner checked on the
    handle); raises ``_Refuse`` with the entry's reason."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=inbound_fd)
    except OSError as e:
        raise _Refuse(_os_reason(e, "the submission folder", inbound_fd, name))
    try:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode):
            raise _Refuse("refused: not a folder (a link or a file)")
        if st.st_dev != os.fstat(inbound_fd).st_dev:
            raise _Refuse("refused: the submission folder is on another file system (a mount) than the exchange")
        if check_owner:
            try:
                expected = pwd.getpwnam(student).pw_uid
            except KeyError:
                expected = None
            if st.st_uid != expected:
                raise _Refuse(f"refused: submitted by {_owner_name(st.st_uid)}, not by {student}")
        scan = _Scan(st.st_uid, st.st_dev)
        scan.folder(fd, "", 0)
        return scan.files, scan.latest
    finally:
        os.close(fd)


def _open_inbound(root: Path, course: str) -> int:
    """A handle of ``root/course/inbound``: the course folder and the inbound are never links."""
    from autograder.course import CourseError

    inbound = root / course / "inbound"
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise CourseError(f"{inbound} does not exist: publish an assignment first (autograder release --exchange)") from None
    try:
        fd = root_fd
        for part in (course, "inbound"):
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise CourseError(f"{inbound} does not exist: publish an assignment first "
                                  "(autograder release --exchange)") from None
            except PermissionError:
                raise CourseError(f"cannot list {inbound}: collect as the instructor who released the assignment") from None
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise CourseError(f"{root / part if part == course else inbound} is not a folder (a link or "
                                      "a file): the exchange is not as `autograder release --exchange` made it") from None
                raise CourseError(f"cannot open {inbound}: {e.strerror}") from None
            if fd != root_fd:
                os.close(fd)
            fd = nxt
        return fd
    finally:
        os.close(root_fd)


def collect(course, root: str | os.PathLike | None = None, only: str | None = None,
            check_owner: bool = True) -> tuple[list[Collected], list[Refusal]]:
    """Copy each student's latest submission of each assignment from the exchange's inbound
    into ``course/inbound/<student>/<assignment>/`` (the layout ``autograder grade`` reads),
    with ``timestamp.txt`` (the trusted submission time) and the submission's secret.

    Every inbound entry is read through a handle opened relative to the inbound's handle,
    without following links, its owner checked on that handle (``fstat``); the bytes read are
    what is installed. An entry that cannot be taken (unreadable, a link, not a folder, not
    owned by the student it names, removed or replaced while it is read, a link or special file
    inside, too big) is refused with that reason, and the student's newest entry that can be
    taken is collected instead; one student's entries never stop the others' collection.

    A previously collected copy is replaced. ``check_owner``: a submission counts only for the
    system user who owns it (turn off only where users share one uid, e.g. in containers)."""
    from autograder.intake.collect import STUDENT_ID

    root_path = exchange_root(course, root)
    known = {a.id for a in course.assignments()}
    if only is not None:
        course.assignment(only)
    inbound_fd = _open_inbound(root_path, course_id(course))
    try:
        return _collect_from(course, inbound_fd, known, only, check_owner, STUDENT_ID)
    finally:
        os.close(inbound_fd)


def _collect_from(course, inbound_fd: int, known: set[str], only: str | None, check_owner: bool,
                  student_id) -> tuple[list[Collected], list[Refusal]]:
    from autograder.course import CourseError

    refused: list[Refusal] = []
    candidates: dict[tuple[str, str], list[tuple[dt.datetime, str]]] = {}
    try:
        names = sorted(os.listdir(inbound_fd))
    except OSError as e:
        raise CourseError(f"cannot list the exchange's inbound ({e.strerror}): collect as the instructor "
                          "who released the assignment") from None
    for name in names:
        parsed = _parse_name(name)
        if parsed is None:
            refused.append(Refusal(name, "", "refused: not a submission (expected student+assignment+time)"))
            continue
        student, aid, stamp = parsed
        if aid not in known or (only and aid != only):
            if aid not in known:
                refused.append(Refusal(name, aid, f"refused: {aid!r} is not an assignment of the syllabus", student=student))
            continue
        if not student_id.match(student):
            refused.append(Refusal(name, aid, "refused: not a valid student id", student=student))
            continue
        when = utc_time(stamp)
        if when is None:
            refused.append(Refusal(name, aid, f"refused: unreadable time {stamp!r} in its name", student=student))
            continue
        candidates.setdefault((student, aid), []).append((when, name))
    dest_root = collected_dir(course)
    dest_root.mkdir(exist_ok=True)
    os.chmod(dest_root, 0o700)  # students' work: the instructor's eyes only
    taken: list[Collected] = []
    for (student, aid), found in sorted(candidates.items()):
        found.sort(reverse=True)  # newest first: the first one that can be taken is collected
        for i, (when, name) in enumerate(found):
            try:
                files, changed = _read_entry(inbound_fd, name, student, check_owner)
            except _Refuse as e:
                refused.append(Refusal(name, aid, str(e), student=student))
                continue
            taken.append(_install(dest_root, student, aid, when, files, changed, earlier=len(found) - 1 - i))
            break
    return taken, refused


def _install(dest_root: Path, student: str, aid: str, when: dt.datetime, files: dict[str, bytes],
             changed: float, earlier: int) -> Collected:
    """Write what was read (never re-read from the exchange) to ``dest_root/student/aid``."""
    notes = []
    recorded = utc_time(files.get(TIMESTAMP, b"").decode("utf-8", "replace")) or when
    changed_at = dt.datetime.fromtimestamp(changed, dt.timezone.utc)
    if (changed_at - recorded).total_seconds() > CLOCK_TOLERANCE_S:
        notes.append(f"files changed after the recorded submission time ({nbgrader_time(recorded)}): "
                     f"counted as submitted at {nbgrader_time(changed_at)}")
        recorded = changed_at
    folder = dest_root / student / aid
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in files.items():
        if name != TIMESTAMP:
            (folder / name).write_bytes(data)
    stamp_text = nbgrader_time(recorded)
    (folder / TIMESTAMP).write_text(stamp_text)
    return Collected(student, aid, folder, stamp_text, notes, earlier=earlier)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Returned:
    student: str
    assignment: str
    returned: bool
    reason: str = ""


def return_feedback(course, root: str | os.PathLike | None = None, only: str | None = None,
                    students: set[str] | None = None) -> list[Returned]:
    """Release to the exchange the feedback of every collected submission that was graded
    (nbgrader's release_feedback layout: ``feedback/<hmac>.html``), so students' "Fetch
    Feedback" gets it. A submission collected again but not yet graded gets nothing. ``only``: one
    assignment; ``students``: only these students (grading on submit returns what it just graded)."""
    from autograder.store import gradebook as nbgrader_api
    from autograder.store import outcomes
    from autograder.course import CourseError

    base = collected_dir(course)
    if not base.is_dir():
        raise CourseError(f"nothing collected yet ({base} does not exist): run `autograder collect` first")
    nb_api = nbgrader_api.api(course, exchange_config(course, root))
    done: list[Returned] = []
    for student_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink()):
        for adir in sorted(p for p in student_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            student, aid = student_dir.name, adir.name
            if (only and aid != only) or (students is not None and student not in students):
                continue
            secret = adir / SECRET
            html = course.step_dir("feedback", student, aid) / f"{aid}.html"
            outcome = outcomes.read(course, aid, student) or {}
            digests = {_sha256(p) for p in adir.glob("*.ipynb") if p.is_file()}
            if not secret.is_file():
                done.append(Returned(student, aid, False, "no submission secret (not from the exchange)"))
            elif outcome.get("status") != outcomes.GRADED or outcome.get("sha256") not in digests:
                done.append(Returned(student, aid, False, "not graded since it was collected: run "
                                     f"`autograder grade {base}` first"))
            elif not html.is_file():
                done.append(Returned(student, aid, False, f"no feedback file {html}"))
            else:
                shutil.copyfile(secret, html.parent / SECRET)
                shutil.copyfile(adir / TIMESTAMP, html.parent / TIMESTAMP)
                nbgrader_api.check_result(nb_api.release_feedback(aid, student), f"release_feedback {aid} {student}")
                done.append(Returned(student, aid, True))
    return done
