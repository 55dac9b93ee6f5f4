"""The student edition of the course: ``autograder bundle [--to DIR|FILE.zip]``.

Built from the *committed* tree (``git`` HEAD of the repository holding the course), so
what students get is what is reviewed, never a half-edited working copy:

    README.md          the student's instructions (template: student_edition/README.md)
    run                the one command, lab only (template: student_edition/run)
    pyproject.toml     installs ``helpers`` with the student's dependencies
    environment.yml    the same list for conda
    LICENSE            the course's licence; the data's licences are in helpers/datasets/PROVENANCE.md
    .gitignore         so the folder can be ``git init``-ed as it is (student repo, nbgitpuller)
    BUNDLE.json        the commit it was built from and the sha256 of every file
    helpers/           the package the notebooks import (with the shipped data)
    notebooks/<id>/    for every assignment of the syllabus: <id>.ipynb and its visible checks.json

Nothing of the instructor's is taken: only ``helpers/``, the syllabus' ``release/<id>/``
folders and the package list are read from the tree; each file is checked against
``INSTRUCTOR_PARTS`` before it is written. The leak test (tests/course/test_bundle.py) proves,
on the built bundle, that no solution line, no text of a ``cases.py`` and no hidden input is in it.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import subprocess
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from autograder.course import Course, CourseError
from autograder.files import ZIP_TIME, atomic_output

TEMPLATES = Path(__file__).resolve().parent / "student_edition"
#: Folder of the notebooks in the bundle (each notebook beside its checks.json, as in release/).
NOTEBOOKS = "notebooks"
#: Default name of the bundle's top folder (and of the zip).
NAME = "dl-course-student"
#: Paths whose first component (or any component, for cases.py) is the instructor's: never bundled.
INSTRUCTOR_PARTS = {"source_notebooks", "autograder", "course", "tests", "benchmarks", "deploy", ".ci"}
INSTRUCTOR_FILES = {"cases.py", "nbgrader_config.py", "gradebook.db", ".grading_seed", "syllabus.toml"}
#: Packages only the instructor's grader needs (the student's notebooks never import them).
INSTRUCTOR_ONLY_PACKAGES = {"nbgrader", "copydetect", "nbclient", "nbconvert", "nbformat"}
#: Files of a tree that are never a course file (caches, editor litter).
LITTER = {"__pycache__", ".ipynb_checkpoints", ".DS_Store", "Thumbs.db"}


@dataclass(frozen=True)
class BundleFile:
    """One file of the bundle: its path (POSIX, relative to the bundle root), bytes, mode."""

    path: str
    data: bytes
    executable: bool = False


class GitTree:
    """Read files of one commit of a git repository (``git ls-tree`` / ``git cat-file``)."""

    def __init__(self, repo: Path, rev: str = "HEAD"):
        self.repo = repo
        try:
            self.commit = self._git("rev-parse", "--verify", f"{rev}^{{commit}}").decode().strip()
        except CourseError:
            raise CourseError(f"{repo} is not a git repository with a commit {rev!r}: the bundle is built "
                              "from the committed tree (commit your course first)") from None

    def _git(self, *args: str) -> bytes:
        try:
            done = subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CourseError(f"git failed in {self.repo}: {e}") from None
        if done.returncode != 0:
            raise CourseError(f"git {args[0]} failed in {self.repo}: {done.stderr.decode(errors='replace').strip()[:200]}")
        return done.stdout

    def files(self, folder: str) -> list[tuple[str, bool]]:
        """Regular files under ``folder`` in the commit: [(path, executable)], sorted.

        Symbolic links and submodules in the tree are refused (a bundle holds regular files only)."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", self.commit, "--", folder)
        files = []
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, path = entry.split(b"\t", 1)
            mode = meta.split()[0].decode()
            name = path.decode()
            if mode not in ("100644", "100755"):
                raise CourseError(f"{name} in the committed tree is not a regular file (mode {mode}); "
                                  "a bundle holds regular files only")
            files.append((name, mode == "100755"))
        return sorted(files)

    def read(self, path: str) -> bytes:
        return self._git("show", f"{self.commit}:{path}")

    def exists(self, path: str) -> bool:
        return bool(self._git("ls-tree", "--full-tree", self.commit, "--", path).strip())

    def changed(self, paths: list[str]) -> list[str]:
        """Paths under ``paths`` whose working copy differs from the commit (not bundled as edited)."""
        out = self._git("status", "--porcelain", "-z", "--untracked-files=no", "--", *paths)
        return sorted({e[3:].decode() for e in out.split(b"\0") if len(e) > 3})


def _is_instructor_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and (parts[0] in INSTRUCTOR_PARTS or any(p in INSTRUCTOR_FILES for p in parts))


