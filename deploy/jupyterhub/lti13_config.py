"""Logging in from the LMS (LTI 1.3): ``HUB_AUTHENTICATOR=lti13`` (jupyterhub_config.py calls ``configure_lti13``).

The LMS (Moodle, Canvas: the "platform") starts an OpenID Connect login at /hub/lti13/oauth_login;
the hub sends the browser back to the platform's authorization URL, which answers with a signed
id_token posted to /hub/lti13/oauth_callback. jupyterhub-ltiauthenticator (1.6) checks the token:
its signature against the platform's JWKS, issuer, audience (our client id), expiry, the state
cookie and the nonce. ``CourseLTI13Authenticator`` then decides who it is, from what the
student cannot choose:

  - the deployment id claim must be one of LTI13_DEPLOYMENT_ID (another course or tool registration
    on the same LMS gets nothing);
  - the launch's ``sub`` (the LMS's stable user id) is looked up in the roster's ``lti_user_id``
    column (LTI13_ROSTER, read at each login): the hub name is that row's course id, never the
    display name, e-mail or username the LMS also sends; an ``sub`` listed in LTI13_INSTRUCTOR_IDS
    is the instructor ($COURSE_INSTRUCTOR, the hub's admin). Anyone else is refused (403), whatever
    role the LMS gives them;
  - each student's server runs as the system user of that course id (LocalProcessSpawner): one that
    does not exist is made on first login (LTI13_CREATE_USERS, default 1: ``useradd``, private home,
    in the students' group, no password); an existing account outside the students' group (a
    system account, the instructor's) is refused, never added to it.

Environment (the values of the tool's registration in the LMS):
    LTI13_ISSUER            the platform's issuer (Moodle: its URL; Canvas: https://canvas.instructure.com)
    LTI13_CLIENT_ID         the client id the LMS gave the tool (several: comma-separated)
    LTI13_DEPLOYMENT_ID     the deployment id(s), comma-separated
    LTI13_AUTHORIZE_URL     the platform's OIDC authentication request URL
    LTI13_JWKS_URL          the platform's public keyset URL
    LTI13_ROSTER            the roster CSV with student and lti_user_id columns
    LTI13_INSTRUCTOR_IDS    the LTI user id(s) of the instructor, comma-separated (may be empty)
    LTI13_CREATE_USERS      1 (default) or 0: make missing students' system users
    LTI13_HOME_BASE         where their homes are made (default: useradd's, /home)
    LTI13_COOKIES_CROSS_SITE  1: the hub's cookies are ``SameSite=None; Secure`` (HTTPS only), for an LMS
                            that opens the hub inside its page (an iframe); default 0: open the tool in a
                            new window instead (the login's state cookie must come back with the LMS's
                            cross-site form post; browsers treat cookies without SameSite as Lax). Untested.
(LTI13_TOKEN_URL and LTI13_LINEITEMS_URL are for ``autograder lti send``, not the hub.)
"""
from __future__ import annotations

import asyncio
import grp
import os
import pwd
import re
import subprocess
from pathlib import Path

from ltiauthenticator.lti13.auth import LTI13Authenticator
from traitlets import Bool, Set, Unicode

DEPLOYMENT_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
#: A course id that can be a system user name (useradd's rules, lower case: JupyterHub lowercases names).
SYSTEM_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}", re.ASCII)
REQUIRED = ("LTI13_ISSUER", "LTI13_CLIENT_ID", "LTI13_DEPLOYMENT_ID", "LTI13_AUTHORIZE_URL", "LTI13_JWKS_URL",
            "LTI13_ROSTER")


