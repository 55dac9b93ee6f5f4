"""Grades back over LTI Advantage (autograder/lms/ags.py), against a real LTI 1.3 platform library.

``LmsPlatform`` hosts the endpoints of lti1p3platform (PyPI) on a free 127.0.0.1 port with the
standard library's HTTP server: the platform's JWKS, its OIDC authorization endpoint (signed
launches, used by tests/system/test_lti.py), the OAuth2 client-credentials token endpoint and the
AGS line item, score and result endpoints. Signing, the JWKS, checking the tool's client
assertion and the access tokens, and routing scores are the library's; the glue here only turns
HTTP requests into the library's request dicts and keeps its records (line items, scores) in
memory, applying AGS's rule that the newest timestamp wins.

These tests need no hub and no grading: ``ags.grades`` (the gradebook's scores) is replaced by a
dict. tests/system/test_lti.py grades real submissions and posts them.
"""
from __future__ import annotations

import contextlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

lti1p3 = pytest.importorskip("lti1p3platform")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from lti1p3platform import exceptions as lti_errors  # noqa: E402
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract  # noqa: E402
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract  # noqa: E402
from lti1p3platform.registration import Registration  # noqa: E402
from lti1p3platform.request import Request  # noqa: E402
from lti1p3platform.score import UpdateScoreStatus  # noqa: E402
from lti1p3platform.service_connector import AssignmentsGradesService  # noqa: E402

from autograder.course import Course, CourseError  # noqa: E402
from autograder.intake.roster import read_roster  # noqa: E402
from autograder.lms import ags  # noqa: E402
from tests.support.course import copy_course  # noqa: E402

CLIENT_ID = "dl-course-tool"
DEPLOYMENT_ID = "deployment-1"


def rsa_pem() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


class _Request(Request):
    def build_metadata(self, request: dict) -> dict:
        return request


class _Conf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs) -> None:
        self.registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs) -> Registration:
        return self.registration


class _Ags(AssignmentsGradesService):
    """The library's AGS service; its records are the platform's ``items`` and ``scores``."""

    def __init__(self, request, conf, platform: "LmsPlatform", lineitem_url=None):
        super().__init__(request, conf, platform.url + "/lineitems", lineitem_url)
        self.platform = platform

    def find_lineitems(self, page=1, limit=None, line_item_id=None, resource_link_id=None, resource_id=None,
                       tag=None):
        items = [i for i in self.platform.items.values()
                 if (resource_id is None or i.get("resourceId") == resource_id) and (tag is None or i.get("tag") == tag)]
        return {"content": items, "has_next": False, "next": None}

    def find_lineitem(self, line_item_id):
        if line_item_id not in self.platform.items:
            raise lti_errors.LineItemNotFoundException()
        return self.platform.items[line_item_id]

    def create_lineitem(self, creation_data):
        url = f"{self.platform.url}/lineitems/{len(self.platform.items) + 1}"
        item = {**creation_data, "id": url}
        self.platform.items[url] = item
        return item

    def update_lineitem(self, update_data):
        self.find_lineitem(update_data["id"]).update(update_data)
        return self.platform.items[update_data["id"]]

    def delete_lineitem(self, line_item_id):
        self.find_lineitem(line_item_id)
        del self.platform.items[line_item_id]

    def update_score(self, line_item_id, score):
        self.find_lineitem(line_item_id)
        self.platform.posts.append((line_item_id, dict(score)))
        kept = self.platform.scores.setdefault(line_item_id, {})
        old = kept.get(score["userId"])
        if old is not None and old["timestamp"] >= score["timestamp"]:
            return UpdateScoreStatus.OLD_TIMESTAMP   # AGS: a score older than the one kept is not applied
        kept[score["userId"]] = dict(score)
        return UpdateScoreStatus.SUCCESS if old else UpdateScoreStatus.CREATED

    def get_results(self, line_item_id, page=1, limit=None, user_id=None):
        self.find_lineitem(line_item_id)
        results = [{"id": f"{line_item_id}/results/{uid}", "userId": uid, "resultScore": s["scoreGiven"],
                    "resultMaximum": s["scoreMaximum"], "scoreOf": line_item_id}
                   for uid, s in self.platform.scores.get(line_item_id, {}).items()]
        return {"content": results, "has_next": False, "next": None}


