"""A hostile submission opened by the instructor in formgrader, and by the student as feedback,
runs no script and makes no request (Chromium, driven by Playwright, as the other browser tests).

The submission carries script tags, event handlers, remote images, JavaScript, HTML and SVG
outputs that all try to set ``window.__xss`` or to reach a listener on 127.0.0.1.
"""
from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import submissions as subs
from tests.support.course import copy_course, run_cli
from tests.support.lab_page import CHROMIUM, free_port
from tests.browser.test_browser import ARTIFACTS, browser  # noqa: F401 - the shared fixture

AID = "01_perceptron"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (/usr/bin/chromium)"),
]


class _Listener(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        _Listener.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def hostile_notebook(url: str):
    nb = subs.solved(AID)
    nb.cells.insert(1, subs.nbformat.v4.new_markdown_cell(
        f'<script>window.__xss = 1; fetch("{url}/md-script")</script>\n'
        f'<img src="{url}/img" onerror="window.__xss = 2; fetch(\'{url}/onerror\')">\n'
        f'![pic]({url}/md-image)\n<iframe src="{url}/frame"></iframe>\n'
        f'<style>body {{ background: url("{url}/css") }}</style>'))
    return subs.insert_code(nb, "from IPython.display import display, HTML, Javascript\n"
                                f"display(HTML('<script>window.__xss = 3</script><img src=\"{url}/html-img\">'))\n"
                                f"display(Javascript('window.__xss = 4; fetch(\"{url}/js\")'))\n"
                                "display({'image/svg+xml': '<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"window.__xss=5\">"
                                "<script>window.__xss=5</script></svg>'}, raw=True)",
                            after="sigmoid_impl")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("xss")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    course = copy_course(tmp)
    folder = tmp / "subs"
    subs.write(folder, "mallory", AID, hostile_notebook(url))
    r = run_cli("grade", str(folder), "--workers", "1", course=course)
    assert r.returncode == 0, r.stderr[-2000:]
    yield {"course": course, "url": url}
    server.shutdown()


def _watch(page) -> tuple[list[str], list[str]]:
    """(every request the page tried, the ones that failed or were blocked)."""
    seen: list[str] = []
    failed: list[str] = []
    page.on("request", lambda req: seen.append(req.url))
    page.on("requestfailed", lambda req: failed.append(req.url))
    return seen, failed


def test_feedback_runs_no_script_and_makes_no_request(browser, graded):  # noqa: F811
    page = browser.new_page()
    seen, failed = _watch(page)
    feedback = graded["course"] / "feedback" / "mallory" / AID / f"{AID}.html"
    page.goto(feedback.as_uri(), wait_until="load")
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "feedback_hostile.png"))
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert "sigmoid" in page.inner_text("body")  # the verdicts render
    assert not [u for u in seen if u.startswith(graded["url"])], "student markup survived into the page"
    # the page's own template asks for MathJax from a CDN: the Content-Security-Policy blocks it
    assert set(u for u in seen if not u.startswith(("file://", "data:"))) <= set(failed)
    assert _Listener.hits == []


def test_formgrader_shows_the_submission_without_running_it(browser, graded):  # noqa: F811
    course = graded["course"]
    db = sqlite3.connect(course / "gradebook.db")
    (nb_id,) = db.execute("SELECT submitted_notebook.id FROM submitted_notebook JOIN submitted_assignment "
                          "ON submitted_notebook.assignment_id = submitted_assignment.id "
                          "JOIN student ON submitted_assignment.student_id = student.id "
                          "WHERE student.id = 'mallory'").fetchone()
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(course.parent / ".jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(course.parent / ".jupyter-runtime"))
    jupyter = Path(sys.executable).parent / "jupyter"
    log = open(course.parent / "server.log", "w")
    proc = subprocess.Popen([str(jupyter), "server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}",
                             f"--ServerApp.root_dir={course}"], cwd=course, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("jupyter server did not start:\n" + (course.parent / "server.log").read_text()[-2000:])
                time.sleep(0.5)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        seen, _failed = _watch(page)
        page.goto(f"{base}/formgrader/submissions/{nb_id}/?token={token}", wait_until="load")
        page.wait_for_selector("text=sigmoid", timeout=60_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(ARTIFACTS / "formgrader_hostile.png"))
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert not [u for u in seen if u.startswith(graded["url"])]
        assert _Listener.hits == []
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()



