"""Building a batch's worker bundle (coordinator): the course's configuration, the assignments'
source folders, the run's plans and canaries and a template gradebook, as bytes; and the job of one
submission."""
from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from autograder.course import Course, CourseError
from autograder.run.jobs import Bundle, Job
from autograder.store import outcomes

#: The only files of the course folder itself shipped to a worker (never the gradebook, the seed, a
#: roster or anything else an instructor keeps there).
_SHIPPED = ("nbgrader_config.py", "syllabus.toml")


#: Skipped inside the shipped source folders (besides the course's CourseDirectory.ignore).
_SKIP = (".ipynb_checkpoints", "__pycache__", "*.pyc")


#: Name of the template gradebook inside a staged course folder.
TEMPLATE = "_template_gradebook.db"


def _skipped(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def _folder_files(folder: Path, ignore: Iterable[str]) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(_skipped(part, ignore) for part in rel.parts) or path.is_symlink() or not path.is_file():
            continue
        yield path


def build_bundle(course: Course, aids: list[str], template: Path, extra: Iterable[Path] = (),
                 plans: Iterable[tuple[str, int, bytes]] = (),
                 canaries: Iterable[tuple[str, bytes]] = ()) -> Bundle:
    """The course's configuration files, the source folders of ``aids``, the ``extra`` files of
    the course folder (e.g. the challenges' held-out sets), the run's plan files
    (``(assignment, seed, content)``), the canary notebooks and the template gradebook."""
    root, source = course.root.resolve(), course.source_dir.resolve()
    base = Path(os.path.commonpath([root, source]))
    files: dict[str, bytes] = {}
    for name in _SHIPPED:
        f = root / name
        if f.is_file() and not f.is_symlink():
            files[str(f.relative_to(base))] = f.read_bytes()
    for aid in aids:
        for f in _folder_files(source / aid, _SKIP):
            files[str(f.relative_to(base))] = f.read_bytes()
    for f in extra:
        f = f.resolve()
        if root not in f.parents:
            raise CourseError(f"{f} is not in the course folder {root}")
        files[str(f.relative_to(base))] = f.read_bytes()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    plans = tuple(plans)
    for aid, seed, content in plans:
        digest.update(f"{aid}\0{seed}\0".encode() + hashlib.sha256(content).digest())
    canaries = tuple(sorted(canaries))
    for aid, content in canaries:
        digest.update(f"canary\0{aid}\0".encode() + hashlib.sha256(content).digest())
    blob = template.read_bytes()
    digest.update(hashlib.sha256(blob).digest())
    return Bundle(files, str(root.relative_to(base)), str(source.relative_to(base)), blob, digest.hexdigest()[:16],
                  plans, canaries)


def make_job(course: Course, aid: str, student: str, settings: dict[str, Any], digest: str,
             extension_s: float | None = None) -> Job:
    """The job of a submission installed in ``submitted/`` (its files and the notes recorded so far)."""
    folder = course.step_dir("submitted", student, aid)
    files = {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file() and not f.is_symlink()}
    return Job(aid, student, files, settings, digest, outcomes.read(course, aid, student), extension_s)
