"""How specific the grader's messages are for the catalogued mistakes (issue 16, "done when").

For every notebook of the syllabus, every exercise's known mistakes (``Exercise.mistakes`` in
``source_notebooks/<id>/cases.py``) are graded like a submission: on the visible cases as shipped
plus the hidden cases of one grading run (``--seed``), judged by the trusted scorer on what the
sandbox harness records. Each failing case's message is classed as

- own:      the mistake's own catalogue message (it names the bug);
- named:    another specific diagnosis: a contract fact (modified in place, a warning, a library
            shortcut), or compare's named diagnoses (wrong sign, a simple factor, a constant offset,
            NaN/inf, returned items in the wrong order, transposed, a size-1 axis lost or added,
            an axis summed away ...);
- other:    the message of ANOTHER known mistake (the same output: a misleading name is possible);
- generic:  "N of M values differ", "the value is x, expected y", a bare shape mismatch, an error.

A mistake counts as specific when at least one of its failing cases gets its own message or a
named diagnosis. The table is printed and written to ``benchmarks/results/<date>-validity.md``.

    .venv/bin/python benchmarks/validity_table.py [--seed 0] [--out FILE]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autograder.course import Course  # noqa: E402
from autograder.authoring.plan import ExercisePlan, PlannedCase  # noqa: E402
from autograder.authoring.reference import load_exercises, load_reference  # noqa: E402
from autograder.pipeline.scoring import score_exercise  # noqa: E402
from helpers.grading.checking import EncodingError, decode, resolve_callables, run_case  # noqa: E402
from helpers.grading.contract import encode_inputs

#: Case kinds that are specific by themselves (a contract the text states, judged).
CONTRACT_KINDS = {"mutated_input", "warning", "shortcut"}

#: compare's named diagnoses (helpers/checking.py, _value_message / _shape_message / tuples).
NAMED_PATTERNS = tuple(re.compile(p) for p in (
    r"wrong sign", r"simple factor", r"same factor", r"same constant", r"NaN or inf",
    r"wrong order", r"transposed\?", r"dimension of size 1", r"axis summed away", r"too many axes",
    r"reduction \(sum/mean/max\) missing", r"right number of values in the wrong shape",
    r"modified `[^`]*` in place", r"raised \w*Warning",
))

CLASSES = ("own", "named", "other", "generic")


def classify(case: dict, own: str, catalogue: set[str]) -> str:
    """The class of one failing case record (``ExerciseReport.cases``) of the mistake ``own``."""
    message = case.get("message") or ""
    if own in message or case.get("mistake") == own:
        return "own"
    if case.get("kind") in CONTRACT_KINDS:
        return "named"
    if case.get("mistake") in catalogue or any(m in message for m in catalogue):
        return "other"
    if any(p.search(message) for p in NAMED_PATTERNS):
        return "named"
    return "generic"


@dataclass
class Row:
    """One notebook's counts: mistakes, those with a specific message, failing cases by class."""

    aid: str
    mistakes: int = 0
    specific: int = 0
    escaped: list[str] = field(default_factory=list)  # mistakes that pass every case
    cases: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))

    @property
    def failing(self) -> int:
        return sum(self.cases.values())


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.0f} %" if total else "-"


def notebook_row(course: Course, aid: str, seed: int) -> Row:
    """Grade every catalogued mistake of one notebook on its shipped visible cases + the hidden
    cases of the run ``seed``; count its failing cases by class."""
    row = Row(aid)
    exercises = load_exercises(course.cases_file(aid))
    references = load_reference(course.source_notebook(aid))
    for name, ex in exercises.items():
        if not ex.mistakes:
            continue
        watch = resolve_callables(ex.forbidden)
        inputs = [(c, False) for c in ex.visible_cases()] + [(c, True) for c in ex.hidden_cases(seed)]
        planned, entries = [], {m: [] for m in ex.mistakes}
        for case, hidden in inputs:
            enc = encode_inputs(case)
            ref = run_case(references[name], enc, ex.framework, watch)
            if "output" not in ref:
                raise SystemExit(f"{aid}:{name}: the reference fails on a case: {ref.get('error')}")
            known = []
            for m, fn in ex.mistakes.items():
                entry = run_case(fn, enc, ex.framework, watch)
                entries[m].append(entry)
                try:
                    if "output" in entry:
                        known.append((m, decode(entry["output"])))
                except EncodingError:
                    pass
            planned.append(PlannedCase(enc, decode(ref["output"]), known, hidden))
        plan = ExercisePlan(ex, planned)
        catalogue = set(ex.mistakes)
        for m in ex.mistakes:
            report = score_exercise(plan, json.dumps({"exercise": name, "results": entries[m]}))
            row.mistakes += 1
            if report.ok:
                row.escaped.append(f"{name}: {m}")
                continue
            classes = [classify(c, m, catalogue - {m}) for c in report.cases if not c["ok"]]
            for k in classes:
                row.cases[k] += 1
            if "own" in classes or "named" in classes:
                row.specific += 1
    return row


def table(rows: list[Row], seed: int) -> str:
    """The markdown report: one line per notebook and a total line."""
    head = ("| notebook | mistakes | specific message | failing cases | own message | named diagnosis "
            "| another mistake's | generic |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    total = Row("**all**")
    for r in rows + [total]:
        if r is total:
            for other in rows:
                total.mistakes += other.mistakes
                total.specific += other.specific
                total.escaped += other.escaped
                for k in CLASSES:
                    total.cases[k] += other.cases[k]
        lines.append(f"| {r.aid} | {r.mistakes} | {r.specific} ({_share(r.specific, r.mistakes)}) | {r.failing} | "
                     + " | ".join(_share(r.cases[k], r.failing) for k in CLASSES) + " |")
    escaped = "\n".join(f"- {e}" for e in total.escaped) or "none"
    return (f"# Grading validity: how specific the messages are\n\n"
            f"Every catalogued mistake of every exercise, graded on the shipped visible cases and the hidden "
            f"cases of grading run seed {seed} (`benchmarks/validity_table.py`). A mistake is *specific* when "
            f"at least one failing case names it (its own message) or gives a named diagnosis; the case "
            f"columns share out every failing case of every mistake. By construction a catalogued mistake's "
            f"output matches its own entry, so the table measures how often the catalogue's message reaches "
            f"the student (it is not claimed on tiny or ambiguous outputs), not how a bug outside the "
            f"catalogue fares: that one gets a named diagnosis or the generic message.\n\n"
            + "\n".join(lines)
            + f"\n\nMistakes that pass every case (they escape): {escaped}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the grading run's seed (hidden cases)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the markdown file (default benchmarks/results/<today>-validity.md)")
    parser.add_argument("--only", nargs="*", default=None, help="these notebooks only (ids)")
    args = parser.parse_args(argv)
    course = Course(REPO / "course")
    ids = [a.id for a in course.assignments()]
    unknown = sorted(set(args.only or ()) - set(ids))
    if unknown:
        parser.error(f"unknown notebook(s) {', '.join(unknown)}; the syllabus has {', '.join(ids)}")
    rows = [notebook_row(course, aid, args.seed) for aid in ids if not args.only or aid in args.only]
    text = table(rows, args.seed)
    print(text)
    out = args.out or REPO / "benchmarks" / "results" / f"{_dt.date.today().isoformat()}-validity.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
