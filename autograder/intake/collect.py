"""Take submissions from a folder or an LMS zip, check them, copy them into the course.

Accepted layouts: ``PATH/<student>/<assignment>/*.ipynb``, or a ``.zip`` holding the
same layout (optionally inside one top-level folder). The user's files are only
read: valid notebooks are copied to ``course/submitted/<student>/<assignment>/``
(nbgrader's layout) under the expected name.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.config import MAX_NOTEBOOK_MB, MAX_ZIP_MB
from autograder.files import link_kind, read_regular
from autograder.course import Course, CourseError

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")


@dataclass(frozen=True)
class Refusal:
    """Something found while collecting (a folder, an LMS zip or the exchange) that is not a gradable
    submission, and why.

    name: the entry's name as found (a student folder, a file, an exchange entry); assignment: the
    assignment it names, or ""; student: the student it belongs to where that is known (the exchange
    knows the entry's owner), else ""."""

    name: str
    assignment: str
    reason: str
    student: str = ""

    def who(self) -> str:
        """The student where known, else the entry's name (how the outcome records it)."""
        return self.student or self.name


@dataclass
class Submission:
    """One student's work on one assignment, after checks."""

    student: str
    assignment: str
    notebook: Path | None = None          # the file to grade (None: nothing gradable)
    problem: str | None = None            # why it cannot be graded
    notes: list[str] = field(default_factory=list)  # remarks that do not stop grading
    timestamp: str | None = None          # when it was submitted (ISO 8601), for late penalties

    @property
    def gradable(self) -> bool:
        return self.notebook is not None and self.problem is None


# Operating-system litter in folders and zips, skipped without a word (never a student's work).
JUNK = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}
MAX_ENTRIES = 200_000          # entries in a zip, or files walked in one submission folder
MAX_NAME_BYTES = 255           # one path component (the usual file-system limit)
MAX_PATH_BYTES = 1024
LINK_REFUSED = "refused: {what} is a link ({kind}); only regular files and folders are read"


def open_source(path: Path, unpack_dir: Path, assignment_ids: set[str]) -> tuple[Path, dict[str, str]]:
    """A folder to read submissions from, and the zip entries that could not be extracted.

    ``path`` is a folder (read in place) or a zip, extracted safely into ``unpack_dir``
    (``extract_zip``). Returns the folder holding the student folders (a single top-level
    folder such as ``submissions/`` is stepped into) and ``{entry path relative to it: problem}``.
    """
    if not path.exists():
        raise CourseError(f"{path} does not exist")
    if path.is_dir():
        return path, {}
    problems = extract_zip(path, unpack_dir)
    root = _unwrap(unpack_dir, assignment_ids)
    prefix = root.relative_to(unpack_dir).as_posix()
    if prefix != ".":
        problems = {(k[len(prefix) + 1:] if k.startswith(prefix + "/") else k): v for k, v in problems.items()}
    return root, problems


def _zip_error(path: Path, e: BaseException) -> CourseError:
    return CourseError(f"{path.name} is not a readable zip file ({type(e).__name__}: {str(e)[:120]}); "
                       "download it again from the LMS")


