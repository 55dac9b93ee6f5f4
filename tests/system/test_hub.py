"""A class on a real JupyterHub: the whole loop through nbgrader's exchange.

One hub for the module (deploy/jupyterhub: configurable-http-proxy on free 127.0.0.1 ports,
PAM logins, LocalProcessSpawner), with an instructor and two students created as real
system users (removed afterwards). Through the hub's REST API and the users' servers:
the instructor publishes 01_perceptron (`autograder release --exchange`); alice and bob
fetch it from the Assignments API, save their work through the contents API and submit;
bob submits after the due date; bob also forges a submission in alice's name and leaves two
hostile entries of his own (one unreadable, one a link to the instructor's sources). Then
`autograder collect` (as the instructor), `autograder grade` (sandboxed, as root) and
`autograder return`;
the students fetch feedback and read their score. Also: a student cannot list the inbound,
read, rename or replace another's submission; only the instructor has formgrader.
"""
from __future__ import annotations

import datetime as dt
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support import submissions as subs
from tests.support.course import REPO, copy_course

sys.path.insert(0, str(REPO / "deploy" / "jupyterhub"))
import hubctl  # noqa: E402


AID = "01_perceptron"
OD_AID = "00_pytorch_basics"  # graded on submit by the hub's grader service
COURSE_ID = "dl-course"
WRONG_SOFTMAX = subs.WRONG_SOFTMAX


def _why_not() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux: the hub starts each user's server as that system user"
    if shutil.which("configurable-http-proxy") is None:
        return "configurable-http-proxy is missing (npm install -g configurable-http-proxy; ./run test does it as root)"
    if shutil.which("bwrap") is None:
        return "bubblewrap is missing (apt-get install bubblewrap)"
    try:
        import jupyterhub  # noqa: F401
        import jupyterhub_idle_culler  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed (pip install -e '.[dev]')"
    return None


class Users:
    """System users made for the test (private homes under ``base``), removed by ``remove``."""

    def __init__(self, base: Path, tag: str):
        self.base, self.tag = base, tag
        self.group = f"dlcs{tag}"
        self.made: list[str] = []
        subprocess.run(["groupadd", self.group], check=True)

    def add(self, role: str, student: bool) -> tuple[str, str]:
        name = f"{role}{self.tag}"
        password = secrets.token_urlsafe(12)
        home = self.base / "home" / name
        home.parent.mkdir(exist_ok=True)
        cmd = ["useradd", "--create-home", "--home-dir", str(home), "-K", "HOME_MODE=0700", "--shell", "/bin/bash"]
        subprocess.run([*cmd, *(["--groups", self.group] if student else []), name], check=True)
        self.made.append(name)
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        return name, password

    def remove(self) -> None:
        for name in self.made:
            subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)  # only this test's users
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        subprocess.run(["groupdel", self.group], capture_output=True)


@pytest.fixture(scope="module")
def hub():
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="hub-test-"))
    base.chmod(0o755)
    tag = secrets.token_hex(3)
    users = Users(base, tag)
    try:
        instructor, _ = users.add("inst", student=False)
        alice, alice_pw = users.add("alice", student=True)
        bob, bob_pw = users.add("bob", student=True)
        course = copy_course(base)  # base/repo/course (+ release/, source_notebooks/)
        syllabus = course / "syllabus.toml"  # 00 is graded on submit (the grader service), 2 attempts
        syllabus.write_text(syllabus.read_text().replace(f'id = "{OD_AID}"\n', f'id = "{OD_AID}"\nattempts = 2\n'))
        inst = pwd.getpwnam(instructor)
        for path in [base / "repo", *(base / "repo").rglob("*")]:
            os.lchown(path, inst.pw_uid, inst.pw_gid)
        (base / "repo").chmod(0o700)  # the gradebook, the sources: the instructor's only
        state = base / "state"
        state.mkdir()
        h = hubctl.Hub(state=state, port=hubctl.free_port(), instructor=instructor, students_group=users.group,
                       course_root=course, exchange=base / "exchange", course_id=COURSE_ID, authenticator="pam",
                       extra_env={"HUB_CULL_IDLE_S": "3600", "GRADER_SERVICE_PORT": str(hubctl.free_port()),
                                  "GRADER_WORKERS": "1"})
        seconds = hubctl.start(h)
        print(f"\nhub start-up: {seconds:.1f} s", file=sys.stderr)
        try:
            yield {"hub": h, "course": course, "instructor": instructor, "alice": alice, "bob": bob,
                   "passwords": {alice: alice_pw, bob: bob_pw}, "startup_s": seconds,
                   "python": str(state / "user-env" / "bin" / "python")
                   if (state / "user-env").exists() else str(REPO / ".venv" / "bin" / "python")}
        finally:
            hubctl.stop(h)
    finally:
        users.remove()
        shutil.rmtree(base, ignore_errors=True)


