"""Grades back to the LMS over LTI Advantage (LTI 1.3 Assignment and Grade Services 2.0).

    autograder lti keys                      the tool's public JWKS and the values to register in the LMS
    autograder lti send ASSIGNMENT [--retry] post each student's score to the assignment's line item

The tool (this course) authenticates to the LMS with OAuth2 client credentials: a JWT client
assertion signed with the tool's private key (RS256), made once by ``tool_key`` in
``course/lti/tool-key.pem`` (0600, its folder 0700; never leaves the course folder). The LMS knows
the matching public key from the JWKS that ``autograder lti keys`` prints (registered as a key set or
pasted into the LMS's tool settings).

For an assignment, ``send`` finds the line item whose ``resourceId`` is the assignment id (or creates
it: ``label`` = the syllabus title, ``scoreMaximum`` = its points) and posts one score per graded
student: ``scoreGiven`` is the grades export's score (the late penalty applied), ``userId`` the
student's LTI user id (the launch's ``sub``, the roster's ``lti_user_id`` column: never guessed from a
name), ``activityProgress`` Completed, ``gradingProgress`` FullyGraded.

Every student's outcome is recorded in ``course/lti/ags/<assignment>.json`` (written atomically
after each post): ``sent`` (with the score and the line item), ``failed`` (with why: the LMS was
down, refused the token, refused the score) or ``no LTI user id``. Running ``send`` again posts what
changed and what failed; an unchanged score already sent is not posted again (AGS keeps the latest
score, so a regrade that changes nothing changes nothing in the LMS, and a changed score replaces
the old one). ``--retry`` posts only the failed ones. No grade is lost: a failure is a record and an
exit status of 1, never a silent skip.

Settings (environment variables, the hub's names, or ``Platform`` fields): LTI13_ISSUER,
LTI13_CLIENT_ID, LTI13_TOKEN_URL, LTI13_LINEITEMS_URL (the course's line items endpoint, the
``lineitems`` of the launch's AGS claim), optional LTI13_TOKEN_AUDIENCE (default: the token URL).
Only the standard library and ``cryptography`` are used (no JWT package on the instructor's side).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
from http.client import HTTPException
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from autograder.course import Course, CourseError
from autograder.files import read_regular, readable_json, write_atomic
from autograder.intake.roster import Roster
from autograder.results import export
from autograder.store import gradebook as nbgrader_api
from autograder.store import outcomes

SCOPES = ("https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
          "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
          "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
          "https://purl.imsglobal.org/spec/lti-ags/scope/score")
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v2.score+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SENT, FAILED, NO_ID = "sent", "failed", "no LTI user id"
SENDABLE = {outcomes.GRADED, outcomes.NOT_GRADED}   # as the LMS exports: no submission, no grade
MAX_ANSWER = 4 * 2**20      # bytes read of one LMS answer
MAX_PAGES = 100             # line item pages followed
ENV = {"issuer": "LTI13_ISSUER", "client_id": "LTI13_CLIENT_ID", "token_url": "LTI13_TOKEN_URL",
       "lineitems_url": "LTI13_LINEITEMS_URL"}


class AgsError(Exception):
    """The LMS could not be reached or refused a request: one line saying which and why."""


# -- the tool's key --------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(n: int) -> str:
    return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def key_path(course: Course) -> Path:
    return course.root / "lti" / "tool-key.pem"


def tool_key(course: Course, create: bool = True):
    """The tool's RSA private key (``cryptography``), made once (2048 bits) and kept 0600 in a 0700
    folder of the course. A key file that is a link or readable by others is refused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = key_path(course)
    if not path.exists() and not path.is_symlink():
        if not create:
            raise CourseError(f"the tool has no key yet ({path}): run `autograder lti keys` and register it")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        write_atomic(path, pem, private=True)
        os.chmod(path.parent, 0o700)
        return key
    try:
        st = path.lstat()
        if st.st_mode & 0o077:
            raise CourseError(f"the tool's private key {path} is readable by other users: chmod 600 {path}")
        pem = read_regular(path, 64 * 1024)
        return serialization.load_pem_private_key(pem, password=None)
    except OSError as e:
        raise CourseError(f"cannot read the tool's key {path}: {e.strerror or e}") from None
    except ValueError:
        raise CourseError(f"the tool's key {path} is not a PEM private key") from None


