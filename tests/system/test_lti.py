"""LTI 1.3 end to end, against a real platform implementation (lti1p3platform, served on 127.0.0.1
by tests/unit/test_ags.py's ``LmsPlatform``).

Launch: the real hub (deploy/jupyterhub, started by hubctl as in test_hub.py) with
``HUB_AUTHENTICATOR=lti13`` (jupyterhub-ltiauthenticator's LTI13Authenticator, configured by
lti13_config.py). The platform starts the OIDC login for a student and for the instructor (the
library's ``OIDCLogin``), answers the hub's authentication request with a launch it signs (the
library's ``MessageLaunch``), and the test posts that form back to the hub as a browser would. The
student's LMS profile claims the instructor's name, e-mail, username and role: the hub name is
still the roster's course id, the system user is made by the hub, and the server runs as it. A
launch signed by another key (with the platform's key id), an expired one, one for another
audience, with another nonce, from another deployment, of a user not in the roster, of a roster
row naming a system account, and a replayed id_token are refused.

Grades back: three real submissions of 00_pytorch_basics are graded by the CLI (one late); the
tool's key comes from ``autograder lti keys`` and is registered with the platform;
``autograder lti send`` posts the grades; the platform's records are read back and compared with
the grades export. A wrong key registered at the platform, then the platform stopped: clear
messages, exit status 1, every grade recorded as failed; ``--retry`` after it is back posts them;
sending again changes nothing; a regrade that changes one score posts that one only.
"""
from __future__ import annotations

import csv
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

import pytest

pytestmark = pytest.mark.slow

requests = pytest.importorskip("requests")
pytest.importorskip("lti1p3platform")
pytest.importorskip("ltiauthenticator")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from lti1p3platform.oidc_login import OIDCLoginAbstract  # noqa: E402
from lti1p3platform.registration import Registration  # noqa: E402

from tests.support import submissions as subs  # noqa: E402
from tests.support.course import REPO, copy_course  # noqa: E402
from tests.system.test_hub import Users, _why_not  # noqa: E402
from tests.unit.test_ags import CLIENT_ID, DEPLOYMENT_ID, LmsPlatform, PlainLaunch, rsa_pem  # noqa: E402

sys.path.insert(0, str(REPO / "deploy" / "jupyterhub"))
import hubctl  # noqa: E402

INSTRUCTOR_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
LOGIN_COOKIE = "jupyterhub-hub-login"


class _Login(OIDCLoginAbstract):
    """The library's login initiation; the redirect is the URL the browser is sent to."""

    def set_lti_message_hint(self, **kwargs) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> str:
        return url


class _OtherKeyLaunch(PlainLaunch):
    """Signed by a key the platform does not publish, under the key id it does publish."""

    def make_conf(self):
        real_kid = Registration.get_jwk(self.platform.private_pem)["kid"]

        class SameKid(Registration):
            def get_kid(self):
                return real_kid

        return self.platform.conf(private_pem=self.platform.other_pem, registration_class=SameKid)


class _ExpiredLaunch(PlainLaunch):
    def __init__(self, request, platform):
        super().__init__(request, platform)
        self.set_id_token_expiration(-3600)        # exp an hour before iat


class _OtherAudienceLaunch(PlainLaunch):
    def get_launch_message(self, include_extra_claims: bool = True):
        return {**super().get_launch_message(include_extra_claims), "aud": "another-tool", "azp": "another-tool"}


class _OtherNonceLaunch(PlainLaunch):
    def get_launch_data(self):
        message, state = super().get_launch_data()
        return {**message, "nonce": "0" * 64}, state


class _OtherDeploymentLaunch(PlainLaunch):
    def make_conf(self):
        return self.platform.conf(deployment_id="another-deployment")


def _server_uids(name: str) -> set[int]:
    """The uids of the processes of ``name``'s single-user server (found by JUPYTERHUB_USER)."""
    uids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"JUPYTERHUB_USER={name}".encode() not in environ:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        uids.add(int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)))
    return uids