def _entry_parts(name: str) -> list[str] | str:
    """The path components of a zip entry, or the reason it cannot be extracted."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        return "an absolute or unsafe path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return "a path that leaves the archive (..)"
    if len(name.encode()) > MAX_PATH_BYTES or any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        return "a name too long for the file system"
    return parts


def extract_zip(path: Path, dest: Path) -> dict[str, str]:
    """Extract the regular files and folders of a zip into ``dest``; return the rest as problems.

    Only regular files are written (``O_EXCL | O_NOFOLLOW``, never over an existing file);
    symbolic links and other special entries, encrypted entries, corrupt data (bad CRC,
    truncated), unsupported compression, unsafe or over-long names, a file where a folder is
    expected, duplicates, and files over ``MAX_NOTEBOOK_MB`` (by their real size, not the size
    the zip claims) are not extracted: each becomes ``{entry path: problem}``. A zip that cannot be
    read at all, or that unpacks to more than ``MAX_ZIP_MB``, is one ``CourseError``.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise _zip_error(path, e) from None
    problems: dict[str, str] = {}
    budget = MAX_ZIP_MB * 1024 * 1024
    dest.mkdir(parents=True, exist_ok=True)
    with zf:
        try:
            infos = zf.infolist()
        except (zipfile.BadZipFile, ValueError) as e:
            raise _zip_error(path, e) from None
        if len(infos) > MAX_ENTRIES:
            raise CourseError(f"{path.name} holds {len(infos)} entries, more than {MAX_ENTRIES}")
        for info in infos:
            parts = _entry_parts(info.filename)
            key = "/".join(parts) if isinstance(parts, list) else info.filename
            if isinstance(parts, str):
                problems[key] = f"the zip entry has {parts}"
                continue
            if not parts or parts[0] in JUNK:
                continue
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                problems[key] = "refused: the zip entry is a symbolic link; only regular files are read"
                continue
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                problems[key] = "refused: the zip entry is not a regular file"
                continue
            if info.flag_bits & 0x1:
                problems[key] = "the zip entry is encrypted (password-protected): cannot be read"
                continue
            try:
                target = _prepare_target(dest, parts, info.is_dir())
                if target is None:
                    continue
                budget -= _copy_entry(zf, info, target, min(budget, MAX_NOTEBOOK_MB * 1024 * 1024 + 1))
            except _EntryProblem as e:
                problems[key] = str(e)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError,
                    NotImplementedError) as e:
                problems[key] = f"the zip entry could not be read ({type(e).__name__}: {str(e)[:100]})"
            if budget <= 0:
                raise CourseError(f"{path.name} unpacks to more than {MAX_ZIP_MB} MB")
    return problems


class _EntryProblem(Exception):
    pass


def _prepare_target(dest: Path, parts: list[str], is_dir: bool) -> Path | None:
    """Create the folders of an entry (never through a link); the file to write, or None for a folder."""
    folder = dest
    for i, part in enumerate(parts if is_dir else parts[:-1]):
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise _EntryProblem("the zip holds a file where a folder is expected ("
                                + "/".join(parts[:i + 1]) + ")")
        folder.mkdir(exist_ok=True)
    if is_dir:
        return None
    target = folder / parts[-1]
    if target.exists() or target.is_symlink():
        raise _EntryProblem("the zip holds this path twice (or as a file and a folder)")
    return target


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int) -> int:
    """Stream one entry to ``target``, at most ``limit`` bytes; the number of bytes written."""
    written = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, zf.open(info) as src:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise _EntryProblem(f"over size limit: the zip entry unpacks to more than "
                                        f"{MAX_NOTEBOOK_MB} MB")
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return written


def _unwrap(root: Path, assignment_ids: set[str]) -> Path:
    """Step into a single top-level folder (e.g. ``submissions/``) when that's all there is."""
    entries = [p for p in root.iterdir() if p.name not in JUNK]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        is_student = any(p.is_dir() and p.name in assignment_ids for p in entries[0].iterdir())
        if not is_student:
            return entries[0]
    return root


def _refused_inside(folder: Path) -> str | None:
    """The first link or special file anywhere under ``folder`` (not followed), as a reason."""
    count = 0
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as e:
            return f"refused: {current.name} cannot be read ({e.strerror})"
        for entry in entries:
            count += 1
            if count > MAX_ENTRIES:
                return f"refused: the submission holds more than {MAX_ENTRIES} files"
            st = entry.stat(follow_symlinks=False)
            kind = link_kind(st)
            if kind:
                rel = Path(entry.path).relative_to(folder).as_posix()
                return LINK_REFUSED.format(what=repr(rel)[:80], kind=kind)
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
    return None


