"""How long `autograder report` takes on a large class: N synthetic submissions of 01_perceptron.

    python benchmarks/report_bench.py [--students 300]     (or: ./run bench --only report)

Builds a throw-away course with N outcome files shaped as the grader writes them (each
exercise passed, a catalogued mistake of cases.py, another wrong answer, an error, or not
implemented, on its real number of visible and hidden cases), the matching scores in
nbgrader's gradebook, and N installed notebooks whose solution cells mix the synthetic
class's styles (tests/support/report_class.py), so that similarity has real work: every pair is
compared. Then times loading, similarity, HTML, CSV and JSON. Nothing here fails for
being slow.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests.support package
sys.path.insert(0, str(REPO))

AID = "01_perceptron"
#: The styles a synthetic student's exercises are drawn from (None: the reference solution).
STYLES = ("reference", "diana", "evan", "carol", "gina", "ivy")


def _outcome(rng: random.Random, student: str, plans: dict, points: dict) -> dict:
    """One graded outcome: per exercise a fate drawn at random, cases laid out as the plan's."""
    exercises = {}
    for name, plan in plans.items():
        fate = rng.choices(["passed", "known_mistake", "wrong", "error", "not_implemented"],
                           weights=[60, 20, 8, 4, 8])[0]
        mistakes = list(dict.fromkeys(m for c in plan.cases for m, _ in c.mistakes))
        if fate == "known_mistake" and not mistakes:
            fate = "wrong"
        mistake = rng.choice(mistakes) if fate == "known_mistake" else None
        cases = []
        for c in plan.cases:
            if fate == "passed" or (fate == "wrong" and rng.random() < 0.5):
                cases.append({"hidden": c.hidden, "ok": True, "kind": "passed", "message": "", "mistake": None})
                continue
            kind = fate if fate != "passed" else "wrong"
            message = {"known_mistake": mistake, "wrong": "3 of 12 values differ from the expected ones",
                       "error": "your function raised ValueError", "not_implemented": "not implemented yet"}[kind]
            cases.append({"hidden": c.hidden, "ok": False, "kind": kind, "message": message, "mistake": mistake})
        ok = all(c["ok"] for c in cases)
        exercises[name] = {"passed": sum(c["ok"] for c in cases), "total": len(cases), "ok": ok,
                           "points": points[name] if ok else 0.0, "max_points": points[name], "cases": cases}
    events = ["kernel died: the cells after it were not run"] if rng.random() < 0.02 else []
    return {"assignment": AID, "student": student, "notebook": AID, "status": "graded",
            "reason": "; ".join(events) or "ok", "events": events, "notes": [], "seed": 1,
            "score": sum(e["points"] for e in exercises.values()), "exercises": exercises}


def build_class(root: Path, n: int, seed: int = 0) -> Path:
    """A course copy under ``root`` with ``n`` graded synthetic submissions. Returns the course folder."""
    import nbformat

    from tests.support import report_class as rc
    from tests.support import submissions as subs
    from autograder.store import gradebook as nbgrader_api
    from autograder.course import Course
    from autograder.grading.batch import ensure_in_gradebook
    from autograder.authoring.plan import grading_plan
    from tests.support.course import copy_course

    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's own, creating submissions
    course = Course(copy_course(root))
    ensure_in_gradebook(course, {AID})
    plans = grading_plan(course.root, AID, 1)
    rng = random.Random(seed)
    bodies = {"diana": rc.DIANA, "evan": rc.EVAN, "carol": rc.CAROL, "gina": rc.GINA, "ivy": rc.IVY}
    solved = subs.solved(AID)
    out_dir = course.outcomes_dir / AID
    out_dir.mkdir(parents=True, exist_ok=True)
    with nbgrader_api.gradebook(course) as gb:
        points = {g.name: float(g.max_score) for g in gb.find_notebook(AID, AID).grade_cells}
        for i in range(n):
            student = f"s{i:04d}"
            data = _outcome(rng, student, plans, points)
            (out_dir / f"{student}.json").write_text(json.dumps(data, indent=1))
            gb.update_or_create_student(student)
            sub = gb.update_or_create_submission(AID, student)
            for nb in sub.notebooks:
                for grade in nb.grades:
                    ex = data["exercises"].get(grade.name)
                    if ex is not None:
                        grade.auto_score = ex["points"]
            # the notebook: each exercise in one of the class's styles
            nb = subs.release_notebook(AID)
            picks = {name: rng.choice(STYLES) for name in plans}
            nb = rc._fill(nb, {name: bodies[s][name] for name, s in picks.items() if s in bodies and name in bodies[s]})
            ref = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solved.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                gid = meta.get("grade_id", "")
                if meta.get("solution") and picks.get(gid.removesuffix("_impl")) == "reference":
                    cell.source = ref[gid]
            dest = course.root / "submitted" / student / AID
            dest.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dest / f"{AID}.ipynb")
        gb.db.commit()
    return course.root


def bench_report(n: int = 300) -> dict:
    """Seconds for each step of the report on ``n`` synthetic submissions."""
    from autograder.results import report
    from autograder.course import Course

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        course = Course(build_class(Path(tmp), n))
        setup = time.perf_counter() - t0
        times = {}
        t = time.perf_counter()
        plain = report.build_report(course, AID, similarity=False)
        times["load and aggregate (no similarity)"] = time.perf_counter() - t
        t = time.perf_counter()
        full = report.build_report(course, AID)
        times["load, aggregate and similarity"] = time.perf_counter() - t
        times["similarity alone (difference)"] = times["load, aggregate and similarity"] - \
            times["load and aggregate (no similarity)"]
        t = time.perf_counter()
        page = report.render_html(full)
        times["HTML page"] = time.perf_counter() - t
        t = time.perf_counter()
        report.to_csv(full), report.to_json(full)
        times["CSV and JSON"] = time.perf_counter() - t
        (a,) = full.assignments
        return {"n": n, "setup_seconds": setup, "steps": times,
                "total_seconds": times["load, aggregate and similarity"] + times["HTML page"]
                + times["CSV and JSON"],
                "pairs": len(a.similarity.pairs) if a.similarity else 0,
                "flagged": len(a.similarity.flagged) if a.similarity else 0,
                "page_kb": len(page.encode()) / 1024, "graded": plain.assignments[0].status_counts.get("graded", 0)}


def render_report(r: dict) -> str:
    lines = [f"## `autograder report` on {r['n']} synthetic submissions of {AID}", "",
             "| step | seconds |", "|---|---|", *[f"| {k} | {v:.2f} |" for k, v in r["steps"].items()], "",
             f"Total {r['total_seconds']:.1f} s: {r['pairs']} pairs compared, {r['flagged']} flagged (the synthetic "
             f"students share whole exercises by construction), page {r['page_kb']:.0f} KB. "
             f"(Building the synthetic course took {r['setup_seconds']:.0f} s, not counted.)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=300)
    args = parser.parse_args(argv)
    print(render_report(bench_report(args.students)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
