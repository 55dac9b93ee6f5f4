"""Where the course lives and what it contains: paths and the syllabus."""
from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from autograder.errors import CourseError  # noqa: F401 - where most modules take it from

#: nbgrader's per-submission step folders under the course root.
STEPS = ("submitted", "autograded", "feedback")
REPO = Path(__file__).resolve().parent.parent

#: Seconds a sqlite writer waits for the lock before "database is locked" (Python's default is 5).
SQLITE_BUSY_TIMEOUT_S = 60


#: Each course's nbgrader_config.py as last read: {path: ((path, mtime_ns, size), Config)}.
_CONFIGS: dict[str, tuple[tuple[str, int, int], object]] = {}


@dataclass(frozen=True)
class Assignment:
    """One line of the syllabus."""

    id: str
    title: str
    points: float
    order: int
    due: dt.datetime | None = None  # aware, UTC; None: no due date (nothing is late)
    # Grading on submit (``autograder.ondemand``): official gradings a student may ask for (None: the
    # assignment is graded by the instructor only), counted per UTC day or in total, and whether the
    # best graded attempt is the grade (else the last one graded before the deadline).
    attempts: int | None = None
    attempts_per: str = "total"
    best_of: bool = False


@dataclass(frozen=True)
class Course:
    """A course root (the folder holding nbgrader_config.py and syllabus.toml)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # a str is fine too

    @classmethod
    def find(cls, root: str | os.PathLike | None = None) -> "Course":
        """The course given (which must be one: a mistyped --course never falls back to another
        course), else $AUTOGRADER_COURSE, else ./course, else the repo's."""
        if root:
            if not (Path(root) / "nbgrader_config.py").is_file():
                raise CourseError(f"{root} is not a course folder (no nbgrader_config.py in it)")
            return cls(Path(root).resolve())
        candidates = [os.environ.get("AUTOGRADER_COURSE"), Path.cwd() / "course", REPO / "course"]
        for c in candidates:
            if c and (Path(c) / "nbgrader_config.py").is_file():
                return cls(Path(c).resolve())
        raise CourseError("no course folder found: run from the repository root or pass --course DIR")

    def file_config(self):
        """nbgrader_config.py as written (a traitlets Config; a copy: callers may change it).

        The file is executed once per process while it is unchanged (it imports the grader's
        preprocessors: executing it for every path lookup made one plan run it 8 times)."""
        import copy

        from traitlets.config.loader import PyFileConfigLoader

        path = self.root / "nbgrader_config.py"
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if _CONFIGS.get(str(path), (None,))[0] != key:
            _CONFIGS[str(path)] = (key, PyFileConfigLoader(path.name, path=str(self.root)).load_config())
        return copy.deepcopy(_CONFIGS[str(path)][1])

    def config(self):
        """The course's nbgrader configuration (a traitlets Config): its file, with
        ``CourseDirectory.db_url`` set to :attr:`db_url` so every nbgrader app and
        preprocessor (in worker processes too) opens the same gradebook the same way."""
        config = self.file_config()
        config.CourseDirectory.db_url = self.db_url
        return config

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
        """The gradebook's SQLAlchemy URL: $GRADEBOOK_URL, else ``c.CourseDirectory.db_url`` of
        nbgrader_config.py, else the sqlite file :attr:`gradebook`. A sqlite URL gets a busy
        timeout (``?timeout=``) unless it names one, so concurrent writers wait instead of failing."""
        url = os.environ.get("GRADEBOOK_URL", "").strip()
        if not url:
            section = self.file_config().get("CourseDirectory", {})
            url = str(section["db_url"]) if "db_url" in section else f"sqlite:///{self.gradebook}"
        return gradebook_url(url)

    @property
    def outcomes_dir(self) -> Path:
        return self.root / "outcomes"

    def course_id(self) -> str:
        """nbgrader's course id (``c.CourseDirectory.course_id``; nbgrader's default when unset)."""
        return str(self.config().CourseDirectory.get("course_id", "default_course"))

    def step_dir(self, step: str, student: str, aid: str) -> Path:
        """nbgrader's folder of one submission at one step: ``<root>/<step>/<student>/<aid>``
        (``step``: one of ``STEPS``). Every path of a step folder is made here."""
        if step not in STEPS:
            raise ValueError(f"unknown nbgrader step {step!r} (one of {STEPS})")
        return self.root / step / student / aid

    def assignments(self) -> list[Assignment]:
        """The syllabus, in course order."""
        path = self.root / "syllabus.toml"
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise CourseError(f"cannot read {path}: {e}") from e
        return [Assignment(a["id"], a["title"], float(a["points"]), i, parse_due(a.get("due"), a["id"], path),
                           *parse_attempts(a, path))
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


def parse_attempts(entry: dict, where: Path) -> tuple[int | None, str, bool]:
    """A syllabus entry's ``attempts`` (a positive integer), ``attempts_per`` ("day" or "total") and
    ``best_of`` (true/false), checked."""
    aid, attempts = entry["id"], entry.get("attempts")
    if attempts is not None and (not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1):
        raise CourseError(f"{where}: attempts of {aid} must be a positive whole number, e.g. attempts = 3")
    per = entry.get("attempts_per", "total")
    if per not in ("day", "total"):
        raise CourseError(f"{where}: attempts_per of {aid} must be \"day\" or \"total\" (not {per!r})")
    best = entry.get("best_of", False)
    if not isinstance(best, bool):
        raise CourseError(f"{where}: best_of of {aid} must be true or false")
    if attempts is None and ("attempts_per" in entry or "best_of" in entry):
        raise CourseError(f"{where}: {aid} sets attempts_per or best_of but no attempts")
    return attempts, per, best


def parse_due(value: object, aid: str, where: Path) -> dt.datetime | None:
    """A syllabus ``due`` (a TOML date-time or an ISO 8601 string with a time zone) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise CourseError(f"{where}: due date of {aid} is not ISO 8601 ({value!r}); "
                              f"write e.g. due = \"2026-12-15T23:59:00Z\"") from None
    if not isinstance(value, dt.datetime):
        raise CourseError(f"{where}: due date of {aid} must be a date and time, e.g. \"2026-12-15T23:59:00Z\"")
    if value.tzinfo is None:
        raise CourseError(f"{where}: due date of {aid} ({value.isoformat()}) has no time zone; "
                          f"add one, e.g. Z for UTC or +01:00")
    return value.astimezone(dt.timezone.utc)


def gradebook_url(url: str) -> str:
    """``url`` checked, with a busy timeout added to a sqlite URL that names none.

    >>> gradebook_url("sqlite:////srv/course/gradebook.db")
    'sqlite:////srv/course/gradebook.db?timeout=60'
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise CourseError(f"unsupported gradebook URL {url.split('@')[-1]!r}: use sqlite:///FILE or "
                          "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    if scheme == "postgres":  # Heroku-style alias that SQLAlchemy does not accept
        url = "postgresql" + url[len("postgres"):]
    if scheme != "sqlite":
        return url
    base, _, query = url.partition("?")
    params = dict(parse_qsl(query))
    params.setdefault("timeout", str(SQLITE_BUSY_TIMEOUT_S))
    return f"{base}?{urlencode(params)}"