def _as_user(hub: dict, user: str, *cmd: str, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """Run a command as ``user`` (login-like environment: their home, the course's Python first)."""
    home = pwd.getpwnam(user).pw_dir
    environ = {"HOME": home, "USER": user, "LANG": "C.UTF-8",
               "PATH": f"{Path(hub['python']).parent}:/usr/local/bin:/usr/bin:/bin",
               "NBGRADER_EXCHANGE": str(hub["hub"].exchange), "PYTHONWARNINGS": "ignore", **env}
    entry = pwd.getpwnam(user)  # the user's own groups: root's would open group-readable files
    return subprocess.run(list(cmd), user=user, group=entry.pw_gid, extra_groups=os.getgrouplist(user, entry.pw_gid),
                          cwd=home, env=environ, capture_output=True, text=True, timeout=timeout)


def _autograder(hub: dict, *args: str) -> subprocess.CompletedProcess:
    """The instructor's command line, run as the instructor's system user."""
    return _as_user(hub, hub["instructor"], hub["python"], "-m", "autograder", "--course", str(hub["course"]), *args)


def _autograder_as_root(hub: dict, *args: str) -> subprocess.CompletedProcess:
    """The instructor's command line run as root with the course's .venv: grading as root gives
    each sandboxed kernel an unused uid. (Grading as the instructor through the users'
    environment that hubctl builds on this machine does not work yet: the sandbox binds only
    sys.prefix and sys.base_prefix, not that environment's package folder.)"""
    env = dict(os.environ, NBGRADER_EXCHANGE=str(hub["hub"].exchange), PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "autograder", "--course", str(hub["course"]), *args],
                          capture_output=True, text=True, timeout=900, env=env)


def _start_server(h: hubctl.Hub, user: str) -> str:
    """Create the hub user, start their server, return a token of theirs for it."""
    h.api("POST", f"/users/{user}")
    code, answer = h.api("POST", f"/users/{user}/server")
    assert code in (201, 202) or (code == 400 and "already" in str(answer)), (code, answer)  # a login spawns it too
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        _, model = h.api("GET", f"/users/{user}")
        if model["servers"].get("", {}).get("ready"):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"{user}'s server did not start:\n{hubctl._tail(h.log_file, 30)}")
    code, token = h.api("POST", f"/users/{user}/tokens", {"note": "test", "expires_in": 3600})
    assert code == 201, token
    return token["token"]


def _server(h: hubctl.Hub, user: str, token: str, method: str, path: str, body: dict | None = None):
    return hubctl.http(method, f"{h.url}/user/{user}{path}", body, token, timeout=120)


def _action(h, user, token, action, aid=AID):
    code, out = _server(h, user, token, "POST", f"/assignments/{action}?course_id={COURSE_ID}&assignment_id={aid}")
    assert code == 200, (code, out)
    return out


def _set_due(course: Path, when: dt.datetime) -> None:
    path = course / "syllabus.toml"
    marker = f'id = "{AID}"\n'
    text = path.read_text()
    path.write_text(text.replace(marker, marker + f'due = "{when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}"\n'))


