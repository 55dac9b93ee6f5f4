"""The class roster: who each LMS user is in the course (``--roster roster.csv``).

A CSV with a header row. One column is required, the course's student id (the id graded,
in the gradebook and the CSV); the others identify the student in an LMS export:

    student          course student id (also accepted: ``student_id``, ``course_id``) required
    name             full name as the LMS shows it ("Ada Lovelace")                 Moodle, Canvas
    email            e-mail address                                                 Moodle worksheet
    canvas_user_id   Canvas's numeric user id (the ``ID`` column of its gradebook)   Canvas
    sis_user_id, sis_login_id, section   copied into Canvas's gradebook import
    moodle_participant_id   Moodle's "Participant N" id (optional: Moodle's zips carry it)
    lti_user_id      the LMS's LTI 1.3 user id (a launch's ``sub``; case-sensitive, at most 255
                     printable ASCII characters): who logs in to the hub from the LMS, and whose
                     grade ``autograder lti send`` posts (lms/ags.py)
    extra_days       a standing accommodation: every due date of this student moves this many
                     days later (a number, decimals allowed: 1.5 = 36 hours; empty or 0: none).
                     nbgrader assignments have a due date and no start, so "50 % more time"
                     is written as the days it means (a one-week assignment: 3.5). Recorded
                     by ``autograder extend --roster FILE`` (autograder.store.extensions).

Identity comes from the LMS's ids (``canvas_user_id``, ``moodle_participant_id``), never from
what a student can type: a display name is the student's to choose. A row that gives the LMS's
id is matched by that id only (nobody can claim it by copying its name); a row without one can
be matched by a normalised name (case, accents, spaces and punctuation ignored), with a loud
warning (``lms.prepare``), and an ambiguous name never matches.

The roster is read defensively: at most ``MAX_ROSTER_BYTES`` and ``MAX_FIELD`` characters a
field; anything malformed is one ``CourseError`` line, never a traceback.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from autograder.intake.collect import STUDENT_ID
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
    "extra_days": ("extra_days", "extra days", "accommodation_days"),
    "lti_user_id": ("lti_user_id", "lti_sub", "lti_id"),
}
ID_COLUMNS = {"canvas": "canvas_user_id", "moodle": "moodle_participant_id"}
MAX_ROSTER_BYTES = 20 * 1024 * 1024
MAX_FIELD = 1000          # characters in one roster field (a name, an e-mail, an id)
MAX_EXTRA_DAYS = 365.0    # the largest accommodation read (days)


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
    extra_days: str = ""          # a standing accommodation, days (text as written; see accommodations())
    lti_user_id: str = ""         # LTI 1.3 ``sub``: compared exactly (case-sensitive), never folded


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
    columns: tuple[str, ...] = ()       # the ALIASES keys the file's header gave
    _by: dict[str, dict[str, list[Person]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for key in ("canvas_user_id", "moodle_participant_id", "email", "student", "lti_user_id"):
            index: dict[str, list[Person]] = {}
            for p in self.people:
                value = _folded(key, getattr(p, key).strip())
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

    def has_ids(self, key: str) -> bool:
        """Whether any row gives this LMS id column (``canvas_user_id``, ``moodle_participant_id``)."""
        return bool(self._by.get(key))

    def ids(self, key: str) -> set[str]:
        """The values of an id column (case-folded), e.g. every Canvas user id of the roster."""
        return set(self._by.get(key, {}))

    def by_name(self, name: str) -> list[Person]:
        """Every row whose name (or its Canvas "lastfirst" form) is ``name``, compared loosely."""
        key = name_key(name)
        return list(self._by["name"].get(key, [])) if key else []

    @staticmethod
    def name_fits(person: Person, name: str) -> bool:
        """Whether an LMS's name for a user is this row's name (loosely, or as Canvas's lastfirst)."""
        key, parts = name_key(name), person.name.split()
        return bool(key) and key in {name_key(person.name), name_key(parts[-1] + "".join(parts[:-1])) if parts else ""}

    @staticmethod
    def same_name(person: Person, name: str) -> bool:
        """Whether ``name`` is this row's name as written (case and spacing aside; Canvas's lastfirst
        without its punctuation): no accents or compatibility forms folded, so that a look-alike
        ("Ａda", "Adа" with a Cyrillic a) is not the same name."""
        def plain(text: str) -> str:
            return re.sub(r"[\W_]+", "", unicodedata.normalize("NFC", text).casefold())
        parts = person.name.split()
        forms = {plain(person.name), plain(parts[-1] + "".join(parts[:-1])) if parts else ""}
        return bool(plain(name)) and plain(name) in forms

    def by_student(self, student: str) -> list[Person]:
        """Every roster row with this course id (more than one is a roster mistake)."""
        return list(self._by["student"].get(student.casefold(), []))

    def match(self, key: str, value: str) -> tuple[Person | None, str | None]:
        """The one person whose ``key`` (an ALIASES key, or "name") is ``value``, else (None, why)."""
        value = value.strip()
        if not value:
            return None, None
        look = name_key(value) if key == "name" else _folded(key, value)
        found = self._by.get(key, {}).get(look, [])
        if len(found) == 1:
            return found[0], None
        if len(found) > 1:
            return None, (f"the roster has {len(found)} people with this {key.replace('_', ' ')} "
                          f"({', '.join(p.student for p in found)}); give their LMS ids in the roster")
        return None, None


def _folded(key: str, value: str) -> str:
    """An id as compared: case-folded, except the LTI user id (case-sensitive by the LTI spec)."""
    return value if key == "lti_user_id" else value.casefold()


def _days(text: str) -> float | None:
    """``extra_days`` as a number (0 to MAX_EXTRA_DAYS; a decimal comma is accepted), else None."""
    if not re.fullmatch(r"[0-9]{1,4}([.,][0-9]{1,6})?", text.strip()):
        return None
    value = float(text.strip().replace(",", "."))
    return value if value <= MAX_EXTRA_DAYS else None


def accommodations(roster: Roster) -> dict[str, float]:
    """Each student's standing accommodation (extra days on every due date), those above 0.
    A roster without the column (an LMS's, say) is one CourseError line: it would take every
    accommodation away. One student on two rows with different values is one too."""
    if "extra_days" not in roster.columns:
        raise CourseError(f"the roster {roster.path} has no extra_days column: nothing changed (a roster "
                          "with the column, empty for students without an accommodation, replaces them all)")
    seen: dict[str, float] = {}
    for p in roster.people:
        days = (_days(p.extra_days) or 0.0) if p.extra_days else 0.0
        if seen.setdefault(p.student, days) != days:
            raise CourseError(f"the roster {roster.path} gives {p.student} two different extra_days")
    return {s: d for s, d in seen.items() if d > 0}


def read_roster(path: Path) -> Roster:
    """Read and check a roster CSV (UTF-8, with or without a BOM; comma or semicolon separated).

    Raises CourseError with one line for a missing file, no student column, an invalid or
    duplicated student id, or an LMS id given to two students."""
    try:
        size = path.stat().st_size
        if size > MAX_ROSTER_BYTES:
            raise CourseError(f"the roster {path} is {size / 2**20:.0f} MB (at most {MAX_ROSTER_BYTES // 2**20} MB "
                              "is read): is it the right file?")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise CourseError(f"cannot read the roster {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CourseError(f"the roster {path} is not UTF-8 text (save it as CSV UTF-8)") from None
    if not text.strip():
        raise CourseError(f"the roster {path} is empty")
    try:  # only the separator is sniffed (from the header): a sniffed dialect of a line without
        # quotes would not read Excel's "" inside a quoted field
        delimiter = csv.Sniffer().sniff(text.splitlines()[0][:4096], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    try:
        return _parse_rows(path, list(csv.reader(io.StringIO(text), csv.excel, delimiter=delimiter)))
    except csv.Error as e:  # a field over the csv module's limit, a NUL byte, an unclosed quote...
        raise CourseError(f"the roster {path} is not a readable CSV ({str(e)[:120]})") from None


def _parse_rows(path: Path, rows: list[list[str]]) -> Roster:
    reader = iter(rows)
    header = [h.strip().casefold() for h in next(reader)]
    for i, h in enumerate(header):
        if len(h) > MAX_FIELD:
            raise CourseError(f"the roster {path}: header column {i + 1} is {len(h)} characters long "
                              f"(at most {MAX_FIELD})")
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
        for k, v in values.items():
            if len(v) > MAX_FIELD:
                raise CourseError(f"{path}, line {line}: the {k} field is {len(v)} characters long "
                                  f"(at most {MAX_FIELD}): is the file damaged?")
        for k in ID_COLUMNS.values():
            if values.get(k) and not re.fullmatch(r"[0-9]{1,20}", values[k]):
                raise CourseError(f"{path}, line {line}: {k} {values[k][:40]!r} is not a number "
                                  "(the LMS's numeric id)")
        if values.get("lti_user_id") and not re.fullmatch(r"[\x21-\x7e]{1,255}", values["lti_user_id"]):
            raise CourseError(f"{path}, line {line}: lti_user_id {values['lti_user_id'][:40]!r} is not an LTI user id "
                              "(1-255 printable ASCII characters, the launch's sub)")
        if values.get("extra_days") and _days(values["extra_days"]) is None:
            raise CourseError(f"{path}, line {line}: extra_days {values['extra_days'][:40]!r} is not a number of "
                              f"days from 0 to {MAX_EXTRA_DAYS:g} (e.g. 2 or 1.5)")
        sid = values["student"]
        if not STUDENT_ID.match(sid):
            raise CourseError(f"{path}, line {line}: {sid!r} is not a valid student id (1-64 ASCII letters, "
                              "digits, _ . @ + -, starting with a letter or digit)")
        # Two rows with one student id are kept: a zip where both people submitted gets a refusal
        # line for each (see lms.py), and grading goes on for everyone else.
        people.append(Person(**values))
    if not people:
        raise CourseError(f"the roster {path} lists nobody")
    for key in ("canvas_user_id", "moodle_participant_id", "email", "lti_user_id"):
        owners: dict[str, str] = {}
        for p in people:
            value = _folded(key, getattr(p, key))
            if value and value in owners:
                raise CourseError(f"the roster {path} gives the same {key} {getattr(p, key)!r} to "
                                  f"{owners[value]} and {p.student}")
            if value:
                owners[value] = p.student
    return Roster(people, path, tuple(columns))
