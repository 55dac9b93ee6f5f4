"""`autograder report`: the class report's numbers, its safety, its exports, and similarity.

Fast tests aggregate hand-written outcome records (every number is known in advance) and
compare solution code of the synthetic class (tests/support/report_class.py) without grading it.
The slow tests grade that class through the real CLI (sandboxed) and check the report
against the outcome files the grader wrote.
"""
from __future__ import annotations

import csv
import html
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from tests.support import report_class as rc
from tests.support import submissions as subs
from autograder.store import outcomes
from autograder.course import Assignment, Course
from autograder.results.report import (SubmissionRow, analyse_assignment, build_report, render_html, report_dict,
                               to_csv, to_json)
from autograder.results.similarity import THRESHOLD, Document, boilerplate_hashes, compare_documents, student_cells, \
    solution_cells
from tests.support.course import REPO, copy_course, run_cli

AID = rc.AID
ASSIGNMENT = Assignment(AID, "The perceptron", 12.0, 1)


# -- hand-written outcomes --------------------------------------------------------------------

def case(ok: bool = True, hidden: bool = False, kind: str | None = None, message: str = "",
         mistake: str | None = None) -> dict:
    return {"hidden": hidden, "ok": ok, "kind": kind or ("passed" if ok else "wrong"), "message": message,
            "mistake": mistake}


def exercise(cases: list[dict] | None, points: float, passed: bool | None = None) -> dict:
    ok = all(c["ok"] for c in cases) if passed is None else passed
    ex = {"passed": sum(c["ok"] for c in cases or []), "total": len(cases or []), "ok": ok,
          "points": points if ok else 0.0, "max_points": points}
    if cases is not None:
        ex["cases"] = cases
    return ex


AXIS = "softmax over the wrong axis: each ROW (one sample's scores) must sum to 1"
NORM = "the exponentials are not divided by their sum"
V, H = False, True


def graded(student: str, exercises: dict, events=(), notes=(), late: float = 0.0) -> SubmissionRow:
    score = sum(e["points"] for e in exercises.values())
    data = {"assignment": AID, "student": student, "status": "graded", "reason": "; ".join(events) or "ok",
            "events": list(events), "notes": list(notes), "score": score, "exercises": exercises}
    return SubmissionRow(student, AID, score, 3.0, "graded", data["reason"], late, data)


def small_class() -> list[SubmissionRow]:
    """sigmoid (1 point, 1 visible + 2 hidden cases) and softmax (2 points, same) for five students."""
    right = [case(), case(hidden=H), case(hidden=H)]
    return [
        graded("ann", {"sigmoid": exercise(right, 1), "softmax": exercise(right, 2)}),
        graded("ben", {"sigmoid": exercise(right, 1),
                       "softmax": exercise([case(False, V, "known_mistake", AXIS, AXIS),
                                            case(False, H, "known_mistake", AXIS, AXIS), case(hidden=H)], 2)},
               late=7200.0),
        graded("cat", {"sigmoid": exercise([case(), case(hidden=H), case(False, H, "error", "your function raised ValueError")], 1),
                       "softmax": exercise([case(), case(False, H, "known_mistake", AXIS, AXIS),
                                            case(False, H, "known_mistake", NORM, NORM)], 2)},
               events=["kernel died: the cells after it were not run (MemoryError)"], notes=["wrong file name: x.ipynb graded as 01_perceptron.ipynb"]),
        graded("dan", {"sigmoid": exercise([case(False, h, "not_implemented", "not implemented yet") for h in (V, H, H)], 1),
                       "softmax": exercise([case(False, h, "not_run", "no outputs were recorded") for h in (V, H, H)], 2)},
               events=["a cell timed out after 60 s and was interrupted"]),
        SubmissionRow("eve", AID, 0.0, 3.0, "not graded", "notebook unreadable: not JSON",
                      outcome={"status": "not graded", "reason": "notebook unreadable: not JSON", "events": [],
                               "notes": [], "exercises": {}}),
        SubmissionRow("fay", AID, 0.0, 3.0, "no submission"),
    ]


