"""Submission exports of an LMS, turned into the course's layout and graded.

``autograder grade EXPORT.zip --roster roster.csv [--lms moodle|canvas] [--lms-assignment ID]``

Moodle's "Download all submissions" zip holds one folder per participant,
``<Full Name>_<participant id>_assignsubmission_file_/`` with the uploaded files (and
``..._assignsubmission_onlinetext_/onlinetext.html`` when online text is enabled); with
"download submissions in folders" off the same prefix starts each file name instead.
Canvas's "Download Submissions" zip is flat: ``<lastfirst>_[late_]<user id>_<submission id>_<original
name>``, a file re-uploaded under the same name getting ``-1``, ``-2``… before its extension.

The zip is unpacked by ``collect.extract_zip`` (regular files only, sizes capped), each entry is
attributed to an LMS user, the user to a course student through the roster, and the chosen
notebook is copied into ``<tmp>/<student>/<assignment>/`` for ``grading.grade``. What happened on
the way becomes a note of that submission (a resubmission replaced, several files, a late flag)
or a refusal row (not in the roster, two LMS users for one student id, not a notebook, an entry
that could not be read). What the LMS called each graded student is saved
(``course/outcomes/_lms/<lms>-<assignment>.json``) for ``autograder export --format moodle|canvas``.

nbgrader's ``zip_collect`` with ``FileNameCollectorPlugin`` was not used: its extractor copies
with ``shutil.copy`` (follows links) and unzips without our size and entry checks, its collector
maps a file name to a student id with one regex (no roster, no way to say "two people, one id"),
and skipped or duplicated files only reach its log, not the submission's outcome.
"""
from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from autograder import collect
from autograder.course import Course, CourseError
from autograder.roster import Person, Roster

MOODLE, CANVAS = "moodle", "canvas"
LMSES = (MOODLE, CANVAS)
_MOODLE_DIR = re.compile(r"^(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_(?P<plugin>[a-z]+)_$")
_MOODLE_FLAT = re.compile(r"^(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.+)$")
_CANVAS = re.compile(r"^(?P<lastfirst>[^_/]+)_(?:(?P<late>late)_)?(?P<uid>\d+)_(?P<sid>\d+)_(?P<orig>[^/]+)$",
                     re.IGNORECASE)
_RESUBMISSION = re.compile(r"^(?P<base>.+?)-(?P<n>\d+)$")


@dataclass
class LmsUser:
    """One LMS user's entries in the export."""

    lms: str
    user_id: str                 # Moodle participant id, Canvas user id
    name: str                    # the name as the export writes it (Moodle: full name; Canvas: lastfirst)
    label: str                   # how the export shows them (folder name, file-name prefix)
    submission_id: str = ""      # Canvas only
    late: bool = False           # Canvas's late flag
    files: list[tuple[str, Path]] = field(default_factory=list)   # (entry path, extracted file)
    online_text: list[str] = field(default_factory=list)          # entries of an online-text submission
    broken: list[tuple[str, str]] = field(default_factory=list)   # (entry path, problem)


@dataclass
class LmsBatch:
    """An LMS export turned into the course's layout, with what to tell ``grading.grade``."""

    lms: str
    assignment: str
    folder: Path                                     # <folder>/<student>/<assignment>/<file>
    notes: dict[tuple[str, str], list[str]]
    refusals: list[collect.Refusal]
    identities: dict[str, dict]                      # student -> what the LMS called them


def _walk_folder(root: Path) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """Regular files under a folder (never through a link), and what was refused."""
    files, problems = [], {}
    for current, dirs, names in os.walk(root, followlinks=False):
        for d in list(dirs):
            if (Path(current) / d).is_symlink():
                dirs.remove(d)
                problems[(Path(current) / d).relative_to(root).as_posix()] = \
                    collect.LINK_REFUSED.format(what="the folder", kind="a symbolic link")
        for n in names:
            p = Path(current) / n
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            kind = collect._link_kind(st)
            if kind:
                problems[rel] = collect.LINK_REFUSED.format(what="the file", kind=kind)
            elif stat.S_ISREG(st.st_mode):
                files.append((rel, p))
    return sorted(files), problems


def _unpack(path: Path, tmp: Path) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """The export's regular files [(entry path, file)] and the entries that could not be read."""
    if not path.exists():
        raise CourseError(f"{path} does not exist")
    if path.is_dir():
        return _walk_folder(path)
    problems = collect.extract_zip(path, tmp)
    files, more = _walk_folder(tmp)
    return files, {**problems, **more}