def _is_litter(path: str) -> bool:
    return any(p in LITTER or p.endswith(".pyc") for p in PurePosixPath(path).parts)


def _requirement_name(spec: str) -> str:
    """The distribution name of a requirement (``"torch==2.13.0"`` -> ``"torch"``)."""
    return re.split(r"[\s<>=!~;\[]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def student_dependencies(pyproject: dict) -> list[str]:
    """The project's dependencies without the instructor-only ones, in the project's order."""
    deps = pyproject.get("project", {}).get("dependencies", [])
    return [d for d in deps if _requirement_name(d) not in INSTRUCTOR_ONLY_PACKAGES]


def _torch_spec(deps: list[str]) -> str:
    torch = [d for d in deps if _requirement_name(d) == "torch"]
    if len(torch) != 1:
        raise CourseError("pyproject.toml must pin torch once (e.g. \"torch==2.13.0\"): the student's "
                          "run script installs that CPU build first")
    return torch[0]


def _render(template: str, values: dict[str, str]) -> str:
    """``template`` with each ``{{name}}`` replaced; an unknown or unused name is an error."""
    used = set(re.findall(r"\{\{(\w+)\}\}", template))
    if used - values.keys():
        raise CourseError(f"student_edition template uses unknown field(s) {sorted(used - values.keys())}")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)


