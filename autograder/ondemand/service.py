"""The grading-on-submit service: a loop that grades what students submit, and their page on the hub.

``autograder ondemand serve`` (started and managed by JupyterHub as a service: deploy/jupyterhub)
runs, every ``interval`` seconds:

1. **collect**, when the exchange's inbound has new entries: ``exchange.instructor.collect`` (each
   student's latest submission, owner-checked, with its trusted time) into ``course/inbound/``;
2. **queue** each submission not seen before (its notebook's sha256 and its time): a student who submits again
   while queued replaces the queued one (only the latest is graded), and the queue is in the state
   file, so a restarted service resumes it;
3. **decide** (``attempts.verdict``): graded, or skipped with the reason the student's page shows
   (the skipped files are kept in ``course/ondemand/skipped/``; the inbound entry stays too);
4. **grade** the queue in one run of ``autograder grade`` (a child process: the same pipeline,
   canary first, sandboxed and warm kernels, the single writer, outcomes; a crash or a hang of a
   submission is that submission's outcome; the service's own memory stays flat), then
5. **return** the feedback to the exchange (the student's *Fetch Feedback*), keep a copy of each
   attempt's notebook and feedback (``course/ondemand/attempts/<student>/<assignment>/<n>.*``) and
   record the attempt. With ``best_of``, when the new attempt scores below an earlier one, the best
   one is put back as the submission of record and graded again, so the gradebook holds the grade.

The page (``/services/grader/`` behind the hub's login, ``HubOAuthenticated``; listed in the hub's
Services menu) shows the logged-in user their own things only: every due date of the syllabus with
their own deadline (extension or accommodation included, and why), and per assignment graded on
submit, attempts left, place in the queue, each attempt's score and feedback. The user's hub name is the course id (the hub's login
decides it, never a name the student typed into a form)."""
from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from autograder.course import Course
from autograder.exchange import instructor as exchange
from autograder.ondemand import attempts as rec
from autograder.store import outcomes


def _digest(folder: Path, aid: str) -> str | None:
    nb = folder / f"{aid}.ipynb"
    try:
        return hashlib.sha256(nb.read_bytes()).hexdigest()
    except OSError:
        return None


def _key(student: str, aid: str) -> str:
    return f"{student}/{aid}"