def _hostile_entries(hub: dict, inbound: Path, student: str) -> dict[str, str]:
    """As ``student``: two inbound entries newer than their submission, one unreadable (0700)
    and one a symbolic link to the instructor's source folder. Returns {kind: entry name}."""
    from autograder.exchange.instructor import nbgrader_time

    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    names = {"unreadable": f"{student}+{AID}+{nbgrader_time(later)}+u",
             "link": f"{student}+{AID}+{nbgrader_time(later + dt.timedelta(seconds=1))}+l"}
    script = f"""
import os
inbound, names, target = {str(inbound)!r}, {names!r}, {str(hub["course"].parent / "source_notebooks" / AID)!r}
entry = os.path.join(inbound, names["unreadable"])
os.mkdir(entry, 0o750)
with open(os.path.join(entry, "{AID}.ipynb"), "w") as f:
    f.write("{{}}")
os.chmod(entry, 0o700)
os.symlink(target, os.path.join(inbound, names["link"]))
"""
    r = _as_user(hub, student, "/usr/bin/python3", "-c", script)
    assert r.returncode == 0, r.stderr
    return names


@pytest.fixture(scope="module")
def loop(hub):
    """Drive the whole loop once; each test below checks one part of what happened."""
    h: hubctl.Hub = hub["hub"]
    alice, bob = hub["alice"], hub["bob"]
    out: dict = {"hub": hub}

    r = _autograder(hub, "release", AID, "--exchange", str(h.exchange))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    tokens = {u: _start_server(h, u) for u in (alice, bob)}
    out["tokens"] = tokens
    code, listing = _server(h, alice, tokens[alice], "GET", f"/assignments?course_id={COURSE_ID}")
    out["listed"] = (code, listing)

    work = {alice: subs.solved(AID), bob: subs.replace_exercise(subs.solved(AID), "softmax", WRONG_SOFTMAX)}
    for user in (alice, bob):
        out[f"fetched_{user}"] = _action(h, user, tokens[user], "fetch")
        code, saved = _server(h, user, tokens[user], "PUT", f"/api/contents/{AID}/{AID}.ipynb",
                              {"type": "notebook", "format": "json", "content": json.loads(json.dumps(work[user]))})
        assert code == 200, saved
    out["submitted_alice"] = _action(h, alice, tokens[alice], "submit")
    _set_due(hub["course"], dt.datetime.now(dt.timezone.utc))  # alice was on time; bob will be late
    out["submitted_bob"] = _action(h, bob, tokens[bob], "submit")

    inbound = h.exchange / COURSE_ID / "inbound"
    out["entries"] = {e.name.split("+")[0]: e for e in inbound.iterdir()}
    # bob forges a submission in alice's name (nbgrader's own CLI allows --student)
    out["forged"] = _as_user(hub, bob, hub["python"], "-m", "nbgrader", "submit", AID, f"--student={alice}",
                             JUPYTER_CONFIG_PATH=str(REPO / "deploy" / "jupyterhub" / "student"),
                             COURSE_ID=COURSE_ID)
    # bob's newest entries are hostile: one he made unreadable, one a link to the instructor's sources
    out["hostile"] = _hostile_entries(hub, inbound, bob)
    out["collect"] = _autograder(hub, "collect", "--exchange", str(h.exchange))
    out["grade"] = _autograder_as_root(hub, "grade", str(hub["course"] / "inbound"), "--workers", "2")
    out["return"] = _autograder_as_root(hub, "return", "--exchange", str(h.exchange))
    out["feedback"] = {}
    for user in (alice, bob):
        _action(h, user, tokens[user], "fetch_feedback")
        code, folder = _server(h, user, tokens[user], "GET", f"/api/contents/{AID}/feedback")
        assert code == 200, "\n".join([str(folder)] + [f"{k}: {out[k].stdout[-1500:]}{out[k].stderr[-1500:]}"
                                                       for k in ("collect", "grade", "return")])
        (stamp,) = [c["name"] for c in folder["content"]]
        code, page = _server(h, user, tokens[user], "GET", f"/api/contents/{AID}/feedback/{quote(stamp)}/{AID}.html")
        assert code == 200, page
        out["feedback"][user] = page["content"]
    return out


