"""The instructor's command line: ``autograder <command>`` (or ``python -m autograder``).

    autograder new ID "TITLE"                   scaffold a lecture (notebook, cases.py, syllabus line)
    autograder release [ASSIGNMENT] [--check]   regenerate release/ (or check it is in sync)
    autograder grade PATH [--workers N] ...     collect, autograde, feedback, export, summary
    autograder feedback [ASSIGNMENT]            (re)generate feedback HTML
    autograder export [--to FILE]               grades CSV with outcomes
    autograder export --format canvas|moodle    the LMS's grade import CSV and feedback zip
    autograder bundle [--to DIR|FILE.zip]       the student edition (no solutions, no cases)
    autograder release --exchange [DIR]         ...and publish to nbgrader's exchange (JupyterHub)
    autograder collect [--grade]                latest exchange submissions into course/inbound/
    autograder return                           graded feedback back to the exchange
    autograder cluster-certs DIR                certificates for a grading cluster (mutual TLS)
    autograder extend STUDENT ASSIGNMENT --days N | --until TIME | --clear;  extend --list | --roster FILE
    autograder lti keys | lti send ASSIGNMENT [--retry]   LTI 1.3: the tool's key; grades posted to the LMS (AGS)

User errors are one line on stderr and exit status 2; nothing prints a traceback
for a mistake the user can fix.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from autograder.course import Course, CourseError
from autograder.sandbox.kernel import SandboxUnavailable


def _private_results() -> None:
    """What this command writes from here on (outcomes, feedback, gradebook, grades CSV, reports) is
    created readable by this user only (umask 077): other users of the machine (students with a
    shell on the hub) read nothing of a grading run, whatever the course folder's modes."""
    import os

    os.umask(0o077)


def _assignments(course: Course, aid: str | None) -> list[str]:
    return [course.assignment(aid).id] if aid else [a.id for a in course.assignments()]


def cmd_release(course: Course, args: argparse.Namespace) -> int:
    from autograder.authoring.release import check_release, release

    aids = _assignments(course, args.assignment)
    if args.check:
        problems = check_release(course, aids)
        if problems:
            print("release/ is out of date with source_notebooks/ (run `autograder release`):", file=sys.stderr)
            for p in problems:
                print(f"  - {p}", file=sys.stderr)
            return 1
        print(f"release/ is in sync with source_notebooks/ ({len(aids)} assignment(s))")
        return 0
    release(course, aids)
    print(f"released {', '.join(aids)} into {course.release_dir}")
    if getattr(args, "exchange", None) is not None:
        from autograder.exchange.instructor import publish

        outbound = publish(course, aids, args.exchange or None)
        print(f"published {', '.join(aids)} to the exchange: {outbound} (students: Assignments tab, Fetch)")
    return 0


def cmd_grade(course: Course, args: argparse.Namespace) -> int:
    from autograder.results.export import export_csv, summary_table
    from autograder.grading.batch import GradeOptions, grade, grade_lms_export, hand_to_course_owner, lost_submissions

    _private_results()
    opts = GradeOptions(workers=args.workers, seed=args.seed, unsafe_no_sandbox=args.unsafe_no_sandbox,
                        cold_kernels=args.cold_kernels, force=args.force, assignment=args.assignment, cluster=args.cluster,
                        cluster_certs=args.cluster_certs, insecure_cluster=True if args.insecure_cluster else None)
    if args.assignment:
        course.assignment(args.assignment)
    start = time.monotonic()
    if args.roster or args.lms or args.lms_assignment or args.lms_times:
        from autograder.intake.roster import read_roster

        if not args.roster:
            raise CourseError("--lms, --lms-assignment and --lms-times need --roster FILE (who each LMS user is "
                              "in the course)")
        batch, results = grade_lms_export(course, Path(args.path), read_roster(Path(args.roster)), args.lms,
                                          args.lms_assignment, opts,
                                          times=Path(args.lms_times) if args.lms_times else None)
        print(f"{batch.lms.capitalize()} export of {batch.assignment}: {len(batch.identities)} student(s) "
              f"matched to the roster, {len(batch.refusals)} entr(y/ies) refused")
    else:
        results = grade(course, Path(args.path), opts)
    elapsed = time.monotonic() - start
    out = export_csv(course, Path(args.to) if args.to else None)
    hand_to_course_owner(course)
    print(summary_table(course, results))
    print(f"\n{len(results)} submission(s) in {elapsed:.1f} s with {opts.workers} worker(s). "
          f"Grades: {out}. Feedback: {course.root / 'feedback'}/<student>/<assignment>/")
    lost = lost_submissions(results)
    if lost:
        print(f"autograder: error: {len(lost)} submission(s) were not graded because a grading worker died "
              "(killed, or out of memory: try fewer --workers). Run the same command again to finish them; "
              "the others are kept.", file=sys.stderr)
        return 1
    return 0


