"""The dashboard in a real browser: headless Chromium (Debian's) through selenium and chromedriver.

The page is served from a folder on 127.0.0.1 the way a cron job would
publish it. The browser must find every pending proposal in the DOM, make no
request beyond the page itself, log no console error, fit a 375 px phone
without sideways scrolling, and let a keyboard reach the claim diffs.
Screenshots at 375 px and 1280 px are written to ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from feedbackctl.patterns.proposals import OPEN
from tests.clirun import ROOT, cli
from tests.dashboardfix import DEMO_NOW, Demo, make_demo, run_dashboard

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


Site = tuple[Demo, dict[str, Any], str]  # the demo, its dashboard JSON, the page URL


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, git_env: Path) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("browser")
    demo = make_demo(root / "demo")
    out = root / "site"
    doc, _ = run_dashboard(demo, out)
    handler = functools.partial(_Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield demo, doc, f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _load(driver: webdriver.Chrome, url: str, width: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    driver.get(url)


# Chromium's own pages (the new-tab page it opens at start) load these; a page cannot.
INTERNAL = ("chrome://", "chrome-untrusted://", "devtools://")


def _requests(driver: webdriver.Chrome) -> list[str]:
    """Every request the browser sent, apart from its own internal pages'."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            params = message["params"]
            if not str(params.get("documentURL", "")).startswith(INTERNAL):
                urls.append(params["request"]["url"])
    return urls


def _screenshot(driver: webdriver.Chrome, name: str) -> Path:
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path


class TestInChromium:
    def test_dom_holds_every_pending_proposal(self, site: Site, browser: webdriver.Chrome) -> None:
        demo, doc, url = site
        listed = cli("proposals", "list", "--repo", str(demo.repo), "--now", DEMO_NOW, "--output", "json")
        pending = {e["branch"] for e in listed.json()["proposals"] if e["status"] in OPEN}
        assert len(pending) == 2
        _load(browser, url, 1280)
        cards = browser.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=proposals] article")
        assert {c.get_attribute("id") for c in cards} == pending
        for card in cards:
            assert "risk" in card.find_element(By.CSS_SELECTOR, ".badge.risk").text  # risk in words
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("feedbackctl review dashboard")
        assert "AUDIT VIOLATIONS" in browser.find_element(By.CSS_SELECTOR, "section.violations h2").text

    def test_no_request_leaves_the_page_and_no_console_error(
        self, site: Site, browser: webdriver.Chrome
    ) -> None:
        _, _, url = site
        browser.get_log("performance")  # drop what earlier pages did
        browser.get_log("browser")
        _load(browser, url, 1280)
        assert browser.execute_script("return document.readyState") == "complete"
        assert _requests(browser) == [url]
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []

    @pytest.mark.parametrize("width", [375, 1280])
    def test_screenshots_and_no_sideways_scroll(
        self, site: Site, browser: webdriver.Chrome, width: int
    ) -> None:
        _, _, url = site
        _load(browser, url, width)
        scroll = browser.execute_script("return document.documentElement.scrollWidth")
        assert scroll <= width, f"the page is {scroll}px wide at a {width}px viewport"
        charts = browser.find_elements(By.CSS_SELECTOR, "svg.window-chart")
        assert charts and all(0 < c.size["width"] <= width for c in charts)
        path = _screenshot(browser, f"dashboard-{width}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000

    def test_keyboard_reaches_the_claim_diff_and_opens_it(
        self, site: Site, browser: webdriver.Chrome
    ) -> None:
        _, _, url = site
        _load(browser, url, 1280)
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        for _ in range(60):
            active = browser.switch_to.active_element
            if active.tag_name == "summary":
                break
            active.send_keys(Keys.TAB)
        else:
            pytest.fail("60 tabs never reached a <summary>")
        details = active.find_element(By.XPATH, "..")
        assert details.get_attribute("open") is None
        active.send_keys(Keys.ENTER)
        assert details.get_attribute("open") is not None
        assert "lambda" in details.find_element(By.TAG_NAME, "pre").text
