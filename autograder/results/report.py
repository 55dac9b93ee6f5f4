"""What the class got wrong: one self-contained HTML page, plus CSV and JSON of the same numbers.

``build_report`` reads what grading recorded (the outcome files under ``course/outcomes/``,
the refusals, nbgrader's gradebook for scores and lateness) and turns it into a
``CourseReport``: per assignment the score distribution, each exercise's pass rate on
visible and on hidden cases, the *misconception table* (the catalogued mistakes the
students' outputs matched, most common first, with an example message), the other ways
cases failed, outcomes and events (not graded and why, timeouts, kernel deaths), late
submissions, and the pairs of submissions whose solution code is similar
(``autograder.results.similarity``). ``render_html``, ``to_csv`` and ``to_json`` write it.

The page needs nothing but itself: the plots are inline SVG drawn by matplotlib (text as
paths, no fonts to fetch), there is no script, and a Content-Security-Policy forbids any
request. Every text that comes from a student or a file is HTML-escaped. The outcome
files never hold hidden inputs or expected values (their messages for hidden cases are
already safe), and the report shows nothing else of the cases.

The aggregation (``analyse_assignment``) is a pure function of ``SubmissionRow`` records, so
it is tested on hand-written outcomes; ``load_rows`` is the only part that reads the course.
"""
from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from autograder.store import gradebook as nbgrader_api
from autograder.store import outcomes
from autograder.course import Assignment, Course, CourseError
from autograder.results.export import safe_cell
from helpers.grading.contract import CASE_KINDS
from autograder.results.similarity import MIN_OVERLAP, THRESHOLD, SimilarityResult, assignment_similarity

NO_SUBMISSION = "no submission"
#: What each failing kind of case is called on the page (``passed`` and ``known_mistake`` have their own columns).
KIND_LABELS = {
    "known_mistake": "a catalogued mistake",
    "wrong": "wrong, no catalogued mistake matched",
    "error": "the function raised an error",
    "not_implemented": "not implemented",
    "not_run": "not run (an error before it, a time limit, the kernel died)",
    "malformed": "output not plain numbers",
    "mutated_input": "the function changed its input",
    "warning": "the function raised a warning the exercise forbids",
    "shortcut": "a library call the exercise forbids",
    "wrong_dtype": "the right values as the wrong kind of number (floats for indices)",
}
#: Side-by-side views shown (the most similar flagged pairs); the table lists every flagged pair.
MAX_VIEWS = 30
CSV_COLUMNS = ["assignment", "section", "exercise", "item", "count", "total", "value", "example"]


# ----------------------------------------------------------------------------------------------
# input


@dataclass
class SubmissionRow:
    """One (student, assignment) as grading left it.

    score, max_score: from the gradebook (``export.grade_rows``); status: ``graded``, ``not graded``
    or ``no submission``; seconds_late: nbgrader's ``total_seconds_late`` (0 when on time);
    outcome: the outcome file's content (None when there is none)."""

    student: str
    assignment: str
    score: float
    max_score: float
    status: str
    reason: str = ""
    seconds_late: float = 0.0
    outcome: dict | None = None


def _float(text: Any, default: float = 0.0) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return default


def load_rows(course: Course, aids: list[str]) -> tuple[list[SubmissionRow], list[dict]]:
    """Every (student, assignment in ``aids``) of the gradebook with its outcome; and the refusals.

    Returns (rows in student order per assignment, refused entries ``{name, assignment, reason}``)."""
    from nbgrader.api import MissingEntry

    from autograder.results.export import grade_rows

    url = course.db_url
    if url.startswith("sqlite") and not Path(url.split(":///", 1)[-1].split("?", 1)[0]).is_file():
        raise CourseError(f"no gradebook in {course.root}: grade some submissions first (`autograder grade PATH`)")
    rows: list[SubmissionRow] = []
    refused: list[dict] = []
    wanted = set(aids)
    with nbgrader_api.gradebook(course) as gb:
        for r in grade_rows(course, gb):
            if r["status"] == outcomes.REFUSED:
                if not r["assignment"] or r["assignment"] in wanted:
                    refused.append({"name": r["student"], "assignment": r["assignment"], "reason": r["reason"]})
                continue
            if r["assignment"] not in wanted:
                continue
            late = 0.0
            try:
                late = float(gb.find_submission(r["assignment"], r["student"]).total_seconds_late or 0.0)
            except MissingEntry:
                pass
            outcome = outcomes.read(course, r["assignment"], r["student"])
            rows.append(SubmissionRow(r["student"], r["assignment"], _float(r["score"]), _float(r["max_score"]),
                                      r["status"], r["reason"], late, outcome if isinstance(outcome, dict) else None))
    return rows, refused