def discover(course: Course, root: Path, only: str | None = None,
             problems: dict[str, str] | None = None) -> tuple[list[Submission], list[Refusal]]:
    """Every (student, assignment) found under ``root``, each checked; plus what was refused.

    problems: zip entries that could not be extracted (``open_source``), by path under ``root``:
    the submission they belong to is not graded and says why; others become refusals.
    Links are never followed at any level; every entry that is not a gradable submission is
    a ``Refusal`` (with its reason), so that it appears in the CSV."""
    known = {a.id for a in course.assignments()}
    problems = dict(problems or {})
    submissions: list[Submission] = []
    refused: list[Refusal] = []
    for student_dir in sorted(root.iterdir()):
        name = student_dir.name
        if name in JUNK:
            continue
        kind = link_kind(student_dir.lstat())
        if kind:
            refused.append(Refusal(name, "", LINK_REFUSED.format(what="the student folder", kind=kind)))
            continue
        if not student_dir.is_dir():
            if not any(k == name or k.startswith(name + "/") for k in problems):
                refused.append(Refusal(name, "", "a file where a student folder <student>/<assignment>/ was expected"))
            continue
        if not STUDENT_ID.match(name):
            why = "a hidden folder" if name.startswith(".") else "not a valid student id"
            refused.append(Refusal(name, "", f"{why} (ids are 1-64 ASCII letters, digits, _ . @ + -, "
                                             "starting with a letter or digit)"))
            continue
        for adir in sorted(student_dir.iterdir()):
            if adir.name in JUNK:
                continue
            kind = link_kind(adir.lstat())
            if adir.name not in known or kind or not adir.is_dir():
                if kind and adir.name in known and (not only or adir.name == only):
                    submissions.append(Submission(name, adir.name, problem=LINK_REFUSED.format(
                        what="the assignment folder", kind=kind)))
                elif kind:
                    refused.append(Refusal(name, adir.name, LINK_REFUSED.format(what="the entry", kind=kind)))
                elif not adir.is_dir():
                    refused.append(Refusal(name, adir.name, "a file where an assignment folder was expected"))
                else:
                    refused.append(Refusal(name, adir.name, "not an assignment of the syllabus"))
                continue
            if only and adir.name != only:
                continue
            sub = check_submission(name, adir.name, adir)
            broken = sorted(k for k in problems if k.startswith(f"{name}/{adir.name}/"))
            if broken:  # an entry of this submission could not be extracted: it is not graded, and says why
                sub.problem = f"{problems[broken[0]]} ({broken[0][len(name) + len(adir.name) + 2:][:60]})"
            submissions.append(sub)
    # Entries that could not be extracted: the submission they belong to is not graded (and says
    # why), whether or not anything else of it was extracted; anything else is refused.
    have = {(s.student, s.assignment) for s in submissions}
    refused_keys = {(r.name, r.assignment) for r in refused}
    for k, why in sorted(problems.items()):
        parts = k.split("/")
        if len(parts) >= 3 and STUDENT_ID.match(parts[0]) and parts[1] in known:
            if only and parts[1] != only:
                continue
            if (parts[0], parts[1]) not in have:
                submissions.append(Submission(parts[0], parts[1], problem=f"{why} ({parts[-1][:60]})"))
                have.add((parts[0], parts[1]))
            continue
        key = (parts[0], parts[1] if len(parts) > 1 and parts[1] in known else "")
        if key not in refused_keys:
            refused.append(Refusal(*key, why))
            refused_keys.add(key)
    submissions.sort(key=lambda s: (s.student, s.assignment))
    return submissions, refused


def check_submission(student: str, aid: str, folder: Path) -> Submission:
    """Find the notebook to grade and make sure nbgrader can read it."""
    sub = Submission(student, aid)
    refused = _refused_inside(folder)
    if refused:
        sub.problem = refused
        return sub
    expected = f"{aid}.ipynb"
    notebooks = sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.is_symlink())
    chosen = next((p for p in notebooks if p.name == expected), None)
    if chosen is None:
        if not notebooks:
            sub.problem = f"notebook missing: no {expected} in the submission"
            return sub
        if len(notebooks) > 1:
            names = ", ".join(p.name for p in notebooks)
            sub.problem = f"wrong file name: found {names}; expected {expected}"
            return sub
        chosen = notebooks[0]
        sub.notes.append(f"wrong file name: {chosen.name} graded as {expected}")
    size = chosen.stat().st_size
    if size > MAX_NOTEBOOK_MB * 1024 * 1024:
        sub.problem = f"over size limit: {chosen.name} is {size / 2**20:.0f} MB (limit {MAX_NOTEBOOK_MB} MB)"
        return sub
    try:
        sub.problem = notebook_problem(read_regular(chosen, MAX_NOTEBOOK_MB * 1024 * 1024))
    except OSError as e:
        sub.problem = f"notebook unreadable: {e}"
        return sub
    sub.notebook = chosen
    sub.timestamp, note = _timestamp(folder)
    if note:
        sub.notes.append(note)
    return sub