def cmd_feedback(course: Course, args: argparse.Namespace) -> int:
    from autograder.store import gradebook as nbgrader_api

    _private_results()
    nb_api = nbgrader_api.api(course)
    for aid in _assignments(course, args.assignment):
        nbgrader_api.check_result(nb_api.generate_feedback(aid, force=True), f"feedback for {aid}")
    from autograder.grading.batch import hand_to_course_owner

    hand_to_course_owner(course)
    print(f"feedback written to {course.root / 'feedback'}")
    return 0


def cmd_export(course: Course, args: argparse.Namespace) -> int:
    from autograder.results.export import export_csv

    _private_results()
    if args.format == "csv":
        if args.lms_assignment or args.roster:
            raise CourseError("--roster and --lms-assignment are for --format canvas|moodle")
        print(f"grades written to {export_csv(course, Path(args.to) if args.to else None)}")
        return 0
    from autograder.lms import export as lms_export
    from autograder.intake.roster import read_roster

    roster = read_roster(Path(args.roster)) if args.roster else None
    to = Path(args.to) if args.to else course.root / "exports" / args.format
    if args.format == "canvas":
        written = lms_export.export_canvas(course, to, roster, lms_export.parse_lms_ids(args.lms_assignment, course),
                                           args.assignment)
        how = ("Canvas: Grades > Import > choose grades.csv; feedback: the assignment's column menu > "
               "Re-Upload Submissions > <assignment>-feedback.zip")
    else:
        if args.lms_assignment:
            raise CourseError("--lms-assignment is for --format canvas (Moodle's worksheet is per assignment)")
        written = lms_export.export_moodle(course, to, roster, args.assignment)
        how = ("Moodle: the assignment > View all submissions > Upload grading worksheet (<assignment>.csv); "
               "Upload multiple feedback files in a zip (<assignment>-feedback.zip)")
    for s in written.skipped:
        print(f"not exported: {s}", file=sys.stderr)
    print(f"{written.rows} grade row(s) written: {', '.join(map(str, written.files))}\n{how}")
    return 0


def cmd_bundle(course: Course, args: argparse.Namespace) -> int:
    from autograder.authoring.bundle import NOTEBOOKS, bundle

    where, files, warnings = bundle(course, Path(args.to) if args.to else None, args.rev)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    size = sum(len(f.data) for f in files)
    print(f"student edition ({len(files)} files, {size / 2**20:.1f} MB) written to {where}")
    if where.suffix.lower() == ".zip":
        print("Publish it as an LMS file; students unzip it and run ./run lab (its README says how).")
    else:
        print(f"Publish it: `cd {where} && git init -b main && git add . && git commit -m 'Course'` and push to "
              f"a student repository (or serve it with an nbgitpuller link to {NOTEBOOKS}/); students run ./run lab.")
    return 0


def cmd_report(course: Course, args: argparse.Namespace) -> int:
    from autograder.results.report import build_report, write_report
    from autograder.results.similarity import THRESHOLD

    _private_results()
    threshold = THRESHOLD if args.threshold is None else args.threshold
    if not 0.0 < threshold <= 1.0:
        raise CourseError(f"--threshold must be in (0, 1], not {threshold:g}")
    report = build_report(course, args.assignment, similarity=not args.no_similarity, threshold=threshold)
    to = Path(args.to) if args.to else course.root / "exports" / "report.html"
    paths = write_report(report, to, Path(args.csv) if args.csv else None, Path(args.json) if args.json else None)
    flagged = sum(len(a.similarity.flagged) for a in report.assignments if a.similarity)
    print(f"report of {sum(a.submitted for a in report.assignments)} submission(s) "
          f"({flagged} similar pair(s) to review) written to {', '.join(map(str, paths))}")
    return 0