# ----------------------------------------------------------------------------------------------
# aggregation


@dataclass
class MistakeStat:
    """One catalogued mistake of one exercise: the students whose output matched it (on >= 1 case)."""

    mistake: str
    students: list[str]
    cases: int                 # cases matched, over all those students
    example: str               # one case's message (a visible case's when there is one)

    @property
    def count(self) -> int:
        return len(self.students)


@dataclass
class KindStat:
    """Another way cases of one exercise failed: students with >= 1 case of that kind."""

    kind: str
    students: list[str]
    cases: int
    example: str

    @property
    def count(self) -> int:
        return len(self.students)


@dataclass
class ExerciseStat:
    """One exercise over the graded submissions that have it.

    graded: how many submissions have a verdict on it; passed: how many scored its points;
    visible_*/hidden_*: cases passed / cases run over all those submissions (cases where the
    outcome recorded them; ``has_cases`` False when no outcome did); visible_only: students
    who passed every visible case but failed a hidden one."""

    name: str
    max_points: float
    graded: int = 0
    passed: int = 0
    points: float = 0.0        # points earned, summed over the graded submissions (partial credit counts)
    attempted: int = 0
    visible_passed: int = 0
    visible_total: int = 0
    hidden_passed: int = 0
    hidden_total: int = 0
    visible_only: list[str] = field(default_factory=list)
    mistakes: list[MistakeStat] = field(default_factory=list)
    failures: list[KindStat] = field(default_factory=list)
    has_cases: bool = False

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.graded if self.graded else None

    @property
    def mean_points(self) -> float | None:
        return self.points / self.graded if self.graded else None

    @property
    def visible_rate(self) -> float | None:
        return self.visible_passed / self.visible_total if self.visible_total else None

    @property
    def hidden_rate(self) -> float | None:
        return self.hidden_passed / self.hidden_total if self.hidden_total else None


@dataclass
class ScoreStats:
    """Scores of the submissions that have an outcome (graded or not graded), out of ``max_points``."""

    max_points: float
    scores: list[float]

    @property
    def n(self) -> int:
        return len(self.scores)

    def summary(self) -> dict[str, float | None]:
        s = sorted(self.scores)
        if not s:
            return {"n": 0, "mean": None, "median": None, "min": None, "max": None, "max_points": self.max_points}
        return {"n": len(s), "mean": statistics.fmean(s), "median": statistics.median(s), "min": s[0],
                "max": s[-1], "max_points": self.max_points}


@dataclass
class AssignmentReport:
    """Everything the page says about one assignment (see the module docstring)."""

    id: str
    title: str
    points: float
    rows: list[SubmissionRow]
    status_counts: dict[str, int]
    scores: ScoreStats
    exercises: list[ExerciseStat]
    not_graded: list[tuple[str, str]]            # (student, reason)
    events: list[tuple[str, list[tuple[str, str]]]]  # (kind of event, [(student, full text)]), most common first
    notes: list[tuple[str, str]]                 # (student, collection remark)
    late: list[tuple[str, float, float]]         # (student, seconds late, score), latest first
    refused: list[dict]
    missing_cases: list[str]                     # graded students whose outcome has no per-case data
    similarity: SimilarityResult | None = None
    due: dt.datetime | None = None               # the syllabus's due date (aware, UTC)

    @property
    def submitted(self) -> int:
        return sum(n for s, n in self.status_counts.items() if s != NO_SUBMISSION)


@dataclass
class CourseReport:
    course: str
    assignments: list[AssignmentReport]


def _event_kind(text: str) -> str:
    """An event's kind: its text up to the first colon (``kernel died: ...`` -> ``kernel died``)."""
    return text.split(":", 1)[0].strip()[:120] or "event"


def _add_example(current: str, message: str, hidden: bool, current_hidden: bool | None) -> tuple[str, bool | None]:
    """Keep the first visible case's message; a hidden one only until a visible one comes."""
    if current_hidden is None or (current_hidden and not hidden):
        return message, hidden
    return current, current_hidden


