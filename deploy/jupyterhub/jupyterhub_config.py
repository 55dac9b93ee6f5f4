"""JupyterHub configuration of the course (JupyterHub 5/6 from PyPI, configurable-http-proxy from npm).

Started by ``./run hub`` (deploy/jupyterhub/hubctl.py), which sets the variables read below;
run by hand with ``HUB_STATE=... jupyterhub -f deploy/jupyterhub/jupyterhub_config.py``.

    who          system users: each student's server runs as that user (LocalProcessSpawner;
                 the hub runs as root to switch users). Students: members of the unix group
                 $COURSE_STUDENTS_GROUP. The instructor ($COURSE_INSTRUCTOR) is the hub's admin
                 and gets nbgrader's formgrader; students get the Assignments tab only.
    login        HUB_AUTHENTICATOR=pam (default): the users' system passwords. =native:
                 NativeAuthenticator (students sign up, the instructor approves at
                 /hub/authorize). OAuth/LTI: see README "Running a class on JupyterHub".
    exchange     $NBGRADER_EXCHANGE, permissions fixed by autograder.exchange.instructor (students cannot
                 list or read each other's submissions).
    culling      jupyterhub-idle-culler stops servers idle for $HUB_CULL_IDLE_S (default 1 h).
    grading      the `grader` service (autograder ondemand serve, as root: each kernel its own uid)
                 grades each submission of an assignment whose syllabus entry gives `attempts`
                 and returns its feedback; students see their attempts at /services/grader/.
                 $COURSE_GRADER_SERVICE=0 turns it off; $GRADER_SERVICE_PORT, $GRADER_WORKERS.
    state        $HUB_STATE: the hub's sqlite database, cookie secret, logs, proxy pid.
"""
import grp
import os
import pwd
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATE = Path(os.environ.get("HUB_STATE", HERE / "state")).resolve()
INSTRUCTOR = os.environ.get("COURSE_INSTRUCTOR", "instructor")
STUDENTS_GROUP = os.environ.get("COURSE_STUDENTS_GROUP", "dl-course-students")
COURSE_ROOT = os.environ.get("COURSE_ROOT", str(HERE.parent.parent / "course"))
EXCHANGE = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")
COURSE_ID = os.environ.get("COURSE_ID", "dl-course")
# The interpreter of the users' servers: must be runnable by every student (see hubctl.user_python).
USER_PYTHON = os.environ.get("HUB_USER_PYTHON", sys.executable)
PORT = int(os.environ.get("HUB_PORT", "8000"))
HUB_API_PORT = int(os.environ.get("HUB_API_PORT", "8081"))
PROXY_API_PORT = int(os.environ.get("HUB_PROXY_API_PORT", "8001"))
CULL_IDLE_S = int(os.environ.get("HUB_CULL_IDLE_S", "3600"))

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

