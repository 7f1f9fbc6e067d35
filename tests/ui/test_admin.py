"""The administration pages end to end: a real `headwater serve`, real twine uploads, real
chromium signing in and yanking a release, then real pip (isolated) seeing it yanked; CSRF
refusals (a cross-site form, a missing or wrong token) with a clear page and nothing changed;
axe-core clean; and every post in the audit log."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from headwater.db import Database
from headwater.db.identities import GitHubIdentity
from headwater.ui import csrf
from tests.browser import Browser
from tests.clients import clean_env
from tests.server.hosting import api, cli, dists, twine
from tests.server.live import serve

# A page navigating while a wait reads it: its elements go stale; read them again.
_RERENDERED = (NoSuchElementException, StaleElementReferenceException)


@dataclass
class Site:
    url: str
    data: Path
    admin: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server of its own, with one public hosted index ``main`` (the package's server is
    shared with tests that count its projects)."""
    work = tmp_path_factory.mktemp("ui-admin")
    data = work / "headwater-data"
    (work / "headwater.toml").write_text('[serve]\ndefault_index = "main"\n\n[hosted.main]\n')
    with serve(["--data-dir", str(data)], work) as live:
        yield Site(live.url, data, (data / "admin-token").read_text().strip())


def upload(site: Site, project: str, *versions: str, work: Path) -> None:
    for version in versions:
        files = dists(work / f"{project}-{version}", project, version)
        done = twine(site.url + "/main/legacy/", site.admin, files)
        assert done.returncode == 0, done.stdout + done.stderr


def yanked(site: Site, project: str) -> dict[str, object]:
    """filename -> its yank (False or the reason), from the management API."""
    reply = api(f"{site.url}/api/main/projects/{project}", "GET", site.admin)
    assert reply.status == 200, reply
    files = json.loads(reply.body)["project"]["files"]
    return {f["filename"]: f["yanked"] for f in files}


def sign_in(browser: Browser, site: Site, token: str) -> None:
    browser.open(site.url + "/ui/signin?next=/ui/admin")
    browser.driver.find_element(By.ID, "token").send_keys(token)
    browser.submit("#signin-token")
    WebDriverWait(browser.driver, 10, ignored_exceptions=_RERENDERED).until(
        lambda d: d.find_elements(By.ID, "tokens")
    )


def open_project(browser: Browser, project: str) -> None:
    Select(browser.driver.find_element(By.ID, "admin-index")).select_by_value("main")
    browser.driver.find_element(By.ID, "admin-project").send_keys(project)
    browser.driver.find_element(By.CSS_SELECTOR, "#admin-project ~ button").click()
    WebDriverWait(browser.driver, 10, ignored_exceptions=_RERENDERED).until(
        lambda d: project in " ".join(h.text for h in d.find_elements(By.TAG_NAME, "h1"))
    )