def _syllabus(tree: GitTree) -> list[dict]:
    try:
        data = tomllib.loads(tree.read("course/syllabus.toml").decode())
    except (CourseError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CourseError(f"cannot read course/syllabus.toml of commit {tree.commit[:12]}: {e}") from None
    assignments = data.get("assignment", [])
    if not assignments:
        raise CourseError("the committed syllabus lists no assignment: nothing to bundle")
    return assignments


def build_files(course: Course, rev: str = "HEAD") -> tuple[list[BundleFile], list[str]]:
    """Every file of the student edition, from commit ``rev`` of the course's repository,
    and warnings (working-copy edits that are not in the bundle).

    Returns (files sorted by path, warnings)."""
    repo = course.root.parent
    tree = GitTree(repo, rev)
    assignments = _syllabus(tree)
    release = course.release_dir.resolve()
    try:
        release_rel = release.relative_to(repo.resolve()).as_posix()
    except ValueError:
        raise CourseError(f"the release folder {release} is not inside the repository {repo}") from None
    try:
        pyproject = tomllib.loads(tree.read("pyproject.toml").decode())
    except (CourseError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CourseError(f"cannot read pyproject.toml of commit {tree.commit[:12]}: {e}") from None
    deps = student_dependencies(pyproject)
    files: dict[str, BundleFile] = {}

    def add(path: str, data: bytes, executable: bool = False) -> None:
        if _is_instructor_path(path):  # a last guard: the sources above never give one
            raise CourseError(f"refusing to bundle an instructor file: {path}")
        files[path] = BundleFile(path, data, executable)

    for path, _ in tree.files("helpers"):
        if not _is_litter(path):
            add(path, tree.read(path))
    if "helpers/__init__.py" not in files:
        raise CourseError(f"helpers/ is not committed in {repo}: the notebooks import it")
    rows = []
    for a in assignments:
        aid = str(a["id"])
        folder = f"{release_rel}/{aid}"
        found = [(p, x) for p, x in tree.files(folder) if not _is_litter(p)]
        names = {PurePosixPath(p).name for p, _ in found}
        if f"{aid}.ipynb" not in names or "checks.json" not in names:
            raise CourseError(f"{folder}/ of commit {tree.commit[:12]} lacks {aid}.ipynb or checks.json: run "
                              f"`autograder release {aid}` and commit {folder}/ before bundling")
        for path, _ in found:
            rel = PurePosixPath(path).relative_to(release_rel).as_posix()
            add(f"{NOTEBOOKS}/{rel}", tree.read(path))
        rows.append(f"| `{NOTEBOOKS}/{aid}/{aid}.ipynb` | {a.get('title', aid)} |")
    python = pyproject.get("project", {}).get("requires-python", ">=3.11").lstrip(">=~ ")
    values = {
        "name": NAME, "python": python, "torch": _torch_spec(deps), "notebooks": NOTEBOOKS,
        "table": "\n".join(rows), "first": f"{NOTEBOOKS}/{assignments[0]['id']}/{assignments[0]['id']}.ipynb",
        "count": str(len(assignments)), "license": str(pyproject.get("project", {}).get("license", "MIT")),
    }
    add("README.md", _render((TEMPLATES / "README.md").read_text(), values).encode())
    add("run", _render((TEMPLATES / "run").read_text(), values).encode(), executable=True)
    add("LICENSE", _license(tree, values))
    add(".gitignore", (TEMPLATES / "gitignore").read_bytes())
    add("pyproject.toml", _student_pyproject(pyproject, deps).encode())
    add("environment.yml", _environment_yml(python, deps).encode())
    manifest = {"built_from": tree.commit, "name": NAME, "assignments": [str(a["id"]) for a in assignments],
                "files": {p: hashlib.sha256(f.data).hexdigest() for p, f in sorted(files.items())}}
    add("BUNDLE.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    warnings = [f"{p} has uncommitted changes: the bundle holds the committed version"
                for p in tree.changed(["helpers", *[f"{release_rel}/{a['id']}" for a in assignments],
                                       "course/syllabus.toml", "pyproject.toml"])]
    return [files[p] for p in sorted(files)], warnings


def _license(tree: GitTree, values: dict[str, str]) -> bytes:
    """The repository's committed LICENSE if it has one, else the MIT text of the template
    (pyproject.toml says ``license = "MIT"``); any other licence needs its own LICENSE file."""
    for name in ("LICENSE", "LICENSE.md", "LICENSE.txt"):
        if tree.exists(name):
            return tree.read(name)
    if values["license"].upper() != "MIT":
        raise CourseError(f"pyproject.toml says license = {values['license']!r} but the repository has no "
                          "LICENSE file: commit one (the bundle ships it)")
    return _render((TEMPLATES / "LICENSE").read_text(), values).encode()


def _student_pyproject(pyproject: dict, deps: list[str]) -> str:
    project = pyproject.get("project", {})
    lines = [
        "# The student edition of the course: installs the `helpers` package the notebooks import.",
        "# Generated by `autograder bundle`; the instructor's repository holds the original.",
        "[build-system]",
        'requires = ["setuptools>=77"]  # license = "MIT" (an SPDX expression) needs 77',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f'name = "{NAME}"',
        f'version = "{project.get("version", "0")}"',
        'description = "Deep-learning course notebooks (student edition)"',
        'readme = "README.md"',
        f'requires-python = "{project.get("requires-python", ">=3.11")}"',
        f'license = "{project.get("license", "MIT")}"',
        "dependencies = [",
        *[f'    "{d}",' for d in deps],
        "]",
        "",
        "[tool.setuptools.packages.find]",
        'include = ["helpers*"]',
        "",
        "[tool.setuptools.package-data]",
        'helpers = ["datasets/*.npz", "datasets/*.txt", "datasets/*.md"]',
        "",
    ]
    return "\n".join(lines)


def _environment_yml(python: str, deps: list[str]) -> str:
    lines = [
        "# Conda: `conda env create -f environment.yml && conda activate dl-course-student`,",
        "# then `jupyter lab notebooks/`. The same packages as pyproject.toml.",
        f"name: {NAME}",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={python}",
        "  - pip",
        "  - pip:",
        *[f"      - {d}" for d in deps],
        "      - -e .",
        "",
    ]
    return "\n".join(lines)


def write_folder(files: list[BundleFile], to: Path) -> Path:
    """Write the bundle as a folder ``to`` (new, or empty). Returns ``to``."""
    if to.exists() and (not to.is_dir() or to.is_symlink() or any(to.iterdir())):
        raise CourseError(f"{to} exists and is not an empty folder: choose a new path")
    to.mkdir(parents=True, exist_ok=True)
    for f in files:
        target = to / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.data)
        target.chmod(0o755 if f.executable else 0o644)
    return to


def write_zip(files: list[BundleFile], to: Path, top: str = NAME) -> Path:
    """Write the bundle as a zip whose entries lie in ``top/`` (same bytes every time)."""
    if to.exists():
        raise CourseError(f"{to} exists: choose a new file name (or delete it)")
    to.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(to) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            info = zipfile.ZipInfo(f"{top}/{f.path}", date_time=ZIP_TIME)
            info.external_attr = (stat.S_IFREG | (0o755 if f.executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, f.data)
    return to


def bundle(course: Course, to: Path | None = None, rev: str = "HEAD") -> tuple[Path, list[BundleFile], list[str]]:
    """Build the student edition into ``to`` (a folder, or a file ending in ``.zip``; default:
    ``course/exports/dl-course-student/``). Returns (where, files, warnings)."""
    files, warnings = build_files(course, rev)
    to = to or course.root / "exports" / NAME
    if to.suffix.lower() == ".zip":
        return write_zip(files, to, top=to.stem or NAME), files, warnings
    if to.exists() and to.is_dir() and (to / "BUNDLE.json").is_file() and not (to / ".git").exists():
        shutil.rmtree(to)  # an earlier bundle (not yet a repository): replaced
    return write_folder(files, to), files, warnings
