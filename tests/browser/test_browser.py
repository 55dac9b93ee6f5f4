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
import subprocess
import time
import urllib.request

import pytest

from tests.support.course import REPO
from tests.support.lab_page import CHROMIUM, chromium, free_port, open_notebook, real_errors, run_all, wait_for, write_settings

ARTIFACTS = REPO / "artifacts" / "browser"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (/usr/bin/chromium): "
                                                      "`apt-get install chromium` to run the browser tests"),
]


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
    write_settings(root / ".jupyter-config")
    port, token = free_port(), secrets.token_hex(16)
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
    yield {"base": base, "token": token, "root": root, "log": root / "lab.log"}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()
    assert f"http://127.0.0.1:{port}/lab?token=" in (root / "lab.log").read_text(), "the URL printed for students"


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as b:
        yield b


def test_release_notebook_reports_not_implemented_in_a_friendly_way(browser, lab):
    page, errors = open_notebook(browser, lab, "01_perceptron/01_perceptron.ipynb")
    run_all(page, errors, lab)
    error_output = wait_for(page, errors, lab, ".jp-OutputArea-output:has-text('not implemented yet')",
                            ARTIFACTS / "01_release_not_found.png", timeout=180)
    error_output.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    text = error_output.inner_text()
    page.screenshot(path=str(ARTIFACTS / "01_release_not_implemented.png"), full_page=False)
    assert "sigmoid: not implemented yet" in text
    assert "Traceback" not in text and 'File "' not in text, "a raw traceback wall"
    assert len(text.strip().splitlines()) <= 3
    assert not real_errors(errors), errors
    page.close()


def test_learning_rate_demo_reacts_to_the_slider(browser, lab):
    if not (lab["root"] / "solutions" / "03_optimisation").exists():
        pytest.skip("notebook 03_optimisation is not in this course yet")
    page, errors = open_notebook(browser, lab, "solutions/03_optimisation/03_optimisation.ipynb")
    run_all(page, errors, lab)
    marker = wait_for(page, errors, lab, ".demo-lr .demo-rendered", ARTIFACTS / "03_lr_demo_not_found.png")
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
    assert not real_errors(errors), errors
    page.close()


def _count(text: str) -> int:
    return int(re.search(r"rendered (\d+)", text).group(1))