# -- the hub itself ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_hub_starts_on_loopback_with_the_culler(hub):
    h: hubctl.Hub = hub["hub"]
    code, info = h.api("GET", "/")
    assert code == 200 and int(info["version"].split(".")[0]) >= 5
    code, services = h.api("GET", "/services")
    assert code == 200 and "idle-culler" in services
    assert h.url.startswith("http://127.0.0.1:")


@pytest.mark.slow
def test_students_log_in_with_their_system_password(hub):
    import http.cookiejar
    import urllib.error
    import urllib.parse
    import urllib.request

    h: hubctl.Hub = hub["hub"]

    def login(user: str, password: str) -> str:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{h.url}/hub/login", timeout=30).read().decode()
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"username": user, "password": password, "_xsrf": xsrf}).encode()
        try:
            with opener.open(f"{h.url}/hub/login", data=data, timeout=60) as r:
                return r.geturl()
        except urllib.error.HTTPError as e:
            return f"error {e.code}"

    alice = hub["alice"]
    assert "/hub/login" not in login(alice, hub["passwords"][alice])  # in: redirected to the spawn page
    assert login(alice, "not-" + hub["passwords"][alice]) == "error 403"
    assert login(hub["instructor"] + "x", "whatever-password") == "error 403"


# -- the loop ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_students_see_and_fetch_the_released_assignment(loop):
    code, listing = loop["listed"]
    assert code == 200 and listing["success"], listing
    assert [(a["assignment_id"], a["status"]) for a in listing["value"]] == [(AID, "released")]
    alice = loop["hub"]["alice"]
    fetched = {a["assignment_id"]: a["status"] for a in loop[f"fetched_{alice}"]["value"]}
    assert fetched == {AID: "fetched"}


@pytest.mark.slow
def test_submissions_reach_the_inbound_privately(loop):
    alice, bob = loop["hub"]["alice"], loop["hub"]["bob"]
    assert loop["submitted_alice"]["success"] and loop["submitted_bob"]["success"]
    entry = loop["entries"][alice]
    inbound = entry.parent
    assert oct(inbound.stat().st_mode & 0o7777) == "0o3733"  # setgid, sticky, write-only for students
    assert oct(inbound.parent.parent.stat().st_mode & 0o7777) == "0o1777"  # the exchange root is sticky
    st = entry.stat()
    assert st.st_uid == pwd.getpwnam(alice).pw_uid
    assert grp.getgrgid(st.st_gid).gr_name == grp.getgrgid(pwd.getpwnam(loop["hub"]["instructor"]).pw_gid).gr_name
    assert st.st_mode & 0o007 == 0, oct(st.st_mode)  # nbgrader alone leaves it 0777
    assert all(p.stat().st_mode & 0o007 == 0 for p in entry.iterdir())


@pytest.mark.slow
def test_a_student_cannot_list_read_or_replace_another_submission(loop):
    hub = loop["hub"]
    alice_entry = loop["entries"][hub["alice"]]
    probe = f'''
import os, sys
results = []
def attempt(what, fn):
    try:
        fn()
        results.append(what + ": allowed")
    except PermissionError:
        results.append(what + ": denied")
entry = {str(alice_entry)!r}
attempt("list inbound", lambda: os.listdir(os.path.dirname(entry)))
attempt("list submission", lambda: os.listdir(entry))
attempt("read notebook", lambda: open(os.path.join(entry, "{AID}.ipynb")).read())
attempt("read secret", lambda: open(os.path.join(entry, "submission_secret.txt")).read())
attempt("rename submission", lambda: os.rename(entry, entry + "x"))
attempt("write into submission", lambda: open(os.path.join(entry, "extra.ipynb"), "w").close())
course = os.path.dirname(os.path.dirname(entry))
attempt("rename course folder", lambda: os.rename(course, course + "x"))
attempt("read alice's home", lambda: os.listdir({pwd.getpwnam(hub["alice"]).pw_dir!r}))
attempt("read the gradebook", lambda: open({str(hub["course"] / "gradebook.db")!r}, "rb").read(1))
print("\\n".join(results))
'''
    r = _as_user(hub, hub["bob"], "/usr/bin/python3", "-c", probe)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and all(line.endswith(": denied") for line in lines), lines


