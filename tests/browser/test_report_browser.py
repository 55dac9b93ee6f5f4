"""The class report in a real browser (Debian's Chromium, headless, driven by Playwright):
opened from disk with every network request recorded and refused, it renders, its plots are
drawn, the top mistakes and the pairs to review are on screen, and nothing is fetched.
Screenshots go to artifacts/report/.

Skipped, with the reason printed, only where Chromium is not installed.
"""
from __future__ import annotations

import re

import pytest

from tests.support import report_class as rc
from tests.support.course import REPO
from tests.support.lab_page import CHROMIUM, chromium

ARTIFACTS = REPO / "artifacts" / "report"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (/usr/bin/chromium): "
                                                      "`apt-get install chromium` to run the browser tests"),
]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    result = rc.graded_class(tmp_path_factory.mktemp("report-class"))
    assert result["grade"].returncode == 0, result["grade"].stderr[-3000:]
    assert result["report"].returncode == 0, result["report"].stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def page(graded_class):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = graded_class["html"].resolve().as_uri()
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, offline=True)
        requests: list[str] = []
        errors: list[str] = []

        # anything but the page itself is refused (and recorded) before it reaches the network
        context.route("**/*", lambda r: r.continue_() if r.request.url == url else r.abort())
        pg = context.new_page()
        pg.on("request", lambda r: requests.append(r.url))
        pg.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url, wait_until="load")
        pg.screenshot(path=str(ARTIFACTS / "report_top.png"))
        pg.screenshot(path=str(ARTIFACTS / "report_full.png"), full_page=True)
        yield {"page": pg, "url": url, "requests": requests, "errors": errors, **graded_class}
        context.close()


def test_page_renders_offline_and_requests_nothing_else(page):
    pg = page["page"]
    assert pg.title().startswith("What the class got wrong")
    assert pg.locator("h2", has_text="01_perceptron").is_visible()
    assert page["requests"] == [page["url"]], page["requests"]
    assert not page["errors"], page["errors"]  # a blocked resource or a CSP violation would show here


def test_plots_are_drawn(page):
    pg = page["page"]
    figures = pg.locator("figure.plot svg")
    assert figures.count() == 3  # score distribution, pass rates, pair similarity
    for i in range(figures.count()):
        box = figures.nth(i).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100, box
    # screenshot level: the pass-rate chart's pixels really carry its bar colours
    import matplotlib.image as mpimg
    import numpy as np

    shot = ARTIFACTS / "pass_rates.png"
    pg.locator("figure[aria-label='pass rates']").screenshot(path=str(shot))
    pixels = (mpimg.imread(shot)[..., :3] * 255).round().astype(int)
    for colour in ("#3a7ebf", "#8cc084", "#e0a040"):
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        share = np.mean(np.all(np.abs(pixels - rgb) <= 6, axis=-1))
        assert share > 0.02, f"{colour} covers {share:.1%} of the chart"


def test_the_instructor_can_read_the_top_mistakes_and_the_pairs(page):
    pg = page["page"]
    row = pg.locator("table.reteach tr", has_text="softmax").first
    assert row.is_visible()
    assert re.search(r"softmax over the wrong axis.*\(2 student", row.inner_text(), re.S)
    pairs = pg.locator("table.pairs tbody tr")
    assert pairs.count() == 2
    assert {tuple(pairs.nth(i).locator("td").all_inner_texts()[:2]) for i in range(2)} == \
        {("alice", "frank"), ("diana", "gina")}
    pairs.nth(0).locator("a", has_text="view").click()
    target = pg.locator(".pair").first
    target.wait_for(state="visible")
    assert target.locator(".sbs pre .m").count() > 10  # matching lines highlighted on both sides
    assert pg.evaluate("() => location.hash").endswith("-pair-0")
    pg.screenshot(path=str(ARTIFACTS / "report_pair.png"))


def test_no_hidden_value_is_on_screen(page):
    text = page["page"].inner_text("body")
    leaked = sorted(v for v in rc.hidden_numbers(page["course"]) if v in text)
    assert not leaked, f"hidden values on the page: {leaked[:5]}"
