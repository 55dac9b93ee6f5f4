"""Where the course lives and what it contains: paths and the syllabus."""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class CourseError(Exception):
    """A user error: printed as one line by the CLI, never as a traceback."""


@dataclass(frozen=True)
class Assignment:
    """One line of the syllabus."""

    id: str
    title: str
    points: float
    order: int


@dataclass(frozen=True)
class Course:
    """A course root (the folder holding nbgrader_config.py and syllabus.toml)."""

    root: Path

    @classmethod
    def find(cls, root: str | os.PathLike | None = None) -> "Course":
        """The course given, else $AUTOGRADER_COURSE, else ./course, else the repo's."""
        candidates = [root, os.environ.get("AUTOGRADER_COURSE"), Path.cwd() / "course", REPO / "course"]
        for c in candidates:
            if c and (Path(c) / "nbgrader_config.py").is_file():
                return cls(Path(c).resolve())
        if root:
            raise CourseError(f"{root} is not a course folder (no nbgrader_config.py in it)")
        raise CourseError("no course folder found: run from the repository root or pass --course DIR")

    def config(self):
        """The course's nbgrader configuration (a traitlets Config), read from its file."""
        from traitlets.config.loader import PyFileConfigLoader

        return PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()

    @property
    def source_dir(self) -> Path:
        return Path(self.config().CourseDirectory.source_directory)

    @property
    def release_dir(self) -> Path:
        return Path(self.config().CourseDirectory.release_directory)

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    @property
    def outcomes_dir(self) -> Path:
        return self.root / "outcomes"

    def assignments(self) -> list[Assignment]:
        """The syllabus, in course order."""
        path = self.root / "syllabus.toml"
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise CourseError(f"cannot read {path}: {e}") from e
        return [Assignment(a["id"], a["title"], float(a["points"]), i)
                for i, a in enumerate(data.get("assignment", []), 1)]

    def assignment(self, aid: str) -> Assignment:
        for a in self.assignments():
            if a.id == aid:
                return a
        known = ", ".join(a.id for a in self.assignments())
        raise CourseError(f"unknown assignment {aid!r} (the syllabus lists: {known})")

    def source_notebook(self, aid: str) -> Path:
        """The instructor notebook of an assignment (one notebook per assignment)."""
        return self.source_dir / aid / f"{aid}.ipynb"

    def cases_file(self, aid: str) -> Path:
        return self.source_dir / aid / "cases.py"