@pytest.mark.slow
def test_a_submission_forged_in_another_name_is_refused(loop):
    hub = loop["hub"]
    assert loop["forged"].returncode == 0, loop["forged"].stderr[-2000:]  # nbgrader itself accepts it
    collect = loop["collect"]
    assert collect.returncode == 0, collect.stderr[-3000:]
    assert f"submitted by {hub['bob']}, not by {hub['alice']}" in collect.stderr
    assert f"collected {hub['alice']}/{AID}" in collect.stdout and f"collected {hub['bob']}/{AID}" in collect.stdout
    collected = hub["course"] / "inbound" / hub["alice"] / AID / f"{AID}.ipynb"
    assert "Z.max(axis=0" not in collected.read_text()  # alice's own notebook was taken, not bob's
    # bob's hostile newer entries are refused, each with its reason; his real submission is taken
    refusals = {line.split("'")[1]: line for line in collect.stderr.splitlines() if line.startswith("refused '")}
    assert "unreadable (permission denied" in refusals[loop["hostile"]["unreadable"]]
    assert "symbolic link" in refusals[loop["hostile"]["link"]]
    bobs = (hub["course"] / "inbound" / hub["bob"] / AID / f"{AID}.ipynb").read_text()
    assert "Z.max(axis=0" in bobs and "### BEGIN SOLUTION" not in bobs
    assert oct((hub["course"] / "inbound").stat().st_mode & 0o777) == "0o700"


@pytest.mark.slow
def test_grading_the_collected_submissions(loop):
    hub = loop["hub"]
    r = loop["grade"]
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    rows = subs.read_grades(hub["course"] / "exports" / "grades.csv")
    assert rows[(hub["alice"], AID)]["score"] == "12"
    # softmax (2 points) wrong, and a day late: 10 % of his 10 points off (autograder.pipeline.late.PerDayPenalty)
    assert rows[(hub["bob"], AID)]["score"] == "9" and "late: 1 point(s) off" in rows[(hub["bob"], AID)]["reason"]


@pytest.mark.slow
def test_the_late_submission_is_recorded_late(loop):
    from nbgrader.api import Gradebook

    from autograder.course import Course

    hub = loop["hub"]
    with Gradebook(Course(hub["course"]).db_url) as gb:
        assert gb.find_assignment(AID).duedate is not None
        assert gb.find_submission(AID, hub["alice"]).total_seconds_late == 0
        assert gb.find_submission(AID, hub["bob"]).total_seconds_late > 0


@pytest.mark.slow
def test_students_fetch_their_own_feedback_with_their_score(loop):
    hub = loop["hub"]
    r = loop["return"]
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stdout.count("returned ") == 2
    alice_page, bob_page = loop["feedback"][hub["alice"]], loop["feedback"][hub["bob"]]
    assert re.search(r"Score: 12\.0 / 12\.0", alice_page)
    assert re.search(r"Score: 9\.0 / 12\.0", bob_page)  # 10 points, one day late: 10 % off (autograder.pipeline.late)
    assert hub["bob"] not in alice_page and hub["alice"] not in bob_page
    feedback = hub["hub"].exchange / COURSE_ID / "feedback"
    assert oct(feedback.stat().st_mode & 0o777) == "0o711"  # no listing: names are secret HMACs