def analyse_exercises(rows: list[SubmissionRow]) -> tuple[list[ExerciseStat], list[str]]:
    """Per-exercise statistics over the graded rows (students in the given order).

    Exercises keep the order of the first outcome that has them. Returns (stats, graded students
    whose outcome lacks per-case data)."""
    stats: dict[str, ExerciseStat] = {}
    mistakes: dict[str, dict[str, dict]] = {}
    kinds: dict[str, dict[str, dict]] = {}
    missing_cases: list[str] = []
    for row in rows:
        if row.status != outcomes.GRADED or not row.outcome:
            continue
        exercises = row.outcome.get("exercises")
        exercises = exercises if isinstance(exercises, dict) else {}
        lacks = False
        for name, ex in exercises.items():
            if not isinstance(ex, dict):
                continue
            st = stats.setdefault(name, ExerciseStat(name, _float(ex.get("max_points"))))
            st.max_points = max(st.max_points, _float(ex.get("max_points")))
            st.graded += 1
            st.passed += bool(ex.get("ok"))
            st.points += _float(ex.get("points"))
            cases = ex.get("cases")
            if not isinstance(cases, list):
                lacks = True
                continue
            st.has_cases = True
            cases = [c for c in cases if isinstance(c, dict)]
            if any(c.get("kind") != "not_implemented" for c in cases):
                st.attempted += 1
            visible = [c for c in cases if not c.get("hidden")]
            hidden = [c for c in cases if c.get("hidden")]
            st.visible_total += len(visible)
            st.visible_passed += sum(bool(c.get("ok")) for c in visible)
            st.hidden_total += len(hidden)
            st.hidden_passed += sum(bool(c.get("ok")) for c in hidden)
            if visible and hidden and all(c.get("ok") for c in visible) and not all(c.get("ok") for c in hidden):
                st.visible_only.append(row.student)
            for c in cases:
                if c.get("ok"):
                    continue
                kind = c.get("kind") if c.get("kind") in CASE_KINDS else "wrong"
                message = outcomes.clean_text(c.get("message") or "")
                mistake = c.get("mistake")
                if kind == "known_mistake" and mistake:
                    entry = mistakes.setdefault(name, {}).setdefault(
                        outcomes.clean_text(mistake), {"students": [], "cases": 0, "example": "", "hidden": None})
                else:
                    entry = kinds.setdefault(name, {}).setdefault(
                        kind if kind != "known_mistake" else "wrong",
                        {"students": [], "cases": 0, "example": "", "hidden": None})
                entry["cases"] += 1
                if row.student not in entry["students"]:
                    entry["students"].append(row.student)
                entry["example"], entry["hidden"] = _add_example(entry["example"], message, bool(c.get("hidden")),
                                                                 entry["hidden"])
        if lacks:
            missing_cases.append(row.student)
    for name, st in stats.items():
        st.mistakes = sorted((MistakeStat(m, e["students"], e["cases"], e["example"])
                              for m, e in mistakes.get(name, {}).items()), key=lambda m: (-m.count, -m.cases, m.mistake))
        st.failures = sorted((KindStat(k, e["students"], e["cases"], e["example"])
                              for k, e in kinds.get(name, {}).items()),
                             key=lambda k: (-k.count, CASE_KINDS.index(k.kind)))
    return list(stats.values()), missing_cases