def cmd_lti(course: Course, args: argparse.Namespace) -> int:
    """LTI 1.3 (LTI Advantage): the tool's key to register, and grades posted to the LMS (lms/ags.py)."""
    import json
    import os

    from autograder.lms import ags

    if args.action == "keys":
        key = ags.tool_key(course)
        print(json.dumps(ags.jwks(key), indent=1))   # stdout: the key set, to serve at a keyset URL
        hub = os.environ.get("LTI13_HUB_URL", "https://HUB").rstrip("/")
        print(f"\nRegister the tool in the LMS (LTI 1.3; README 'LTI 1.3: Moodle and Canvas'):\n"
              f"  tool URL / target link URI  {hub}/hub/\n  initiate login URL          {hub}/hub/lti13/oauth_login\n"
              f"  redirection URI             {hub}/hub/lti13/oauth_callback\n"
              f"  public key: the key set above (stdout: serve it as the keyset URL), or\n"
              f"  Canvas 'Public JWK':\n{json.dumps(ags.public_jwk(key))}\n"
              f"  Moodle 'RSA key':\n{ags.public_pem(key)}"
              f"  private key: {ags.key_path(course)} (stays here; never share it)", file=sys.stderr)
        return 0
    if not args.assignment:
        raise CourseError("usage: autograder lti send ASSIGNMENT [--retry] --roster FILE")
    from autograder.intake.roster import read_roster

    roster_file = args.roster or os.environ.get("LTI13_ROSTER")
    if not roster_file:
        raise CourseError("--roster FILE (or LTI13_ROSTER): the roster with each student's lti_user_id")
    roster = read_roster(Path(roster_file))
    _private_results()
    platform = ags.Platform.from_env(lineitems_url=args.lineitems)
    done = ags.send(course, args.assignment, roster, ags.Client(platform, ags.tool_key(course, create=False)),
                    retry=args.retry)
    print(f"{done.aid}: {len(done.sent)} score(s) posted, {len(done.unchanged)} unchanged (already in the LMS)"
          + (f"; line item {done.line_item}" if done.line_item else ""))
    for student in done.no_id:
        print(f"not sent: {student}: give the student's lti_user_id in the roster", file=sys.stderr)
    for student, why in sorted(done.failed.items()):
        print(f"not sent: {student}: {why}", file=sys.stderr)
    if done.failed:
        print(f"{len(done.failed)} grade(s) not sent, recorded in {ags.record_path(course, done.aid)}: run "
              f"`autograder lti send {done.aid} --retry` when the LMS answers again", file=sys.stderr)
    return 0 if done.ok else 1


def cmd_collect(course: Course, args: argparse.Namespace) -> int:
    from autograder.exchange import instructor as exchange

    taken, refused = exchange.collect(course, args.exchange, args.assignment, check_owner=not args.trust_names)
    for r in refused:
        print(f"refused {r.name!r}: {r.reason}", file=sys.stderr)
    for c in taken:
        extra = f" ({c.earlier} earlier submission(s) not taken)" if c.earlier else ""
        print(f"collected {c.student}/{c.assignment}, submitted {c.timestamp}{extra}")
        for note in c.notes:
            print(f"  note: {note}")
    folder = exchange.collected_dir(course)
    if not taken:
        print(f"no submission to collect in the exchange ({len(refused)} refused)")
        return 1 if refused else 0
    if not args.grade:
        print(f"\n{len(taken)} submission(s) in {folder}. Grade them with:\n  autograder grade {folder}")
        return 0
    from autograder.intake.collect import Refusal
    from autograder.results.export import export_csv, summary_table
    from autograder.grading.batch import GradeOptions, grade

    _private_results()  # grading on submit: the same private run as `autograder grade`
    opts = GradeOptions(workers=args.workers, unsafe_no_sandbox=args.unsafe_no_sandbox, assignment=args.assignment,
                        notes={(c.student, c.assignment): c.notes for c in taken if c.notes},
                        refusals=[Refusal(r.who(), r.assignment, r.reason) for r in refused])
    results = grade(course, folder, opts)
    print(summary_table(course, results))
    out = export_csv(course, None)
    from autograder.grading.batch import hand_to_course_owner

    hand_to_course_owner(course)
    print(f"\nGrades: {out}. Return the feedback with: autograder return")
    return 0


