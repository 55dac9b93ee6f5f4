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
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.course import Course, CourseError

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
MAX_NOTEBOOK_MB = 50
MAX_ZIP_MB = 2000


@dataclass
class Submission:
    """One student's work on one assignment, after checks."""

    student: str
    assignment: str
    notebook: Path | None = None          # the file to grade (None: nothing gradable)
    problem: str | None = None            # why it cannot be graded
    notes: list[str] = field(default_factory=list)  # remarks that do not stop grading

    @property
    def gradable(self) -> bool:
        return self.notebook is not None and self.problem is None


def open_source(path: Path, unpack_dir: Path, assignment_ids: set[str]) -> Path:
    """A folder to read submissions from: ``path`` itself, or a zip extracted safely."""
    if not path.exists():
        raise CourseError(f"{path} does not exist")
    if path.is_dir():
        return path
    if not zipfile.is_zipfile(path):
        raise CourseError(f"{path} is neither a folder nor a zip file")
    dest = unpack_dir
    with zipfile.ZipFile(path) as zf:
        total = sum(i.file_size for i in zf.infolist())
        if total > MAX_ZIP_MB * 1024 * 1024:
            raise CourseError(f"{path} unpacks to {total // 2**20} MB, more than {MAX_ZIP_MB} MB")
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            if not str(target).startswith(str(dest.resolve())) or info.filename.startswith("/"):
                raise CourseError(f"{path} contains an unsafe path: {info.filename!r}")
        zf.extractall(dest)
    return _unwrap(dest, assignment_ids)


def _unwrap(root: Path, assignment_ids: set[str]) -> Path:
    """Step into a single top-level folder (e.g. ``submissions/``) when that's all there is."""
    entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        is_student = any(p.is_dir() and p.name in assignment_ids for p in entries[0].iterdir())
        if not is_student:
            return entries[0]
    return root


def discover(course: Course, root: Path, only: str | None = None) -> tuple[list[Submission], list[str]]:
    """Every (student, assignment) found under ``root``, each checked; plus skipped entries."""
    known = {a.id for a in course.assignments()}
    submissions: list[Submission] = []
    skipped: list[str] = []
    for student_dir in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not student_dir.is_dir() or student_dir.is_symlink():
            skipped.append(f"{student_dir.name}: not a student folder (expected <student>/<assignment>/)")
            continue
        if not STUDENT_ID.match(student_dir.name):
            skipped.append(f"{student_dir.name!r}: not a valid student id (letters, digits, _ . @ + -)")
            continue
        for adir in sorted(p for p in student_dir.iterdir() if not p.name.startswith(".")):
            if not adir.is_dir():
                skipped.append(f"{student_dir.name}/{adir.name}: a file where an assignment folder was expected")
                continue
            if adir.name not in known:
                skipped.append(f"{student_dir.name}/{adir.name}: not an assignment of the syllabus")
                continue
            if only and adir.name != only:
                continue
            submissions.append(check_submission(student_dir.name, adir.name, adir))
    return submissions, skipped


def check_submission(student: str, aid: str, folder: Path) -> Submission:
    """Find the notebook to grade and make sure nbgrader can read it."""
    sub = Submission(student, aid)
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
    sub.problem = notebook_problem(chosen)
    sub.notebook = chosen
    return sub


def notebook_problem(path: Path) -> str | None:
    """None if ``path`` is a readable notebook, else the reason it is not."""
    try:
        raw = path.read_bytes()
        if not raw.strip():
            return "notebook unreadable: the file is empty"
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        return f"notebook unreadable: not JSON ({str(e)[:80]})"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or "nbformat" not in data:
        return "notebook unreadable: JSON, but not a Jupyter notebook"
    try:
        nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as e:  # nbformat raises many types for malformed notebooks
        return f"notebook unreadable: {type(e).__name__}: {str(e)[:80]}"
    return None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    dest_dir = course.root / "submitted" / sub.student / sub.assignment
    dest = dest_dir / f"{sub.assignment}.ipynb"
    if dest_dir.exists():
        for stale in dest_dir.iterdir():
            if stale != dest:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    dest_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(sub.notebook, as_version=4)
    release = nbformat.read(course.release_dir / sub.assignment / f"{sub.assignment}.ipynb", as_version=4)
    changes = restore_metadata(nb, release)
    if changes:
        sub.notes.append(f"cell metadata edited: {len(changes)} cell(s) restored from the release")
    text = nbformat.writes(nb)
    if not dest.exists() or dest.read_text() != text:
        dest.write_text(text)
    return dest
