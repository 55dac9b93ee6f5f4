"""The student path from the bundle, in a real browser: the bundle is built (``autograder bundle``),
unzipped as a student would, set up and started by its own ``./run lab``, and Playwright drives
Debian's Chromium (headless) to open a notebook, run it, write an exercise and see its visible
check pass. Screenshots go to artifacts/bundle_browser/.

Offline: the bundle's ``run`` is given ``VENV=`` a fresh virtual environment made without pip
whose only link to this machine's packages is a ``.pth`` line naming .venv's site-packages (so
nothing is downloaded, and the repository's own ``helpers`` is *not* importable: its editable
finder is not loaded), ``JUPYTER_PATH``/``JUPYTERLAB_DIR`` naming .venv's share/jupyter (the data
files a venv of its own would hold), with ``PIP_NO_INDEX=1`` and ``PIP_NO_BUILD_ISOLATION=0`` (pip
then builds the bundle's package with the setuptools it sees). The script itself runs unchanged: it installs
torch first (already satisfied), then the bundle with ``pip install -e .`` into that environment.

Skipped, with the reason printed, only where Chromium is not installed.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.support import submissions as subs
from tests.support.course import REPO, run_cli
from tests.support.lab_page import CHROMIUM, chromium, free_port, open_notebook, real_errors, run_all, wait_for, write_settings

ARTIFACTS = REPO / "artifacts" / "bundle_browser"
AID = "01_perceptron"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (/usr/bin/chromium): "
                                                      "`apt-get install chromium` to run the browser tests"),
]


def _unzip(zpath: Path, dest: Path) -> Path:
    """Unzip as ``unzip`` does (keeping the executable bit); the bundle's top folder."""
    with zipfile.ZipFile(zpath) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode)
        tops = {i.filename.split("/", 1)[0] for i in zf.infolist()}
    assert len(tops) == 1, tops
    return dest / tops.pop()


def _offline_venv(path: Path) -> Path:
    """A new venv (no pip of its own) that sees this machine's packages through one .pth line."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = Path(subprocess.run([str(path / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_offline_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory):
    """JupyterLab started by the bundle's own `./run lab`, in an unzipped copy of the bundle."""
    tmp = tmp_path_factory.mktemp("student")
    zpath = tmp / "dl-course-student.zip"
    r = run_cli("bundle", "--to", str(zpath))
    assert r.returncode == 0, r.stderr
    root = _unzip(zpath, tmp / "unzipped")
    assert os.access(root / "run", os.X_OK)
    assert not (root / "source_notebooks").exists() and not (root / "autograder").exists()
    venv = _offline_venv(tmp / "venv")
    config = tmp / "jupyter-config"
    write_settings(config)
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    # A real venv holds JupyterLab's data files (application, extensions, kernelspec) in its share/;
    # this one forwards only Python packages, so it is pointed at .venv's share/jupyter.
    data = Path(sysconfig.get_paths()["data"]) / "share" / "jupyter"
    env.update(JUPYTER_PATH=str(data), JUPYTERLAB_DIR=str(data / "lab"))
    env.update(PORT=str(port), VENV=str(venv), PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               PYTHON=sys._base_executable)
    log_path = tmp / "lab.log"
    log = open(log_path, "w")
    started = time.monotonic()
    proc = subprocess.Popen([str(root / "run"), "lab", f"--IdentityProvider.token={token}"], cwd=tmp, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise RuntimeError("the bundle's ./run lab did not start JupyterLab:\n" + log_path.read_text()[-3000:])
            time.sleep(0.5)
    print(f"bundle's ./run lab: set up and serving after {time.monotonic() - started:.1f} s")
    helpers_at = subprocess.run([str(venv / "bin" / "python"), "-c", "import helpers; print(helpers.__file__)"],
                                capture_output=True, text=True, cwd="/", env=env).stdout.strip()
    yield {"base": base, "token": token, "root": root, "helpers": helpers_at, "log": log_path}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as b:
        yield b


def test_the_bundle_uses_its_own_helpers_and_prints_the_url(student_lab):
    assert student_lab["helpers"] == str(student_lab["root"] / "helpers" / "__init__.py")
    assert re.search(r"http://127\.0\.0\.1:\d+/lab\?token=", student_lab["log"].read_text())


def test_a_student_opens_a_notebook_writes_an_exercise_and_its_check_passes(browser, student_lab):
    requests: list[str] = []
    page, errors = open_notebook(browser, student_lab, f"{AID}/{AID}.ipynb",
                                 watch=lambda page: page.on("request", lambda r: requests.append(r.url)))
    run_all(page, errors, student_lab)
    wait_for(page, errors, student_lab, ".jp-OutputArea-output:has-text('sigmoid: not implemented yet')",
             ARTIFACTS / "not_implemented_not_found.png", timeout=180)
    try:  # the student writes sigmoid in its cell (inserted as typed, without auto-closing brackets)
        cell = page.locator(".jp-CodeCell", has_text="def sigmoid(z)").first
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(subs._solution_sources(AID)["sigmoid_impl"])
        page.keyboard.press("Shift+Enter")  # runs it, moves to the check cell below
        page.keyboard.press("Shift+Enter")  # runs check("sigmoid", sigmoid)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "sigmoid_not_written.png"))
        raise
    verdict = wait_for(page, errors, student_lab, ".jp-OutputArea-output:has-text('sigmoid: all')",
                       ARTIFACTS / "check_not_found.png", timeout=120)
    verdict.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "sigmoid_check_passed.png"))
    assert re.search(r"sigmoid: all \d+ visible checks passed", verdict.inner_text())
    assert not real_errors(errors), errors
    assert all(u.startswith(student_lab["base"]) or u.startswith(("data:", "blob:")) for u in requests), \
        sorted({u for u in requests if not u.startswith(student_lab["base"])})[:5]