class LmsPlatform:
    """A real LTI 1.3 platform (lti1p3platform) served on 127.0.0.1. ``launch_class`` makes launches
    (tests/system/test_lti.py); ``users`` maps a login hint to (roles, name, email)."""

    def __init__(self, port: int = 0):
        self.private_pem, self.public_pem = rsa_pem()
        self.items: dict[str, dict] = {}
        self.scores: dict[str, dict[str, dict]] = {}
        self.posts: list[tuple[str, dict]] = []
        self.token_requests: list[int] = []
        self.users: dict[str, tuple[list[str], str, str]] = {}
        self.launch_class = None
        self.tool_jwks: dict | None = None
        self.tool_launch_url = self.tool_login_url = ""
        self._server = None
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def registration(self, private_pem: str | None = None, deployment_id: str = DEPLOYMENT_ID,
                     client_id: str = CLIENT_ID, registration_class=Registration) -> Registration:
        private = private_pem or self.private_pem
        public = serialization.load_pem_private_key(private.encode(), None).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        reg = (registration_class().set_iss(self.url).set_client_id(client_id).set_deployment_id(deployment_id)
               .set_launch_url(self.tool_launch_url).set_oidc_login_url(self.tool_login_url)
               .set_platform_private_key(private).set_platform_public_key(public))
        if self.tool_jwks is not None:
            reg.set_tool_key_set(self.tool_jwks)
        return reg

    def conf(self, **kwargs) -> _Conf:
        return _Conf(registration=self.registration(**kwargs))

    # -- serving ---------------------------------------------------------------------------------
    def start(self) -> None:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _request(self) -> dict:
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                form = dict(urllib.parse.parse_qsl(raw.decode())) if "form" in ctype else {}
                return {"method": self.command, "form_data": form, "get_data": dict(urllib.parse.parse_qsl(parts.query)),
                        "headers": {k: v for k, v in self.headers.items()}, "content_type": ctype, "path": parts.path,
                        "json": json.loads(raw) if raw and "json" in ctype else None}

            def _send(self, code: int, body, ctype: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._route()

            def do_POST(self):
                self._route()

            def do_PUT(self):
                self._route()

            def _route(self):
                req = self._request()
                path = req["path"]
                conf = platform.conf()
                conf.get_registration()
                if path == "/jwks":
                    return self._send(200, conf.get_jwks())
                if path == "/authorize":
                    return self._send(*platform.authorize(req))
                if path == "/token":
                    try:
                        answer = conf.get_access_token(req["form_data"])
                    except (lti_errors.LtiException, lti_errors.MissingRequiredClaim, lti_errors.UnsupportedGrantType,
                            Exception) as e:  # the library raises PyJWT's errors too (a bad signature)
                        platform.token_requests.append(401)
                        return self._send(401, {"error": "invalid_client", "error_description": f"{type(e).__name__}: {e}"})
                    platform.token_requests.append(200)
                    return self._send(200, answer)
                if path == "/lineitems":
                    service = _Ags(_Request(req), conf, platform)
                    call = service.handle_get_lineitems if req["method"] == "GET" else service.handle_create_lineitem
                    return self._answer(service.handle_resp(call))
                parts = path.split("/")
                if len(parts) >= 3 and parts[1] == "lineitems":
                    item = f"{platform.url}/lineitems/{parts[2]}"
                    service = _Ags(_Request(req), conf, platform, item)
                    if len(parts) == 3:
                        call = service.handle_get_lineitem if req["method"] == "GET" else service.handle_update_lineitem
                    elif parts[3] == "scores":
                        call = service.handle_update_score
                    elif parts[3] == "results":
                        call = service.handle_get_results
                    else:
                        return self._send(404, {"error": "not found"})
                    return self._answer(service.handle_resp(call, line_item_id=item))
                return self._send(404, {"error": "not found"})

            def _answer(self, resp) -> None:
                if 200 <= resp.code < 300:
                    data = resp.result["content"] if isinstance(resp.result, dict) and "content" in resp.result \
                        else resp.result
                    return self._send(resp.code, data if data is not None else {}, resp.media_type)
                return self._send(resp.code, {"error": resp.message})

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def authorize(self, req: dict) -> tuple[int, str, str]:
        """The OIDC authentication request from the tool: a signed launch, as an auto-posting form."""
        if self.launch_class is None:
            return 404, "no launches on this platform", "text/plain"
        launch = self.launch_class(_Request(req), self)
        try:
            data = launch.lti_launch()
        except lti_errors.PreflightRequestValidationException as e:
            return 400, f"bad authentication request: {e!r}", "text/plain"
        fields = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in data.items() if k != "launch_url")
        return 200, f'<form method="post" action="{data["launch_url"]}">{fields}</form>', "text/html"