def cmd_return(course: Course, args: argparse.Namespace) -> int:
    from autograder.exchange.instructor import return_feedback

    done = return_feedback(course, args.exchange, args.assignment)
    for r in done:
        print(f"{'returned' if r.returned else 'not returned'} {r.student}/{r.assignment}"
              + ("" if r.returned else f": {r.reason}"))
    returned = sum(r.returned for r in done)
    print(f"\nfeedback of {returned} submission(s) is in the exchange (students: Assignments tab, Fetch Feedback)")
    return 0 if returned or not done else 1


def cmd_cluster_certs(course: Course, args: argparse.Namespace) -> int:
    from autograder.run.tls import make_certificates

    folder = Path(args.folder)
    make_certificates(folder, days=args.days)
    d = folder.resolve()
    print(f"""certificates for one grading cluster written to {d} (0700; every file 0600; the authority's key was
not kept: no other certificate can be signed). Every key file lets its holder join the cluster: keep them
on the instructor's machines only.

  on the scheduler's machine:   dask scheduler --protocol tls --host 127.0.0.1 --port 8786 \\
                                  --tls-ca-file {d}/ca.pem --tls-cert {d}/scheduler.pem --tls-key {d}/scheduler-key.pem
                                (--host 0.0.0.0, or the machine's address, when workers run on other machines)
  on each grading machine:      dask worker tls://HOST:8786 --nthreads 1 --nworkers 4 \\
                                  --tls-ca-file ca.pem --tls-cert worker.pem --tls-key worker-key.pem
                                (it needs ca.pem, worker.pem and worker-key.pem only)
  here:                         autograder grade SUBMISSIONS --cluster tls://HOST:8786 --cluster-certs {d}""")
    return 0


def cmd_extend(course: Course, args: argparse.Namespace) -> int:
    """Per-student extensions and the roster's standing accommodations (autograder.store.extensions)."""
    from autograder.store import extensions

    if args.list or args.roster:
        if (args.roster and (args.list or args.student)) or args.assignment or args.days is not None or args.until \
                or args.clear or args.reason:
            raise CourseError("--list takes at most a STUDENT; --roster FILE takes nothing else")
    if args.roster:
        from autograder.intake.roster import accommodations, read_roster

        roster = Path(args.roster)
        entries = extensions.set_accommodations(course, accommodations(read_roster(roster)), roster.name)
        return _extended(course, entries, f"accommodations of {roster.name} recorded")
    if args.list:
        rows = [d for d in extensions.deadlines(course) if not args.student or d.student == args.student]
        if not rows:
            print(f"{'the deadlines of ' + args.student + ' are' if args.student else 'every deadline is'} "
                  "the syllabus's (no extension, no accommodation)")
            return 0
        print(f"{'student':<20} {'assignment':<18} {'syllabus due':<21} {'effective deadline':<21} reason")
        for d in rows:
            print(f"{d.student:<20} {d.assignment:<18} {extensions.iso(d.due):<21} {extensions.iso(d.effective):<21} "
                  f"{d.reason}")
        return 0
    from autograder.intake.collect import STUDENT_ID

    if not args.student or not args.assignment:
        raise CourseError("give STUDENT ASSIGNMENT and one of --days N, --until TIME, --clear (or --list, --roster FILE)")
    if not STUDENT_ID.match(args.student):
        raise CourseError(f"{args.student[:80]!r} is not a valid student id (1-64 ASCII letters, digits, _ . @ + -, "
                          "starting with a letter or digit)")
    aid = course.assignment(args.assignment).id
    if sum([args.days is not None, bool(args.until), args.clear]) != 1:
        raise CourseError("give exactly one of --days N, --until TIME and --clear")
    if args.clear:
        entries = extensions.clear(course, args.student, aid)
    else:
        until = extensions.parse_time(args.until) if args.until else None
        entries = extensions.grant(course, args.student, aid, args.days, until, args.reason or "")
    return _extended(course, entries, "", also=[(aid, args.student)])