@pytest.fixture(scope="module")
def lti_hub():
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="lti-hub-test-"))
    base.chmod(0o755)
    (base / "home").mkdir()
    tag = secrets.token_hex(3)
    users = Users(base, tag)
    platform = LmsPlatform()
    platform.other_pem, _ = rsa_pem()
    try:
        instructor, _ = users.add("inst", student=False)
        alice, bob = f"lta{tag}", f"ltb{tag}"      # made by the hub on their first login
        users.made += [alice, bob]
        course = copy_course(base)
        inst = pwd.getpwnam(instructor)
        for path in [base / "repo", *(base / "repo").rglob("*")]:
            os.lchown(path, inst.pw_uid, inst.pw_gid)
        (base / "repo").chmod(0o700)
        roster = base / "roster.csv"
        roster.write_text(f"student,name,lti_user_id\n{alice},Alice,lms-Alice-7f3a\n{bob},Bob,lms-bob-11\n"
                          f"daemon,Daemon,lms-daemon-1\n")
        roster.chmod(0o600)
        state = base / "state"
        state.mkdir()
        port = hubctl.free_port()
        platform.tool_launch_url = f"http://127.0.0.1:{port}/hub/"
        platform.tool_login_url = f"http://127.0.0.1:{port}/hub/lti13/oauth_login"
        platform.users = {
            # alice's LMS profile claims the instructor's name, e-mail, username and role
            "lms-Alice-7f3a": ([INSTRUCTOR_ROLE], instructor, f"{instructor}@uni.example"),
            "lms-bob-11": ([LEARNER_ROLE], "Bob", "bob@uni.example"),
            "lms-teacher-1": ([INSTRUCTOR_ROLE], "The Teacher", "teacher@uni.example"),
            "lms-stranger-9": ([LEARNER_ROLE], "Stranger", "stranger@uni.example"),
            "lms-daemon-1": ([LEARNER_ROLE], "Daemon", "daemon@uni.example"),
        }
        env = {"LTI13_ISSUER": platform.url, "LTI13_CLIENT_ID": CLIENT_ID, "LTI13_DEPLOYMENT_ID": DEPLOYMENT_ID,
               "LTI13_AUTHORIZE_URL": platform.url + "/authorize", "LTI13_JWKS_URL": platform.url + "/jwks",
               "LTI13_ROSTER": str(roster), "LTI13_INSTRUCTOR_IDS": "lms-teacher-1",
               "LTI13_HOME_BASE": str(base / "home"), "HUB_CULL_IDLE_S": "3600"}
        h = hubctl.Hub(state=state, port=port, instructor=instructor, students_group=users.group,
                       course_root=course, exchange=base / "exchange", course_id="dl-course", authenticator="lti13",
                       extra_env=env)
        seconds = hubctl.start(h)
        print(f"\nhub start-up: {seconds:.1f} s", file=sys.stderr)
        try:
            yield {"hub": h, "platform": platform, "instructor": instructor, "alice": alice, "bob": bob,
                   "group": users.group}
        finally:
            hubctl.stop(h)
    finally:
        platform.stop()
        users.remove()
        shutil.rmtree(base, ignore_errors=True)