class CourseLTI13Authenticator(LTI13Authenticator):
    """LTI 1.3 logins mapped to the course's ids by the roster (see the module's docstring)."""

    roster = Unicode(config=True, help="The roster CSV (student, lti_user_id columns).")
    instructor = Unicode(config=True, help="The instructor's hub and system user name.")
    instructor_ids = Set(Unicode(), config=True, help="LTI user ids (sub) that are the instructor.")
    deployment_ids = Set(Unicode(), config=True, help="Accepted LTI deployment ids.")
    students_group = Unicode(config=True, help="The students' unix group.")
    create_system_users = Bool(True, config=True, help="Make a student's system user on first login.")
    home_base = Unicode("", config=True, help="Base folder of new students' homes (useradd -b).")

    def _read_roster(self):
        from autograder.course import CourseError
        from autograder.intake.roster import read_roster

        try:
            return read_roster(Path(self.roster))
        except CourseError as e:
            self.log.error("LTI 1.3: the roster cannot be read, nobody but the instructor logs in: %s", e)
            return None

    def course_id(self, sub: str) -> str | None:
        """The course id of an LTI user id, or None (not in the roster, or not a usable name)."""
        if sub in self.instructor_ids:
            return self.instructor
        roster = self._read_roster()
        person, why = roster.match("lti_user_id", sub) if roster else (None, None)
        if person is None:
            self.log.warning("LTI 1.3: user id %r is not in the roster %s%s", sub[:80], self.roster,
                             f" ({why})" if why else "")
            return None
        if person.student == self.instructor:
            self.log.warning("LTI 1.3: the roster gives %r the instructor's id: only LTI13_INSTRUCTOR_IDS log in "
                             "as the instructor", sub[:80])
            return None
        if not SYSTEM_NAME.fullmatch(person.student):
            self.log.warning("LTI 1.3: the course id %r cannot be a system user (lower-case letters, digits, _ . -)",
                             person.student)
            return None
        return person.student

    async def authenticate(self, handler, data=None):
        data = data or {}
        deployment = data.get(DEPLOYMENT_CLAIM)
        if deployment not in self.deployment_ids:
            self.log.warning("LTI 1.3: deployment id %r is not this course's (LTI13_DEPLOYMENT_ID)", str(deployment)[:80])
            return None
        sub = data.get("sub")
        if not isinstance(sub, str) or not sub:
            return None
        name = self.course_id(sub)
        if name is None:
            return None
        if name != self.instructor and not await asyncio.to_thread(self.system_user, name):
            return None
        return {"name": name, "auth_state": None}

    def check_allowed(self, username, authentication=None):
        """Only what ``authenticate`` mapped gets in (it returns nothing else)."""
        return authentication is not None and username == authentication.get("name")

    def system_user(self, name: str) -> bool:
        """Whether ``name`` is (now) a system user in the students' group."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            entry = None
        if entry is not None:
            try:
                members = grp.getgrnam(self.students_group)
            except KeyError:
                self.log.error("LTI 1.3: the students' group %s does not exist", self.students_group)
                return False
            if entry.pw_gid == members.gr_gid or name in members.gr_mem:
                return True
            self.log.warning("LTI 1.3: %s is a system user outside the group %s: refused (add it to the group "
                             "if it is this student's account)", name, self.students_group)
            return False
        if not self.create_system_users:
            self.log.warning("LTI 1.3: %s is not a system user (LTI13_CREATE_USERS=0): create it", name)
            return False
        subprocess.run(["groupadd", "-f", self.students_group], check=True)
        cmd = ["useradd", "--create-home", "--shell", "/bin/bash", "-K", "HOME_MODE=0700",
               "--groups", self.students_group]
        if self.home_base:
            cmd += ["--base-dir", self.home_base]
        done = subprocess.run([*cmd, name], capture_output=True, text=True)
        if done.returncode != 0:
            self.log.error("LTI 1.3: useradd %s failed: %s", name, done.stderr.strip()[:300])
            return False
        self.log.info("LTI 1.3: made the system user %s (group %s)", name, self.students_group)
        return True


def _list(value: str) -> set[str]:
    return {v.strip() for v in value.split(",") if v.strip()}


def configure_lti13(c, state, instructor: str, students_group: str) -> None:
    """Configure the hub for LTI 1.3 logins from the environment (raises ValueError naming what is missing)."""
    env = os.environ
    missing = [k for k in REQUIRED if not env.get(k, "").strip()]
    if missing:
        raise ValueError(f"HUB_AUTHENTICATOR=lti13 needs {', '.join(missing)} (deploy/jupyterhub/lti13_config.py)")
    c.JupyterHub.authenticator_class = CourseLTI13Authenticator
    c.LTI13Authenticator.issuer = env["LTI13_ISSUER"].strip()
    c.LTI13Authenticator.client_id = _list(env["LTI13_CLIENT_ID"])
    c.LTI13Authenticator.authorize_url = env["LTI13_AUTHORIZE_URL"].strip()
    c.LTI13Authenticator.jwks_endpoint = env["LTI13_JWKS_URL"].strip()
    c.LTI13Authenticator.username_key = "sub"       # only a fallback: authenticate() maps sub by the roster
    c.LTI13Authenticator.tool_name = "Deep learning course"
    c.CourseLTI13Authenticator.roster = str(Path(env["LTI13_ROSTER"]).resolve())
    c.CourseLTI13Authenticator.instructor = instructor
    c.CourseLTI13Authenticator.instructor_ids = _list(env.get("LTI13_INSTRUCTOR_IDS", ""))
    c.CourseLTI13Authenticator.deployment_ids = _list(env["LTI13_DEPLOYMENT_ID"])
    c.CourseLTI13Authenticator.students_group = students_group
    c.CourseLTI13Authenticator.create_system_users = env.get("LTI13_CREATE_USERS", "1").strip() != "0"
    c.CourseLTI13Authenticator.home_base = env.get("LTI13_HOME_BASE", "").strip()
    if env.get("LTI13_COOKIES_CROSS_SITE", "0").strip() == "1":
        c.JupyterHub.tornado_settings = {**c.JupyterHub.get("tornado_settings", {}),
                                         "cookie_options": {"SameSite": "None", "Secure": True}}