def _strings(value: Any) -> list[str]:
    """A list of texts from an outcome field (anything else: none)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def analyse_assignment(assignment: Assignment, rows: list[SubmissionRow], refused: Iterable[dict] = (),
                       similarity: SimilarityResult | None = None) -> AssignmentReport:
    """The report of one assignment from its rows (any order; sorted by student here)."""
    rows = sorted((r for r in rows if r.assignment == assignment.id), key=lambda r: r.student)
    counts = Counter(r.status for r in rows)
    status_counts = {s: counts[s] for s in (outcomes.GRADED, outcomes.NOT_GRADED, NO_SUBMISSION) if counts[s]}
    status_counts.update({s: n for s, n in sorted(counts.items()) if s not in status_counts})
    with_outcome = [r for r in rows if r.status != NO_SUBMISSION]
    max_points = max([r.max_score for r in with_outcome] + [assignment.points])
    exercises, missing = analyse_exercises(rows)
    events: dict[str, list[tuple[str, str]]] = {}
    notes: list[tuple[str, str]] = []
    for r in with_outcome:
        for e in _strings((r.outcome or {}).get("events")):
            text = outcomes.clean_text(e)
            events.setdefault(_event_kind(text), []).append((r.student, text))
        for n in _strings((r.outcome or {}).get("notes")):
            notes.append((r.student, outcomes.clean_text(n)))
    return AssignmentReport(
        id=assignment.id, title=assignment.title, points=assignment.points, rows=rows,
        status_counts=status_counts, scores=ScoreStats(max_points, [r.score for r in with_outcome]),
        exercises=exercises,
        not_graded=[(r.student, r.reason) for r in rows if r.status == outcomes.NOT_GRADED],
        events=sorted(events.items(), key=lambda kv: (-len(kv[1]), kv[0])), notes=notes,
        late=sorted(((r.student, r.seconds_late, r.score) for r in with_outcome if r.seconds_late > 0),
                    key=lambda t: (-t[1], t[0])),
        refused=[dict(r) for r in refused if r.get("assignment") == assignment.id],
        missing_cases=missing, similarity=similarity, due=getattr(assignment, "due", None))


def build_report(course: Course, aid: str | None = None, similarity: bool = True,
                 threshold: float = THRESHOLD, min_overlap: int = MIN_OVERLAP) -> CourseReport:
    """The report of one assignment (``aid``) or of every assignment of the syllabus."""
    assignments = [course.assignment(aid)] if aid else course.assignments()
    rows, refused = load_rows(course, [a.id for a in assignments])
    reports = []
    for a in assignments:
        mine = [r for r in rows if r.assignment == a.id]
        sim = None
        if similarity:
            graded = [r.student for r in mine if r.status == outcomes.GRADED]
            sim = assignment_similarity(course, a.id, graded, threshold, min_overlap) if len(graded) > 1 else None
        reports.append(analyse_assignment(a, mine, refused, sim))
    unassigned = [r for r in refused if not r.get("assignment")]
    if unassigned and reports:
        reports[0].refused.extend(dict(r) for r in unassigned)
    return CourseReport(course.root.name, reports)


# ----------------------------------------------------------------------------------------------
# numbers for export


def _rate(n: int, total: int) -> float | None:
    return n / total if total else None


def report_records(report: CourseReport) -> list[dict]:
    """The report's numbers as flat records with the ``CSV_COLUMNS`` keys (see README)."""
    out: list[dict] = []

    def add(a: str, section: str, item: str, exercise: str = "", count: int | None = None,
            total: int | None = None, value: float | None = None, example: str = "") -> None:
        out.append({"assignment": a, "section": section, "exercise": exercise, "item": item, "count": count,
                    "total": total, "value": value, "example": example})

    for a in report.assignments:
        n = len(a.rows)
        for status, count in a.status_counts.items():
            add(a.id, "outcome", status, count=count, total=n, value=_rate(count, n))
        add(a.id, "outcome", outcomes.REFUSED, count=len(a.refused))
        for key, value in a.scores.summary().items():
            if key != "n":
                add(a.id, "score", key, value=value, count=a.scores.n if key != "max_points" else None)
        for ex in a.exercises:
            add(a.id, "exercise", "passed", ex.name, ex.passed, ex.graded, ex.pass_rate)
            add(a.id, "exercise", "mean_points", ex.name, total=ex.graded, value=ex.mean_points)
            add(a.id, "exercise", "attempted", ex.name, ex.attempted, ex.graded, _rate(ex.attempted, ex.graded))
            add(a.id, "exercise", "visible_cases_passed", ex.name, ex.visible_passed, ex.visible_total, ex.visible_rate)
            add(a.id, "exercise", "hidden_cases_passed", ex.name, ex.hidden_passed, ex.hidden_total, ex.hidden_rate)
            add(a.id, "exercise", "passed_visible_failed_hidden", ex.name, len(ex.visible_only), ex.graded,
                _rate(len(ex.visible_only), ex.graded))
            for m in ex.mistakes:
                add(a.id, "mistake", m.mistake, ex.name, m.count, ex.graded, _rate(m.count, ex.graded), m.example)
            for k in ex.failures:
                add(a.id, "failure", k.kind, ex.name, k.count, ex.graded, _rate(k.count, ex.graded), k.example)
        for kind, items in a.events:
            add(a.id, "event", kind, count=len(items), total=a.submitted, example=items[0][1])
        for student, reason in a.not_graded:
            add(a.id, "not_graded", student, example=reason)
        for student, seconds, score in a.late:
            add(a.id, "late", student, value=seconds, example=_duration(seconds))
        if a.similarity is not None:
            for p in a.similarity.flagged:
                add(a.id, "similar_pair", f"{p.a} / {p.b}", count=p.overlap, value=round(p.similarity, 4))
    return out