def _launch(hub: dict, hint: str, launch_class=PlainLaunch):
    """The platform starts a login of ``hint``; a fresh browser follows it. Returns (callback
    response, session, the form fields posted)."""
    platform: LmsPlatform = hub["platform"]
    platform.launch_class = launch_class
    browser = requests.Session()
    login = _Login(None, platform.conf())
    login.set_lti_message_hint(hint="link-1")
    r = browser.get(login.initiate_login(hint), allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:500])
    authorize = r.headers["Location"]
    assert authorize.startswith(platform.url + "/authorize?"), authorize
    r = browser.get(authorize, allow_redirects=False, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    action = re.search(r'action="([^"]+)"', r.text).group(1)
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', r.text))
    assert action == f"{hub['hub'].url}/hub/lti13/oauth_callback" and set(fields) == {"id_token", "state"}
    return browser.post(action, data=fields, allow_redirects=False, timeout=60), browser, fields


def _users(h: hubctl.Hub) -> set[str]:
    code, listing = h.api("GET", "/users")
    assert code == 200, listing
    return {u["name"] for u in listing}


def _wait_ready(h: hubctl.Hub, name: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, model = h.api("GET", f"/users/{name}")
        if model["servers"].get("", {}).get("ready"):
            return
        time.sleep(0.5)
    raise AssertionError(f"{name}'s server did not start:\n{hubctl._tail(h.log_file, 40)}")


def test_a_student_launches_from_the_lms_as_the_roster_says(lti_hub):
    h: hubctl.Hub = lti_hub["hub"]
    alice, instructor = lti_hub["alice"], lti_hub["instructor"]
    with pytest.raises(KeyError):
        pwd.getpwnam(alice)                                    # no system user before the first launch
    r, browser, _ = _launch(lti_hub, "lms-Alice-7f3a")
    assert r.status_code == 302 and LOGIN_COOKIE in browser.cookies, (r.status_code, r.text[:500])
    assert instructor not in _users(h) or not h.api("GET", f"/users/{instructor}")[1]["servers"]
    _, model = h.api("GET", f"/users/{alice}")
    assert model["name"] == alice and model["admin"] is False  # the course id, not the name, e-mail or role claimed
    entry = pwd.getpwnam(alice)                                # made by the hub: private home, the students' group
    assert Path(entry.pw_dir).stat().st_mode & 0o777 == 0o700
    assert alice in grp.getgrnam(lti_hub["group"]).gr_mem
    browser.get(h.url + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"],
                timeout=90)                                    # /hub/ -> the spawn, as a browser follows it
    _wait_ready(h, alice)
    assert _server_uids(alice) == {entry.pw_uid}


def test_the_instructor_launches_as_the_hub_admin(lti_hub):
    h: hubctl.Hub = lti_hub["hub"]
    instructor = lti_hub["instructor"]
    r, browser, _ = _launch(lti_hub, "lms-teacher-1")
    assert r.status_code == 302 and LOGIN_COOKIE in browser.cookies, (r.status_code, r.text[:500])
    _, model = h.api("GET", f"/users/{instructor}")
    assert model["admin"] is True
    code, _ = h.api("POST", f"/users/{instructor}/server")
    assert code in (201, 202), code
    _wait_ready(h, instructor)
    assert _server_uids(instructor) == {pwd.getpwnam(instructor).pw_uid}


@pytest.mark.parametrize("hint, launch_class, expected, why", [
    ("lms-bob-11", _OtherKeyLaunch, 400, "Signature verification failed"),   # not the platform's key
    ("lms-bob-11", _ExpiredLaunch, 400, "Signature has expired"),
    ("lms-bob-11", _OtherAudienceLaunch, 401, "Audience doesn&#39;t match"),
    ("lms-bob-11", _OtherNonceLaunch, 400, "OAuth nonce mismatch"),
    ("lms-bob-11", _OtherDeploymentLaunch, 403, "log: deployment id 'another-deployment' is not this course's"),
    ("lms-stranger-9", PlainLaunch, 403, "log: user id 'lms-stranger-9' is not in the roster"),  # signed, unknown
    ("lms-daemon-1", PlainLaunch, 403, "log: daemon is a system user outside the group"),        # a system account
], ids=["other-key", "expired", "other-audience", "other-nonce", "other-deployment", "not-in-roster", "system-account"])
def test_a_launch_the_hub_must_not_believe_is_refused(lti_hub, hint, launch_class, expected, why):
    h: hubctl.Hub = lti_hub["hub"]
    before = _users(h)
    r, browser, _ = _launch(lti_hub, hint, launch_class)
    assert r.status_code == expected, (r.status_code, r.text[-800:])
    if why.startswith("log: "):                        # the authenticator's reason is in the hub's log
        assert why[5:] in h.log_file.read_text(errors="replace"), hubctl._tail(h.log_file, 20)
    else:
        assert why in r.text
    assert LOGIN_COOKIE not in browser.cookies
    assert _users(h) == before
    assert lti_hub["bob"] not in before | _users(h)
    assert "daemon" not in grp.getgrnam(lti_hub["group"]).gr_mem      # never added to the students' group


def test_a_replayed_id_token_is_refused(lti_hub):
    """The signed launch of one browser, posted by another (no state cookie of its own)."""
    h: hubctl.Hub = lti_hub["hub"]
    _, _, fields = _launch(lti_hub, "lms-teacher-1")
    thief = requests.Session()
    r = thief.post(f"{h.url}/hub/lti13/oauth_callback", data=fields, allow_redirects=False, timeout=30)
    assert r.status_code == 400 and LOGIN_COOKIE not in thief.cookies


# -- grades back -------------------------------------------------------------------------------------

AID = "00_pytorch_basics"


def _cli(course: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "--course", str(course), *args], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})


def _grade(course: Path, folder: Path, *extra: str) -> None:
    r = _cli(course, "grade", str(folder), "--workers", "1", *extra)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]


def _exported(course: Path) -> dict[str, float]:
    r = _cli(course, "export", "--to", str(course / "exports" / "grades.csv"))
    assert r.returncode == 0, r.stderr
    with open(course / "exports" / "grades.csv") as f:
        return {row["student"]: float(row["score"]) for row in csv.DictReader(f) if row["assignment"] == AID}