def test_pass_rates_visible_and_hidden_cases():
    report = analyse_assignment(ASSIGNMENT, small_class())
    sig, soft = report.exercises
    assert (sig.name, sig.graded, sig.passed, sig.attempted) == ("sigmoid", 4, 2, 3)
    assert (sig.visible_passed, sig.visible_total, sig.hidden_passed, sig.hidden_total) == (3, 4, 5, 8)
    assert (soft.passed, soft.visible_passed, soft.visible_total, soft.hidden_passed, soft.hidden_total) == \
        (1, 2, 4, 3, 8)
    # cat passed every visible case of both and failed a hidden one: the "works on the examples" signal
    assert sig.visible_only == ["cat"] and soft.visible_only == ["cat"]
    assert sig.pass_rate == 0.5 and soft.pass_rate == 0.25 and sig.has_cases
    assert sig.mean_points == 0.5 and soft.mean_points == 0.5  # points earned per graded submission


def test_misconception_table_counts_students_most_common_first_with_a_visible_example():
    soft = analyse_assignment(ASSIGNMENT, small_class()).exercises[1]
    assert [(m.mistake, m.students, m.cases) for m in soft.mistakes] == [(AXIS, ["ben", "cat"], 3), (NORM, ["cat"], 1)]
    assert soft.mistakes[0].example == AXIS  # ben's visible case came first
    assert [(k.kind, k.students) for k in soft.failures] == [("not_run", ["dan"])]
    sig = analyse_assignment(ASSIGNMENT, small_class()).exercises[0]
    assert [(k.kind, k.students, k.cases, k.example) for k in sig.failures] == [
        ("error", ["cat"], 1, "your function raised ValueError"), ("not_implemented", ["dan"], 3, "not implemented yet")]


def test_outcomes_events_notes_and_late_submissions():
    report = analyse_assignment(ASSIGNMENT, small_class(), refused=[{"name": "..", "assignment": AID, "reason": "invalid id"}])
    assert report.status_counts == {"graded": 4, "not graded": 1, "no submission": 1}
    assert report.submitted == 5 and report.scores.n == 5  # fay handed nothing in: not in the distribution
    s = report.scores.summary()
    assert (s["mean"], s["median"], s["min"], s["max"]) == (pytest.approx(4 / 5), 0.0, 0.0, 3.0)
    assert report.not_graded == [("eve", "notebook unreadable: not JSON")]
    assert [(k, [st for st, _ in items]) for k, items in report.events] == [
        ("a cell timed out after 60 s and was interrupted", ["dan"]), ("kernel died", ["cat"])]
    assert report.notes == [("cat", "wrong file name: x.ipynb graded as 01_perceptron.ipynb")]
    assert report.late == [("ben", 7200.0, 1.0)] and report.refused[0]["reason"] == "invalid id"


def test_outcomes_without_per_case_data_are_named_not_guessed():
    old = graded("old", {"sigmoid": exercise(None, 1, passed=True)})
    report = analyse_assignment(ASSIGNMENT, [old])
    (sig,) = report.exercises
    assert report.missing_cases == ["old"] and sig.passed == 1 and not sig.has_cases
    assert sig.visible_rate is None and sig.hidden_rate is None
    page = render_html(report_of(report))
    assert "no per-case data" in page and "regrade" in page


def report_of(*assignments):
    from autograder.results.report import CourseReport

    return CourseReport("course", list(assignments))


