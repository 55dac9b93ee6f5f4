"""Start, stop and populate the course's JupyterHub on one machine (``./run hub``, ``./run hub-stop``).

    python deploy/jupyterhub/hubctl.py start [--port 8000]     start in the background, wait until it answers
    python deploy/jupyterhub/hubctl.py stop                    stop it (and every user's server)
    python deploy/jupyterhub/hubctl.py add-students NAME...    system users in the students' group (prints passwords)
    python deploy/jupyterhub/hubctl.py status

Runs as root (the hub switches to each user to start their server). Settings come from the
environment (defaults in brackets): HUB_STATE [deploy/jupyterhub/state], HUB_PORT [8000],
COURSE_INSTRUCTOR [instructor], COURSE_STUDENTS_GROUP [dl-course-students], COURSE_ROOT
[./course], NBGRADER_EXCHANGE [/srv/nbgrader/exchange], HUB_AUTHENTICATOR [pam], GRADEBOOK_URL.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_EXCHANGE = "/srv/nbgrader/exchange"


class HubError(Exception):
    """A problem the user can fix: printed as one line."""


@dataclass
class Hub:
    """One hub deployment: where its state lives, its ports, and who is who."""

    state: Path = field(default_factory=lambda: Path(os.environ.get("HUB_STATE", HERE / "state")))
    port: int = field(default_factory=lambda: int(os.environ.get("HUB_PORT", "8000")))
    hub_api_port: int | None = None
    proxy_api_port: int | None = None
    instructor: str = field(default_factory=lambda: os.environ.get("COURSE_INSTRUCTOR", "instructor"))
    students_group: str = field(default_factory=lambda: os.environ.get("COURSE_STUDENTS_GROUP", "dl-course-students"))
    course_root: Path = field(default_factory=lambda: Path(os.environ.get("COURSE_ROOT", REPO / "course")))
    exchange: Path = field(default_factory=lambda: Path(os.environ.get("NBGRADER_EXCHANGE", DEFAULT_EXCHANGE)))
    course_id: str = "dl-course"
    authenticator: str = field(default_factory=lambda: os.environ.get("HUB_AUTHENTICATOR", "pam"))
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state / "hubctl.pid"

    @property
    def log_file(self) -> Path:
        return self.state / "jupyterhub.log"

    def admin_token(self) -> str:
        return (self.state / "admin_token").read_text().strip()

    def api(self, method: str, path: str, body: dict | None = None, token: str | None = None,
            timeout: float = 30) -> tuple[int, object]:
        """One call to the hub's REST API (``/hub/api`` + path): (status, decoded JSON or text)."""
        return http(method, f"{self.url}/hub/api{path}", body, token or self.admin_token(), timeout)