def _copy_entry(src: Path, dest: Path) -> None:
    """A submission's files (regular files only, one level) from ``src`` into a fresh ``dest``."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(mode=0o700, parents=True)
    for f in src.iterdir():
        if f.is_file() and not f.is_symlink():
            shutil.copyfile(f, dest / f.name)


class Service:
    """One course's grading on submit (``cycle`` is one round; ``run`` loops)."""

    def __init__(self, course: Course, exchange_root: str | None = None, workers: int = 1,
                 interval: float = 2.0, python: str = sys.executable, log=print):
        self.course, self.exchange_root, self.workers, self.interval = course, exchange_root, workers, interval
        self.python, self.log = python, log
        self._seen: set[str] | None = None  # the inbound's entry names at the last collection
        self.grading: set[str] = set()      # keys being graded now (the page says so)
        self.stopped = threading.Event()

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.cycle()
            except Exception as e:  # noqa: BLE001 - the service outlives one bad round; it says why
                self.log(f"grading on submit: this round failed ({type(e).__name__}: {e}); trying again")
            self.stopped.wait(self.interval)

    def _inbound_names(self) -> set[str] | None:
        try:
            return set(os.listdir(exchange.exchange_root(self.course, self.exchange_root)
                                  / exchange.course_id(self.course) / "inbound"))
        except OSError:
            return None

    def cycle(self) -> list[dict]:
        """One round: collect what is new, queue, decide, grade, return, record. Returns the attempts
        recorded (and the submissions skipped, with ``"skipped": reason``)."""
        try:
            return self._cycle()
        finally:
            self._hand_over()

    def _hand_over(self) -> None:
        """The service runs as root (each kernel its own uid); what it wrote in an instructor's course
        folder (the collected submissions, its state) becomes the instructor's, as a grading run's
        does, so that their own ``autograder collect``, ``return`` and ``ondemand status`` work."""
        owner = self.course.root.stat()
        if os.geteuid() != 0 or owner.st_uid == 0:
            return
        for top in (exchange.collected_dir(self.course), rec.folder(self.course)):
            if not top.exists() or top.is_symlink():
                continue
            for path in [top, *top.rglob("*")]:
                try:
                    os.lchown(path, owner.st_uid, owner.st_gid)
                except OSError:
                    pass

    def _cycle(self) -> list[dict]:
        names = self._inbound_names()
        if names is not None and names != self._seen:
            taken = []
            for a in self.course.assignments():  # only what is graded on submit: the rest is the instructor's
                if a.attempts is None:
                    continue
                got, refused = exchange.collect(self.course, self.exchange_root, only=a.id)
                taken += got
                for r in refused:
                    self.log(f"grading on submit: refused {r.name!r}: {r.reason}")
            self._queue(taken)
            self._seen = names
        return self._grade_queue()

    def _queue(self, taken: list[exchange.Collected]) -> None:
        known = {a.id: a for a in self.course.assignments()}
        with rec.locked(self.course):
            state = rec.load(self.course)
            for c in taken:
                a = known.get(c.assignment)
                sha = _digest(c.folder, c.assignment)
                if a is None or a.attempts is None or sha is None:
                    continue  # the instructor grades it (autograder grade course/inbound)
                graded = rec.history(state, c.student, c.assignment)
                skipped = state["skipped"].get(c.student, {}).get(c.assignment, {})
                submitted = rec.iso(exchange.utc_time(c.timestamp))
                # nothing new: the submission last graded or last skipped, collected again (a submission is
                # its notebook and its time: the same notebook submitted again is a new attempt)
                if (graded and (graded[-1]["sha256"], graded[-1]["submitted"]) == (sha, submitted)) \
                        or (skipped.get("sha256"), skipped.get("submitted")) == (sha, submitted):
                    best = rec.official(graded, a.best_of)  # collect copied it again: the grade's is of record
                    if best is not None and best["sha256"] != sha:
                        self._restore(c.student, c.assignment, best["n"])
                    continue
                state["queue"][_key(c.student, c.assignment)] = {
                    "student": c.student, "assignment": c.assignment, "sha256": sha,
                    "submitted": submitted, "queued": rec.iso(rec.now())}
            rec.save(self.course, state)

    def _grade_queue(self) -> list[dict]:
        known = {a.id: a for a in self.course.assignments()}
        done: list[dict] = []
        with rec.locked(self.course):
            state = rec.load(self.course)
            items = sorted(state["queue"].values(), key=lambda i: (i["submitted"], i["student"]))
            todo = []
            for item in items:
                a = known.get(item["assignment"])
                why = rec.verdict(self.course, a, state, item["student"], rec.parse(item["submitted"]), rec.now()) \
                    if a else "the assignment is no longer in the syllabus"
                if why:
                    done.append(self._skip(state, item, why))
                else:
                    todo.append(item)
            rec.save(self.course, state)
        if not todo:
            return done
        self.grading = {_key(i["student"], i["assignment"]) for i in todo}
        try:
            self._run_grade(todo)
            with rec.locked(self.course):
                state = rec.load(self.course)
                restore = []
                for item in todo:
                    entry = self._record(state, item, known[item["assignment"]])
                    done.append(entry)
                    best = rec.official(rec.history(state, item["student"], item["assignment"]),
                                        known[item["assignment"]].best_of)
                    if best is not None and best["n"] != entry["n"]:
                        restore.append((item, best))
                rec.save(self.course, state)
            if restore:  # best-of: the best attempt is graded again, so that the gradebook holds it
                for item, best in restore:
                    self._restore(item["student"], item["assignment"], best["n"])
                self._run_grade([i for i, _ in restore])
            for aid in sorted({i["assignment"] for i in todo}):
                exchange.return_feedback(self.course, self.exchange_root, only=aid,
                                         students={i["student"] for i in todo if i["assignment"] == aid})
            with rec.locked(self.course):
                state = rec.load(self.course)
                for item in todo:
                    student, aid = item["student"], item["assignment"]
                    state["queue"].pop(_key(student, aid), None)
                    self._mark_official(state, student, aid, known[aid].best_of)
                rec.save(self.course, state)
        finally:
            self.grading = set()
        return done

    def _mark_official(self, state: dict, student: str, aid: str, best_of: bool) -> None:
        """Mark as the grade the attempt the gradebook holds (the outcome's notebook), never the one the
        rule wanted if putting it back failed: the page then says what the exports say, and the log why."""
        history = rec.history(state, student, aid)
        held = (outcomes.read(self.course, aid, student) or {}).get("sha256")
        record = next((x for x in reversed(history) if x.get("counted") and x["sha256"] == held), None)
        for x in history:
            x["official"] = x is record
        wanted = rec.official(history, best_of)
        if wanted is not None and record is not wanted:
            self.log(f"grading on submit: {student}/{aid}: the gradebook holds "
                     f"{'attempt ' + str(record['n']) if record else 'no graded attempt'}, not attempt "
                     f"{wanted['n']} (putting it back failed): run the round again or grade it by hand")

    # -- the steps --------------------------------------------------------------------------------------

    def _attempt_dir(self, student: str, aid: str) -> Path:
        return rec.folder(self.course) / "attempts" / student / aid

    def _skip(self, state: dict, item: dict, why: str) -> dict:
        """A submission not graded on submit: kept, recorded with why; the submission of record
        (what ``course/inbound/`` holds) goes back to the student's grade, if there is one."""
        student, aid = item["student"], item["assignment"]
        entry = {"sha256": item["sha256"], "submitted": item["submitted"], "reason": why, "at": rec.iso(rec.now())}
        state["skipped"].setdefault(student, {})[aid] = entry
        state["queue"].pop(_key(student, aid), None)
        collected = exchange.collected_dir(self.course) / student / aid
        if collected.is_dir():
            _copy_entry(collected, rec.folder(self.course) / "skipped" / student / aid / item["sha256"][:16])
        best = rec.official(rec.history(state, student, aid), any(
            a.best_of for a in self.course.assignments() if a.id == aid))
        if best is not None:
            self._restore(student, aid, best["n"])
        self.log(f"grading on submit: {student}/{aid} not graded: {why}")
        return {"student": student, "assignment": aid, "skipped": why}

    def _restore(self, student: str, aid: str, n: int) -> None:
        src = self._attempt_dir(student, aid) / str(n)
        if src.is_dir():
            _copy_entry(src, exchange.collected_dir(self.course) / student / aid)

    def _run_grade(self, items: list[dict]) -> None:
        """``autograder grade`` on exactly these submissions (a staging folder of copies)."""
        stage = rec.folder(self.course) / "run"
        shutil.rmtree(stage, ignore_errors=True)
        for item in items:
            _copy_entry(exchange.collected_dir(self.course) / item["student"] / item["assignment"],
                        stage / item["student"] / item["assignment"])
        cmd = [self.python, "-m", "autograder", "--course", str(self.course.root), "grade", str(stage),
               "--workers", str(self.workers)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            self.log(f"grading on submit: autograder grade ended with status {result.returncode}: {last}")
        shutil.rmtree(stage, ignore_errors=True)

    def _record(self, state: dict, item: dict, assignment) -> dict:
        """The attempt just graded, from its outcome (the trusted record), with copies of its
        notebook and feedback page."""
        student, aid = item["student"], item["assignment"]
        outcome = outcomes.read(self.course, aid, student) or {}
        mine = outcome.get("sha256") == item["sha256"]
        history = state["attempts"].setdefault(student, {}).setdefault(aid, [])
        n = len(history) + 1
        status = outcome.get("status", "not graded") if mine else "not graded"
        entry = {"n": n, "submitted": item["submitted"], "sha256": item["sha256"], "graded": rec.iso(rec.now()),
                 "status": status, "score": float(outcome.get("score", 0.0)) if mine else 0.0,
                 "max_score": assignment.points,
                 "reason": outcomes.clean_text(outcome.get("reason", "")) if mine else
                 "the grader recorded no outcome for this submission (it is not counted: submit again)",
                 "counted": mine and status == outcomes.GRADED, "official": False}
        history.append(entry)
        keep = self._attempt_dir(student, aid)
        _copy_entry(exchange.collected_dir(self.course) / student / aid, keep / str(n))
        page = self.course.step_dir("feedback", student, aid) / f"{aid}.html"
        if mine and page.is_file():
            shutil.copyfile(page, keep / f"{n}.html")
        self.log(f"grading on submit: {student}/{aid} attempt {n}: {entry['status']} {entry['score']:g}/"
                 f"{assignment.points:g}")
        return {"student": student, "assignment": aid, **entry}

    # -- what a student sees --------------------------------------------------------------------------------

    def status(self, student: str) -> dict:
        """The student's own view: per assignment graded on submit, the deadline, attempts, queue, history."""
        state = rec.load(self.course)
        queue = sorted(state["queue"].values(), key=lambda i: (i["submitted"], i["student"]))
        out = []
        for a in self.course.assignments():
            if a.attempts is None:
                continue
            due, why = rec.deadline(self.course, a, student)
            key = _key(student, a.id)
            place = next((k for k, i in enumerate(queue, 1) if _key(i["student"], i["assignment"]) == key), None)
            hist = rec.history(state, student, a.id)
            out.append({
                "assignment": a.id, "title": a.title, "points": a.points,
                "deadline": rec.iso(due) if due else None, "deadline_reason": why,
                "open": state["open"].get(a.id) is not False,
                "attempts": a.attempts, "attempts_per": a.attempts_per, "best_of": a.best_of,
                "used": rec.used(state, a, student, rec.now()),
                "queue": ("grading now" if key in self.grading else
                          f"{place} of {len(queue)} in the queue" if place else None),
                "skipped": state["skipped"].get(student, {}).get(a.id, {}).get("reason"),
                "history": [{k: x[k] for k in ("n", "submitted", "graded", "status", "score", "max_score",
                                               "reason", "counted", "official")} for x in hist]})
        deadlines = []
        for a in self.course.assignments():  # every due date, with the student's own extension
            if a.due is not None:
                due, why = rec.deadline(self.course, a, student)
                deadlines.append({"assignment": a.id, "title": a.title, "due": rec.iso(a.due),
                                  "deadline": rec.iso(due), "reason": why})
        return {"student": student, "assignments": out, "deadlines": deadlines}

    def feedback_page(self, student: str, aid: str, n: int) -> Path | None:
        page = self._attempt_dir(student, aid) / f"{n}.html"
        return page if page.is_file() and not page.is_symlink() else None


# --------------------------------------------------------------------------- #
# The page (HTML; every value a student could influence is escaped).
# --------------------------------------------------------------------------- #

def render(status: dict, prefix: str) -> str:
    e = html.escape
    rows = []
    for a in status["assignments"]:
        left = max(0, a["attempts"] - a["used"])
        per = " today (UTC)" if a["attempts_per"] == "day" else ""
        head = (f"<h2>{e(a['assignment'])}: {e(a['title'])}</h2><p>Deadline: "
                f"{e(a['deadline'] or 'none')}{(' (' + e(a['deadline_reason']) + ')') if a['deadline_reason'] else ''}"
                f". Attempts left{per}: <b>{left}</b> of {a['attempts']}. "
                f"{'Your grade is your best graded attempt.' if a['best_of'] else 'Your grade is your last graded attempt before the deadline.'}"
                f"{'' if a['open'] else ' <b>Grading on submit is closed.</b>'}</p>")
        if a["queue"]:
            head += f"<p>Your latest submission: {e(a['queue'])}.</p>"
        if a["skipped"]:
            head += f"<p>Your latest submission was not graded: {e(a['skipped'])}.</p>"
        lines = ["<table><tr><th>attempt</th><th>submitted</th><th>graded</th><th>score</th><th>outcome</th>"
                 "<th>feedback</th></tr>"]
        for h in a["history"]:
            mark = " (your grade)" if h["official"] else ""
            link = f"<a href='{e(prefix)}feedback/{e(a['assignment'])}/{h['n']}'>open</a>"
            lines.append(f"<tr><td>{h['n']}{mark}</td><td>{e(h['submitted'])}</td><td>{e(h['graded'])}</td>"
                         f"<td>{h['score']:g} / {h['max_score']:g}</td><td>{e(h['status'])}: {e(h['reason'])}</td>"
                         f"<td>{link}</td></tr>")
        lines.append("</table>")
        rows.append(head + "".join(lines))
    body = "".join(rows) or "<p>No assignment is graded on submit.</p>"
    if status.get("deadlines"):
        lines = ["<h2>Your deadlines</h2><table><tr><th>assignment</th><th>due (syllabus)</th>"
                 "<th>your deadline</th><th>why it differs</th></tr>"]
        for d in status["deadlines"]:
            lines.append(f"<tr><td>{e(d['assignment'])}: {e(d['title'])}</td><td>{e(d['due'])}</td>"
                         f"<td><b>{e(d['deadline'])}</b></td><td>{e(d['reason'])}</td></tr>")
        body = "".join(lines) + "</table>" + body
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Grading on submit</title></head><body>"
            f"<h1>Grading on submit: {e(status['student'])}</h1><p>Submit from the Assignments tab; "
            f"your submission is graded within minutes and its feedback appears here and under "
            f"<i>Fetch Feedback</i>.</p>{body}</body></html>")