def _timestamp(folder: Path) -> tuple[str | None, str | None]:
    """nbgrader's ``timestamp.txt`` beside the notebook (the exchange writes it): (time, note)."""
    path = folder / "timestamp.txt"
    if not path.exists() and not path.is_symlink():
        return None, None
    from nbgrader.utils import parse_utc

    try:
        text = read_regular(path, 200).decode().strip()
        parse_utc(text)
        return text, None
    except (OSError, ValueError, UnicodeDecodeError, TypeError, OverflowError):
        return None, "timestamp.txt unreadable: the submission time is unknown (not treated as late)"


def notebook_problem(raw: bytes) -> str | None:
    """None if ``raw`` is a readable notebook, else the reason it is not."""
    try:
        if not raw.strip():
            return "notebook unreadable: the file is empty"
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        return f"notebook unreadable: not JSON ({str(e)[:80]})"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or "nbformat" not in data:
        return "notebook unreadable: JSON, but not a Jupyter notebook"
    try:
        nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as e:  # nbformat raises many types for malformed notebooks
        return f"notebook unreadable: {type(e).__name__}: {str(e)[:80]}"
    return None


def sha256(path: Path) -> str:
    return hashlib.sha256(read_regular(path, MAX_NOTEBOOK_MB * 1024 * 1024)).hexdigest()


def restore_metadata(nb: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """Put back the nbgrader metadata of the released notebook (in place); say what changed.

    nbgrader trusts the submission's cell metadata and stops on some edits (a solution cell
    turned into a graded one, a duplicated grade id). Each cell known by its grade id gets the
    released metadata back; duplicates and unknown graded cells become plain cells. The test
    cells' sources are restored by nbgrader itself (OverwriteCells), missing ones added back.
    """
    released = {c.metadata["nbgrader"]["grade_id"]: c for c in release.cells
                if "grade_id" in c.metadata.get("nbgrader", {})}
    seen: set[str] = set()
    changes = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        ref = released.get(gid)
        if ref is None or gid in seen or ref.cell_type != cell.cell_type:
            del cell.metadata["nbgrader"]
            changes.append(f"ignored an unknown or duplicated graded cell ({str(gid)[:30]!r})")
            continue
        seen.add(gid)
        if meta != ref.metadata["nbgrader"]:
            cell.metadata["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
            changes.append(f"restored the nbgrader metadata of cell {gid!r}")
    return changes


def install(course: Course, sub: Submission) -> Path:
    """Copy a gradable submission into nbgrader's submitted/ folder (idempotent).

    The copy gets the released nbgrader metadata back (``restore_metadata``); the
    student's own file is never changed.
    """
    dest_dir = course.step_dir("submitted", sub.student, sub.assignment)
    dest = dest_dir / f"{sub.assignment}.ipynb"
    if dest_dir.exists():
        for stale in dest_dir.iterdir():
            if stale != dest and not (stale.name == "timestamp.txt" and sub.timestamp):
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    dest_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.reads(read_regular(sub.notebook, MAX_NOTEBOOK_MB * 1024 * 1024).decode("utf-8"), as_version=4)
    release = nbformat.read(course.release_dir / sub.assignment / f"{sub.assignment}.ipynb", as_version=4)
    changes = restore_metadata(nb, release)
    if changes:
        sub.notes.append(f"cell metadata edited: {len(changes)} cell(s) restored from the release")
    text = nbformat.writes(nb)
    if not dest.exists() or dest.read_text() != text:
        dest.write_text(text)
    if sub.timestamp:  # nbgrader's AssignLatePenalties reads the submission time from here
        (dest_dir / "timestamp.txt").write_text(sub.timestamp)
    return dest
