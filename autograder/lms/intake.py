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
notebook is copied into ``<tmp>/<student>/<assignment>/`` for ``grading.grade``.

What a student controls never decides identity (COURSE_DESIGN principle 10). Names are read from
the side the student cannot write: a Moodle folder from its right end (the participant id and
plugin suffix); a flat Moodle or Canvas name that can be read as more than one user (a name or
a file name holding the id pattern) is refused, never given to anyone (``_pick``). People are
matched by the LMS's id where the roster gives it; a roster row without it is matched by name,
with a warning, and a look-alike (a name equal only after folding accents or character forms)
never blocks the name as written. The assignment is decided per student (``detect_assignment``),
never by a vote. Submission times come from the LMS's CSV when given (``read_times``: Moodle's
grading worksheet), so late penalties apply; without them no LMS submission is late, and a
warning line and each outcome say so when the assignment has a due date. What happened on
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

import csv
import datetime as dt
import io
import json
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from autograder.intake import collect
from autograder.store import outcomes
from autograder.config import MAX_NOTEBOOK_MB
from autograder.files import link_kind, read_regular, write_atomic
from autograder.course import Course, CourseError
from autograder.intake.roster import ID_COLUMNS, Person, Roster

MOODLE, CANVAS = "moodle", "canvas"
LMSES = (MOODLE, CANVAS)
# Every LMS name is parsed from the side the student cannot control. A Moodle folder ends with
# the participant id and the plugin suffix (the full name before them is free text and may itself
# contain "_<digits>_assignsubmission_"), so the greedy name reads it from the right. Ids are ASCII
# digits only (``\d`` would take other scripts' digits too).
_MOODLE_DIR = re.compile(r"^(?P<name>.+)_(?P<uid>[0-9]+)_assignsubmission_(?P<plugin>[a-z]+)_$", re.ASCII)
# Where a flat Moodle name, or a Canvas name, may be cut into (name, ids, file): free text on both
# sides (the name, and the file name the student uploaded), so every cut is a candidate (``_cuts``).
_MOODLE_CUT = re.compile(r"_(?P<uid>[0-9]+)_assignsubmission_(?P<plugin>[a-z]+)_", re.ASCII)
_CANVAS_CUT = re.compile(r"_(?:(?P<late>(?i:late))_)?(?P<uid>[0-9]+)_(?P<sid>[0-9]+)_", re.ASCII)
_RESUBMISSION = re.compile(r"^(?P<base>.+?)-(?P<n>[0-9]+)$", re.ASCII)
ID_NAMES = {MOODLE: "Moodle participant id", CANVAS: "Canvas user id"}


@dataclass(frozen=True)
class _Cut:
    """One way to read an LMS file name: the name, the user id, what follows the ids."""

    name: str
    uid: str
    rest: str
    plugin: str = ""     # Moodle
    sid: str = ""        # Canvas
    late: bool = False   # Canvas
    at: int = 0          # where the ids start (the "_" after the name)
    sid_at: int = -1     # Canvas: where the "_<sid>_" starts


def _cuts(text: str, pattern: re.Pattern) -> list[_Cut]:
    """Every reading of ``<name><pattern><rest>`` with a non-empty name and rest, leftmost first."""
    out = []
    for i in range(1, len(text)):
        m = pattern.match(text, i) if text[i] == "_" else None
        if m and m.end() < len(text):
            g = m.groupdict()
            out.append(_Cut(text[:i], m["uid"], text[m.end():], plugin=g.get("plugin") or "", sid=g.get("sid") or "",
                            late=bool(g.get("late")), at=i, sid_at=m.start("sid") - 1 if g.get("sid") else -1))
    return out


def _stem(name: str) -> str:
    """A file name's stem without Canvas's re-upload number ("01_perceptron-2.ipynb" -> "01_perceptron")."""
    stem = PurePosixPath(name).stem
    return _RESUBMISSION.sub(r"\g<base>", stem)