def serve(service: Service, port: int) -> None:
    """The web page on 127.0.0.1:``port``, behind the hub's login (run by JupyterHub as a service)."""
    import asyncio

    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado import web

    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/grader/")

    class Base(HubOAuthenticated, web.RequestHandler):
        def student(self) -> str:
            return self.get_current_user()["name"]

    class Page(Base):
        @web.authenticated
        def get(self):
            self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
            self.write(render(service.status(self.student()), prefix))

    class Status(Base):
        @web.authenticated
        def get(self):
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(service.status(self.student())))

    class Feedback(Base):
        @web.authenticated
        def get(self, aid: str, n: str):
            page = service.feedback_page(self.student(), aid, int(n))  # the logged-in user's own only
            if page is None:
                raise web.HTTPError(404)
            # the feedback page is already sanitised; no script runs in it here either
            self.set_header("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; "
                                                       "img-src data:")
            self.write(page.read_bytes())

    app = web.Application([
        (prefix, Page),
        (url_path_join(prefix, "api/status"), Status),
        (url_path_join(prefix, r"feedback/([A-Za-z0-9_]+)/([0-9]+)"), Feedback),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
    ], cookie_secret=os.urandom(32))

    async def main():
        app.listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    threading.Thread(target=service.run, daemon=True, name="grading-on-submit").start()
    asyncio.run(main())