class PlainLaunch(LTIAdvantageMessageLaunchAbstract):
    """The library's resource-link launch of the user named by the login hint."""

    def __init__(self, request, platform: LmsPlatform):
        self.platform = platform
        super().__init__(request, self.make_conf())

    def make_conf(self) -> _Conf:
        return self.platform.conf()

    def render_launch_form(self, launch_data, **kwargs):
        return launch_data

    def prepare_launch(self, preflight_response) -> None:
        hint = preflight_response["login_hint"]
        roles, name, email = self.platform.users.get(hint, ([], "", ""))
        self.set_user_data(hint, roles, full_name=name, email_address=email, preferred_username=name)
        self.set_resource_link_claim("link-1", title="Deep learning")
        self.set_launch_context_claim("course-1", context_title="Deep learning", context_label="DL")
        self.set_ags(self.platform.url + "/lineitems")


# -- the tests ----------------------------------------------------------------------------------------

@pytest.fixture()
def platform():
    p = LmsPlatform()
    yield p
    p.stop()


@pytest.fixture()
def course(tmp_path):
    course = Course(copy_course(tmp_path))
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name,lti_user_id\nalice,Alice A,user-Alice\nbob,Bob B,user-bob\ncarol,Carol C,\n")
    return course, read_roster(roster)


AID = "00_pytorch_basics"


def _setup(platform: LmsPlatform, course: Course, monkeypatch, scores: dict[str, float]) -> ags.Client:
    key = ags.tool_key(course)
    platform.tool_jwks = ags.jwks(key)
    monkeypatch.setattr(ags, "grades", lambda c, aid: dict(scores))
    return ags.Client(ags.Platform(platform.url, CLIENT_ID, platform.url + "/token", platform.url + "/lineitems"), key)


def _kept(platform: LmsPlatform) -> dict[str, float]:
    (item,) = platform.scores
    return {uid: s["scoreGiven"] for uid, s in platform.scores[item].items()}


def test_the_tool_key_is_made_once_private_and_its_jwks_verifies_a_signature(tmp_path):
    import jwt

    course = Course(copy_course(tmp_path))
    key = ags.tool_key(course)
    path = ags.key_path(course)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    again = ags.tool_key(course)
    assert ags.jwks(again) == ags.jwks(key)            # the same key, not a new one
    jwk = ags.jwks(key)["keys"][0]
    assert set(jwk) == {"kty", "n", "e", "alg", "use", "kid"} and jwk["alg"] == "RS256"
    token = ags.sign_jwt(key, {"iss": "me", "aud": "you"})
    public = jwt.PyJWK(jwk).key
    assert jwt.decode(token, public, algorithms=["RS256"], audience="you")["iss"] == "me"
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    path.chmod(0o644)
    with pytest.raises(CourseError, match="readable by other users"):
        ags.tool_key(course)