@pytest.mark.slow
def test_only_the_instructor_has_formgrader(loop):
    hub = loop["hub"]
    h = hub["hub"]
    alice = hub["alice"]
    code, _ = _server(h, alice, loop["tokens"][alice], "GET", "/formgrader")
    assert code == 404
    # the student's JupyterLab page: nbgrader's extension is there (the Assignments tab), its
    # formgrader, course-list and create-assignment plugins are switched off
    code, page = _server(h, alice, loop["tokens"][alice], "GET", "/lab")
    assert code == 200
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page, re.S).group(1))
    assert "@jupyter/nbgrader" in [e["name"] for e in config["federated_extensions"]]
    disabled = config.get("disabledExtensions", [])
    assert "@jupyter/nbgrader:formgrader" in disabled and "@jupyter/nbgrader:assignment-list" not in disabled
    token = _start_server(h, hub["instructor"])
    code, page = _server(h, hub["instructor"], token, "GET", "/formgrader")
    assert code == 200 and "formgrader" in str(page).lower()
    code, assignments = _server(h, hub["instructor"], token, "GET", "/formgrader/api/assignments")
    assert code == 200 and isinstance(assignments, list), (assignments, hubctl._tail(h.log_file, 40))
    (mine,) = [a for a in assignments if a["name"] == AID]
    # the same exchange (released there) and the same gradebook (its due date, two submissions)
    assert mine["status"] == "released" and mine["duedate"] is not None and mine["num_submissions"] == 2, mine


# -- grading on submit: the hub's grader service -----------------------------------------------------

def _grader(h: hubctl.Hub, token: str, path: str):
    """The grader service's page or API through the hub's proxy, with the user's token."""
    return hubctl.http("GET", f"{h.url}/services/grader/{path}", None, token, timeout=60)


def _my(status: dict) -> dict:
    return next(a for a in status["assignments"] if a["assignment"] == OD_AID)