@pytest.fixture()
def graded(tmp_path):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is missing (apt-get install bubblewrap)")
    course = copy_course(tmp_path)
    due = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)
    syllabus = course / "syllabus.toml"
    marker = f'id = "{AID}"\n'
    syllabus.write_text(syllabus.read_text().replace(marker, marker + 'due = "2026-11-01T12:00:00Z"\n'))
    folder = tmp_path / "submissions"
    subs.write(folder, "alice", AID, subs.solved(AID))
    subs.write(folder, "bob", AID, subs.release_notebook(AID))                   # nothing done
    subs.write(folder, "carol", AID, subs.solved(AID))
    (folder / "carol" / AID / "timestamp.txt").write_text(
        (due + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f UTC"))     # an hour late
    _grade(course, folder)
    roster = tmp_path / "roster.csv"
    roster.write_text("student,lti_user_id\nalice,lms-Alice-7f3a\nbob,lms-bob-11\ncarol,lms-carol-3\n")
    return course, folder, roster


def test_grades_go_back_to_the_lms_through_outages_and_regrades(graded):
    course, folder, roster = graded
    platform = LmsPlatform()
    try:
        env = {"LTI13_ISSUER": platform.url, "LTI13_CLIENT_ID": CLIENT_ID, "LTI13_TOKEN_URL": platform.url + "/token",
               "LTI13_LINEITEMS_URL": platform.url + "/lineitems", "LTI13_ROSTER": str(roster)}
        keys = _cli(course, "lti", "keys")
        assert keys.returncode == 0, keys.stderr
        assert "/hub/lti13/oauth_login" in keys.stderr and "/hub/lti13/oauth_callback" in keys.stderr
        jwks = json.loads(keys.stdout)
        expected = _exported(course)
        assert expected["alice"] == 9 and expected["bob"] == 0 and 0 < expected["carol"] < 9   # carol: late penalty

        # the LMS knows another key: the token request is refused, nothing is posted, all recorded
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        from autograder.lms import ags
        platform.tool_jwks = ags.jwks(other)
        r = _cli(course, "lti", "send", AID, env=env)
        assert r.returncode == 1 and "refused the tool's token request (HTTP 401" in r.stderr, r.stderr
        assert platform.posts == [] and platform.items == {}

        # the right key, but the LMS is down
        platform.tool_jwks = jwks
        platform.stop()
        r = _cli(course, "lti", "send", AID, env=env)
        assert r.returncode == 1 and "could not be reached" in r.stderr and "--retry" in r.stderr, r.stderr
        record = json.loads((course / "lti" / "ags" / f"{AID}.json").read_text())
        assert {s: e["status"] for s, e in record["students"].items()} == dict.fromkeys(expected, "failed")

        platform.start()                                                 # back
        r = _cli(course, "lti", "send", AID, "--retry", env=env)
        assert r.returncode == 0 and "3 score(s) posted" in r.stdout, r.stdout + r.stderr
        (item,) = platform.items.values()
        assert item["resourceId"] == AID and item["scoreMaximum"] == 9
        users = {"lms-Alice-7f3a": "alice", "lms-bob-11": "bob", "lms-carol-3": "carol"}
        kept = {users[u]: s["scoreGiven"] for u, s in platform.scores[item["id"]].items()}
        assert kept == expected                                           # what the grades export says
        assert {s["gradingProgress"] for s in platform.scores[item["id"]].values()} == {"FullyGraded"}

        posts = len(platform.posts)
        r = _cli(course, "lti", "send", AID, env=env)
        assert r.returncode == 0 and "0 score(s) posted, 3 unchanged" in r.stdout, r.stdout + r.stderr
        assert len(platform.posts) == posts

        # bob resubmits his work done; the regrade changes his score only
        subs.write(folder, "bob", AID, subs.solved(AID))
        _grade(course, folder)
        after = _exported(course)
        assert after["bob"] == 9 and after["alice"] == expected["alice"] and after["carol"] == expected["carol"]
        r = _cli(course, "lti", "send", AID, env=env)
        assert r.returncode == 0 and "1 score(s) posted, 2 unchanged" in r.stdout, r.stdout + r.stderr
        assert [p[1]["userId"] for p in platform.posts[posts:]] == ["lms-bob-11"]
        kept = {users[u]: s["scoreGiven"] for u, s in platform.scores[item["id"]].items()}
        assert kept == after and len(platform.items) == 1
    finally:
        platform.stop()