def test_grades_are_posted_to_one_line_item_and_read_back(platform, course, monkeypatch):
    course, roster = course
    client = _setup(platform, course, monkeypatch, {"alice": 9.0, "bob": 4.5, "carol": 7.0})
    done = ags.send(course, AID, roster, client)
    assert sorted(done.sent) == ["alice", "bob"] and done.no_id == ["carol (no lti_user_id)"] and not done.ok
    (item,) = platform.items.values()
    title = course.assignment(AID).title
    assert item["resourceId"] == AID and item["label"] == title and item["scoreMaximum"] == 9
    assert _kept(platform) == {"user-Alice": 9.0, "user-bob": 4.5}   # the LTI ids, exactly as the roster has them
    (_, score), *_ = platform.posts
    assert score["activityProgress"] == "Completed" and score["gradingProgress"] == "FullyGraded"
    assert score["scoreMaximum"] == 9 and score["timestamp"].endswith("+00:00")
    results = {r["userId"]: r["resultScore"] for r in client.results(item["id"])}
    assert results == {"user-Alice": 9.0, "user-bob": 4.5}
    record = ags.read_record(course, AID)
    assert record["students"]["carol"]["status"] == ags.NO_ID
    assert ags.record_path(course, AID).stat().st_mode & 0o777 == 0o600


def test_a_regrade_changes_only_what_changed(platform, course, monkeypatch):
    course, roster = course
    client = _setup(platform, course, monkeypatch, {"alice": 9.0, "bob": 4.5})
    ags.send(course, AID, roster, client)
    posts = len(platform.posts)
    same = ags.send(course, AID, roster, ags.Client(client.platform, client.key))
    assert same.sent == [] and sorted(same.unchanged) == ["alice", "bob"] and len(platform.posts) == posts
    monkeypatch.setattr(ags, "grades", lambda c, aid: {"alice": 9.0, "bob": 6.0})
    changed = ags.send(course, AID, roster, ags.Client(client.platform, client.key))
    assert changed.sent == ["bob"] and changed.unchanged == ["alice"]
    assert _kept(platform) == {"user-Alice": 9.0, "user-bob": 6.0}      # the newer score replaced the old one
    assert len(platform.items) == 1                                       # the same line item, found again


def test_a_platform_that_is_down_loses_no_grade_and_retry_sends_them(platform, course, monkeypatch):
    course, roster = course
    client = _setup(platform, course, monkeypatch, {"alice": 9.0, "bob": 4.5})
    platform.stop()
    down = ags.send(course, AID, roster, client)
    assert sorted(down.failed) == ["alice", "bob"] and "could not be reached" in down.failed["alice"]
    record = ags.read_record(course, AID)["students"]
    assert {s: e["status"] for s, e in record.items()} == {"alice": ags.FAILED, "bob": ags.FAILED}
    platform.start()                                                       # back, on the same port
    back = ags.send(course, AID, roster, ags.Client(client.platform, client.key), retry=True)
    assert sorted(back.sent) == ["alice", "bob"] and back.ok
    assert _kept(platform) == {"user-Alice": 9.0, "user-bob": 4.5}
    nothing = ags.send(course, AID, roster, ags.Client(client.platform, client.key), retry=True)
    assert nothing.sent == [] and nothing.failed == {}


def test_a_token_refused_is_a_clear_error_and_recorded(platform, course, monkeypatch):
    course, roster = course
    client = _setup(platform, course, monkeypatch, {"alice": 9.0})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    platform.tool_jwks = ags.jwks(other)                   # the LMS knows another key than the tool's
    done = ags.send(course, AID, roster, client)
    assert "refused the tool's token request" in done.failed["alice"] and "HTTP 401" in done.failed["alice"]
    assert platform.token_requests == [401] and platform.posts == []


