"""Similar submissions: which pairs of students wrote (nearly) the same solution code.

Only the students' nbgrader *solution* cells count, read with nbformat from the
installed copies in ``course/submitted/<student>/<assignment>/``. Within each cell,
the lines the release notebook already had there (the ``def`` line, the docstring,
``# YOUR CODE HERE``, ``raise NotImplementedError()``) are dropped, and every k-gram
of the release notebook's code is *boilerplate* for copydetect, so the template never
counts as copied: two untouched notebooks have similarity 0.

The comparison is copydetect's (MOSS-style fingerprints of the tokenised code, with
identifiers, function names and strings replaced by placeholders, so renaming variables
does not hide a copy). With copydetect's default window of 1 every k-gram is a
fingerprint, which makes the result independent of Python's per-process string hashing:
the same submissions always give the same numbers.

A pair is *flagged* when at least ``threshold`` of one of the two documents (its
fingerprinted tokens) is covered by code found in the other one, and the overlap is at
least ``min_overlap`` tokens long (so that two short, obvious one-liners do not flag
anyone). See ``THRESHOLD`` for how it was chosen.
"""
from __future__ import annotations

import io
import itertools
import logging
from dataclasses import dataclass, field

import nbformat
import numpy as np

from autograder.course import Course

#: k: fingerprints are k-grams of this many characters of tokenised code (copydetect's noise
#: threshold; ~10 tokens). Shorter matches are ignored.
NOISE = 25
#: Flag a pair when one document is at least this fraction covered by the other. Measured on
#: 01_perceptron (tests/system/test_report.py): a renamed copy ~0.95, a copy of four of seven exercises
#: ~0.75, independent correct solutions written differently <= 0.12, the untouched template 0.
THRESHOLD = 0.5
#: ... and the matched code is at least this many tokenised characters (two one-line answers
#: such as ``return 1 / (1 + np.exp(-z))`` are not evidence of copying).
MIN_OVERLAP = 80


@dataclass(frozen=True)
class SolutionCell:
    """One solution cell of one student: its grade id and the lines the student wrote."""

    grade_id: str
    lines: tuple[str, ...]


@dataclass
class Document:
    """A student's solution code for one assignment, as copydetect sees it.

    text: the student-written lines of all solution cells, in notebook order, joined by newlines;
    cells: those cells; starts[i]: index in ``text`` of cell i's first character."""

    student: str
    cells: list[SolutionCell]
    text: str = ""
    starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts, pos = [], 0
        self.starts = []
        for cell in self.cells:
            block = "\n".join(cell.lines) + "\n"
            self.starts.append(pos)
            parts.append(block)
            pos += len(block)
        self.text = "".join(parts)


@dataclass
class LineView:
    """One line of a side-by-side view: 1-based line number in the cell, its text, whether matched."""

    number: int
    text: str
    matched: bool


@dataclass
class CellPair:
    """The same solution cell of two students, with the matching lines marked on each side."""

    grade_id: str
    left: list[LineView]
    right: list[LineView]


@dataclass
class Pair:
    """Two students' similarity: ``similarity`` = max of the two coverages (each in [0, 1])."""

    a: str
    b: str
    similarity: float
    coverage_a: float
    coverage_b: float
    overlap: int
    flagged: bool
    cells: list[CellPair] = field(default_factory=list)


@dataclass
class SimilarityResult:
    """Every pair's score (sorted, most similar first), with the side-by-side views of the flagged ones."""

    threshold: float
    min_overlap: int
    students: list[str]
    pairs: list[Pair]
    skipped: dict[str, str] = field(default_factory=dict)  # student -> why their notebook was not read

    @property
    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if p.flagged]


def solution_cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """``(grade_id, source)`` of every nbgrader solution code cell, in notebook order."""
    out = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and isinstance(meta, dict) and meta.get("solution"):
            out.append((str(meta.get("grade_id", "")), str(cell.get("source", ""))))
    return out


def student_cells(nb: nbformat.NotebookNode, template: dict[str, str]) -> list[SolutionCell]:
    """The student's solution cells with the release's lines of the same cell removed.

    template: grade_id -> the release's source of that cell."""
    cells = []
    for gid, source in solution_cells(nb):
        given = {line.strip() for line in template.get(gid, "").splitlines()}
        lines = tuple(line for line in source.splitlines() if line.strip() and line.strip() not in given)
        cells.append(SolutionCell(gid, lines))
    return cells


def _fingerprint(name: str, text: str, boilerplate: np.ndarray):
    from copydetect import CodeFingerprint

    return CodeFingerprint(f"{name}.py", NOISE, 1, boilerplate=boilerplate, fp=io.StringIO(text),
                           language="python")


def boilerplate_hashes(release_nb: nbformat.NotebookNode) -> np.ndarray:
    """Fingerprints of every code cell of the release notebook (the template and the given code)."""
    code = "\n".join(str(c.get("source", "")) for c in release_nb.cells if c.get("cell_type") == "code")
    return np.array(sorted(_fingerprint("release", code, np.array([])).hashes))