def to_csv(report: CourseReport) -> str:
    """The records of ``report_records`` as CSV (empty cells for missing numbers)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for rec in report_records(report):
        # safe_cell: an example is a reason or a file name a student controls ("=HYPERLINK(...)")
        writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else safe_cell(v)))
                         for k, v in rec.items()})
    return buf.getvalue()


def report_dict(report: CourseReport) -> dict:
    """The whole report as plain JSON data (the page's numbers, per assignment)."""
    out = {"course": report.course, "assignments": []}
    for a in report.assignments:
        exercises = []
        for ex in a.exercises:
            d = {k: v for k, v in asdict(ex).items() if k not in ("mistakes", "failures")}
            d.update(pass_rate=ex.pass_rate, mean_points=ex.mean_points, visible_rate=ex.visible_rate, hidden_rate=ex.hidden_rate,
                     mistakes=[{**asdict(m), "count": m.count} for m in ex.mistakes],
                     failures=[{**asdict(k), "count": k.count} for k in ex.failures])
            exercises.append(d)
        sim = None
        if a.similarity is not None:
            sim = {"threshold": a.similarity.threshold, "min_overlap": a.similarity.min_overlap,
                   "students": a.similarity.students, "skipped": a.similarity.skipped,
                   "flagged": [{"a": p.a, "b": p.b, "similarity": p.similarity, "coverage_a": p.coverage_a,
                                "coverage_b": p.coverage_b, "overlap": p.overlap,
                                "cells": [c.grade_id for c in p.cells]} for p in a.similarity.flagged],
                   "highest_unflagged": next(({"a": p.a, "b": p.b, "similarity": p.similarity}
                                              for p in a.similarity.pairs if not p.flagged), None)}
        out["assignments"].append({
            "id": a.id, "title": a.title, "points": a.points, "due": a.due.isoformat() if a.due else None,
            "status_counts": a.status_counts,
            "refused": a.refused, "scores": {**a.scores.summary(), "values": {r.student: r.score for r in a.rows
                                                                              if r.status != NO_SUBMISSION}},
            "exercises": exercises, "not_graded": [{"student": s, "reason": r} for s, r in a.not_graded],
            "events": [{"kind": k, "items": [{"student": s, "text": t} for s, t in items]} for k, items in a.events],
            "notes": [{"student": s, "note": n} for s, n in a.notes],
            "late": [{"student": s, "seconds_late": sec, "score": sc} for s, sec, sc in a.late],
            "missing_cases": a.missing_cases, "similarity": sim})
    return out


def to_json(report: CourseReport) -> str:
    return json.dumps(report_dict(report), indent=1, ensure_ascii=False, sort_keys=False) + "\n"


# ----------------------------------------------------------------------------------------------
# plots (inline SVG)


def _svg(fig) -> str:
    """A matplotlib figure as an inline ``<svg>`` element (deterministic ids, no metadata, text as paths)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)
    return text


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "autograder-report", "svg.fonttype": "path", "font.size": 9})
    return plt


def score_histogram(a: AssignmentReport) -> str:
    """Histogram of the scores: graded and not graded stacked, one bin per point up to 30 points."""
    plt = _mpl()
    graded = [r.score for r in a.rows if r.status == outcomes.GRADED]
    other = [r.score for r in a.rows if r.status not in (outcomes.GRADED, NO_SUBMISSION)]
    top = max(a.scores.max_points, max(graded + other, default=0.0), 1.0)
    width = 1.0 if top <= 30 else top / 30
    edges = [i * width - width / 2 for i in range(int(top / width) + 2)]
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    ax.hist([graded, other], bins=edges, stacked=True, color=["#3a7ebf", "#b0b0b0"],
            label=["graded", "not graded"], edgecolor="white")
    ax.set_xlabel(f"score (out of {a.scores.max_points:g})")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlim(edges[0], edges[-1])
    if other:
        ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def pass_rate_chart(a: AssignmentReport) -> str:
    """Horizontal bars per exercise: exercise passed, visible cases passed, hidden cases passed (%)."""
    plt = _mpl()
    exercises = a.exercises[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(exercises) + 0.9))
    h = 0.26
    series = [("exercise passed", [e.pass_rate for e in exercises], "#3a7ebf"),
              ("visible cases", [e.visible_rate for e in exercises], "#8cc084"),
              ("hidden cases", [e.hidden_rate for e in exercises], "#e0a040")]
    for k, (label, values, color) in enumerate(series):
        ys = [i + (1 - k) * h for i in range(len(exercises))]
        ax.barh(ys, [100 * (v or 0.0) for v in values], height=h, color=color, label=label)
    ax.set_yticks(range(len(exercises)), [e.name for e in exercises])
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of graded submissions (exercise) / of cases run (visible, hidden)")
    ax.legend(frameon=False, loc="lower right", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def similarity_histogram(sim: SimilarityResult) -> str:
    """Distribution of every pair's similarity, with the threshold marked (log scale of counts)."""
    from matplotlib.ticker import FuncFormatter

    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.4, 2.2))
    ax.hist([p.similarity for p in sim.pairs], bins=[i / 20 for i in range(21)], color="#7a6fb0", edgecolor="white")
    ax.axvline(sim.threshold, color="#c0392b", linestyle="--", label=f"threshold {sim.threshold:g}")
    ax.set_xlabel("similarity of a pair (share of one submission's code found in the other)")
    ax.set_ylabel("pairs")
    ax.set_yscale("symlog", linthresh=1)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def course_chart(report: CourseReport) -> str:
    """Mean score (% of the points) per assignment that has submissions."""
    plt = _mpl()
    shown = [a for a in report.assignments if a.scores.n]
    fig, ax = plt.subplots(figsize=(6.4, 0.4 * len(shown) + 0.9))
    names = [a.id for a in shown][::-1]
    means = [100 * (a.scores.summary()["mean"] or 0.0) / (a.scores.max_points or 1.0) for a in shown][::-1]
    ax.barh(range(len(shown)), means, color="#3a7ebf")
    ax.set_yticks(range(len(shown)), names)
    ax.set_xlim(0, 100)
    ax.set_xlabel("mean score, % of the points")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