def http(method: str, url: str, body: dict | None = None, token: str | None = None,
         timeout: float = 30, form: dict | None = None) -> tuple[int, object]:
    """A small HTTP client for the hub's and the servers' REST APIs (token auth)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_command() -> str:
    """configurable-http-proxy from npm (``npm install -g configurable-http-proxy``)."""
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise HubError("configurable-http-proxy is not installed: npm install -g configurable-http-proxy "
                       "(Debian: apt-get install nodejs npm first; ./run hub does both as root)")
    return found


def _runs_as(user: str, python: str) -> bool:
    """Whether ``user`` can run ``python`` and import the course's packages with it."""
    try:
        probe = ("import importlib.util as u, jupyterhub, nbgrader, autograder.exchange.plugins; "
                 "assert u.find_spec('helpers') and u.find_spec('torch')")  # found, not imported: fast
        r = subprocess.run([python, "-c", probe], user=user,
                           capture_output=True, cwd="/", timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": "/"})
    except OSError:  # not executable for that user
        return False
    return r.returncode == 0


def user_python(state: Path) -> str:
    """An interpreter every user can run that sees this project's environment.

    The course's .venv is used as it is when other users can run it. When its interpreter is
    out of their reach (e.g. pyenv under /root, mode 0700), a thin virtual environment is
    built in the state folder from a system Python of the same version, loading the .venv's
    packages (a ``.pth`` with ``site.addsitedir``) and its share/ and etc/ (JupyterLab's
    extensions, nbgrader's), with the .venv's commands (``autograder``, ``nbgrader``,
    ``alembic``...) re-pointed at it."""
    venv_python = str(REPO / ".venv" / "bin" / "python")
    if _runs_as("nobody", venv_python):
        return venv_python
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = next((p for p in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}")
                 if os.path.exists(p)), None)
    if base is None:
        raise HubError(f"students cannot run {venv_python} and there is no system python{version} to build "
                       f"their environment from (Debian: apt-get install python{version}-venv)")
    env = state / "user-env"
    python = env / "bin" / "python"
    site = env / "lib" / f"python{version}" / "site-packages"
    if not python.exists():
        subprocess.run([base, "-m", "venv", "--without-pip", str(env)], check=True)
    venv_site = REPO / ".venv" / "lib" / f"python{version}" / "site-packages"
    (site / "course-env.pth").write_text(f"import site; site.addsitedir({str(venv_site)!r})\n")
    for script in (REPO / ".venv" / "bin").iterdir():
        try:
            first, rest = script.read_text().split("\n", 1)
        except (UnicodeDecodeError, ValueError, IsADirectoryError):
            continue
        if first.startswith("#!") and first[2:].strip().endswith(("/.venv/bin/python", "/.venv/bin/python3")):
            target = env / "bin" / script.name
            if not target.exists():
                target.write_text(f"#!{python}\n{rest}")
                target.chmod(0o755)
    for shared in ("share", "etc"):  # JupyterLab's extensions, nbgrader's server-extension switches
        link = env / shared
        if not link.exists() and (REPO / ".venv" / shared).is_dir():
            link.symlink_to(REPO / ".venv" / shared)
    for d in (state, env):
        d.chmod(0o755)
    if not _runs_as("nobody", str(python)):
        raise HubError(f"the users' environment {env} does not work: run `{python} -c 'import jupyterhub'` to see why")
    return str(python)


def prepare_exchange(hub: Hub) -> None:
    """The exchange root (1777, sticky) and the course's folder in it, owned by the instructor:
    created before any student could create a folder of that name."""
    import pwd

    from autograder.exchange.plugins import ROOT_MODE

    try:
        owner = pwd.getpwnam(hub.instructor)
    except KeyError:
        raise HubError(f"the instructor {hub.instructor!r} is not a system user: useradd -m {hub.instructor}") from None
    hub.exchange.mkdir(parents=True, exist_ok=True)
    os.chmod(hub.exchange, ROOT_MODE)
    course = hub.exchange / hub.course_id
    if course.is_symlink() or (course.exists() and course.stat().st_uid != owner.pw_uid):
        raise HubError(f"{course} exists and is not the instructor's: remove it (a student may have made it)")
    course.mkdir(exist_ok=True)
    os.chown(course, owner.pw_uid, owner.pw_gid)
    os.chmod(course, 0o755)