def _extended(course: Course, entries: list[dict], done: str, also: list[tuple[str, str]] = ()) -> int:
    """Say what changed, and write it into the gradebook (extensions, late penalties)."""
    from autograder.store import extensions

    for e in entries:
        print(f"{e['student']} {e['assignment']}: deadline {e['old']} -> {e['new']}")
    if done:
        print(f"{done}: {len(entries)} deadline(s) changed")
    elif not entries:
        print("no effective deadline changed (an accommodation gives a later one)")
    changed = extensions.apply_to_gradebook(course, {e["assignment"] for e in entries},
                                            also=[*also, *((e["assignment"], e["student"]) for e in entries)])
    if changed:
        from autograder.grading.batch import hand_to_course_owner

        hand_to_course_owner(course)  # as root: the gradebook stays the instructor's
        aids = sorted({aid for aid, _ in changed})
        print(f"gradebook: the extension (and late penalty) of {len(changed)} submission(s) updated; the grades "
              f"exported from now on use it. Feedback pages made before still show the old penalty; regenerate them: "
              + "; ".join(f"autograder feedback {a}" for a in aids))
    print(f"log: {extensions.log_path(course)}")
    return 0


def cmd_ondemand(course: Course, args: argparse.Namespace) -> int:
    """Grading on submit: the hub's service (``serve``), and the instructor's switches."""
    from autograder.ondemand import attempts

    by = _os_user()
    pos = list(args.student_or_assignment)
    wanted = {"serve": 0, "status": (0, 1), "open": 1, "close": 1, "reset": 2}[args.action]
    if len(pos) not in (wanted if isinstance(wanted, tuple) else (wanted,)):
        usage = {"serve": "", "status": " [STUDENT]", "open": " ASSIGNMENT", "close": " ASSIGNMENT",
                 "reset": " STUDENT ASSIGNMENT"}[args.action]
        raise CourseError(f"usage: autograder ondemand {args.action}{usage}")
    args.student = pos[0] if args.action in ("reset", "status") and pos else None
    args.assignment = pos[-1] if args.action in ("open", "close", "reset") else None
    if args.action == "serve":
        from autograder.ondemand.service import Service, serve

        service = Service(course, args.exchange, workers=args.workers, interval=args.interval,
                          log=lambda m: print(m, file=sys.stderr, flush=True))
        serve(service, args.port)
        return 0
    if args.action in ("open", "close"):
        attempts.set_open(course, args.assignment, args.action == "open", by)
        print(f"grading on submit of {args.assignment}: {'open' if args.action == 'open' else 'closed'}")
        return 0
    if args.action == "reset":
        before = attempts.reset(course, args.student, args.assignment, by)
        print(f"{args.student}/{args.assignment}: attempts reset ({before} counted before; the history is kept)")
        return 0
    from autograder.ondemand.service import Service

    service = Service(course, args.exchange)
    state = attempts.load(course)
    students = [args.student] if args.student else sorted(set(state["attempts"]) | set(state["skipped"])
                                                          | {i["student"] for i in state["queue"].values()})
    for student in students:
        for a in service.status(student)["assignments"]:
            if args.assignment and a["assignment"] != args.assignment:
                continue
            best = next((h for h in a["history"] if h["official"]), None)
            print(f"{student:<20} {a['assignment']:<20} used {a['used']}/{a['attempts']}"
                  f"{' today' if a['attempts_per'] == 'day' else ''}  grade "
                  f"{(str(best['score']) + '/' + str(best['max_score'])) if best else '-':<10} "
                  f"{a['queue'] or ''}{'closed' if not a['open'] else ''}")
    return 0