def _strip_wrapper(files: list[tuple[str, Path]], problems: dict[str, str]) -> tuple[list, dict]:
    """Step into one top folder that is not itself a participant folder (a re-zipped export)."""
    tops = {e.split("/", 1)[0] for e, _ in files} | {e.split("/", 1)[0] for e in problems}
    tops -= collect.JUNK
    if len(tops) == 1 and all("/" in e for e, _ in files):
        top = next(iter(tops))
        if not _MOODLE_DIR.match(top):
            cut = len(top) + 1
            return ([(e[cut:], p) for e, p in files if e.startswith(top + "/")],
                    {(k[cut:] if k.startswith(top + "/") else k): v for k, v in problems.items()})
    return files, problems


def detect(entries: list[str]) -> str | None:
    """``"moodle"`` or ``"canvas"`` from the entry names of an export, or None if neither fits."""
    tops = [e.split("/", 1)[0] for e in entries if e.split("/", 1)[0] not in collect.JUNK]
    if not tops:
        return None
    moodle = sum(bool(_MOODLE_DIR.match(t) or _MOODLE_FLAT.match(t)) for t in tops)
    canvas = sum(bool("/" not in e and _CANVAS.match(e)) for e in entries)
    if moodle > canvas and moodle >= len(tops) / 2:
        return MOODLE
    if canvas > moodle and canvas >= len(tops) / 2:
        return CANVAS
    return None


def parse(lms: str, files: list[tuple[str, Path]], problems: dict[str, str]
          ) -> tuple[list[LmsUser], list[collect.Refusal]]:
    """Group an export's entries by LMS user. Entries that fit no user become refusals."""
    users: dict[str, LmsUser] = {}
    refused: list[collect.Refusal] = []

    def user_of(entry: str) -> tuple[LmsUser | None, str]:
        """The user an entry belongs to, and the entry's path inside that user's submission."""
        top, _, rest = entry.partition("/")
        if lms == MOODLE:
            m = _MOODLE_DIR.match(top) if rest else None
            m = m or _MOODLE_FLAT.match(top)
            if not m:
                return None, ""
            inner = rest if rest else m.group("file")
            u = users.setdefault(m["pid"], LmsUser(MOODLE, m["pid"], m["name"], f"{m['name']}_{m['pid']}"))
            if m["plugin"] == "onlinetext":
                u.online_text.append(entry)
                return u, ""
            return u, inner
        m = None if rest else _CANVAS.match(top)
        if not m:
            return None, ""
        u = users.setdefault(m["uid"], LmsUser(CANVAS, m["uid"], m["lastfirst"], f"{m['lastfirst']}_{m['uid']}",
                                               submission_id=m["sid"]))
        u.late = u.late or bool(m["late"])
        u.submission_id = max(u.submission_id, m["sid"], key=int)
        return u, m["orig"]

    for entry, path in files:
        u, inner = user_of(entry)
        if u is None:
            refused.append(collect.Refusal(entry, "", f"not a {lms.capitalize()} submission entry (the name does "
                                                      "not follow the export's naming): ignored"))
        elif inner:
            u.files.append((inner, path))
    for entry, why in sorted(problems.items()):
        u, inner = user_of(entry)
        if u is None:
            refused.append(collect.Refusal(entry, "", why))
        else:
            u.broken.append((inner or entry, why))
    return sorted(users.values(), key=lambda u: (u.name.casefold(), u.user_id)), refused


def _release_grade_ids(course: Course) -> dict[str, set[str]]:
    out = {}
    for a in course.assignments():
        try:
            nb = json.loads((course.release_dir / a.id / f"{a.id}.ipynb").read_text())
            out[a.id] = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.get("cells", [])} - {None}
        except (OSError, ValueError):
            out[a.id] = set()
    return out


def _looks_like(path: Path, ids: dict[str, set[str]]) -> str | None:
    """The assignment whose graded cells a notebook carries (most grade ids in common), if any."""
    try:
        nb = json.loads(collect.read_regular(path, collect.MAX_NOTEBOOK_MB * 1024 * 1024))
        have = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.get("cells", [])
                if isinstance(c, dict) and isinstance(c.get("metadata"), dict)
                and isinstance(c["metadata"].get("nbgrader"), dict)}
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return None
    best = max(ids, key=lambda a: len(ids[a] & have), default=None)
    return best if best and ids[best] & have else None


def detect_assignment(course: Course, export: Path, users: list[LmsUser]) -> str:
    """The assignment of an export: the notebooks' names and graded cells vote; else the zip's name."""
    known = [a.id for a in course.assignments()]
    ids = _release_grade_ids(course)
    votes: Counter[str] = Counter()
    for u in users:
        for inner, path in u.files:
            if not inner.lower().endswith(".ipynb"):
                continue
            stem = _RESUBMISSION.sub(r"\g<base>", PurePosixPath(inner).stem)
            aid = stem if stem in known else _looks_like(path, ids)
            if aid:
                votes[aid] += 1
    if votes:
        (first, n), *rest = votes.most_common(2) + [("", 0)]
        if rest[0][1] == n:
            raise CourseError(f"{export.name} holds notebooks of {first} and {rest[0][0]} equally often: "
                              "say which assignment it is with --lms-assignment ID")
        return first
    named = [a for a in known if a in export.name]
    if len(named) == 1:
        return named[0]
    raise CourseError(f"cannot tell which assignment {export.name} is for (no notebook of the syllabus in it): "
                      f"pass --lms-assignment ID (one of {', '.join(known)})")