# -- network: everything on 127.0.0.1 (put a TLS reverse proxy in front for a real class) ------
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{HUB_API_PORT}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
c.ConfigurableHTTPProxy.command = [os.environ.get("HUB_PROXY_COMMAND", "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")
c.ConfigurableHTTPProxy.should_start = True

# -- state ---------------------------------------------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops the users' servers

# -- who may log in --------------------------------------------------------------------------------
AUTH = os.environ.get("HUB_AUTHENTICATOR", "pam")
if AUTH == "pam":
    c.JupyterHub.authenticator_class = "pam"
    c.PAMAuthenticator.allowed_groups = {STUDENTS_GROUP}
    c.PAMAuthenticator.open_sessions = False  # no login session (utmp, systemd) per server
elif AUTH == "native":
    c.JupyterHub.authenticator_class = "nativeauthenticator.NativeAuthenticator"
    c.NativeAuthenticator.open_signup = False  # the instructor approves each sign-up
    c.NativeAuthenticator.check_common_password = True
    c.NativeAuthenticator.minimum_password_length = 10
    c.Authenticator.allow_all = True  # approval (not a list) decides who gets in
elif AUTH == "lti13":  # students and the instructor arrive from the LMS (LTI 1.3): lti13_config.py
    sys.path.insert(0, str(HERE))
    from lti13_config import configure_lti13  # noqa: E402

    configure_lti13(c, state=STATE, instructor=INSTRUCTOR, students_group=STUDENTS_GROUP)
else:
    raise ValueError(f"HUB_AUTHENTICATOR={AUTH!r}: use pam, native or lti13")
c.Authenticator.admin_users = {INSTRUCTOR}
c.Authenticator.allowed_users = {INSTRUCTOR} if AUTH == "pam" else set()

# -- the users' servers: local processes as the system users -------------------------------------
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.cmd = [USER_PYTHON, "-m", "jupyterhub.singleuser"]
c.Spawner.ip = "127.0.0.1"
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.environment = {
    "NBGRADER_EXCHANGE": EXCHANGE,
    "COURSE_ID": COURSE_ID,
    "OMP_WAIT_POLICY": "PASSIVE",       # idle BLAS threads sleep (small shared machine)
    "OMP_NUM_THREADS": os.environ.get("HUB_USER_THREADS", "2"),
}


def per_user_config(spawner) -> None:
    """Students get the student configuration (Assignments tab, private submit); the instructor
    the course's own nbgrader config (formgrader on COURSE_ROOT). A user who is not a system
    user cannot be spawned (LocalProcessSpawner runs the server as that user)."""
    name = spawner.user.name
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"{name} is not a system user: create it (README, 'Running a class on JupyterHub')")
    role = "instructor" if name == INSTRUCTOR else "student"
    env = dict(spawner.environment)  # a copy: the configured dict is shared by every spawner
    env["JUPYTER_CONFIG_PATH"] = str(HERE / role)
    if role == "instructor":
        env["COURSE_ROOT"] = COURSE_ROOT
        # formgrader works only below the server's root: the instructor's root is the repository
        spawner.notebook_dir = str(Path(COURSE_ROOT).resolve().parent)
        if os.environ.get("GRADEBOOK_URL"):
            env["GRADEBOOK_URL"] = os.environ["GRADEBOOK_URL"]
        # the instructor's terminal finds `autograder`, `nbgrader`, `alembic` of the course
        env["PATH"] = f"{Path(USER_PYTHON).parent}:/usr/local/bin:/usr/bin:/bin"
    spawner.environment = env


c.Spawner.pre_spawn_hook = per_user_config

# -- services: idle culling, and the course's admin token (tests, scripts) --------------------------
services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={CULL_IDLE_S}", "--cull-every=300"],
}]
roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
token_file = STATE / "admin_token"
if token_file.is_file():  # written by hubctl (mode 0600); lets scripts drive the hub's REST API
    services.append({"name": "course-admin", "api_token": token_file.read_text().strip()})
    roles.append({"name": "course-admin", "services": ["course-admin"],
                  "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "read:hub", "list:users",
                             "list:services", "read:services"]})
# -- grading on submit (autograder.ondemand): a service the hub starts, keeps running, and puts behind
#    its login at /services/grader/; it grades the assignments whose syllabus entry gives `attempts`.
if os.environ.get("COURSE_GRADER_SERVICE", "1") == "1":
    GRADER_PORT = int(os.environ.get("GRADER_SERVICE_PORT", "10101"))
    services.append({
        "name": "grader",
        "url": f"http://127.0.0.1:{GRADER_PORT}",
        "command": [sys.executable, "-m", "autograder", "--course", COURSE_ROOT, "ondemand", "serve",
                    "--port", str(GRADER_PORT), "--exchange", EXCHANGE,
                    "--workers", os.environ.get("GRADER_WORKERS", "1")],
        "environment": {"NBGRADER_EXCHANGE": EXCHANGE, "OMP_WAIT_POLICY": "PASSIVE",
                        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"},
        "oauth_no_confirm": True,
        "display": True,
    })
    # every user may reach the service (it shows each one their own attempts only)
    roles.append({"name": "user", "scopes": ["self", "access:services!service=grader"]})
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles


def _check_group() -> None:
    if AUTH == "pam":
        try:
            grp.getgrnam(STUDENTS_GROUP)
        except KeyError:
            print(f"warning: the group {STUDENTS_GROUP} does not exist: no student can log in "
                  f"(groupadd {STUDENTS_GROUP}; usermod -aG {STUDENTS_GROUP} STUDENT)", file=sys.stderr)


_check_group()
