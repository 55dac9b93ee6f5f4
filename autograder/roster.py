"""The class roster: who each LMS user is in the course (``--roster roster.csv``).

A CSV with a header row. One column is required, the course's student id (the id graded,
in the gradebook and the CSV); the others identify the student in an LMS export:

    student          course student id (also accepted: ``student_id``, ``course_id``) required
    name             full name as the LMS shows it ("Ada Lovelace")                 Moodle, Canvas
    email            e-mail address                                                 Moodle worksheet
    canvas_user_id   Canvas's numeric user id (the ``ID`` column of its gradebook)   Canvas
    sis_user_id, sis_login_id, section   copied into Canvas's gradebook import
    moodle_participant_id   Moodle's "Participant N" id (optional: Moodle's zips carry it)

Matching (``Roster.match_*``) is exact on ids and on a normalised name (case, accents,
spaces and punctuation ignored); an ambiguous name never matches.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from autograder.collect import STUDENT_ID
from autograder.course import CourseError

ALIASES = {
    "student": ("student", "student_id", "course_id"),
    "name": ("name", "full_name", "full name", "fullname"),
    "email": ("email", "email_address", "email address", "e-mail"),
    "canvas_user_id": ("canvas_user_id", "canvas_id", "canvas"),
    "sis_user_id": ("sis_user_id", "sis user id"),
    "sis_login_id": ("sis_login_id", "sis login id"),
    "section": ("section",),
    "moodle_participant_id": ("moodle_participant_id", "participant_id", "participant"),
}


@dataclass(frozen=True)
class Person:
    """One roster row."""

    student: str
    name: str = ""
    email: str = ""
    canvas_user_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    moodle_participant_id: str = ""


def name_key(name: str) -> str:
    """A name compared loosely: accents, case, spaces and punctuation removed ("Zoë O'Neil" -> "zoeoneil")."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "", text.casefold())


@dataclass
class Roster:
    """The roster's people, with look-ups by each LMS identifier."""

    people: list[Person]
    path: Path | None = None
    _by: dict[str, dict[str, list[Person]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for key in ("canvas_user_id", "moodle_participant_id", "email", "student"):
            index: dict[str, list[Person]] = {}
            for p in self.people:
                value = getattr(p, key).strip().casefold()
                if value:
                    index.setdefault(value, []).append(p)
            self._by[key] = index
        names: dict[str, list[Person]] = {}
        for p in self.people:
            if p.name:
                names.setdefault(name_key(p.name), []).append(p)
                # Canvas writes "lastfirst": the name reordered, lower case, no spaces
                parts = p.name.split()
                if len(parts) > 1:
                    names.setdefault(name_key(parts[-1] + "".join(parts[:-1])), []).append(p)
        self._by["name"] = {k: list(dict.fromkeys(v)) for k, v in names.items()}

    def by_student(self, student: str) -> list[Person]:
        """Every roster row with this course id (more than one is a roster mistake)."""
        return list(self._by["student"].get(student.casefold(), []))

    def match(self, key: str, value: str) -> tuple[Person | None, str | None]:
        """The one person whose ``key`` (an ALIASES key, or "name") is ``value``, else (None, why)."""
        value = value.strip()
        if not value:
            return None, None
        look = name_key(value) if key == "name" else value.casefold()
        found = self._by.get(key, {}).get(look, [])
        if len(found) == 1:
            return found[0], None
        if len(found) > 1:
            return None, (f"the roster has {len(found)} people with this {key.replace('_', ' ')} "
                          f"({', '.join(p.student for p in found)}); give their LMS ids in the roster")
        return None, None


def read_roster(path: Path) -> Roster:
    """Read and check a roster CSV (UTF-8, with or without a BOM; comma or semicolon separated).

    Raises CourseError with one line for a missing file, no student column, an invalid or
    duplicated student id, or an LMS id given to two students."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise CourseError(f"cannot read the roster {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CourseError(f"the roster {path} is not UTF-8 text (save it as CSV UTF-8)") from None
    if not text.strip():
        raise CourseError(f"the roster {path} is empty")
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().casefold() for h in next(reader)]
    columns: dict[str, int] = {}
    for key, names in ALIASES.items():
        for i, h in enumerate(header):
            if h in names and key not in columns and i not in columns.values():
                columns[key] = i
    if "student" not in columns:
        raise CourseError(f"the roster {path} has no student column (its header must name one of: "
                          f"{', '.join(ALIASES['student'])}); found {', '.join(header)[:120]}")
    people = []
    for line, row in enumerate(reader, 2):
        if not any(c.strip() for c in row):
            continue
        values = {k: (row[i].strip() if i < len(row) else "") for k, i in columns.items()}
        sid = values["student"]
        if not STUDENT_ID.match(sid):
            raise CourseError(f"{path}, line {line}: {sid!r} is not a valid student id (1-64 ASCII letters, "
                              "digits, _ . @ + -, starting with a letter or digit)")
        # Two rows with one student id are kept: a zip where both people submitted gets a refusal
        # line for each (see lms.py), and grading goes on for everyone else.
        people.append(Person(**values))
    if not people:
        raise CourseError(f"the roster {path} lists nobody")
    for key in ("canvas_user_id", "moodle_participant_id", "email"):
        owners: dict[str, str] = {}
        for p in people:
            value = getattr(p, key).casefold()
            if value and value in owners:
                raise CourseError(f"the roster {path} gives the same {key} {getattr(p, key)!r} to "
                                  f"{owners[value]} and {p.student}")
            if value:
                owners[value] = p.student
    return Roster(people, path)