def _wait_for_attempt(h, token, n: int, timeout: float = 300) -> tuple[dict, float]:
    """The student's status once attempt ``n`` is recorded (0: once a submission was skipped)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        code, status = _grader(h, token, "api/status")
        assert code == 200, (code, status, hubctl._tail(h.log_file, 30))
        mine = _my(status)
        if (n > 0 and len(mine["history"]) >= n) or (n == 0 and mine["skipped"]):
            return mine, time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"no attempt {n} after {timeout} s:\n{hubctl._tail(h.log_file, 40)}")


@pytest.fixture(scope="module")
def ondemand(loop):
    """alice submits 00 from her server three times (2 attempts), bob once; the service grades them."""
    hub = loop["hub"]
    h: hubctl.Hub = hub["hub"]
    alice, bob = hub["alice"], hub["bob"]
    tokens = loop["tokens"]
    r = _autograder(hub, "release", OD_AID, "--exchange", str(h.exchange))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out: dict = {"hub": hub, "latency": []}

    def submit(user, nb):
        _action(h, user, tokens[user], "fetch", OD_AID) if not out.get(f"fetched {user}") else None
        out[f"fetched {user}"] = True
        code, saved = _server(h, user, tokens[user], "PUT", f"/api/contents/{OD_AID}/{OD_AID}.ipynb",
                              {"type": "notebook", "format": "json", "content": json.loads(json.dumps(nb))})
        assert code == 200, saved
        _action(h, user, tokens[user], "submit", OD_AID)

    submit(alice, subs.solved(OD_AID))
    out["first"], seconds = _wait_for_attempt(h, tokens[alice], 1)
    out["latency"].append(seconds)
    _action(h, alice, tokens[alice], "fetch_feedback", OD_AID)
    code, folder = _server(h, alice, tokens[alice], "GET", f"/api/contents/{OD_AID}/feedback")
    assert code == 200, folder
    (stamp,) = [c["name"] for c in folder["content"]]
    code, page = _server(h, alice, tokens[alice], "GET", f"/api/contents/{OD_AID}/feedback/{quote(stamp)}/{OD_AID}.html")
    out["feedback"] = page["content"] if code == 200 else f"error {code}"
    submit(alice, subs.release_notebook(OD_AID))
    out["second"], seconds = _wait_for_attempt(h, tokens[alice], 2)
    out["latency"].append(seconds)
    submit(alice, subs.solved(OD_AID))
    start = time.monotonic()
    while time.monotonic() - start < 120:
        mine = _my(_grader(h, tokens[alice], "api/status")[1])
        if mine["skipped"]:
            break
        time.sleep(0.5)
    out["third"] = mine
    out["alice_page"] = _grader(h, tokens[alice], "")
    out["bob_status"] = _grader(h, tokens[bob], "api/status")
    out["bob_reads_alice"] = _grader(h, tokens[bob], f"feedback/{OD_AID}/1")
    out["alice_reads_hers"] = _grader(h, tokens[alice], f"feedback/{OD_AID}/1")
    out["anonymous"] = hubctl.http("GET", f"{h.url}/services/grader/api/status", None, None, timeout=60)
    _set_due_of(hub["course"], OD_AID, dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1))
    submit(bob, subs.solved(OD_AID))  # after the deadline
    out["bob_late"], _ = _wait_for_attempt(h, tokens[bob], 0)
    return out


def _set_due_of(course: Path, aid: str, when: dt.datetime) -> None:
    path = course / "syllabus.toml"
    marker = f'id = "{aid}"\n'
    path.write_text(path.read_text().replace(marker, marker + f'due = "{when.strftime("%Y-%m-%dT%H:%M:%SZ")}"\n'))


@pytest.mark.slow
def test_a_submission_is_graded_on_submit_and_its_feedback_fetched(ondemand):
    first = ondemand["first"]
    assert first["history"][0]["status"] == "graded" and first["history"][0]["score"] == 9.0, first
    assert re.search(r"Score: 9\.0 / 9\.0", ondemand["feedback"]), ondemand["feedback"][:500]
    print(f"\nsubmit -> graded (hub, one submission): {', '.join(f'{s:.1f} s' for s in ondemand['latency'])}",
          file=sys.stderr)


@pytest.mark.slow
def test_attempts_are_counted_and_the_last_one_is_refused(ondemand):
    second, third = ondemand["second"], ondemand["third"]
    assert second["used"] == 2 and [h["score"] for h in second["history"]] == [9.0, 0.0]
    assert third["skipped"] and "no attempts left: 2 of 2 used" in third["skipped"]
    assert len(third["history"]) == 2
    code, page = ondemand["alice_page"]
    assert code == 200 and "Attempts left" in str(page) and "9 / 9" in str(page)


@pytest.mark.slow
def test_only_the_student_sees_their_attempts_and_feedback(ondemand):
    code, bob = ondemand["bob_status"]
    assert code == 200 and bob["student"] == ondemand["hub"]["bob"]
    code, _ = ondemand["bob_reads_alice"]
    assert code == 404, "bob asks for attempt 1's feedback: he has none, and never sees alice's"
    code, page = ondemand["alice_reads_hers"]
    assert code == 200 and "Score" in str(page)
    code, body = ondemand["anonymous"]
    assert not (isinstance(body, dict) and "student" in body), "no login, no status: the hub's login page instead"


@pytest.mark.slow
def test_the_deadline_is_honoured_on_submit(ondemand):
    late = ondemand["bob_late"]
    assert late["skipped"].startswith("submitted after your deadline") and not late["history"]


# -- collection rules, without a hub (fast) ----------------------------------------------------------

def _inbound_entry(inbound: Path, student: str, when: dt.datetime, notebook: str = "{}", rnd: str = "r") -> Path:
    from autograder.exchange.instructor import nbgrader_time

    entry = inbound / f"{student}+{AID}+{nbgrader_time(when)}+{rnd}"
    entry.mkdir(parents=True)
    (entry / f"{AID}.ipynb").write_text(notebook)
    (entry / "timestamp.txt").write_text(nbgrader_time(when))
    (entry / "submission_secret.txt").write_text("s" * 128)
    return entry


@pytest.mark.parametrize("kind", ["folder link", "notebook link", "hard link"])
def test_collect_refuses_links_at_any_level(tmp_path, kind):
    from autograder.exchange import instructor as exchange
    from autograder.course import Course

    course = Course(copy_course(tmp_path))
    inbound = tmp_path / "ex" / COURSE_ID / "inbound"
    now = dt.datetime.now(dt.timezone.utc)
    secret_file = tmp_path / "elsewhere.ipynb"
    secret_file.write_text('{"stolen": true}')
    if kind == "folder link":
        inbound.mkdir(parents=True)
        (inbound / f"eve+{AID}+{exchange.nbgrader_time(now)}+r").symlink_to(tmp_path)
    else:
        entry = _inbound_entry(inbound, "eve", now)
        (entry / f"{AID}.ipynb").unlink()
        if kind == "notebook link":
            (entry / f"{AID}.ipynb").symlink_to(secret_file)
        else:
            os.link(secret_file, entry / f"{AID}.ipynb")
    taken, refused = exchange.collect(course, tmp_path / "ex", check_owner=False)
    assert taken == [] and len(refused) == 1
    assert ("link" in refused[0].reason) or ("not a folder" in refused[0].reason), refused[0].reason
    assert not (course.root / "inbound" / "eve").exists()


def test_collect_takes_each_students_latest_and_keeps_its_time(tmp_path):
    from autograder.exchange import instructor as exchange
    from autograder.course import Course

    course = Course(copy_course(tmp_path))
    inbound = tmp_path / "ex" / COURSE_ID / "inbound"
    now = dt.datetime.now(dt.timezone.utc)
    _inbound_entry(inbound, "amy", now - dt.timedelta(seconds=30), '{"v": 1}', "a")
    _inbound_entry(inbound, "amy", now - dt.timedelta(seconds=10), '{"v": 2}', "b")
    _inbound_entry(inbound, "ben", now - dt.timedelta(seconds=20), '{"v": 3}', "c")
    (inbound / "not-a-submission").mkdir()
    _inbound_entry(inbound, "ben", now, rnd="d").rename(inbound / f"ben+99_unknown+{exchange.nbgrader_time(now)}+d")
    taken, refused = exchange.collect(course, tmp_path / "ex", check_owner=False)
    got = {(c.student, c.assignment): c for c in taken}
    assert sorted(got) == [("amy", AID), ("ben", AID)]
    assert (got[("amy", AID)].folder / f"{AID}.ipynb").read_text() == '{"v": 2}' and got[("amy", AID)].earlier == 1
    assert got[("amy", AID)].timestamp == exchange.nbgrader_time(now - dt.timedelta(seconds=10))
    assert (got[("ben", AID)].folder / "timestamp.txt").read_text() == exchange.nbgrader_time(now - dt.timedelta(seconds=20))
    assert len(refused) == 2 and any("not an assignment of the syllabus" in r.reason for r in refused)
    assert any("not a submission" in r.reason for r in refused)


def test_a_submission_changed_after_its_recorded_time_counts_when_it_changed(tmp_path):
    """timestamp.txt is written by the student's process: an old time with files changed now
    (their inode change time, which a user cannot set back) counts as submitted now."""
    from autograder.exchange import instructor as exchange
    from autograder.course import Course

    course = Course(copy_course(tmp_path))
    inbound = tmp_path / "ex" / COURSE_ID / "inbound"
    claimed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)
    entry = _inbound_entry(inbound, "amy", claimed)
    old = claimed.timestamp()
    os.utime(entry / f"{AID}.ipynb", (old, old))  # mtime can be set back; ctime cannot
    (taken,), _ = exchange.collect(course, tmp_path / "ex", check_owner=False)
    recorded = exchange.utc_time(taken.timestamp)
    assert (recorded - claimed).total_seconds() > 2 * 86400
    assert taken.notes and "changed after the recorded submission time" in taken.notes[0]