# ----------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;padding:1em 2em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #3a7ebf;padding-bottom:.2em;margin-top:2em}h3{margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef3f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#666}.bad{color:#a33}.ok{color:#286b2a}
figure{margin:.5em 0 1em}figure svg{max-width:100%;height:auto}
.pair{border:1px solid #ccc;margin:.8em 0;padding:.4em .8em}
.sbs{display:grid;grid-template-columns:1fr 1fr;gap:.6em}
.sbs pre{margin:0;background:#fafafa;border:1px solid #ddd;padding:.3em;overflow-x:auto;font-size:12px}
.sbs .m{background:#ffe08a;display:block}.sbs .l{color:#999;user-select:none}
nav a{margin-right:1em}details summary{cursor:pointer}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}" if abs(x - round(x)) > 1e-9 else f"{x:g}"


def _duration(seconds: float) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``12 min``, ``40 s``."""
    s = int(round(seconds))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m} min"
    return f"{m} min" if m else f"{sec} s"


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), cls: str = "") -> str:
    """An HTML table; the cells must already be escaped HTML."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _names(students: list[str], limit: int = 12) -> str:
    shown = ", ".join(_e(s) for s in students[:limit])
    if len(students) > limit:
        shown += f" … (+{len(students) - limit})"
    return f'<details><summary>{len(students)} student(s)</summary>{shown}</details>'


def _anchor(aid: str) -> str:
    return "a-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in aid)


def _retreach_table(a: AssignmentReport) -> str:
    """Exercises from the lowest pass rate up, each with its most common catalogued mistake."""
    rows = []
    for ex in sorted(a.exercises, key=lambda e: (e.pass_rate if e.pass_rate is not None else 2, e.name)):
        top = ex.mistakes[0] if ex.mistakes else None
        other = ex.failures[0] if ex.failures else None
        rows.append([f"<b>{_e(ex.name)}</b>", _pct(ex.pass_rate),
                     f"{_e(top.mistake)} <span class='muted'>({top.count} student(s))</span>" if top else
                     "<span class='muted'>none diagnosed</span>",
                     f"{_e(KIND_LABELS.get(other.kind, other.kind))} ({other.count})" if other else ""])
    return _table(["exercise", "passed", "most common diagnosed mistake", "most common other failure"], rows,
                  {1}, "reteach")


def _misconception_tables(a: AssignmentReport) -> str:
    parts = []
    for ex in a.exercises:
        rows = [[_e(m.mistake), str(m.count), _pct(_rate(m.count, ex.graded)), str(m.cases), _e(m.example),
                 _names(m.students)] for m in ex.mistakes]
        rows += [[f"<i>{_e(KIND_LABELS.get(k.kind, k.kind))}</i>", str(k.count), _pct(_rate(k.count, ex.graded)),
                  str(k.cases), _e(k.example), _names(k.students)] for k in ex.failures]
        head = (f"<h4>{_e(ex.name)} <span class='muted'>— {ex.passed} of {ex.graded} passed, "
                f"{ex.max_points:g} point(s)</span></h4>")
        if not rows:
            parts.append(head + "<p class='ok'>Every graded submission passed every case.</p>")
            continue
        parts.append(head + _table(["mistake (catalogued) or failure", "students", "of graded", "cases",
                                    "example message", "who"], rows, {1, 2, 3}, "misconceptions"))
    return "".join(parts)


def _exercise_table(a: AssignmentReport) -> str:
    rows = [[_e(ex.name), f"{ex.max_points:g}", str(ex.graded), str(ex.attempted), f"{ex.passed}",
             _pct(ex.pass_rate), _num(ex.mean_points), f"{ex.visible_passed}/{ex.visible_total} ({_pct(ex.visible_rate)})",
             f"{ex.hidden_passed}/{ex.hidden_total} ({_pct(ex.hidden_rate)})",
             _names(ex.visible_only) if ex.visible_only else "0"] for ex in a.exercises]
    return _table(["exercise", "points", "graded", "attempted", "passed", "pass rate", "mean points",
                   "visible cases passed", "hidden cases passed", "passed visible, failed hidden"], rows,
                  {1, 2, 3, 4, 5, 6, 7, 8},
                  "exercises")


def _outcome_section(a: AssignmentReport) -> str:
    parts = [_table(["outcome", "submissions"], [[_e(s), str(n)] for s, n in a.status_counts.items()]
                    + ([["refused at collection", str(len(a.refused))]] if a.refused else []), {1}, "outcomes")]
    if a.not_graded:
        parts.append("<h4>Not graded, and why</h4>" + _table(["student", "reason"],
                                                          [[_e(s), _e(r)] for s, r in a.not_graded]))
    if a.events:
        rows = [[_e(kind), str(len(items)), "<br>".join(f"{_e(s)}: {_e(t)}" for s, t in items[:20])
                 + (f"<br>… (+{len(items) - 20})" if len(items) > 20 else "")] for kind, items in a.events]
        parts.append("<h4>Events while grading</h4>" + _table(["event", "submissions", "details"], rows, {1}, "events"))
    else:
        parts.append("<p class='muted'>No events while grading (no time-outs, kernel deaths or output limits).</p>")
    if a.notes:
        parts.append("<h4>Collection remarks</h4>" + _table(["student", "remark"], [[_e(s), _e(n)] for s, n in a.notes]))
    if a.refused:
        parts.append("<h4>Refused at collection</h4>" + _table(["entry", "reason"],
                                                            [[_e(r.get("name", "")), _e(r.get("reason", ""))]
                                                             for r in a.refused]))
    return "".join(parts)


def _late_section(a: AssignmentReport) -> str:
    due = (f"due {a.due.strftime('%Y-%m-%d %H:%M')} UTC" if a.due else "no due date in the syllabus")
    if not a.late:
        return f"<p class='muted'>No late submissions ({due}).</p>"
    rows = [[_e(s), _duration(sec), f"{sc:g}"] for s, sec, sc in a.late]
    return (f"<p>{len(a.late)} late submission(s) ({due}; lateness as nbgrader's gradebook records it).</p>"
            + _table(["student", "late by", "score"], rows, {1, 2}, "late"))


def _code_column(lines) -> str:
    out = []
    for ln in lines:
        text = f'<span class="l">{ln.number:>3} </span>{_e(ln.text)}'
        out.append(f'<span class="m">{text}</span>' if ln.matched else text + "\n")
    return "<pre>" + "".join(out) + "</pre>"


def _similarity_section(a: AssignmentReport) -> str:
    sim = a.similarity
    if sim is None:
        return "<p class='muted'>Not computed (fewer than two graded submissions, or --no-similarity).</p>"
    parts = [f"<p>{len(sim.students)} graded submission(s), {len(sim.pairs)} pair(s) compared on their solution "
             f"cells (the release's code does not count). A pair is flagged when at least "
             f"{100 * sim.threshold:.0f} % of one submission's code is found in the other, over at least "
             f"{sim.min_overlap} tokenised characters.</p>"]
    if sim.pairs:
        parts.append(f"<figure class='plot' aria-label='pair similarity'>{similarity_histogram(sim)}</figure>")
    flagged = sim.flagged
    if not flagged:
        parts.append("<p class='ok'>No pair above the threshold.</p>")
    else:
        rows = [[_e(p.a), _e(p.b), _pct(p.similarity), f"{_pct(p.coverage_a)} / {_pct(p.coverage_b)}", str(p.overlap),
                 f"<a href='#{_anchor(a.id)}-pair-{i}'>view</a>" if i < MAX_VIEWS else ""] for i, p in enumerate(flagged)]
        parts.append("<h4>Pairs to review</h4>" + _table(
            ["student", "student", "similarity", "share of each one's code matched", "matched tokens", ""],
            rows, {2, 4}, "pairs"))
        if len(flagged) > MAX_VIEWS:
            parts.append(f"<p class='muted'>Side-by-side views of the {MAX_VIEWS} most similar pairs below; the "
                         f"JSON export (--json) names every flagged pair.</p>")
        for i, p in enumerate(flagged[:MAX_VIEWS]):
            cells = "".join(f"<h5>{_e(c.grade_id)}</h5><div class='sbs'>{_code_column(c.left)}{_code_column(c.right)}</div>"
                            for c in p.cells)
            parts.append(f"<div class='pair' id='{_anchor(a.id)}-pair-{i}'><b>{_e(p.a)}</b> and <b>{_e(p.b)}</b>: "
                         f"{_pct(p.similarity)} similar; matching lines highlighted, left {_e(p.a)}, right {_e(p.b)}"
                         f"{cells}</div>")
    unflagged = next((p for p in sim.pairs if not p.flagged), None)
    if unflagged is not None:
        parts.append(f"<p class='muted'>Most similar pair not flagged: {_e(unflagged.a)} and {_e(unflagged.b)}, "
                     f"{_pct(unflagged.similarity)}.</p>")
    if sim.skipped:
        parts.append("<p class='muted'>Not compared: " + ", ".join(f"{_e(s)} ({_e(r)})" for s, r in sim.skipped.items())
                     + "</p>")
    return "".join(parts)


def _assignment_section(a: AssignmentReport) -> str:
    anchor = _anchor(a.id)
    head = f"<section class='assignment' id='{anchor}'><h2>{_e(a.id)}: {_e(a.title)}</h2>"
    if not a.submitted:
        return head + "<p class='muted'>No submissions yet.</p></section>"
    s = a.scores.summary()
    summary = (f"<p>{a.submitted} submission(s) ({', '.join(f'{n} {_e(k)}' for k, n in a.status_counts.items())}). "
               f"Score out of {a.scores.max_points:g}: mean {_num(s['mean'])}, median {_num(s['median'])}, "
               f"min {_num(s['min'])}, max {_num(s['max'])}.</p>")
    missing = ""
    if a.missing_cases:
        missing = (f"<p class='bad'>{len(a.missing_cases)} graded outcome(s) have no per-case data (graded "
                   f"before it was recorded): their mistakes and visible/hidden counts are missing; regrade with "
                   f"<code>autograder grade --force</code>. {_names(a.missing_cases)}</p>")
    body = [
        summary, missing,
        "<h3>What to re-teach</h3>", _retreach_table(a),
        "<h3>Score distribution</h3>", f"<figure class='plot' aria-label='score distribution'>{score_histogram(a)}</figure>",
    ]
    if a.exercises:
        body += ["<h3>Exercises: pass rate, visible vs hidden cases</h3>",
                 f"<figure class='plot' aria-label='pass rates'>{pass_rate_chart(a)}</figure>", _exercise_table(a),
                 "<h3>Misconceptions: what the wrong answers matched</h3>", _misconception_tables(a)]
    body += ["<h3>Outcomes and events</h3>", _outcome_section(a), "<h3>Late submissions</h3>", _late_section(a),
             "<h3>Similar submissions</h3>", _similarity_section(a)]
    return head + "".join(body) + "</section>"


def _course_section(report: CourseReport) -> str:
    rows = []
    for a in report.assignments:
        s = a.scores.summary()
        flagged = len(a.similarity.flagged) if a.similarity else 0
        worst = min((e for e in a.exercises if e.pass_rate is not None), key=lambda e: (e.pass_rate, e.name), default=None)
        rows.append([f"<a href='#{_anchor(a.id)}'>{_e(a.id)}</a>", str(a.submitted),
                     str(a.status_counts.get(outcomes.NOT_GRADED, 0)),
                     f"{_num(s['mean'])} / {a.scores.max_points:g}" if a.scores.n else "–",
                     f"{_e(worst.name)} ({_pct(worst.pass_rate)})" if worst else "–",
                     str(len(a.late)), str(flagged)])
    table = _table(["assignment", "submissions", "not graded", "mean score", "hardest exercise", "late",
                    "similar pairs"], rows, {1, 2, 3, 5, 6}, "course")
    chart = ""
    if sum(1 for a in report.assignments if a.scores.n) > 1:
        chart = f"<figure class='plot' aria-label='course scores'>{course_chart(report)}</figure>"
    return f"<section id='course'><h2>Course overview</h2>{table}{chart}</section>"


def render_html(report: CourseReport) -> str:
    """The whole report as one self-contained HTML page (no script, no external resource)."""
    nav = " ".join(f"<a href='#{_anchor(a.id)}'>{_e(a.id)}</a>" for a in report.assignments)
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    title = f"What the class got wrong — {report.course}"
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{_e(title)}</h1><p class='muted'>From the recorded outcomes and the gradebook. Hidden cases are "
            f"counted, never shown.</p><nav>{nav}</nav>"
            + _course_section(report) + "".join(_assignment_section(a) for a in report.assignments)
            + "</body></html>\n")


def write_report(report: CourseReport, to: Path, csv_to: Path | None = None, json_to: Path | None = None) -> list[Path]:
    """Write the page (and the CSV / JSON when asked). Returns the paths written."""
    written = []
    for path, text in ((to, render_html(report)), (csv_to, to_csv(report) if csv_to else None),
                       (json_to, to_json(report) if json_to else None)):
        if path is None or text is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise CourseError(f"cannot write {path}: {e.strerror or e}") from e
        written.append(path)
    return written

