"""A throw-away PostgreSQL server for tests: ``initdb`` in a temporary folder, on a free
127.0.0.1 port, password authentication, stopped and deleted afterwards.

Debian's ``postgresql`` package puts the server programs in /usr/lib/postgresql/<major>/bin
(not on PATH). PostgreSQL refuses to run as root, so as root the cluster belongs to ``nobody``.
"""
from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl (newest major version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server(database: str = "gradebook") -> Iterator[str]:
    """Start a fresh cluster; yield the SQLAlchemy URL of an empty ``database`` in it."""
    import psycopg2

    bindir = server_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL's server programs are not installed (Debian: apt-get install postgresql)")
    run_as: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="pg-test-"))
    if os.geteuid() == 0:
        run_as = {"user": "nobody", "group": "nogroup" if _has_group("nogroup") else "nobody"}
        shutil.chown(tmp, run_as["user"], run_as["group"])
    os.chmod(tmp, 0o700)
    data, pwfile = tmp / "data", tmp / "pw"
    password = secrets.token_hex(16)
    pwfile.write_text(password + "\n")
    if run_as:
        shutil.chown(pwfile, run_as["user"], run_as["group"])
    port = free_port()
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")

    def pg(*cmd: str) -> None:
        r = subprocess.run([str(bindir / cmd[0]), *cmd[1:]], capture_output=True, text=True, env=env,
                           cwd=tmp, timeout=120, **run_as)
        if r.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {(r.stderr or r.stdout)[-1500:]}")

    try:
        pg("initdb", "-D", str(data), "-U", "grader", f"--pwfile={pwfile}", "--auth=scram-sha-256",
           "-E", "UTF8", "--no-sync")
        pg("pg_ctl", "-D", str(data), "-w", "-t", "60", "-l", str(tmp / "log"), "start",
           "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {tmp} -c fsync=off -c max_connections=100")
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user="grader", password=password, dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{database}"')
            conn.close()
            yield f"postgresql+psycopg2://grader:{password}@127.0.0.1:{port}/{database}"
        finally:
            pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False