def test_settings_come_from_the_environment():
    env = {"LTI13_ISSUER": "https://lms.example", "LTI13_CLIENT_ID": "abc", "LTI13_TOKEN_URL": "https://lms.example/t"}
    with pytest.raises(CourseError, match="LTI13_LINEITEMS_URL"):
        ags.Platform.from_env(env)
    p = ags.Platform.from_env({**env, "LTI13_LINEITEMS_URL": "https://lms.example/mod/lti/services.php/2/lineitems?type_id=1"})
    assert p.client_id == "abc" and p.audience == ""
    assert ags._sub_path("https://lms.example/x/lineitems/7/lineitem?type_id=1", "scores") == \
        "https://lms.example/x/lineitems/7/lineitem/scores?type_id=1"


def test_the_roster_lti_id_is_exact(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("student,lti_user_id\nalice,AbC\nbob,abc\n")
    roster = read_roster(path)
    assert roster.match("lti_user_id", "AbC")[0].student == "alice"
    assert roster.match("lti_user_id", "abc")[0].student == "bob"
    assert roster.match("lti_user_id", "ABC") == (None, None)
    path.write_text("student,lti_user_id\nalice,x\nbob,x\n")
    with pytest.raises(CourseError, match="same lti_user_id"):
        read_roster(path)
    path.write_text("student,lti_user_id\nalice,has space\n")
    with pytest.raises(CourseError, match="not an LTI user id"):
        read_roster(path)


# -- the hub's side, without a hub (deploy/jupyterhub/lti13_config.py) --------------------------------

def _authenticator(tmp_path, monkeypatch, **env):
    pytest.importorskip("ltiauthenticator")
    import sys

    from traitlets.config import Config

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy" / "jupyterhub"))
    import lti13_config

    roster = tmp_path / "roster.csv"
    roster.write_text("student,lti_user_id\nalice,Sub-A\nBob,sub-b\nteach,sub-x\n")
    values = {"LTI13_ISSUER": "https://lms.example", "LTI13_CLIENT_ID": "c1, c2", "LTI13_DEPLOYMENT_ID": "d1",
              "LTI13_AUTHORIZE_URL": "https://lms.example/auth", "LTI13_JWKS_URL": "https://lms.example/jwks",
              "LTI13_ROSTER": str(roster), "LTI13_INSTRUCTOR_IDS": "sub-t", **env}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    c = Config()
    lti13_config.configure_lti13(c, state=tmp_path, instructor="teach", students_group="dl-course-students")
    return lti13_config, c["JupyterHub"]["authenticator_class"](config=c)


def test_the_hub_maps_the_launch_sub_by_the_roster_only(tmp_path, monkeypatch):
    import asyncio

    module, auth = _authenticator(tmp_path, monkeypatch)
    assert auth.client_id == {"c1", "c2"} and auth.deployment_ids == {"d1"} and auth.issuer == "https://lms.example"
    monkeypatch.setattr(auth, "system_user", lambda name: True)     # no useradd here (tests/system/test_lti.py)
    claim = module.DEPLOYMENT_CLAIM

    def login(**token):
        return asyncio.run(auth.authenticate(None, {claim: "d1", **token}))

    # the name, e-mail and username the LMS sends decide nothing; the sub (exact case) does
    assert login(sub="Sub-A", name="teach", email="teach@x", preferred_username="teach") == \
        {"name": "alice", "auth_state": None}
    assert login(sub="sub-a") is None
    assert login(sub="sub-t")["name"] == "teach"                    # LTI13_INSTRUCTOR_IDS
    assert login(sub="sub-x") is None                               # a roster row giving the instructor's id
    assert login(sub="sub-b") is None                               # "Bob": not a system user name (upper case)
    assert login(sub="Sub-A", **{claim: "d2"}) is None              # another deployment
    assert auth.check_allowed("alice", {"name": "alice"}) and not auth.check_allowed("alice", None)


def test_the_hub_refuses_to_start_without_its_settings(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="LTI13_DEPLOYMENT_ID"):
        _authenticator(tmp_path, monkeypatch, LTI13_DEPLOYMENT_ID="")