def _tags(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every real tag of the page with its attributes (what a browser would act on)."""
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

        handle_startendtag = handle_starttag

    Collect().feed(page)
    return found


def _visible_text(page: str) -> str:
    page = re.sub(r"<svg.*?</svg>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_html_escapes_all_student_and_file_text_and_requests_nothing():
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    rows = small_class()
    rows[1].outcome["exercises"]["softmax"]["cases"][0]["message"] = f"your function raised {evil}"
    rows[1].outcome["exercises"]["softmax"]["cases"][0].update(kind="error", mistake=None)
    rows[2].outcome["events"].append(f"ignored a graded cell that is not in the source ({evil})")
    rows[2].outcome["notes"].append(evil)
    rows[4].reason = evil
    page = render_html(report_of(analyse_assignment(
        ASSIGNMENT, rows, refused=[{"name": evil, "assignment": AID, "reason": evil}])))
    assert "<script" not in page and "<img" not in page and "onerror=" not in page.replace("onerror=alert", "")
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4
    assert evil in _visible_text(page)  # shown as text, in the table where it belongs
    # nothing on the page can make a request: no src/href but fragments, and a CSP forbidding any
    tags = _tags(page)
    assert not {"script", "img", "iframe", "link", "object", "embed"} & {tag for tag, _ in tags}
    targets = [v for _, attrs in tags for k, v in attrs if k in ("src", "href", "xlink:href", "action", "srcset")]
    assert targets and all(v.startswith("#") for v in targets), targets
    assert not [v for _, attrs in tags for k, v in attrs if k.startswith("on") or re.search(r"url\((?!#)", v or "")]
    assert "default-src 'none'" in page and "<svg" in page


def test_page_is_deterministic_and_has_every_section():
    a = render_html(report_of(analyse_assignment(ASSIGNMENT, small_class())))
    b = render_html(report_of(analyse_assignment(ASSIGNMENT, small_class())))
    assert a == b
    for heading in ("Course overview", "What to re-teach", "Score distribution", "visible vs hidden",
                    "Misconceptions", "Outcomes and events", "Late submissions", "Similar submissions"):
        assert heading in a, heading
    assert a.count("<svg") == 2  # scores and pass rates (no similarity was computed here)
    assert "2 h 0 min" in _visible_text(a)


def test_csv_and_json_carry_the_page_numbers():
    report = report_of(analyse_assignment(ASSIGNMENT, small_class()))
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    by = {(r["section"], r["exercise"], r["item"]): r for r in rows}
    assert by[("mistake", "softmax", AXIS)]["count"] == "2" and by[("mistake", "softmax", AXIS)]["total"] == "4"
    assert by[("exercise", "sigmoid", "hidden_cases_passed")]["count"] == "5"
    assert by[("exercise", "sigmoid", "hidden_cases_passed")]["total"] == "8"
    assert by[("exercise", "softmax", "passed_visible_failed_hidden")]["count"] == "1"
    assert by[("outcome", "", "not graded")]["count"] == "1"
    assert by[("late", "", "ben")]["value"] == "7200"
    assert by[("score", "", "max")]["value"] == "3"
    data = json.loads(to_json(report))
    assert data == report_dict(report)
    (a,) = data["assignments"]
    assert [m["count"] for m in a["exercises"][1]["mistakes"]] == [2, 1]
    assert a["scores"]["values"] == {"ann": 3.0, "ben": 1.0, "cat": 0.0, "dan": 0.0, "eve": 0.0}
    assert to_csv(report) == to_csv(report_of(analyse_assignment(ASSIGNMENT, small_class())))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's own, on creating submissions
def test_report_reads_outcome_files_gradebook_lateness_and_refusals(tmp_path):
    """build_report on a course whose outcome files and gradebook were written by hand."""
    import datetime as dt

    from autograder.store import gradebook as nbgrader_api

    course = Course(copy_course(tmp_path))
    due = dt.datetime(2026, 11, 20, 12, 0)
    with nbgrader_api.gradebook(course) as gb:
        gb.update_or_create_assignment(AID, duedate=due)
        for student, late in (("ann", 0), ("ben", 5400), ("cat", 0)):
            gb.update_or_create_student(student)
            gb.update_or_create_submission(AID, student, timestamp=due + dt.timedelta(seconds=late - 60 * (late == 0)))
        gb.update_or_create_student("fay")  # in the gradebook, handed nothing in
    folder = course.outcomes_dir / AID
    folder.mkdir(parents=True)
    for row in small_class()[:3]:
        (folder / f"{row.student}.json").write_text(json.dumps(row.outcome))
    outcomes.record_refusal(course, "link-student", AID, "a symbolic link: not followed")
    (report,) = build_report(course, AID, similarity=False).assignments
    assert report.status_counts == {"graded": 3, "no submission": 1}
    assert report.late == [("ben", 5400.0, 0.0)]  # score from the gradebook (no graded cells here)
    assert [m.students for m in report.exercises[1].mistakes] == [["ben", "cat"], ["cat"]]
    assert report.refused == [{"name": "link-student", "assignment": AID, "reason": "a symbolic link: not followed"}]


# -- similarity on the synthetic class (no grading needed) ----------------------------------

def _documents() -> list[Document]:
    release = subs.release_notebook(AID)
    template = dict(solution_cells(release))
    docs = []
    for student, nb in rc.notebooks().items():
        if not isinstance(nb, str):
            nb = nbformat.reads(nbformat.writes(nb), as_version=4)
            docs.append(Document(student, student_cells(nb, template)))
    return docs


def _pairs():
    return compare_documents(_documents(), boilerplate_hashes(subs.release_notebook(AID)))


def _key(p) -> frozenset:
    return frozenset((p.a, p.b))


def test_similarity_flags_the_copies_and_not_independent_work(capsys):
    pairs = _pairs()
    with capsys.disabled():  # the measured separation, for the record
        print("\nsimilarity on 01_perceptron (top pairs):")
        for p in pairs[:6]:
            print(f"  {p.a:>6} {p.b:<6} {p.similarity:.3f} overlap {p.overlap:4d} {'FLAGGED' if p.flagged else ''}")
    copies = {frozenset(("alice", "frank")): "renamed copy", frozenset(("diana", "gina")): "partial copy"}
    assert {_key(p) for p in pairs if p.flagged} == set(copies)
    scores = {_key(p): p.similarity for p in pairs}
    assert scores[frozenset(("alice", "frank"))] >= 0.85
    assert scores[frozenset(("diana", "gina"))] >= 0.6
    independent = [p.similarity for p in pairs if _key(p) not in copies]
    assert max(independent) < THRESHOLD / 2, "independent solutions come close to the threshold"
    # the untouched template matches nobody, not even the reference it was made from
    assert all(p.similarity == 0 for p in pairs if "bob" in (p.a, p.b))


def test_template_and_non_solution_cells_do_not_count():
    release = subs.release_notebook(AID)
    template = dict(solution_cells(release))
    untouched = student_cells(release, template)
    assert len(untouched) == 7 and all(c.lines == () for c in untouched)
    # alice's whole solution pasted into a cell of her own (not a solution cell) is not compared
    code = "\n".join(src for _, src in solution_cells(subs.solved(AID)))
    sneaky = subs.insert_code(release, code, at_end=True)
    docs = [Document("alice", student_cells(subs.solved(AID), template)),
            Document("zed", student_cells(sneaky, template))]
    (pair,) = compare_documents(docs, boilerplate_hashes(release))
    assert pair.similarity == 0 and not pair.flagged


def test_side_by_side_view_marks_the_matching_lines():
    pairs = {_key(p): p for p in _pairs()}
    renamed = pairs[frozenset(("alice", "frank"))]
    # every cell but perceptron_predict, a one-liner shorter than a fingerprint (NOISE tokenised characters)
    assert [c.grade_id for c in renamed.cells] == [f"{n}_impl" for n in (
        "sigmoid", "softmax", "activation_derivatives", "perceptron_update", "train_perceptron",
        "logistic_loss_and_grad")]
    assert all(line.matched for c in renamed.cells for line in c.left)  # alice's code, all found in frank's
    assert not any(c.right[0].matched for c in renamed.cells)  # frank's renamed def lines are his own
    partial = pairs[frozenset(("diana", "gina"))]
    cells = {c.grade_id: c for c in partial.cells}
    assert all(line.matched for line in cells["softmax_impl"].left + cells["softmax_impl"].right)
    # gina wrote her own perceptron_update: none of her lines there is marked
    assert "perceptron_update_impl" not in cells or not any(l.matched for l in cells["perceptron_update_impl"].right)


@pytest.mark.slow
def test_similarity_does_not_depend_on_the_process_hash_seed():
    here = {f"{p.a}/{p.b}": (p.similarity, p.overlap) for p in _pairs()}
    code = ("import json; from tests.system import test_report as t; "
            "print(json.dumps({f'{p.a}/{p.b}': (p.similarity, p.overlap) for p in t._pairs()}))")
    for seed in ("4242",):
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                             env={**__import__("os").environ, "PYTHONHASHSEED": seed})
        assert out.returncode == 0, out.stderr[-2000:]
        there = {k: tuple(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
        assert there == here


# -- the CLI's user errors -------------------------------------------------------------------

@pytest.mark.slow
def test_cli_user_errors_are_one_line(course_copy):
    r = run_cli("report", course=course_copy)
    assert r.returncode == 2 and "grade some submissions first" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("report", "99_nothing", course=course_copy)
    assert r.returncode == 2 and "unknown assignment" in r.stderr
    r = run_cli("report", "--threshold", "2", course=course_copy)
    assert r.returncode == 2 and "--threshold" in r.stderr and "Traceback" not in r.stderr


# -- the synthetic class graded through the real CLI -----------------------------------------

@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    result = rc.graded_class(tmp_path_factory.mktemp("report-class"))
    assert result["grade"].returncode == 0, result["grade"].stderr[-3000:]
    assert result["report"].returncode == 0, result["report"].stderr[-3000:]
    return result


def _outcome_files(course: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((course / "outcomes" / AID).glob("*.json"))}


@pytest.mark.slow
def test_outcome_files_record_each_case(graded_class):
    files = _outcome_files(graded_class["course"])
    assert set(files) == set(rc.CLASS)
    for student, data in files.items():
        for name, ex in data.get("exercises", {}).items():
            assert "cases" in ex, (f"{student}/{name}: the outcome has no per-case data ('cases'); the "
                                   "report needs scoring.py to record it")
            assert len(ex["cases"]) == ex["total"] and {c["kind"] for c in ex["cases"]} <= set(outcomes_kinds())


def outcomes_kinds():
    from helpers.grading.contract import CASE_KINDS

    return CASE_KINDS


@pytest.mark.slow
def test_report_numbers_match_the_outcome_files(graded_class):
    files = _outcome_files(graded_class["course"])
    data = json.loads(graded_class["json"].read_text())
    (a,) = data["assignments"]
    assert a["scores"]["values"] == {s: float(score) for s, (score, _, _) in rc.CLASS.items()}
    assert a["status_counts"] == {"graded": 8, "not graded": 1}
    for ex in a["exercises"]:
        name = ex["name"]
        mine = [(s, d["exercises"][name]) for s, d in files.items() if name in d.get("exercises", {})]
        assert ex["graded"] == len(mine) and ex["passed"] == sum(e["ok"] for _, e in mine)
        cases = [c for _, e in mine for c in e["cases"]]
        assert ex["visible_total"] == sum(not c["hidden"] for c in cases)
        assert ex["hidden_passed"] == sum(c["ok"] for c in cases if c["hidden"])
        counted = Counter(m for _, e in mine for m in {c["mistake"] for c in e["cases"] if c["mistake"]})
        assert {m["mistake"]: m["count"] for m in ex["mistakes"]} == dict(counted)
    top = {ex["name"]: ex["mistakes"][0]["mistake"] for ex in a["exercises"] if ex["mistakes"]}
    assert top["softmax"].startswith("softmax over the wrong axis")  # carol and ivy
    assert next(e for e in a["exercises"] if e["name"] == "softmax")["mistakes"][0]["students"] == ["carol", "ivy"]
    assert top["perceptron_update"].startswith("the update has the wrong sign")
    assert a["not_graded"] == [{"student": "hugo", "reason": files["hugo"]["reason"]}] and "not JSON" in files["hugo"]["reason"]
    assert [(e["kind"], [i["student"] for i in e["items"]]) for e in a["events"]] == [("kernel died", ["ivy"])]
    assert {l["student"]: l["seconds_late"] for l in a["late"]} == pytest.approx(rc.LATE, abs=1)
    flagged = {frozenset((p["a"], p["b"])) for p in a["similarity"]["flagged"]}
    assert flagged == {frozenset((s, t)) for s, (_, copies, _) in rc.CLASS.items() for t in copies}
    rows = list(csv.DictReader(graded_class["csv"].open()))
    assert sum(r["section"] == "similar_pair" for r in rows) == 2
    assert {r["item"] for r in rows if r["section"] == "late"} == set(rc.LATE)


@pytest.mark.slow
def test_report_page_names_the_top_mistakes_and_hides_hidden_values(graded_class):
    page = graded_class["html"].read_text()
    text = _visible_text(page)
    reteach = page.split("What to re-teach", 1)[1].split("</table>", 1)[0]
    assert re.search(r"softmax</b>.*?softmax over the wrong axis.*?\(2 student", reteach, re.S)
    pairs = page.split("Pairs to review", 1)[1].split("</table>", 1)[0]
    assert "<td>alice</td><td>frank</td>" in pairs and "<td>diana</td><td>gina</td>" in pairs
    leaked = sorted(v for v in rc.hidden_numbers(graded_class["course"]) if v in text)
    assert not leaked, f"hidden values on the page: {leaked[:5]}"
    assert "Traceback" not in graded_class["report"].stdout + graded_class["report"].stderr
    assert "2 similar pair(s) to review" in graded_class["report"].stdout


def test_malformed_outcome_fields_do_not_break_the_report():
    """Outcome files are the grader's, but a hand-edited or truncated one must not crash the report."""
    rows = small_class()
    rows[0].outcome["exercises"] = "oops"
    rows[1].outcome["events"] = "not a list"
    rows[2].outcome["exercises"]["softmax"]["cases"] = [None, 3, {"ok": False, "hidden": True, "kind": "??"}]
    report = analyse_assignment(ASSIGNMENT, rows)
    assert report.events and all(k != "n" for k, _ in report.events)
    soft = next(e for e in report.exercises if e.name == "softmax")
    assert ("wrong", ["cat"]) in [(k.kind, k.students) for k in soft.failures]
    assert "<html" in render_html(report_of(report)) and to_csv(report_of(report))


def test_every_way_a_case_can_fail_has_a_name_on_the_page():
    from autograder.results.report import KIND_LABELS
    from helpers.grading.contract import CASE_KINDS

    assert set(CASE_KINDS) - {"passed"} <= set(KIND_LABELS), "a new case kind needs its words in KIND_LABELS"


def test_the_csv_shows_a_student_controlled_formula_as_text(monkeypatch):
    """An example cell (a reason, a file name) that starts like a formula is written as text (issue 27 §3)."""
    from autograder.results import report as report_mod

    rows = [{"assignment": "01_perceptron", "section": "not_graded", "exercise": "", "item": "refused",
             "count": 1, "total": 3, "value": 0.5, "example": "=HYPERLINK(\"http://x\",\"click\")"},
            {"assignment": "01_perceptron", "section": "score", "exercise": "", "item": "mean", "count": None,
             "total": None, "value": -1.5, "example": "-12 points"}]
    monkeypatch.setattr(report_mod, "report_records", lambda report: rows)
    text = report_mod.to_csv(None)
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    assert ",-1.5," in text and "'-12 points" in text