def _matched_lines(slices: np.ndarray, doc: Document) -> list[set[int]]:
    """For each cell of ``doc``: the 0-based indexes of its lines that a matched slice covers.

    slices: (2, M) int array of [start, end) character ranges in ``doc.text``. A line counts when a
    slice covers at least 4 characters of its code (indentation excluded), or all of a shorter line:
    copydetect's slice ends can spill a character or two over a line (or cell) boundary."""
    spans = []  # (cell index, line index, code start, code end) in doc.text
    for c, (cell, start) in enumerate(zip(doc.cells, doc.starts)):
        pos = start
        for i, line in enumerate(cell.lines):
            code = line.strip()
            begin = pos + (len(line) - len(line.lstrip()))
            spans.append((c, i, begin, begin + len(code)))
            pos += len(line) + 1
    out: list[set[int]] = [set() for _ in doc.cells]
    for start, end in zip(*(np.asarray(s, dtype=np.int64) for s in slices)):
        for c, i, begin, stop in spans:
            if stop <= start or begin >= end:
                continue
            if min(end, stop) - max(start, begin) >= min(4, stop - begin):
                out[c].add(i)
    return out


def _side_by_side(da: Document, db: Document, slices_a: np.ndarray, slices_b: np.ndarray) -> list[CellPair]:
    """The cells (by grade id, in a's order) with a matched line on at least one side."""
    ma, mb = _matched_lines(slices_a, da), _matched_lines(slices_b, db)
    b_cells = {c.grade_id: (c, m) for c, m in zip(db.cells, mb)}
    out = []
    for cell, matched in zip(da.cells, ma):
        other, other_matched = b_cells.get(cell.grade_id, (SolutionCell(cell.grade_id, ()), set()))
        if not matched and not other_matched:
            continue
        out.append(CellPair(cell.grade_id,
                            [LineView(i + 1, t, i in matched) for i, t in enumerate(cell.lines)],
                            [LineView(i + 1, t, i in other_matched) for i, t in enumerate(other.lines)]))
    return out


def compare_documents(docs: list[Document], boilerplate: np.ndarray, threshold: float = THRESHOLD,
                      min_overlap: int = MIN_OVERLAP) -> list[Pair]:
    """Every pair of ``docs`` (a before b in the given order), most similar first (ties by names)."""
    from copydetect import compare_files

    prints = [_fingerprint(d.student, d.text, boilerplate) for d in docs]
    pairs = []
    for (i, da), (j, db) in itertools.combinations(enumerate(docs), 2):
        fa, fb = prints[i], prints[j]
        if not fa.hashes or not fb.hashes or fa.hashes.isdisjoint(fb.hashes):
            pairs.append(Pair(da.student, db.student, 0.0, 0.0, 0.0, 0, False))
            continue
        overlap, (ca, cb), (sa, sb) = compare_files(fa, fb)
        ca, cb = min(float(ca), 1.0), min(float(cb), 1.0)
        sim = max(ca, cb)
        flagged = sim >= threshold and int(overlap) >= min_overlap
        pair = Pair(da.student, db.student, sim, ca, cb, int(overlap), flagged)
        if flagged:
            pair.cells = _side_by_side(da, db, np.asarray(sa), np.asarray(sb))
        pairs.append(pair)
    pairs.sort(key=lambda p: (-p.similarity, p.a, p.b))
    return pairs


def assignment_similarity(course: Course, aid: str, students: list[str], threshold: float = THRESHOLD,
                          min_overlap: int = MIN_OVERLAP) -> SimilarityResult:
    """Compare the installed submissions of ``students`` for ``aid`` (those without one are skipped)."""
    release_path = course.release_dir / aid / f"{aid}.ipynb"
    try:
        release_nb = nbformat.read(release_path, as_version=4)
    except (OSError, ValueError) as e:
        logging.getLogger(__name__).warning("no release notebook for %s (%s): no boilerplate", aid, e)
        release_nb = nbformat.v4.new_notebook()
    template = dict(solution_cells(release_nb))
    boilerplate = boilerplate_hashes(release_nb)
    docs, skipped = [], {}
    for student in sorted(students):
        path = course.step_dir("submitted", student, aid) / f"{aid}.ipynb"
        if not path.is_file() or path.is_symlink():
            skipped[student] = "no installed notebook"
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as e:  # noqa: BLE001 - nbformat raises many types; the pair is just not compared
            skipped[student] = f"unreadable ({type(e).__name__})"
            continue
        docs.append(Document(student, student_cells(nb, template)))
    pairs = compare_documents(docs, boilerplate, threshold, min_overlap)
    return SimilarityResult(threshold, min_overlap, [d.student for d in docs], pairs, skipped)