def _pick(cuts: list[_Cut], aids: set[str]) -> tuple[_Cut | None, str]:
    """The one reading of a flat name that a crafted name cannot shift, else (None, why not).

    Both ends of a flat name are the student's (the name they chose, the file they uploaded), so a
    second reading of the ids in either end makes the entry ambiguous: it is refused, never given
    to anyone (not even to the reading whose id is in the roster: a user outside the roster could
    aim at an absent student). Two things are not a second reading: the same user id read again
    (Canvas's late flag), and Canvas's ids read one step on when the file name starts with digits
    (``<uid>_<sid>_01_perceptron.ipynb`` also reads as user ``<sid>``), which is accepted only when
    the first reading's file is a notebook of the syllabus: a student cannot choose Canvas's
    ``<sid>``, so cannot make a crafted name end in that form."""
    if not cuts:
        return None, ""
    first = cuts[0]
    others = [c for c in cuts[1:] if c.uid != first.uid]
    step_on = [c for c in others if c.at == first.sid_at]
    if not others or (others == step_on and _stem(first.rest) in aids):
        return first, ""
    uids = ", ".join(sorted({c.uid for c in cuts}, key=int)[:6])
    return None, (f"the name can be read as more than one user (ids {uids}): a name or file name that "
                  "contains the LMS's own id pattern; not graded, so that nobody is given another's work"
                  + (" (download the submissions \"in folders\", whose names are unambiguous)"
                     if first.plugin else " (check it by hand)"))


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
    timestamps: dict[tuple[str, str], str] = field(default_factory=dict)   # for late penalties
    warnings: list[str] = field(default_factory=list)                      # said once, on stderr


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
            kind = link_kind(st)
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
    moodle = sum(bool(_MOODLE_DIR.match(t) or _cuts(t, _MOODLE_CUT)) for t in tops)
    canvas = sum(bool("/" not in e and _cuts(e, _CANVAS_CUT)) for e in entries)
    if moodle > canvas and moodle >= len(tops) / 2:
        return MOODLE
    if canvas > moodle and canvas >= len(tops) / 2:
        return CANVAS
    return None


def parse(lms: str, files: list[tuple[str, Path]], problems: dict[str, str], aids: set[str] = frozenset()
          ) -> tuple[list[LmsUser], list[collect.Refusal]]:
    """Group an export's entries by LMS user. Entries that fit no user, or more than one, become refusals.

    ``aids``: the syllabus's assignment ids (``_pick``). Users are told apart by (id, name): one id
    under two names is judged in ``prepare``."""
    users: dict[tuple[str, str], LmsUser] = {}
    refused: list[collect.Refusal] = []

    def user_of(entry: str) -> tuple[LmsUser | None, str, str]:
        """The user an entry belongs to, the entry's path inside that user's submission, and why none."""
        top, _, rest = entry.partition("/")
        if lms == MOODLE:
            if rest:   # one folder per participant: the folder name ends with the id and the plugin
                m = _MOODLE_DIR.match(top)
                cut = _Cut(m["name"], m["uid"], rest, plugin=m["plugin"]) if m else None
                why = ""
            else:      # flat: "<name>_<id>_assignsubmission_<plugin>_<file>", both ends free text
                cut, why = _pick(_cuts(top, _MOODLE_CUT), aids)
            if cut is None:
                return None, "", why
            u = users.setdefault((cut.uid, cut.name), LmsUser(MOODLE, cut.uid, cut.name, f"{cut.name}_{cut.uid}"))
            if cut.plugin == "onlinetext":
                u.online_text.append(entry)
                return u, "", ""
            return u, cut.rest, ""
        cut, why = (None, "") if rest else _pick(_cuts(top, _CANVAS_CUT), aids)
        if cut is None:
            return None, "", why
        u = users.setdefault((cut.uid, cut.name), LmsUser(CANVAS, cut.uid, cut.name, f"{cut.name}_{cut.uid}",
                                                          submission_id=cut.sid))
        u.late = u.late or cut.late
        u.submission_id = max(u.submission_id, cut.sid, key=int)
        return u, cut.rest, ""

    for entry, path in files:
        u, inner, why = user_of(entry)
        if u is None:
            refused.append(collect.Refusal(entry, "", why or f"not a {lms.capitalize()} submission entry (the name "
                                                             "does not follow the export's naming): ignored"))
        elif inner:
            u.files.append((inner, path))
    for entry, why in sorted(problems.items()):
        u, inner, _ = user_of(entry)
        if u is None:
            refused.append(collect.Refusal(entry, "", why))
        else:
            u.broken.append((inner or entry, why))
    return sorted(users.values(), key=lambda u: (u.name.casefold(), u.user_id, u.name)), refused


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
        nb = json.loads(read_regular(path, MAX_NOTEBOOK_MB * 1024 * 1024))
        have = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.get("cells", [])
                if isinstance(c, dict) and isinstance(c.get("metadata"), dict)
                and isinstance(c["metadata"].get("nbgrader"), dict)}
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return None
    best = max(ids, key=lambda a: len(ids[a] & have), default=None)
    return best if best and ids[best] & have else None


