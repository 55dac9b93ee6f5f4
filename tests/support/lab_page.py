"""Driving a JupyterLab page with Playwright, for the browser tests (test_browser, test_bundle_browser).

``lab`` is the dict those tests' fixtures yield: ``base`` (http://127.0.0.1:PORT), ``token`` and
``log`` (the server's log file). Every wait that can fail says what the page showed: the kernels the
server has, each code cell's prompt and output, an open dialog, the console's errors and the end of
the server's log.
"""
from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

CHROMIUM = Path("/usr/bin/chromium")

_PROMPTS = "[...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(config_dir: Path) -> None:
    """JupyterLab user settings for tests: every cell rendered (not only those in view), no news fetched."""
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium, headless, through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                          "--disable-background-networking", "--disable-component-update",
                                          "--disable-sync"])
        try:
            yield browser
        finally:
            browser.close()


def sessions(lab: dict) -> list[dict]:
    """The server's open notebooks and their kernels (``/api/sessions``)."""
    with urllib.request.urlopen(f"{lab['base']}/api/sessions?token={lab['token']}", timeout=10) as r:
        return json.load(r)


def kernel_state(lab: dict, path: str) -> str:
    """The state the server has for ``path``'s kernel ("idle", "busy", "starting"...), or "no kernel"."""
    try:
        states = [s["kernel"]["execution_state"] for s in sessions(lab) if s.get("path") == path and s.get("kernel")]
    except OSError as e:
        return f"unknown ({e})"
    return states[0] if states else "no kernel"


def open_notebook(browser, lab: dict, path: str, timeout: float = 120, watch: Callable | None = None):
    """A new page on ``path`` once the server has an idle kernel for it. Returns (page, console errors).

    ``watch(page)``, if given, is called before the page loads (to record its requests, say)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    if watch is not None:
        watch(page)
    page.goto(f"{lab['base']}/lab/tree/{path}?token={lab['token']}&reset", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    # The page's own indicator can read idle before its kernel exists; a Run All then runs nothing.
    deadline = time.monotonic() + timeout
    while (state := kernel_state(lab, path)) != "idle":
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: no idle kernel after {timeout:.0f} s ({state})\n"
                                 + diagnosis(page, errors, lab))
        time.sleep(0.5)
    page.wait_for_timeout(1000)  # the page learns of the kernel over its websocket
    return page, errors


def run_all(page, errors: list[str], lab: dict, timeout: float = 60) -> None:
    """Run > Run All Cells, until a cell has started.

    JupyterLab may still ask which kernel: a student clicks "Select" (the notebook's own, preselected).
    A click lost under load is made once more."""
    for attempt in (1, 2):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.fullmatch(r"\[(\*|\d+)\]:?", p) for p in page.evaluate(f"() => {_PROMPTS}")):
                return
            select = page.query_selector(".jp-Dialog button:has-text('Select')")
            if select is not None:
                select.click()
            page.wait_for_timeout(500)
    raise AssertionError(f"Run All Cells started no cell (tried twice, {timeout:.0f} s each)\n"
                         + diagnosis(page, errors, lab))


def wait_for(page, errors: list[str], lab: dict, selector: str, screenshot: Path, timeout: float = 240):
    """The element ``selector`` names, once it is on the page.

    Fails at once when a dialog opens (a kernel that died and restarts), after ``timeout`` seconds
    otherwise, saving ``screenshot`` and saying what the page shows."""
    deadline = time.monotonic() + timeout
    while True:
        element = page.query_selector(selector)
        if element is not None:
            return element
        dialog = page.query_selector(".jp-Dialog")
        problem = "a dialog opened: " + " ".join(dialog.inner_text().split()) if dialog is not None else ""
        if problem or time.monotonic() > deadline:
            page.screenshot(path=str(screenshot))
            raise AssertionError(f"{selector} is not on the page ({problem or f'after {timeout:.0f} s'})\n"
                                 + diagnosis(page, errors, lab))
        page.wait_for_timeout(1000)


def real_errors(errors: list[str]) -> list[str]:
    """The console errors that are the course's: not a missing favicon, not a probe of an optional server extension."""
    benign = re.compile(r"favicon|Failed to load resource: the server responded with a status of 404")
    return [e for e in errors if not benign.search(e)]


def diagnosis(page, errors: list[str], lab: dict) -> str:
    """What the page shows: the server's kernels, each code cell's prompt and output (its first 300
    characters), open dialogs, the last console errors and the last lines of the server's log."""
    lines = []
    try:
        lines.append("kernels: " + "; ".join(f"{s.get('path')}: {s['kernel']['execution_state']}"
                                             for s in sessions(lab) if s.get("kernel")))
    except OSError as e:
        lines.append(f"kernels: unknown ({e})")
    try:
        cells = page.evaluate("""() => [...document.querySelectorAll('.jp-CodeCell')].map((c, i) => {
            const prompt = c.querySelector('.jp-InputPrompt');
            const out = [...c.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join(' | ');
            return `cell ${i} ${prompt ? prompt.textContent.trim() : ''} ${out.slice(0, 300)}`;
        })""")
        lines += [" ".join(c.split()) for c in cells]
        lines += ["dialog: " + " ".join(d.split())
                  for d in page.evaluate("() => [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText)")]
    except Exception as e:  # noqa: BLE001 - the page itself may be gone
        lines.append(f"page: {e}")
    lines += ["console: " + e for e in errors[-20:]]
    log = Path(lab["log"])
    if log.exists():
        lines += ["server log: " + line for line in log.read_text(errors="replace").splitlines()[-30:]]
    return "\n".join(lines)