def test_sign_in_yank_a_release_and_pip_sees_it_yanked(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    upload(site, "yankme", "1.0", "2.0", work=tmp_path)
    db = Database.connect(f"sqlite:///{site.data / 'headwater.sqlite3'}")
    try:  # a trusted publisher, shown on the project's administration page
        db.add_publisher(
            "main", "yankme", GitHubIdentity(repository="acme/yankme", workflow="release.yml")
        )
    finally:
        db.close()
    sign_in(browser, site, site.admin)
    assert browser.axe() == []
    open_project(browser, "yankme")
    assert browser.axe() == []
    publishers = browser.driver.find_element(By.CSS_SELECTOR, "#publishers ~ div table").text
    assert "repository=acme/yankme" in publishers and "workflow=release.yml" in publishers
    browser.driver.find_element(By.ID, "vreason-1").send_keys("broken build <b>not bold</b>")
    browser.driver.find_element(By.XPATH, "//button[normalize-space()='Yank release 2.0']").click()
    WebDriverWait(browser.driver, 10, ignored_exceptions=_RERENDERED).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "p.notice")
    )
    assert browser.driver.find_element(By.CSS_SELECTOR, "p.notice").text == "Yanked."
    badges = browser.driver.find_elements(By.CSS_SELECTOR, ".badge.warn")
    assert len(badges) == 2  # the wheel and the sdist of 2.0
    assert "broken build <b>not bold</b>" in browser.driver.find_element(By.TAG_NAME, "main").text
    assert browser.pwned() is None and browser.csp_violations() == []
    browser.screenshot("admin-yanked")
    state = yanked(site, "yankme")
    assert {n: y for n, y in state.items() if "2.0" in n} == {
        n: "broken build <b>not bold</b>" for n in state if "2.0" in n
    }
    assert all(y is False for n, y in state.items() if "1.0" in n)
    # Real pip, isolated from this machine's configuration: the yanked release is not chosen...
    env = clean_env(tmp_path / "home")
    base = [sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--no-deps"]
    index = ["--index-url", site.url + "/main/simple/"]
    got = subprocess.run(
        [*base, *index, "-d", str(tmp_path / "d1"), "yankme"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert got.returncode == 0, got.stdout + got.stderr
    assert sorted(p.name for p in (tmp_path / "d1").iterdir()) == ["yankme-1.0-py3-none-any.whl"]
    # ... and pinned to it, pip takes it with PEP 592's warning and the reason.
    pinned = subprocess.run(
        [*base, *index, "-d", str(tmp_path / "d2"), "--only-binary", ":all:", "yankme==2.0"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert "yanked" in pinned.stderr.lower() and "broken build" in pinned.stderr
    # Recorded: who, what, from where.
    browser.open(site.url + "/ui/admin")
    log = browser.driver.find_element(By.CSS_SELECTOR, "#audit ~ div table").text
    assert "admin" in log and "yank" in log and "yankme" in log and "127.0.0.1" in log
    # And for the operator, on the command line.
    printed = cli("audit", "--data-dir", str(site.data), "--index", "main").stdout
    assert re.search(r"admin from 127\.0\.0\.1 via ui: yank main/yankme version='2\.0'", printed)
    # Unyank from the page: pip chooses 2.0 again.
    open_project(browser, "yankme")
    browser.driver.find_element(By.CSS_SELECTOR, "button[aria-label^='Unyank yankme-2.0']").click()
    WebDriverWait(browser.driver, 10, ignored_exceptions=_RERENDERED).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "p.notice")
    )
    assert browser.driver.find_element(By.CSS_SELECTOR, "p.notice").text == "Unyanked."
    state = yanked(site, "yankme")
    assert [n for n, y in state.items() if y is not False] == [
        n for n in state if n.endswith(".tar.gz") and "2.0" in n
    ]


@contextmanager
def attacker(page: bytes) -> Iterator[str]:
    """Another site (another host name: localhost, not 127.0.0.1) serving ``page``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_csrf_refusals_in_the_browser_change_nothing(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    upload(site, "csrfbait", "1.0", work=tmp_path)
    sign_in(browser, site, site.admin)
    target = f"{site.url}/ui/admin/project/main/csrfbait/yank"
    # 1. Another site's page posts a yank form (it cannot know the token: it guesses one).
    page = (
        f'<form id="f" method="post" action="{target}">'
        '<input name="csrf" value="guess"><input name="version" value="1.0">'
        '<input name="reason" value="pwned"></form>'
        "<script>document.getElementById('f').submit()</script>"
    ).encode()
    with attacker(page) as evil:
        browser.driver.get(evil)
        WebDriverWait(browser.driver, 10, ignored_exceptions=_RERENDERED).until(
            lambda d: d.current_url.startswith(site.url)
        )
    body = browser.driver.find_element(By.TAG_NAME, "body").text
    assert "nothing was changed" in body
    assert "another site's page" in body, body
    assert all(y is False for y in yanked(site, "csrfbait").values())
    # 2. This server's own page, its token changed, then removed: refused with the reason.
    for tamper in (
        "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = '0'.repeat(64))",
        "document.querySelectorAll('input[name=csrf]').forEach(i => i.remove())",
    ):
        browser.open(site.url + "/ui/admin")
        open_project(browser, "csrfbait")
        browser.run(tamper)
        browser.driver.find_element(
            By.XPATH, "//button[normalize-space()='Yank release 1.0']"
        ).click()
        WebDriverWait(browser.driver, 10, ignored_exceptions=_RERENDERED).until(
            lambda d: "Administer" not in d.title
        )
        main = browser.driver.find_element(By.TAG_NAME, "main").text
        assert csrf.MISMATCHED.split(";")[0] in main, main
        assert browser.axe() == []
        assert all(y is False for y in yanked(site, "csrfbait").values())
    browser.screenshot("admin-csrf-refused")


def _post(url: str, data: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data.encode(), headers=headers, method="POST")
    opener = urllib.request.build_opener(NoRedirect())
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.mark.parametrize(
    ("case", "extra", "token", "words"),
    [
        ("no token", {}, None, "security token"),
        ("wrong token", {}, "0" * 64, "security token"),
        ("another origin", {"Origin": "https://evil.example"}, "RIGHT", "another site"),
        ("cross-site fetch", {"Sec-Fetch-Site": "cross-site"}, "RIGHT", "another site"),
        ("origin null", {"Origin": "null"}, "RIGHT", "another site"),
    ],
)
def test_csrf_refusals_over_http(
    site: Site, tmp_path: Path, case: str, extra: dict[str, str], token: str | None, words: str
) -> None:
    project = "csrfhttp" + re.sub(r"\W", "", case)
    upload(site, project, "1.0", work=tmp_path)
    cookie = {"Cookie": f"headwater_session={site.admin}"}
    page = (
        urllib.request.urlopen(
            urllib.request.Request(f"{site.url}/ui/admin/project/main/{project}", headers=cookie)
        )
        .read()
        .decode()
    )
    right = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert right is not None
    form = "version=1.0&reason=x" + (
        "" if token is None else f"&csrf={right.group(1) if token == 'RIGHT' else token}"
    )
    headers = {**cookie, "Content-Type": "application/x-www-form-urlencoded", **extra}
    status, body = _post(f"{site.url}/ui/admin/project/main/{project}/yank", form, headers)
    assert status == 403 and words in body and "nothing was changed" in body, (status, body)
    assert all(y is False for y in yanked(site, project).values())
    # The same form with the right token from this origin goes through (the control).
    good = f"version=1.0&reason=x&csrf={right.group(1)}"
    status, _ = _post(
        f"{site.url}/ui/admin/project/main/{project}/yank",
        good,
        {**cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303
    assert all(y == "x" for y in yanked(site, project).values())