def _os_user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def cmd_new(course: Course, args: argparse.Namespace) -> int:
    from autograder.authoring.scaffold import cmd_new

    return cmd_new(course, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--course", help="course folder (default: ./course or the repository's)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show nbgrader's log")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ondemand", help="grading on submit: the hub's service, and opening, closing, resetting attempts")
    p.add_argument("action", choices=["serve", "status", "open", "close", "reset"],
                   help="serve: run the service (JupyterHub starts it); status: each student's attempts; "
                        "open/close ASSIGNMENT; reset STUDENT ASSIGNMENT: all attempts again (history kept)")
    p.add_argument("student_or_assignment", nargs="*", metavar="STUDENT/ASSIGNMENT")
    p.add_argument("--exchange", metavar="DIR", help="the exchange (default: $NBGRADER_EXCHANGE or the course config's)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADER_SERVICE_PORT", "10101")),
                   help="serve: the page's port on 127.0.0.1")
    p.add_argument("--workers", type=int, default=1, help="serve: grading workers")
    p.add_argument("--interval", type=float, default=2.0, help="serve: seconds between two looks at the exchange")
    p.set_defaults(func=cmd_ondemand)

    p = sub.add_parser("new", help='scaffold a lecture: notebook, cases.py, syllabus line (autograder new 12_demo "A demo")')
    p.add_argument("assignment", help="the new id: two digits, an underscore, lower-case words (12_demo)")
    p.add_argument("title", help="the lecture's title, as the syllabus shows it")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("release", help="regenerate release/ from source_notebooks/")
    p.add_argument("assignment", nargs="?", help="one assignment id (default: all in the syllabus)")
    p.add_argument("--check", action="store_true", help="fail if release/ is out of date; change nothing")
    p.add_argument("--exchange", nargs="?", const="", metavar="DIR",
                   help="then publish to nbgrader's exchange (DIR, else $NBGRADER_EXCHANGE or the course config's)")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("collect", help="take the latest submissions from nbgrader's exchange into course/inbound/")
    p.add_argument("--assignment", help="collect only this assignment")
    p.add_argument("--exchange", metavar="DIR", help="the exchange (default: $NBGRADER_EXCHANGE or the course config's)")
    p.add_argument("--trust-names", action="store_true",
                   help="accept a submission whose folder is not owned by the student it names (shared uids only)")
    p.add_argument("--grade", action="store_true", help="then grade them (as `autograder grade course/inbound`)")
    p.add_argument("--workers", type=int, default=_default_workers(), help="parallel workers when grading")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="grade without bubblewrap: student code is NOT contained (see README)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("return", help="release the feedback of graded exchange submissions to the students")
    p.add_argument("--assignment", help="return only this assignment")
    p.add_argument("--exchange", metavar="DIR", help="the exchange (default: $NBGRADER_EXCHANGE or the course config's)")
    p.set_defaults(func=cmd_return)

    p = sub.add_parser("grade", help="grade a folder or zip of submissions")
    p.add_argument("path", help="folder PATH/<student>/<assignment>/*.ipynb, or a zip of that layout")
    p.add_argument("--assignment", help="grade only this assignment")
    p.add_argument("--workers", type=int, default=_default_workers(), help="parallel workers (default: cores)")
    p.add_argument("--seed", type=int, help="seed of the hidden cases (default: the course's recorded seed)")
    p.add_argument("--force", action="store_true", help="regrade submissions already graded")
    p.add_argument("--to", help="grades CSV path (default: course/exports/grades.csv)")
    p.add_argument("--roster", metavar="FILE",
                   help="PATH is an LMS export (Moodle or Canvas zip): map its users to students with this CSV")
    p.add_argument("--lms", choices=["moodle", "canvas"], help="the LMS of the export (default: told from its names)")
    p.add_argument("--lms-assignment", metavar="ID",
                   help="the syllabus assignment the export is for (default: told from its notebooks)")
    p.add_argument("--lms-times", metavar="FILE",
                   help="the LMS's submission times, for late penalties (Moodle: the assignment's grading "
                        "worksheet CSV; Canvas: a CSV of user ids and submitted_at); without it no LMS "
                        "submission is late")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="grade without bubblewrap: student code is NOT contained (see README)")
    p.add_argument("--cold-kernels", action="store_true",
                   help="start every sandboxed kernel afresh instead of forking it from a warm template (slower; for comparison)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="grade on a Dask cluster (tls://host:8786 or a scheduler file; README: Grading on a cluster)")
    p.add_argument("--cluster-certs", metavar="DIR",
                   help="the cluster's certificates (made by `autograder cluster-certs DIR`; default: "
                        "c.GradingSettings.cluster_certs, else Dask's distributed.comm.tls settings)")
    p.add_argument("--insecure-cluster", action="store_true",
                   help="accept a --cluster address without TLS (tcp://): anyone who reaches it can join (unsafe)")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("cluster-certs", help="make the certificates of a grading cluster (mutual TLS) in a new folder")
    p.add_argument("folder", help="a new folder (0700) for ca.pem and the scheduler's, workers' and client's files")
    p.add_argument("--days", type=int, default=365, help="how long the certificates are valid (default 365)")
    p.set_defaults(func=cmd_cluster_certs)

    p = sub.add_parser("feedback", help="(re)generate feedback HTML for graded submissions")
    p.add_argument("assignment", nargs="?")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("export", help="write the grades CSV (with each submission's outcome), or an LMS's import files")
    p.add_argument("--format", choices=["csv", "canvas", "moodle"], default="csv",
                   help="csv: our grades CSV; canvas: gradebook import CSV + feedback zip; "
                        "moodle: grading worksheet CSV + feedback zip per assignment")
    p.add_argument("--to", help="csv: the CSV path (default: course/exports/grades.csv); canvas, moodle: a folder "
                                "(default: course/exports/<format>/)")
    p.add_argument("--roster", metavar="FILE", help="canvas, moodle: the roster (names, e-mails, SIS ids, LMS ids)")
    p.add_argument("--assignment", help="canvas, moodle: only this assignment")
    p.add_argument("--lms-assignment", action="append", metavar="ID=LMS_ID",
                   help="canvas: the Canvas assignment id of a syllabus assignment (repeat per assignment)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bundle", help="build the student edition (notebooks, helpers, README, run) without answers")
    p.add_argument("--to", help="a new folder, or FILE.zip (default: course/exports/dl-course-student/)")
    p.add_argument("--rev", default="HEAD", help="the commit to build from (default: HEAD)")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser(
        "extend", help="per-student deadlines: extensions (--days, --until, --clear), --list, the roster's accommodations",
        description="The deadline of STUDENT for ASSIGNMENT is the later of: the syllabus's due date plus the "
                    "student's standing accommodation (the roster's extra_days column, recorded with --roster FILE: "
                    "every due date moves that many days; nbgrader assignments have no start date, so 50% more "
                    "time on a one-week assignment is extra_days = 3.5), and this extension (--days N: N days "
                    "after the syllabus's due date; --until TIME). Late penalties, grading, the exchange and the "
                    "LMS exports use it. Every change is appended to course/extensions.log (who, when, the old "
                    "and new deadline); the current state is course/extensions.json.")
    p.add_argument("student", nargs="?", help="the student's course id")
    p.add_argument("assignment", nargs="?", help="the syllabus's assignment id")
    p.add_argument("--days", type=float, help="the deadline is N days after the syllabus's due date (1.5 = 36 hours)")
    p.add_argument("--until", metavar="TIME", help="the deadline is TIME (ISO 8601 with a time zone, e.g. "
                                                   "2026-12-17T23:59:00Z or 2026-12-17T23:59:00+01:00)")
    p.add_argument("--clear", action="store_true", help="remove this extension (an accommodation stays)")
    p.add_argument("--reason", help="why (kept in the state and shown by --list)")
    p.add_argument("--list", action="store_true",
                   help="every deadline that differs from the syllabus's, with the reason (of STUDENT only if given)")
    p.add_argument("--roster", metavar="FILE", help="record the roster's extra_days column as standing "
                                                    "accommodations (a student without it has none afterwards)")
    p.set_defaults(func=cmd_extend)

    p = sub.add_parser("report", help="what the class got wrong: one HTML page (and CSV/JSON) from the outcomes")
    p.add_argument("assignment", nargs="?", help="one assignment id (default: the whole course)")
    p.add_argument("--to", help="HTML path (default: course/exports/report.html)")
    p.add_argument("--csv", help="also write the numbers as CSV to this path")
    p.add_argument("--json", help="also write the numbers as JSON to this path")
    p.add_argument("--threshold", type=float, help="flag pairs at least this similar (default 0.5, see similarity.py)")
    p.add_argument("--no-similarity", action="store_true", help="skip the comparison of solution code")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("lti", help="LTI 1.3: print the tool's public key set (keys); post grades to the LMS (send)")
    p.add_argument("action", choices=["keys", "send"])
    p.add_argument("assignment", nargs="?", help="send: the assignment whose grades are posted")
    p.add_argument("--retry", action="store_true", help="send: only the grades that failed before")
    p.add_argument("--roster", help="send: the roster with lti_user_id (default $LTI13_ROSTER)")
    p.add_argument("--lineitems", help="send: the LMS's line items URL (default $LTI13_LINEITEMS_URL)")
    p.set_defaults(func=cmd_lti)
    return parser


def _default_workers() -> int:
    import os

    return max(1, os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*not in session.*")  # SQLAlchemy, on nbgrader's cascades
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s: %(message)s")
    try:
        course = Course.find(args.course)
        return args.func(course, args)
    except (CourseError, SandboxUnavailable) as e:
        print(f"autograder: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autograder: interrupted. The gradebook is consistent: run the same command again "
              "to finish the rest.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
