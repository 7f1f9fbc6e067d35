"""A real browser for the interface's tests: Debian's chromium driven by Selenium.

``scripts/setup-system`` installs ``chromium`` and ``chromium-driver``; nothing downloads a
browser (Selenium is pointed at /usr/bin/chromedriver, whose chromium is /usr/bin/chromium).
A test that needs the browser gets :func:`browser` (a fixture in tests/ui/conftest.py); a
missing chromium fails with the command that installs it, never a silent skip.

What a test can ask of a :class:`Browser` beyond Selenium's driver:

- :meth:`Browser.open`: load a page and install the watchers (below) before any of its scripts run;
- :meth:`Browser.pwned`: whether any hostile payload ran (payloads set ``window.__pwned`` or call
  ``alert``; both are trapped from the first byte of every page);
- :meth:`Browser.csp_violations`: the content security policy violations the page reported;
- :meth:`Browser.axe`: axe-core's violations of impact serious or critical on the current page;
- :meth:`Browser.screenshot`: a PNG in the artifacts directory (``$HEADWATER_ARTIFACTS``, else
  ``tests/artifacts``), kept after the run for people to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE = Path(__file__).parent / "ui" / "vendor" / "axe.min.js"
#: Flags that work on this machine (no GPU, no sandbox in a container, nothing fetched).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)
#: Runs before any script of every page: trap what a payload would do, and record CSP reports.
_WATCH = """
(() => {
  window.__pwned = undefined;
  window.__csp = [];
  const trap = (what) => function () { window.__pwned = what; };
  window.alert = trap('alert'); window.confirm = trap('confirm'); window.prompt = trap('prompt');
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample});
  });
})();
"""


def artifacts_dir() -> Path:
    """Where screenshots go: ``$HEADWATER_ARTIFACTS``, else tests/artifacts (created)."""
    path = Path(os.environ.get("HEADWATER_ARTIFACTS") or Path(__file__).parent / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def missing() -> str | None:
    """Why the browser cannot run here (with the fix), or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing: run scripts/setup-system (it installs chromium and chromium-driver)"
    return None


class Browser:
    """Selenium's Chrome driver with the watchers of the module docstring."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get(url)

    def submit(self, selector: str, *, timeout: float = 10) -> None:
        """Click the element at CSS ``selector`` (a form's button) and wait until the answer's page
        has replaced this one. Opening another page before the answer arrives would cancel the
        form's POST (and, for a sign-in, the cookie it sets)."""
        # The page is marked, and the answer is the first complete page without the mark. (Waiting
        # for the button to go stale is not enough: while Chromium swaps documents, asking about
        # the old element can fail with "Node with given id does not belong to the document",
        # which is neither staleness nor an answer; the CI run of 2026-12-03 failed on it.)
        self.driver.execute_script("document.documentElement.dataset.hwSubmitted = '1';")
        self.driver.find_element(By.CSS_SELECTOR, selector).click()
        WebDriverWait(self.driver, timeout, ignored_exceptions=(WebDriverException,)).until(
            lambda driver: driver.execute_script(
                "return document.readyState === 'complete'"
                " && document.documentElement.dataset.hwSubmitted === undefined;"
            )
        )

    @property
    def title(self) -> str:
        return str(self.driver.title)

    def run(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def pwned(self) -> Any:
        return self.run("return window.__pwned === undefined ? null : String(window.__pwned);")

    def csp_violations(self) -> list[dict[str, str]]:
        found = self.run("return window.__csp || [];")
        return list(found)

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the current page (WCAG 2.x A and AA)."""
        if not self.run("return typeof window.axe === 'object';"):
            self.run(AXE.read_text())
        result = self.driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            axe.run(document, {runOnly: {type: 'tag',
                               values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})
              .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))))
              .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));
            """
        )
        return [v for v in result if v["impact"] in ("serious", "critical")]

    def screenshot(self, name: str) -> Path:
        path = artifacts_dir() / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
        self.driver.save_screenshot(str(path))
        return path


@contextmanager
def launch(*, dark: bool = False, javascript: bool = True) -> Iterator[Browser]:
    """A fresh headless chromium (its own profile directory, removed afterwards); ``dark``: it
    prefers the dark scheme; ``javascript=False``: no page script runs (as with JavaScript
    turned off in the settings; the watchers and axe then cannot run either)."""
    problem = missing()
    if problem:
        raise RuntimeError(problem)
    profile = tempfile.mkdtemp(prefix="hw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(60)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _WATCH})
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
