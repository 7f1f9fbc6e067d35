"""Password sign-in in a real browser: Debian's chromium signs in with a password set by
``headwater user password`` (from stdin), yanks a release of a project its user owns, signs
out; a wrong password is refused with one message; five wrong passwords lock the name even
against the right one; a password session creates an upload token for a project its user owns
(the password typed again; a wrong one is counted), which twine uploads with and which is refused
for another project (twine, uv publish); it adds a trusted publisher to its project; axe-core finds nothing serious on the sign-in, account
and token pages."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from headwater.db import Database, schema
from headwater.db.audit import admin_actions
from headwater.db.throttle import USER_LIMIT, counter_key
from tests.browser import Browser
from tests.server.hosting import dists, twine
from tests.server.live import serve

_RERENDERED = (NoSuchElementException, StaleElementReferenceException)
HEADWATER = str(Path(sys.executable).with_name("headwater"))
PASSWORD = "carol types this long password"


@dataclass
class Site:
    url: str
    data: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("ui-passwords")
    data = work / "headwater-data"
    (work / "headwater.toml").write_text('[serve]\ndefault_index = "main"\n\n[hosted.main]\n')
    with serve(["--data-dir", str(data)], work) as live:
        admin = (data / "admin-token").read_text().strip()
        for user in ("carol", "dave"):
            made = subprocess.run(
                [HEADWATER, "user", "create", user, "--data-dir", str(data)],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert made.returncode == 0, made.stderr
            done = subprocess.run(
                [HEADWATER, "user", "password", user, "--data-dir", str(data)],
                input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        for version in ("1.0", "2.0"):
            files = dists(work / f"carols-lib-{version}", "carols-lib", version)
            uploaded = twine(live.url + "/main/legacy/", admin, files)
            assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
        db = Database.connect(f"sqlite:///{data / 'headwater.sqlite3'}")
        try:
            db.add_owner("main", "carols-lib", "carol")
        finally:
            db.close()
        yield Site(live.url, data)


def wait(browser: Browser, condition: object) -> None:
    WebDriverWait(browser.driver, 15, ignored_exceptions=_RERENDERED).until(condition)  # type: ignore[arg-type]


def password_sign_in(browser: Browser, site: Site, user: str, password: str) -> None:
    browser.open(site.url + "/ui/signin?next=/ui/admin")
    browser.driver.find_element(By.ID, "user").send_keys(user)
    browser.driver.find_element(By.ID, "password").send_keys(password)
    browser.driver.find_element(By.ID, "signin-password").click()
    wait(
        browser,
        lambda d: d.find_elements(By.ID, "tokens") or d.find_elements(By.CSS_SELECTOR, "p.problem"),
    )


def test_sign_in_with_a_password_yank_and_sign_out(site: Site, browser: Browser) -> None:
    browser.open(site.url + "/ui/signin")
    assert browser.axe() == []
    browser.screenshot("password-signin")
    password_sign_in(browser, site, "carol", PASSWORD)
    header = browser.driver.find_element(By.CSS_SELECTOR, "header .account").text
    assert "Signed in as carol" in header
    # An administration action on a project carol owns.
    browser.open(site.url + "/ui/admin/project/main/carols-lib")
    browser.driver.find_element(By.XPATH, "//button[normalize-space()='Yank release 2.0']").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "p.notice"))
    assert browser.driver.find_element(By.CSS_SELECTOR, "p.notice").text == "Yanked."
    db = Database.connect(f"sqlite:///{site.data / 'headwater.sqlite3'}")
    try:
        record = db.project("main", "carols-lib")
        assert record is not None
        assert {f.version for f in record.files if f.yanked is not False} == {"2.0"}
        # The account page: a password session changes its password with the current one.
        browser.open(site.url + "/ui/account")
        assert browser.driver.find_elements(By.ID, "current")
        assert browser.axe() == []
        # Signing out ends the session in the database.
        assert len(db.sessions("carol")) == 1
        browser.driver.find_element(By.CSS_SELECTOR, "header .account button").click()
        wait(browser, lambda d: d.find_elements(By.LINK_TEXT, "Sign in"))
        assert db.sessions("carol") == []
        actions = [(e.actor, e.action) for e in admin_actions(db.engine, limit=10)]
        assert actions[:3] == [("carol", "sign-out"), ("carol", "yank"), ("carol", "sign-in")]
    finally:
        db.close()
    assert browser.pwned() is None and browser.csp_violations() == []


def test_wrong_password_then_lockout(site: Site, browser: Browser) -> None:
    password_sign_in(browser, site, "dave", "not dave's password, clearly")
    problem = browser.driver.find_element(By.CSS_SELECTOR, "p.problem").text
    assert problem.startswith("the user name or the password is wrong")
    assert browser.driver.find_element(By.ID, "user").get_attribute("value") == "dave"
    assert browser.axe() == []
    for n in range(USER_LIMIT.failures - 1):
        password_sign_in(browser, site, "dave", f"another wrong password {n}")
    password_sign_in(browser, site, "dave", PASSWORD)
    problem = browser.driver.find_element(By.CSS_SELECTOR, "p.problem").text
    assert "too many failed sign-ins" in problem, problem
    assert not browser.driver.find_elements(By.ID, "tokens")
    browser.screenshot("password-locked")


def _create_token(browser: Browser, project: str, password: str) -> None:
    """Fill in the create-token form of a password session and submit it."""
    for field, value in (
        ("token-projects", project),
        ("token-description", "uploads from my laptop"),
        ("token-password", password),
    ):
        element = browser.driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.submit("#create-token")


def test_a_password_session_creates_a_token_with_the_password_again_and_uploads_with_it(
    site: Site, browser: Browser, tmp_path: Path, uv: Path
) -> None:
    admin = (site.data / "admin-token").read_text().strip()
    other = twine(site.url + "/main/legacy/", admin, dists(tmp_path / "o", "not-carols", "1.0"))
    assert other.returncode == 0, other.stdout + other.stderr
    password_sign_in(browser, site, "carol", PASSWORD)
    browser.open(site.url + "/ui/admin")
    assert "main/carols-lib" in browser.driver.find_element(By.ID, "owned").text
    # The single hosted index is filled in; 90 days unless changed; upload is checked.
    assert browser.driver.find_element(By.ID, "token-indexes").get_attribute("value") == "main"
    assert browser.driver.find_element(By.ID, "token-days").get_attribute("value") == "90"
    assert browser.axe() == []
    browser.screenshot("password-token-form")
    db = Database.connect(f"sqlite:///{site.data / 'headwater.sqlite3'}")
    try:
        # A wrong password again: refused, nothing created, counted as a failed sign-in.
        _create_token(browser, "carols-lib", "someone who stole the cookie")
        problem = browser.driver.find_element(By.CSS_SELECTOR, "p.problem").text
        assert "password you typed again is wrong" in problem
        assert not browser.driver.find_elements(By.ID, "new-token-value")
        with db.engine.connect() as conn:
            failures = conn.execute(
                sa.select(schema.sign_in_throttle.c.failures).where(
                    schema.sign_in_throttle.c.key == counter_key("user", "carol")
                )
            ).scalar()
        assert failures == 1
        assert browser.axe() == []
        # A project carol does not own: refused after the password is right.
        _create_token(browser, "not-carols", PASSWORD)
        problem = browser.driver.find_element(By.CSS_SELECTOR, "p.problem").text
        assert "covers only projects you own" in problem
        assert db.tokens("carol") == []
        # Her own project: the token is shown once.
        _create_token(browser, "carols-lib", PASSWORD)
        token = browser.driver.find_element(By.ID, "new-token-value").get_attribute("value")
        assert token is not None and token.startswith("hw_")
        browser.screenshot("password-token-created")
        (info,) = db.tokens("carol")
        assert info.scopes == {"upload"} and info.projects == {"carols-lib"}
        log = [(e.actor, e.action) for e in admin_actions(db.engine, limit=3)]
        assert log == [("carol", "token-create")] + [("carol", "refused token-create")] * 2
    finally:
        db.close()
    # twine uploads to carol's project with it; twine and uv publish to another are refused.
    mine = twine(site.url + "/main/legacy/", token, dists(tmp_path / "m", "carols-lib", "3.0"))
    assert mine.returncode == 0, mine.stdout + mine.stderr
    theirs = dists(tmp_path / "t", "not-carols", "2.0")
    refused = twine(site.url + "/main/legacy/", token, theirs)
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env.update(UV_NO_CONFIG="1", HOME=str(tmp_path))
    published = subprocess.run(
        [str(uv), "publish", "--publish-url", site.url + "/main/legacy/", "--token", token,
         *map(str, theirs)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    said = " ".join((published.stdout + published.stderr).split())
    assert published.returncode != 0 and "limited to the project(s) carols-lib" in said, said
    # As owner, carol adds a trusted publisher to her project (PyPI lets owners do the same).
    browser.open(site.url + "/ui/admin/project/main/carols-lib")
    browser.driver.find_element(By.ID, "publisher-repository").send_keys("carol/lib")
    browser.driver.find_element(By.ID, "publisher-workflow").send_keys("release.yml")
    browser.driver.find_element(By.ID, "publisher-password").send_keys(PASSWORD)
    browser.submit("form[action$='/publisher-add'] button")
    assert browser.driver.find_element(By.CSS_SELECTOR, "p.notice").text == (
        "Trusted publisher added."
    )
    table = browser.driver.find_element(By.CSS_SELECTOR, "#publishers ~ div table").text
    assert "repository=carol/lib" in table and "carol (ui)" in table
    assert browser.axe() == []
    assert browser.pwned() is None and browser.csp_violations() == []