def public_jwk(key) -> dict:
    """The public half as a JWK (RS256, ``kid`` = its RFC 7638 thumbprint, so it never changes)."""
    numbers = key.public_key().public_numbers()
    jwk = {"e": _int_b64(numbers.e), "kty": "RSA", "n": _int_b64(numbers.n)}
    kid = _b64(hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest())
    return {**jwk, "alg": "RS256", "use": "sig", "kid": kid}


def jwks(key) -> dict:
    return {"keys": [public_jwk(key)]}


def public_pem(key) -> str:
    """The public key as PEM (Moodle's "Public key type: RSA key")."""
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def sign_jwt(key, claims: dict) -> str:
    """A compact JWS (RS256: RSASSA-PKCS1-v1_5 with SHA-256) of ``claims``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    header = {"alg": "RS256", "kid": public_jwk(key)["kid"], "typ": "JWT"}
    signing_input = ".".join(_b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


# -- the platform ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Platform:
    """The LMS as the tool sees it (values of its LTI 1.3 registration)."""

    issuer: str
    client_id: str
    token_url: str
    lineitems_url: str
    audience: str = ""           # of the client assertion; default the token URL (Canvas, Moodle)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: str | None) -> "Platform":
        env = os.environ if env is None else env
        values = {k: (given.get(k) or env.get(var, "")).strip() for k, var in ENV.items()}
        missing = [ENV[k] for k, v in values.items() if not v]
        if missing:
            raise CourseError(f"set {', '.join(missing)} (the LMS's LTI 1.3 registration; README "
                              "'LTI 1.3: Moodle and Canvas')")
        for k in ("token_url", "lineitems_url"):
            if urllib.parse.urlsplit(values[k]).scheme not in ("http", "https"):
                raise CourseError(f"{ENV[k]}={values[k][:80]!r} is not an http(s) URL")
        return cls(**values, audience=(given.get("audience") or env.get("LTI13_TOKEN_AUDIENCE", "")).strip())


@dataclass
class Answer:
    status: int
    body: object
    headers: Mapping[str, str] = field(default_factory=dict)


def http(method: str, url: str, data: bytes | None = None, headers: Mapping[str, str] | None = None,
         timeout: float = 30) -> Answer:
    """One request (urllib); an unreachable LMS is AgsError, an HTTP error status an Answer."""
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, got = r.status, r.read(MAX_ANSWER), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, got = e.code, e.read(MAX_ANSWER), dict(e.headers or {})
    except (urllib.error.URLError, OSError, HTTPException, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise AgsError(f"the LMS could not be reached at {_where(url)} ({outcomes.clean_text(str(reason))[:200]})") \
            from None
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = text[:300]
    return Answer(status, body, got)


def _where(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _said(answer: Answer) -> str:
    body = answer.body
    if isinstance(body, dict):
        body = body.get("error_description") or body.get("error") or body.get("message") or body
    return f"HTTP {answer.status}: {outcomes.clean_text(str(body))[:200]}" if body else f"HTTP {answer.status}"


class Client:
    """The tool's side of AGS for one platform: an access token, line items, scores."""

    def __init__(self, platform: Platform, key, request: Callable[..., Answer] = http):
        self.platform, self.key, self.request = platform, key, request
        self._token: str | None = None

    def client_assertion(self, now: float | None = None) -> str:
        now = int(time.time() if now is None else now)
        p = self.platform
        return sign_jwt(self.key, {"iss": p.client_id, "sub": p.client_id, "aud": p.audience or p.token_url,
                                   "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex})

    def token(self) -> str:
        if self._token is None:
            form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                                           "client_assertion": self.client_assertion(), "scope": " ".join(SCOPES)})
            answer = self.request("POST", self.platform.token_url, form.encode(),
                                  {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
            token = answer.body.get("access_token") if isinstance(answer.body, dict) else None
            if answer.status != 200 or not isinstance(token, str) or not token:
                raise AgsError(f"the LMS refused the tool's token request ({_said(answer)}): is the tool's public "
                               f"key (autograder lti keys) registered for client id {self.platform.client_id}?")
            self._token = token
        return self._token

    def _call(self, method: str, url: str, body: dict | None = None, content_type: str = "",
              accept: str = "application/json") -> Answer:
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        return self.request(method, url, json.dumps(body).encode() if body is not None else None, headers)

    def line_item(self, resource_id: str, label: str, points: float) -> dict:
        """The line item of ``resource_id`` (found by its resourceId, else created)."""
        url = _with_query(self.platform.lineitems_url, {"resource_id": resource_id})
        found = []
        for _ in range(MAX_PAGES):
            answer = self._call("GET", url, accept=LINEITEMS_TYPE)
            if answer.status != 200 or not isinstance(answer.body, list):
                raise AgsError(f"the LMS did not list its line items ({_said(answer)})")
            found += [li for li in answer.body if isinstance(li, dict) and li.get("resourceId") == resource_id]
            url = _next_link(answer.headers)
            if not url:
                break
        if len(found) > 1:
            raise AgsError(f"the LMS has {len(found)} line items with resourceId {resource_id!r}: delete all "
                           "but one in the LMS")
        if found:
            item = found[0]
            if not isinstance(item.get("id"), str):
                raise AgsError(f"the LMS's line item for {resource_id} has no id")
            return item
        answer = self._call("POST", self.platform.lineitems_url,
                            {"scoreMaximum": points, "label": label, "resourceId": resource_id, "tag": "autograder"},
                            LINEITEM_TYPE, LINEITEM_TYPE)
        if answer.status not in (200, 201) or not isinstance(answer.body, dict) or not isinstance(answer.body.get("id"), str):
            raise AgsError(f"the LMS did not create the line item of {resource_id} ({_said(answer)})")
        return answer.body

    def post_score(self, line_item_url: str, score: dict) -> Answer:
        return self._call("POST", _sub_path(line_item_url, "scores"), score, SCORE_TYPE)

    def results(self, line_item_url: str) -> list[dict]:
        answer = self._call("GET", _sub_path(line_item_url, "results"),
                            accept="application/vnd.ims.lis.v2.resultcontainer+json")
        if answer.status != 200 or not isinstance(answer.body, list):
            raise AgsError(f"the LMS did not list the results ({_said(answer)})")
        return answer.body


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _sub_path(url: str, name: str) -> str:
    """``<line item>/scores``: the path gets the suffix, the query (Moodle's ``?type_id=``) stays."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + name))


def _next_link(headers: Mapping[str, str]) -> str | None:
    link = next((v for k, v in headers.items() if k.lower() == "link"), "")
    for part in link.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            return part.split(";")[0].strip().strip("<>") or None
    return None


# -- the record of what was sent ----------------------------------------------------------------------

def record_path(course: Course, aid: str) -> Path:
    return course.root / "lti" / "ags" / f"{aid}.json"


def read_record(course: Course, aid: str) -> dict:
    path = record_path(course, aid)
    if not path.exists():
        return {"students": {}}
    try:
        data = json.loads(read_regular(path, 64 * 2**20))
    except (OSError, ValueError) as e:
        raise CourseError(f"cannot read {path} ({e}): restore it or remove it (every grade is then sent again)") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("students"), dict):
        raise CourseError(f"{path} is not a record of sent grades: restore it or remove it")
    return data


def _write_record(course: Course, aid: str, record: dict) -> None:
    write_atomic(record_path(course, aid), readable_json(record) + "\n", private=True)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Sent:
    """What ``send`` did, per student."""

    aid: str
    line_item: str = ""
    sent: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    no_id: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.no_id


def grades(course: Course, aid: str) -> dict[str, float]:
    """Each student's score for ``aid`` as the grades export gives it (late penalty applied), for the
    submissions with a recorded outcome (graded, or not graded with 0): {student: score}."""
    with nbgrader_api.gradebook(course) as gb:
        return {r["student"]: float(r["score"]) for r in export.grade_rows(course, gb)
                if r["assignment"] == aid and r["status"] in SENDABLE}


def send(course: Course, aid: str, roster: Roster, client: Client, retry: bool = False,
         clock: Callable[[], float] = time.time) -> Sent:
    """Post ``aid``'s grades (see the module's docstring); each student's outcome is recorded."""
    assignment = course.assignment(aid)
    aid = assignment.id
    scores = grades(course, aid)
    if not scores:
        raise CourseError(f"no graded submission of {aid} to send (grade some first)")
    record = read_record(course, aid)
    people = record["students"]
    out = Sent(aid)
    todo: dict[str, tuple[str, float]] = {}
    for student, score in sorted(scores.items()):
        previous = people.get(student, {})
        if retry and previous.get("status") != FAILED:
            continue
        rows = roster.by_student(student)
        lti_id = rows[0].lti_user_id if len(rows) == 1 else ""
        if not lti_id:
            why = "two roster rows" if len(rows) > 1 else "not in the roster" if not rows else "no lti_user_id"
            people[student] = {"status": NO_ID, "score": score, "reason": why}
            out.no_id.append(f"{student} ({why})")
            continue
        if (previous.get("status") == SENT and previous.get("score") == score
                and previous.get("user_id") == lti_id and previous.get("line_item") == record.get("line_item")):
            out.unchanged.append(student)
            continue
        todo[student] = (lti_id, score)
    if not todo:
        out.line_item = record.get("line_item", "")
        _write_record(course, aid, record)
        return out
    try:
        item = client.line_item(aid, assignment.title, float(assignment.points))
    except AgsError as e:
        for student, (lti_id, score) in todo.items():
            _failed(people, student, lti_id, score, str(e), clock)
            out.failed[student] = str(e)
        _write_record(course, aid, record)
        return out
    if record.get("line_item") != item["id"]:  # a new line item: whatever was sent went elsewhere
        record["line_item"] = item["id"]
        for student, entry in people.items():
            if entry.get("status") == SENT and student not in todo and student in scores:
                todo[student] = (entry["user_id"], scores[student])
                out.unchanged = [s for s in out.unchanged if s != student]
    record.update(line_item=item["id"], label=item.get("label", assignment.title),
                  score_maximum=item.get("scoreMaximum", assignment.points))
    out.line_item = item["id"]
    maximum = float(assignment.points)
    for student, (lti_id, score) in sorted(todo.items()):
        previous = people.get(student, {})
        when = max(clock(), float(previous.get("posted_at", 0)) + 0.001)  # AGS keeps the newest timestamp
        body = {"userId": lti_id, "scoreGiven": score, "scoreMaximum": maximum, "activityProgress": "Completed",
                "gradingProgress": "FullyGraded", "timestamp": _iso(when)}
        try:
            answer = client.post_score(item["id"], body)
            error = None if 200 <= answer.status < 300 else f"the LMS refused the score ({_said(answer)})"
        except AgsError as e:
            error = str(e)
        if error:
            _failed(people, student, lti_id, score, error, clock)
            out.failed[student] = error
        else:
            people[student] = {"status": SENT, "score": score, "user_id": lti_id, "line_item": item["id"],
                               "posted_at": when, "timestamp": body["timestamp"]}
            out.sent.append(student)
        _write_record(course, aid, record)   # after every post: a crash loses nothing already said
    return out


def _failed(people: dict, student: str, lti_id: str, score: float, error: str, clock) -> None:
    previous = people.get(student, {})
    people[student] = {**{k: v for k, v in previous.items() if k in ("posted_at", "timestamp")},
                       "status": FAILED, "score": score, "user_id": lti_id, "reason": error,
                       "attempts": int(previous.get("attempts", 0)) + 1 if previous.get("status") == FAILED else 1,
                       "failed_at": _iso(clock())}