def _match(roster: Roster, u: LmsUser) -> tuple[Person | None, str]:
    """The roster person of an LMS user, or (None, why not)."""
    key = "moodle_participant_id" if u.lms == MOODLE else "canvas_user_id"
    person, why = roster.match(key, u.user_id)
    if person:
        return person, ""
    person, why_name = roster.match("name", u.name)
    if person:
        # a person whose row names another id of this LMS is someone else with the same name
        other = getattr(person, key)
        if other and other != u.user_id:
            return None, (f"the roster's {person.student} ({person.name}) has {key} {other}, not {u.user_id}")
        return person, ""
    idname = "participant id" if u.lms == MOODLE else "Canvas user id"
    return None, why or why_name or (f"not in the roster (no row with {idname} {u.user_id} or the name "
                                     f"{u.name!r}): add them to {roster.path.name if roster.path else 'the roster'}")


def _choose(aid: str, u: LmsUser) -> tuple[list[tuple[str, Path]], list[str], list[tuple[str, str]]]:
    """The notebooks to copy [(name, file)], notes, and non-notebook entries [(entry, reason)].

    Canvas's numbered re-uploads (``x-1.ipynb``, ``x-2.ipynb``) of one file keep the highest
    number (the latest upload); a Moodle folder keeps every notebook (``collect`` then takes
    ``<aid>.ipynb``, or the single one)."""
    notes: list[str] = []
    not_notebooks = [(inner, f"not a notebook ({PurePosixPath(inner).suffix or 'no extension'}): not graded")
                     for inner, _ in u.files if not inner.lower().endswith(".ipynb")]
    notebooks = [(inner, p) for inner, p in u.files if inner.lower().endswith(".ipynb")]
    chosen: dict[str, tuple[int, str, Path]] = {}
    replaced: dict[str, list[str]] = {}
    for inner, p in notebooks:
        name = PurePosixPath(inner).name
        stem, n = PurePosixPath(name).stem, 0
        m = _RESUBMISSION.match(stem) if u.lms == CANVAS else None
        if m:
            stem, n = m["base"], int(m["n"])
        key = f"{stem}.ipynb"
        if key in chosen and u.lms == MOODLE:  # the same name in two sub-folders: both kept, numbered
            key = f"{stem}-{len(chosen)}.ipynb"
        if key in chosen:
            new = (n, inner, p)
            keep, old = (new, chosen[key]) if n > chosen[key][0] else (chosen[key], new)
            chosen[key] = keep
            replaced.setdefault(key, []).append(old[1])
        else:
            chosen[key] = (n, inner, p)
    for key, olds in replaced.items():
        notes.append(f"resubmission: {PurePosixPath(chosen[key][1]).name} graded (the latest upload); "
                     f"earlier {', '.join(sorted(PurePosixPath(o).name for o in olds))} not graded")
    if len(chosen) > 1:
        expected = f"{aid}.ipynb"
        others = sorted(k for k in chosen if k != expected)
        notes.append(f"several notebooks submitted ({', '.join(sorted(chosen))})"
                     + (f": {expected} graded, {', '.join(others)} not graded" if expected in chosen else ""))
    if not_notebooks and chosen:
        notes.append(f"also submitted {len(not_notebooks)} file(s) that are not notebooks "
                     f"({', '.join(sorted(PurePosixPath(e).name for e, _ in not_notebooks))[:120]}): not graded")
    if u.online_text:
        notes.append("an online-text submission was also made: not graded (only notebooks are)")
    if u.late:
        notes.append("Canvas marked this submission late")
    return [(k, p) for k, (_, _, p) in sorted(chosen.items())], notes, not_notebooks