def start(hub: Hub, timeout: float = 120) -> float:
    """Start the hub in the background; return the seconds until its API answered."""
    if os.geteuid() != 0:
        raise HubError("the hub must run as root: it starts each user's server as that user (sudo ./run hub)")
    if status(hub):
        raise HubError(f"the hub is already running (pid {hub.pid_file.read_text().strip()}): ./run hub-stop first")
    proxy = proxy_command()
    hub.state.mkdir(parents=True, exist_ok=True)
    hub.state.chmod(0o755)
    token = hub.state / "admin_token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    python = user_python(hub.state)
    prepare_exchange(hub)
    env = dict(os.environ, HUB_STATE=str(hub.state), HUB_PORT=str(hub.port),
               HUB_API_PORT=str(hub.hub_api_port or free_port()),
               HUB_PROXY_API_PORT=str(hub.proxy_api_port or free_port()), HUB_PROXY_COMMAND=proxy,
               COURSE_INSTRUCTOR=hub.instructor, COURSE_STUDENTS_GROUP=hub.students_group,
               COURSE_ROOT=str(hub.course_root), NBGRADER_EXCHANGE=str(hub.exchange), COURSE_ID=hub.course_id,
               HUB_USER_PYTHON=python, HUB_AUTHENTICATOR=hub.authenticator, **hub.extra_env)
    began = time.monotonic()
    with open(hub.log_file, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(HERE / "jupyterhub_config.py")],
                                cwd=hub.state, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    hub.pid_file.write_text(str(proc.pid))
    while time.monotonic() - began < timeout:
        if proc.poll() is not None:
            raise HubError(f"the hub exited with status {proc.returncode}; its log: {hub.log_file}\n"
                           + _tail(hub.log_file))
        with contextlib.suppress(OSError):
            code, _ = http("GET", f"{hub.url}/hub/api/", timeout=2)
            if code == 200:
                return time.monotonic() - began
        time.sleep(0.2)
    stop(hub)
    raise HubError(f"the hub did not answer within {timeout:.0f} s; its log: {hub.log_file}\n" + _tail(hub.log_file))


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def status(hub: Hub) -> int | None:
    """The hub's pid if it is running."""
    try:
        pid = int(hub.pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def stop(hub: Hub, timeout: float = 30) -> bool:
    """Stop the hub (SIGTERM: it stops the proxy and the users' servers), then anything left in
    its process group. Returns False if it was not running."""
    pid = status(hub)
    if pid is None:
        hub.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)  # the hub's session: its proxy and services
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)
    proxy_pid = hub.state / "proxy.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(proxy_pid.read_text()), signal.SIGTERM)
    proxy_pid.unlink(missing_ok=True)
    hub.pid_file.unlink(missing_ok=True)
    return True


def add_students(hub: Hub, names: list[str]) -> dict[str, str]:
    """Create each student as a system user (private home, in the students' group) with a
    random password; return {name: password}. Existing users are only added to the group."""
    import pwd

    from autograder.intake.collect import STUDENT_ID

    subprocess.run(["groupadd", "-f", hub.students_group], check=True)
    passwords = {}
    for name in names:
        if not STUDENT_ID.match(name) or "+" in name or name.startswith("-"):
            raise HubError(f"{name!r} is not a valid student id (letters, digits, _ . @ -)")
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", "-K", "HOME_MODE=0700",
                            "--groups", hub.students_group, name], check=True)
            password = secrets.token_urlsafe(9)
            subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
            passwords[name] = password
        else:
            subprocess.run(["usermod", "-aG", hub.students_group, name], check=True)
            home = Path(pwd.getpwnam(name).pw_dir)
            if home.is_dir():
                home.chmod(0o700)
    return passwords


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubctl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start")
    p.add_argument("--port", type=int, help="public port on 127.0.0.1 (default $HUB_PORT or 8000)")
    sub.add_parser("stop")
    sub.add_parser("status")
    p = sub.add_parser("add-students")
    p.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    hub = Hub()
    try:
        if args.command == "start":
            if args.port:
                hub.port = args.port
            seconds = start(hub)
            print(f"JupyterHub is up at {hub.url}/ (started in {seconds:.1f} s)\n"
                  f"  log in as a student (system user in group {hub.students_group}) or as {hub.instructor} "
                  f"(formgrader)\n  exchange: {hub.exchange}   course: {hub.course_root}\n"
                  f"  state and log: {hub.state}   stop with: ./run hub-stop")
        elif args.command == "stop":
            print("hub stopped" if stop(hub) else "the hub was not running")
        elif args.command == "status":
            pid = status(hub)
            print(f"running (pid {pid}) at {hub.url}/" if pid else "not running")
            return 0 if pid else 1
        else:
            for name, password in add_students(hub, args.names).items():
                print(f"{name}\t{password}")
    except (HubError, subprocess.CalledProcessError) as e:
        print(f"hubctl: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