def _notebook_assignment(inner: str, path: Path, known: list[str], ids: dict[str, set[str]]) -> str | None:
    """The assignment a submitted notebook is for: its graded cells, else its name; None if neither says."""
    return _looks_like(path, ids) or (_stem(inner) if _stem(inner) in known else None)


def detect_assignment(course: Course, export: Path, users: list[LmsUser], kinds: dict[Path, str | None]) -> str:
    """The assignment of an export, decided per student, never by a vote across students.

    Each student's notebooks say which assignments they are for (``_notebook_assignment``); the
    export's assignment is the one every such student has a notebook of. If they disagree (one
    student's files named or made for another assignment), ``--lms-assignment`` must say it.
    With no notebook of the syllabus at all, the zip's name decides if it names exactly one."""
    known = [a.id for a in course.assignments()]
    sets = [s for s in ({kinds[p] for _, p in u.files if kinds.get(p)} for u in users) if s]
    if sets:
        common = set.intersection(*sets)
        if len(common) == 1:
            return common.pop()
        counts = Counter(a for s in sets for a in s)
        split = "; ".join(f"{a}: {n}" for a, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
        raise CourseError(f"the students' notebooks in {export.name} are not all for one assignment (students "
                          f"with a notebook of each: {split}); each submission is judged on its own, so say "
                          "which assignment the export is for with --lms-assignment ID")
    named = [a for a in known if a in export.name]
    if len(named) == 1:
        return named[0]
    raise CourseError(f"cannot tell which assignment {export.name} is for (no notebook of the syllabus in it): "
                      f"pass --lms-assignment ID (one of {', '.join(known)})")


def _match(roster: Roster, u: LmsUser) -> tuple[Person | None, str, bool]:
    """The roster person of an LMS user, or (None, why not), and whether the match is by name only.

    A roster row that gives this LMS's id is matched by that id only: nobody can claim it by
    taking its name. A row without the id can be matched by the user's name (another student can
    take that name too: ``prepare`` warns), unless several rows or users share it."""
    key = ID_COLUMNS[u.lms]
    idname = ID_NAMES[u.lms]
    person, why = roster.match(key, u.user_id)
    if person:
        return person, "", False
    if why:
        return None, why, False
    same = roster.by_name(u.name)
    free = [p for p in same if not getattr(p, key)]
    if len(free) == 1:
        return free[0], "", True
    if free:
        return None, (f"the roster has {len(free)} people with this name and no {key} "
                      f"({', '.join(p.student for p in free)}): give their {key} in the roster"), True
    if same:
        return None, (f"{idname} {u.user_id} is not in the roster; the roster's "
                      f"{', '.join(p.student for p in same)} with the same name has another {key}: "
                      "a name is not an identity, so this user is not graded"), False
    return None, (f"not in the roster (no row with {idname} {u.user_id}"
                  + ("" if roster.has_ids(key) else f" or the name {outcomes.printable_name(u.name, 60)}")
                  + f"): add them to {roster.path.name if roster.path else 'the roster'}"), False


def _choose(aid: str, u: LmsUser, kinds: dict[Path, str | None]
            ) -> tuple[list[tuple[str, Path]], list[str], list[tuple[str, str]]]:
    """The notebooks to copy [(name, file)], notes, and non-notebook entries [(entry, reason)].

    A notebook made or named for another assignment is not graded (a note says so). Canvas's
    numbered re-uploads (``x-1.ipynb``, ``x-2.ipynb``) of one file keep the highest number (the
    latest upload); a Moodle folder keeps every notebook (``collect`` then takes ``<aid>.ipynb``,
    or the single one)."""
    notes: list[str] = []
    not_notebooks = [(inner, f"not a notebook ({PurePosixPath(inner).suffix or 'no extension'}): not graded")
                     for inner, _ in u.files if not inner.lower().endswith(".ipynb")]
    notebooks = [(inner, p) for inner, p in u.files if inner.lower().endswith(".ipynb")]
    foreign = [(inner, kinds[p]) for inner, p in notebooks if kinds.get(p) not in (None, aid)]
    if foreign:
        shown = ", ".join(f"{PurePosixPath(i).name} ({a})" for i, a in sorted(foreign))[:200]
        notes.append(f"{len(foreign)} notebook(s) made or named for another assignment, not {aid}, not graded: "
                     f"{shown}")
        notebooks = [(inner, p) for inner, p in notebooks if kinds.get(p) in (None, aid)]
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
    return [(k, p) for k, (_, _, p) in sorted(chosen.items())], notes, not_notebooks


def _one_name_per_id(roster: Roster, users: list[LmsUser]) -> tuple[list[LmsUser], list[tuple[str, str]]]:
    """An LMS writes one name for each of its ids; an id under several names means a crafted name.

    Of the users sharing an id, the one whose name is the roster's name for that person is kept
    (an honest student is never blocked by a copy); if none or several fit, none is graded."""
    by_id: dict[str, list[LmsUser]] = {}
    for u in users:
        by_id.setdefault(u.user_id, []).append(u)
    keep, refused = [], []
    for uid, group in by_id.items():
        if len(group) == 1:
            keep.extend(group)
            continue
        fits = [u for u in group if (m := _match(roster, u)[0]) is not None and roster.name_fits(m, u.name)]
        labels = ", ".join(outcomes.printable_name(u.label, 60) for u in group)
        if len(fits) == 1:
            keep.append(fits[0])
            refused += [(u.label, f"the export shows {ID_NAMES[u.lms]} {uid} under {len(group)} names ({labels}); "
                                  f"only {outcomes.printable_name(fits[0].label, 60)} is the roster's name for it: "
                                  "this entry's name was made to look like another's and is not graded")
                        for u in group if u is not fits[0]]
        else:
            refused += [(u.label, f"the export shows {ID_NAMES[u.lms]} {uid} under {len(group)} names ({labels}) "
                                  "and the roster cannot tell which is real: none is graded, check by hand")
                        for u in group]
    return keep, refused


def prepare(course: Course, export: Path, roster: Roster, lms: str | None, assignment: str | None,
            workdir: Path, times: Path | None = None) -> LmsBatch:
    """Turn an LMS export (zip or its unpacked folder) into ``workdir/layout/<student>/<aid>/``.

    ``lms``: "moodle", "canvas" or None (detected from the entry names). ``assignment``: a
    syllabus id, or None (detected per student from the notebooks). ``times``: the LMS's
    submission times (Moodle's grading worksheet; ``read_times``), for late penalties. Raises
    CourseError (one line) when the zip cannot be read, the LMS cannot be told or the
    assignment is unknown or disputed."""
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
    key = ID_COLUMNS[lms]
    known_aids = [a.id for a in course.assignments()]
    if assignment:
        assignment = course.assignment(assignment).id
    submitted_at = read_times(times, lms) if times else {}
    users, early = parse(lms, files, problems, set(known_aids))
    refused: list[tuple[str, str]] = [(r.name, r.reason) for r in early]
    users, more = _one_name_per_id(roster, users)
    refused += more
    matched: dict[str, list[tuple[LmsUser, Person, bool]]] = {}
    for u in users:
        person, why, name_only = _match(roster, u)
        if person is None:
            refused.append((u.label, why))
        else:
            matched.setdefault(person.student, []).append((u, person, name_only))
    for student, triples in list(matched.items()):
        if len(triples) > 1 and all(n for _, _, n in triples):   # one id-less row claimed by several names
            exact = [t for t in triples if roster.same_name(t[1], t[0].name)]
            if len(exact) == 1:   # the others only fold to it (a look-alike): the real name is not blocked
                real = outcomes.printable_name(exact[0][0].label, 60)
                refused += [(u.label, f"the name only looks like {student}'s (it matches after folding accents or "
                                      f"character forms; {real} is the name as written): not graded")
                            for u, _, _ in triples if u is not exact[0][0]]
                matched[student] = exact
                continue
        if len(triples) > 1:   # two rows for one student id, or one id-less row claimed by two names
            labels = ", ".join(outcomes.printable_name(u.label, 60) for u, _, _ in triples)
            fix = f"give {student}'s {key} in the roster" if any(n for _, _, n in triples) else "fix the roster"
            refused += [(u.label, f"the roster maps {len(triples)} LMS users ({labels}) to one student id, "
                                  f"{student}: none of them is graded; {fix}") for u, _, _ in triples]
            del matched[student]
    ids = _release_grade_ids(course)
    kinds = {p: _notebook_assignment(inner, p, known_aids, ids)
             for triples in matched.values() for u, _, _ in triples for inner, p in u.files
             if inner.lower().endswith(".ipynb")}
    aid = assignment or detect_assignment(course, export, [u for t in matched.values() for u, _, _ in t], kinds)
    due = course.assignment(aid).due
    warnings = []
    by_name = sorted(s for s, t in matched.items() if t[0][2])
    if by_name:
        shown = ", ".join(by_name[:5]) + (", ..." if len(by_name) > 5 else "")
        warnings.append(f"WARNING: {len(by_name)} student(s) matched by the name they chose in {lms.capitalize()}, "
                        f"not by an id ({shown}): another student can take the same name. Add the {key} column "
                        "to the roster " + ("(Moodle: the grading worksheet's Identifier, \"Participant N\")"
                                            if lms == MOODLE else "(Canvas: the ID column of its gradebook export)"))
    layout = workdir / "layout"
    layout.mkdir(parents=True)
    notes: dict[tuple[str, str], list[str]] = {}
    identities: dict[str, dict] = {}
    timestamps: dict[tuple[str, str], str] = {}
    untimed = 0
    for student, [(u, person, name_only)] in sorted(matched.items()):
        copies, sub_notes, not_notebooks = _choose(aid, u, kinds)
        for inner, why in not_notebooks:
            refused.append((f"{u.label}/{inner}", why))
        for inner, why in u.broken:
            refused.append((f"{u.label}/{inner}", why))
            sub_notes.append(f"a file of the submission could not be read, so none of it is graded "
                             f"({PurePosixPath(inner).name[:60]}: {why})")
        if u.broken:  # as for any zip (collect.discover): a damaged submission is not graded, and says why
            copies = []
        if not copies and not_notebooks:
            sub_notes.append("no notebook was submitted, only "
                             + ", ".join(sorted(PurePosixPath(e).name for e, _ in not_notebooks))[:120])
        if not copies and u.online_text and not u.files:
            sub_notes.append("only an online-text submission was made: a notebook file is needed")
        if name_only:
            sub_notes.append(f"matched to the roster by name only (no {key} in the roster)")
        when = submitted_at.get(u.user_id)
        if when:
            timestamps[(student, aid)] = when
        elif due is not None:
            untimed += 1
            sub_notes.append(("Canvas marked this submission late, but " if u.late else "")
                             + f"the submission time is unknown ({_no_time_hint(lms, times)}): "
                             "no late penalty applied")
        if u.late and (when or due is None):
            sub_notes.append("Canvas marked this submission late")
        folder = layout / student / aid
        folder.mkdir(parents=True)
        for name, path in copies:
            data = read_regular(path, MAX_NOTEBOOK_MB * 1024 * 1024)
            (folder / name).write_bytes(data)
        if sub_notes:
            notes[(student, aid)] = sub_notes
        identities[student] = {"lms": lms, "user_id": u.user_id, "name": u.name, "label": u.label,
                               "submission_id": u.submission_id, "late": u.late, "matched_by_name": name_only,
                               "roster_name": person.name, "email": person.email}
    if untimed:
        warnings.append(f"WARNING: {untimed} submission(s) of {aid} (due {due:%Y-%m-%d %H:%M} UTC) have no "
                        f"submission time ({_no_time_hint(lms, times)}): no late penalty is applied to them, "
                        "and their outcomes say so")
    refusals = [collect.Refusal(name, aid, why) for name, why in refused]
    return LmsBatch(lms, aid, layout, notes, refusals, identities, timestamps, warnings)


def _no_time_hint(lms: str, times: Path | None) -> str:
    if times:
        return f"{times.name} gives none for this user"
    if lms == MOODLE:
        return "Moodle's zip carries none: give its grading worksheet with --lms-times FILE"
    return ("Canvas's zip and gradebook export carry none: give a CSV of user ids and submission times "
            "with --lms-times FILE")


# -- submission times ---------------------------------------------------------------------------

_ID_HEADERS = ("identifier", "id", "user_id", "canvas_user_id", "moodle_participant_id", "participant")
_TIME_HEADERS = ("last modified (submission)", "submitted_at", "submitted at", "submission time")
_MOODLE_TIME_FORMATS = ("%A, %d %B %Y, %I:%M %p", "%d %B %Y, %I:%M %p", "%A, %d %B %Y, %H:%M", "%d %B %Y, %H:%M")


def parse_time(text: str) -> dt.datetime | None:
    """An LMS time as aware UTC: ISO 8601 (a naive one is local time), or the form of Moodle's
    worksheet ("Tuesday, 1 December 2026, 11:36 AM", in the downloading user's zone: read as this
    machine's local time). None for "-" or empty; ValueError if unreadable."""
    text = text.strip()
    if text in ("", "-"):
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _MOODLE_TIME_FORMATS:
            try:
                t = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"not a time: {text[:40]!r}") from None
    return (t if t.tzinfo else t.astimezone()).astimezone(dt.timezone.utc)