def prepare(course: Course, export: Path, roster: Roster, lms: str | None, assignment: str | None,
            workdir: Path) -> LmsBatch:
    """Turn an LMS export (zip or its unpacked folder) into ``workdir/layout/<student>/<aid>/``.

    ``lms``: "moodle", "canvas" or None (detected from the entry names). ``assignment``: a
    syllabus id, or None (detected from the notebooks). Raises CourseError (one line) when the
    zip cannot be read, the LMS cannot be told or the assignment is unknown."""
    files, problems = _unpack(export, workdir / "unpacked")
    files, problems = _strip_wrapper(files, problems)
    found = detect([e for e, _ in files] + list(problems))
    if lms is None:
        if found is None:
            raise CourseError(f"{export.name} is neither a Moodle nor a Canvas submissions export (its entries "
                              "follow neither naming); pass --lms moodle|canvas, or grade it without --roster")
        lms = found
    elif lms not in LMSES:
        raise CourseError(f"unknown LMS {lms!r}: use one of {', '.join(LMSES)}")
    elif found and found != lms:
        raise CourseError(f"{export.name} looks like a {found.capitalize()} export, not {lms.capitalize()}: "
                          f"use --lms {found} (or leave --lms out)")
    users, refusals = parse(lms, files, problems)
    if assignment:
        aid = course.assignment(assignment).id
    else:
        aid = detect_assignment(course, export, users)
    refusals = [collect.Refusal(r.name, aid, r.reason) for r in refusals]
    matched: dict[str, list[tuple[LmsUser, Person]]] = {}
    for u in users:
        person, why = _match(roster, u)
        if person is None:
            refusals.append(collect.Refusal(u.label, aid, why))
        else:
            matched.setdefault(person.student, []).append((u, person))
    layout = workdir / "layout"
    layout.mkdir(parents=True)
    notes: dict[tuple[str, str], list[str]] = {}
    identities: dict[str, dict] = {}
    for student, pairs in sorted(matched.items()):
        if len(pairs) > 1:
            labels = ", ".join(u.label for u, _ in pairs)
            for u, _ in pairs:
                refusals.append(collect.Refusal(u.label, aid, f"the roster maps {len(pairs)} LMS users ({labels}) "
                                                              f"to one student id, {student}: none of them is "
                                                              "graded; fix the roster"))
            continue
        u, person = pairs[0]
        copies, sub_notes, not_notebooks = _choose(aid, u)
        for inner, why in not_notebooks:
            refusals.append(collect.Refusal(f"{u.label}/{inner}", aid, why))
        for inner, why in u.broken:
            refusals.append(collect.Refusal(f"{u.label}/{inner}", aid, why))
            sub_notes.append(f"a file of the submission could not be read, so none of it is graded "
                             f"({PurePosixPath(inner).name[:60]}: {why})")
        if u.broken:  # as for any zip (collect.discover): a damaged submission is not graded, and says why
            copies = []
        if not copies and not_notebooks:
            sub_notes.append("no notebook was submitted, only "
                             + ", ".join(sorted(PurePosixPath(e).name for e, _ in not_notebooks))[:120])
        if not copies and u.online_text and not u.files:
            sub_notes.append("only an online-text submission was made: a notebook file is needed")
        folder = layout / student / aid
        folder.mkdir(parents=True)
        for name, path in copies:
            data = collect.read_regular(path, collect.MAX_NOTEBOOK_MB * 1024 * 1024)
            (folder / name).write_bytes(data)
        if sub_notes:
            notes[(student, aid)] = sub_notes
        identities[student] = {"lms": lms, "user_id": u.user_id, "name": u.name, "label": u.label,
                               "submission_id": u.submission_id, "late": u.late,
                               "roster_name": person.name, "email": person.email}
    return LmsBatch(lms, aid, layout, notes, refusals, identities)


def identities_path(course: Course, lms: str, aid: str) -> Path:
    return course.outcomes_dir / "_lms" / f"{lms}-{aid}.json"


def save_identities(course: Course, batch: LmsBatch) -> Path:
    """Remember what the LMS called each student graded from this export (merged with earlier runs)."""
    path = identities_path(course, batch.lms, batch.assignment)
    data = read_identities(course, batch.lms, batch.assignment)
    data.update(batch.identities)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def read_identities(course: Course, lms: str, aid: str) -> dict[str, dict]:
    try:
        data = json.loads(identities_path(course, lms, aid).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def grade_export(course: Course, export: Path, roster: Roster, lms: str | None, assignment: str | None,
                 opts) -> tuple[LmsBatch, list[dict]]:
    """Prepare an LMS export and grade it (``grading.grade``); returns the batch and the results."""
    import dataclasses

    from autograder.grading import grade

    with tempfile.TemporaryDirectory(prefix="lms-") as tmp:
        batch = prepare(course, export, roster, lms, assignment, Path(tmp))
        if opts.assignment and opts.assignment != batch.assignment:
            raise CourseError(f"{export.name} holds {batch.assignment}, not {opts.assignment}")
        notes = {**opts.notes}
        for key, more in batch.notes.items():
            notes[key] = [*notes.get(key, []), *more]
        opts = dataclasses.replace(opts, assignment=batch.assignment, notes=notes,
                                   refusals=[*opts.refusals, *batch.refusals])
        if not any(batch.folder.iterdir()) and not opts.refusals:
            raise CourseError(f"{export.name} holds no submission")
        results = grade(course, batch.folder, opts)  # nothing matched: only the refusals are recorded
    save_identities(course, batch)
    return batch, results
