"""The student path in a real browser: JupyterLab started by the README's command,
driven by Playwright in Debian's Chromium (headless). Screenshots go to artifacts/.

Skipped, with the reason printed, only where Chromium is not installed.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts" / "browser"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (/usr/bin/chromium): "
                                                      "`apt-get install chromium` to run the browser tests"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab from the README's command (`./run lab`), on a free loopback port, with a token.

    Its root is a copy of release/ plus the solution build of 03_optimisation, so the
    repository is never written to."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(REPO / "release", root, dirs_exist_ok=True)
    solution = root / "solutions" / "03_optimisation"
    if (REPO / "source_notebooks" / "03_optimisation").exists():
        shutil.copytree(REPO / "source_notebooks" / "03_optimisation", solution, ignore=shutil.ignore_patterns("cases.py"))
    settings = root / ".jupyter-config" / "lab" / "user-settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    # render every cell (not only those in view) so the test can find outputs anywhere
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, PORT=str(port), LAB_ROOT=str(root), JUPYTER_CONFIG_DIR=str(root / ".jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(root / ".jupyter-runtime"))
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen([str(REPO / "run"), "lab", f"--IdentityProvider.token={token}"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise RuntimeError("JupyterLab did not start:\n" + (root / "lab.log").read_text()[-2000:])
            time.sleep(0.5)
    yield {"base": base, "token": token, "root": root}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()
    assert f"http://127.0.0.1:{port}/lab?token=" in (root / "lab.log").read_text(), "the URL printed for students"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update",
                                    "--disable-sync"])
        yield b
        b.close()


def _open(browser, lab, path: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{lab['base']}/lab/tree/{path}?token={lab['token']}&reset", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                           "#jp-main-statusbar :text('Idle')", timeout=90_000)
    return page, errors


def _run_all(page) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()


def _real_errors(errors: list[str]) -> list[str]:
    # A missing favicon or a probe of an optional server extension is not the course's error.
    benign = re.compile(r"favicon|Failed to load resource: the server responded with a status of 404")
    return [e for e in errors if not benign.search(e)]


def test_release_notebook_reports_not_implemented_in_a_friendly_way(browser, lab):
    page, errors = _open(browser, lab, "01_perceptron/01_perceptron.ipynb")
    _run_all(page)
    try:
        error_output = page.wait_for_selector(".jp-OutputArea-output:has-text('not implemented yet')",
                                              state="attached", timeout=180_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "01_release_not_found.png"))
        raise
    error_output.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    text = error_output.inner_text()
    page.screenshot(path=str(ARTIFACTS / "01_release_not_implemented.png"), full_page=False)
    assert "sigmoid: not implemented yet" in text
    assert "Traceback" not in text and 'File "' not in text, "a raw traceback wall"
    assert len(text.strip().splitlines()) <= 3
    assert not _real_errors(errors), errors


def test_learning_rate_demo_reacts_to_the_slider(browser, lab):
    if not (lab["root"] / "solutions" / "03_optimisation").exists():
        pytest.skip("notebook 03_optimisation is not in this course yet")
    page, errors = _open(browser, lab, "solutions/03_optimisation/03_optimisation.ipynb")
    _run_all(page)
    try:
        marker = page.wait_for_selector(".demo-lr .demo-rendered", state="attached", timeout=240_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "03_lr_demo_not_found.png"))
        raise
    marker.scroll_into_view_if_needed()
    page.wait_for_function("el => /rendered [1-9]/.test(el.textContent)", arg=marker, timeout=60_000)
    verdict = page.query_selector(".demo-lr .demo-verdict")
    marker.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "03_lr_demo_initial.png"))
    first_words, first_count = verdict.inner_text(), _count(marker.inner_text())

    def set_lr(value: float) -> None:
        readout = page.query_selector(".demo-lr .demo-lr-slider .widget-readout")
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(f"{value}")
        page.keyboard.press("Enter")

    set_lr(1.5)  # far above 2/lambda_max on the demo's quadratic: it must diverge
    page.wait_for_function("([el, n]) => parseInt(el.textContent.match(/rendered (\\d+)/)[1]) > n",
                           arg=[marker, first_count], timeout=60_000)
    page.wait_for_function("el => /diverg/i.test(el.textContent)", arg=verdict, timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "03_lr_demo_diverging.png"))
    diverging_count = _count(marker.inner_text())
    set_lr(0.05)
    page.wait_for_function("([el, n]) => parseInt(el.textContent.match(/rendered (\\d+)/)[1]) > n",
                           arg=[marker, diverging_count], timeout=60_000)
    page.wait_for_function("el => !/diverg/i.test(el.textContent)", arg=verdict, timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "03_lr_demo_back.png"))
    assert verdict.inner_text() != "" and first_words != ""
    assert not _real_errors(errors), errors


def _count(text: str) -> int:
    return int(re.search(r"rendered (\d+)", text).group(1))