def read_times(path: Path, lms: str) -> dict[str, str]:
    """``{user id: submission time}`` (nbgrader's ``timestamp.txt`` form, UTC) from an LMS's CSV.

    Moodle: the grading worksheet (``Identifier`` "Participant N", ``Last modified
    (submission)``). Canvas: any CSV with the user id (``ID``, ``user_id`` or ``canvas_user_id``)
    and ``submitted_at`` (as the submissions API gives it). Raises CourseError (one line)."""
    try:
        text = read_regular(path, 50 * 1024 * 1024).decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
    except OSError as e:
        raise CourseError(f"cannot read the submission times {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CourseError(f"the submission times {path} are not UTF-8 text") from None
    except csv.Error as e:
        raise CourseError(f"the submission times {path} are not a readable CSV ({str(e)[:100]})") from None
    if not rows:
        raise CourseError(f"the submission times {path} are empty")
    header = [h.strip().casefold() for h in rows[0]]
    idcol = next((header.index(h) for h in _ID_HEADERS if h in header), None)
    timecol = next((header.index(h) for h in _TIME_HEADERS if h in header), None)
    if idcol is None or timecol is None:
        raise CourseError(f"{path} has no user id column ({', '.join(_ID_HEADERS)}) or no submission time column "
                          f"({', '.join(_TIME_HEADERS)}): for Moodle, give the grading worksheet")
    out = {}
    for line, row in enumerate(rows[1:], 2):
        if len(row) <= max(idcol, timecol):
            continue
        m = re.fullmatch(r"(?:participant\s*)?([0-9]{1,20})", row[idcol].strip(), re.I | re.A)
        if not m:
            continue
        try:
            when = parse_time(row[timecol])
        except ValueError as e:
            raise CourseError(f"{path}, line {line}: {e} (expected e.g. \"Tuesday, 1 December 2026, 11:36 AM\" "
                              "or ISO 8601)") from None
        if when:
            out[m[1]] = f"{when:%Y-%m-%d %H:%M:%S.%f} UTC"
    return out


def identities_path(course: Course, lms: str, aid: str) -> Path:
    return course.outcomes_dir / "_lms" / f"{lms}-{aid}.json"


def save_identities(course: Course, batch: LmsBatch) -> Path:
    """Remember what the LMS called each student graded from this export (merged with earlier runs)."""
    path = identities_path(course, batch.lms, batch.assignment)
    data = read_identities(course, batch.lms, batch.assignment)
    data.update(batch.identities)
    return write_atomic(path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def read_identities(course: Course, lms: str, aid: str) -> dict[str, dict]:
    try:
        data = json.loads(identities_path(course, lms, aid).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
