"""The interface in a real browser (Debian's chromium): navigation, search, a real uploaded
package's page with its README, the private index, sign-in, the why page; axe-core on every page
and screenshots in the artifacts directory."""

from __future__ import annotations

import json
import time
import urllib.request

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import Browser
from tests.server.hosting import request
from tests.ui.conftest import Site

# A page navigating while a wait reads it: its elements go stale; read them again.
_RERENDERED = (NoSuchElementException, StaleElementReferenceException)

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _clean(browser: Browser, name: str) -> None:
    """The page passes axe-core (no serious or critical violation), ran no injected script and
    violated no CSP directive; a screenshot is kept."""
    assert browser.axe() == [], name
    assert browser.pwned() is None, name
    assert browser.csp_violations() == [], name
    browser.screenshot(name)


def _signed_out(browser: Browser, site: Site) -> None:
    # WebDriver deletes the cookies of the page it is on: be on this site first (a cookie is per
    # host, not per port, so another test's server on 127.0.0.1 may have left a session).
    browser.open(site.url + "/ui/static/style.css")
    browser.driver.delete_all_cookies()


def _sign_in(browser: Browser, site: Site, token: str) -> None:
    browser.open(site.url + "/ui/signin")
    browser.driver.find_element(By.ID, "token").send_keys(token)
    browser.submit("#signin-token")


def _text(browser: Browser, selector: str) -> str:
    return str(browser.driver.find_element(By.CSS_SELECTOR, selector).text)


def _rows(browser: Browser) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in browser.driver.find_elements(By.CSS_SELECTOR, "main tbody tr"):
        cells = row.find_elements(By.CSS_SELECTOR, "th, td")
        found[cells[0].text.split()[0]] = [c.text for c in cells[1:]]
    return found


def test_home_lists_every_index_with_kind_health_and_totals(site: Site, browser: Browser) -> None:
    _signed_out(browser, site)
    browser.open(site.url + "/")
    assert browser.title == "Indexes · headwater"
    rows = _rows(browser)
    assert sorted(rows) == ["main", "up"]  # the private indexes: not even their names
    assert rows["main"][0] == "hosted" and rows["up"][0] == "proxy"
    assert rows["main"][1].startswith("ready")
    # The totals are what the Simple API lists (other tests of the package upload too).
    listed = json.loads(request(site.url + "/main/simple/", headers=JSON).body)["projects"]
    files = sum(
        len(json.loads(request(f"{site.url}/main/simple/{p['name']}/", headers=JSON).body)["files"])
        for p in listed
    )
    assert rows["main"][2] == f"{len(listed):,}" and len(listed) >= 2
    assert rows["main"][3] == f"{files:,}" and files >= 4
    assert rows["main"][4].endswith("kB")
    # A proxy's files and bytes are its cache's (the status service's scheduled look), and its
    # health says whether its upstream answered at the last check.
    assert rows["up"][3].endswith("cached") and rows["up"][4].endswith("cached")
    assert "upstream reachable" in rows["up"][1]
    assert "Private indexes are listed here once you sign in" in _text(browser, "main")
    header = browser.driver.find_element(By.CSS_SELECTOR, "header.site")
    assert header.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"
    _clean(browser, "home")


def test_keyboard_navigation_reaches_the_content(site: Site, browser: Browser) -> None:
    _signed_out(browser, site)
    browser.open(site.url + "/")
    body = browser.driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    active = browser.driver.switch_to.active_element
    assert active.text == "Skip to content"
    active.send_keys(Keys.ENTER)
    assert browser.run("return location.hash;") == "#main"


def test_search_ranks_exact_prefix_typo_and_substring(site: Site, browser: Browser) -> None:
    _signed_out(browser, site)
    browser.open(site.url + "/")
    box = browser.driver.find_element(By.ID, "home-search")
    box.send_keys("Helo_World")  # a typo, and not normalized
    box.submit()
    links = browser.driver.find_elements(By.CSS_SELECTOR, "ol.results a")
    assert [a.text for a in links] == ["hello-world"]
    assert "did you mean?" in _text(browser, "ol.results li")
    _clean(browser, "search-typo")
    browser.open(site.url + "/ui/search?q=readme&index=main")
    assert [a.text for a in browser.driver.find_elements(By.CSS_SELECTOR, "ol.results a")] == [
        "hostile-readme"
    ]
    # "all" is private (it shows what "secret" holds): searching it needs a token.
    browser.open(site.url + "/ui/search?q=e&index=all&source=up")
    assert "no index 'all' you may search" in _text(browser, "main")
    _sign_in(browser, site, site.admin)
    browser.open(site.url + "/ui/search?q=hello&index=all&source=up")
    assert browser.driver.find_elements(By.CSS_SELECTOR, "ol.results a") == []
    browser.open(site.url + "/ui/search?q=e&index=all&source=up")
    assert [a.text for a in browser.driver.find_elements(By.CSS_SELECTOR, "ol.results a")] == [
        "evil"
    ]
    _clean(browser, "search-source")
    _signed_out(browser, site)


def _wait_for(browser: Browser, selector: str) -> list[WebElement]:
    def found(driver: object) -> list[WebElement] | bool:
        items = browser.driver.find_elements(By.CSS_SELECTOR, selector)
        return items if items and items[0].is_displayed() else False

    return list(WebDriverWait(browser.driver, 10, ignored_exceptions=_RERENDERED).until(found))


def test_search_as_you_type_suggests_and_opens_with_the_keyboard(
    site: Site, browser: Browser
) -> None:
    _signed_out(browser, site)
    browser.open(site.url + "/")
    box = browser.driver.find_element(By.ID, "site-search")
    box.send_keys("hel")
    items = _wait_for(browser, "#site-search-suggestions a")
    assert items[0].text == "hello-world (main)"
    assert box.get_attribute("aria-expanded") == "true"
    box.send_keys(Keys.ARROW_DOWN)
    box.send_keys(Keys.ENTER)
    WebDriverWait(browser.driver, 10, ignored_exceptions=_RERENDERED).until(
        lambda d: "/project/" in d.current_url
    )
    assert browser.driver.current_url.endswith("/ui/main/project/hello-world")


def test_project_page_of_a_real_upload(site: Site, browser: Browser) -> None:
    _signed_out(browser, site)
    browser.open(site.url + "/ui/main/project/Hello_World")  # redirected to the normal name
    assert browser.driver.current_url.endswith("/ui/main/project/hello-world")
    assert _text(browser, "h1") == "hello-world 1.0"  # the newest final release
    releases = [h.text for h in browser.driver.find_elements(By.CSS_SELECTOR, "section.release h3")]
    assert releases == ["2.0rc1 pre-release", "1.0", "0.9 yanked"]
    sections = browser.driver.find_elements(By.CSS_SELECTOR, "section.release")
    assert "broken build" in sections[2].text
    # The README, rendered from METADATA as PyPI renders Markdown: a heading, bold, a table.
    readme = browser.driver.find_element(By.CSS_SELECTOR, "section.readme")
    assert readme.find_element(By.TAG_NAME, "strong").text == "friendly"
    assert readme.find_elements(By.CSS_SELECTOR, "table td")[0].text == "one"
    snippets = [c.text for c in browser.driver.find_elements(By.CSS_SELECTOR, "#install ~ pre")]
    assert snippets[0] == f"pip install --index-url {site.url}/main/simple/ hello-world"
    assert snippets[1].startswith("uv pip install --index-url ")
    row = sections[1].find_element(By.CSS_SELECTOR, "tbody tr")
    cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[0].startswith("hello_world-1.0-py3-none-any.whl")
    assert cells[1] == "Python 3 · any platform"
    assert cells[2].endswith(("bytes", "kB"))
    assert cells[3].endswith("UTC") and len(cells[5]) == 64
    # The file and metadata links are the index's own, and they work.
    file_link = row.find_element(By.CSS_SELECTOR, "th a").get_attribute("href")
    meta_link = row.find_element(By.CSS_SELECTOR, "small a").get_attribute("href")
    assert file_link and meta_link == file_link + ".metadata"
    with urllib.request.urlopen(meta_link) as answer:
        assert b"Name: Hello_World" in answer.read()
    _clean(browser, "project-hello-world")


def test_a_private_index_is_hidden_without_a_token(site: Site, browser: Browser) -> None:
    _signed_out(browser, site)
    for path in ("/ui/secret/project/secret-thing", "/ui/all/project/secret-thing"):
        browser.open(site.url + path)
        assert "Sign in" in _text(browser, "main")
        assert "is private" in _text(browser, "main .problem")
        assert browser.driver.find_elements(By.CSS_SELECTOR, "section.release") == []
    browser.open(site.url + "/ui/search?q=secret&index=secret")
    assert "no index 'secret' you may search" in _text(browser, "main")
    browser.open(site.url + "/ui/search?q=secret-thing&index=all")
    assert browser.driver.find_elements(By.CSS_SELECTOR, "ol.results a") == []
    browser.open(site.url + "/ui/search?q=secret-thing")  # the default index: main
    assert browser.driver.find_elements(By.CSS_SELECTOR, "ol.results a") == []
    suggest = json.loads(request(site.url + "/ui/suggest?q=secret&index=secret").body)
    assert suggest["results"] == [] and suggest["index"] is None
    _clean(browser, "private-hidden")
    # Signed in with a token that may read it: everything is there.
    _sign_in(browser, site, site.token("admin", "read"))
    browser.open(site.url + "/ui/secret/project/secret-thing")
    assert _text(browser, "h1") == "secret-thing 1.0"
    browser.open(site.url + "/")
    assert _rows(browser)["secret"][2] == "1"
    assert _rows(browser)["all"][0] == "index"
    browser.open(site.url + "/ui/search?q=secret&index=all")
    assert [a.text for a in browser.driver.find_elements(By.CSS_SELECTOR, "ol.results a")] == [
        "secret-thing"
    ]
    _clean(browser, "private-signed-in")
    # A token for another index only: refused with authz's words (403), nothing shown.
    _signed_out(browser, site)
    _sign_in(browser, site, site.token("admin", "read", index="main"))
    browser.open(site.url + "/ui/secret/project/secret-thing")
    assert "limited to the index(es) main" in _text(browser, "main .problem")
    assert browser.driver.find_elements(By.CSS_SELECTOR, "section.release") == []
    _signed_out(browser, site)


def test_sign_in_sets_a_cookie_no_script_can_read_and_sign_out_ends_it(
    site: Site, browser: Browser
) -> None:
    _signed_out(browser, site)
    _sign_in(browser, site, "not-a-token")
    assert "unknown, revoked or expired" in _text(browser, "main .problem")
    _sign_in(browser, site, site.admin)
    assert _text(browser, ".account strong") == "admin"
    cookie = browser.driver.get_cookie("headwater_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.run("return document.cookie;") == ""
    browser.screenshot("signed-in")
    browser.submit(".account button")
    assert browser.driver.get_cookie("headwater_session") is None
    assert "Sign in" in _text(browser, ".account")


def test_why_this_source(site: Site, browser: Browser) -> None:
    _signed_out(browser, site)
    browser.open(site.url + "/ui/all/project/hello-world/why")
    assert browser.driver.find_elements(By.ID, "decision") == []  # "all" is private
    _sign_in(browser, site, site.admin)
    browser.open(site.url + "/ui/all/project/hello-world")
    browser.driver.find_element(By.LINK_TEXT, "Why this source?").click()
    decision = browser.driver.find_element(By.ID, "decision")
    assert decision.get_attribute("data-outcome") == "served"
    assert decision.get_attribute("data-sources") == "main"
    asked = [r.text for r in browser.driver.find_elements(By.CSS_SELECTOR, "tbody th")]
    assert asked[-1] == "main"  # in priority order, stopping at main
    _clean(browser, "why-served")
    browser.open(site.url + "/ui/all/project/nothing-here/why")
    assert browser.driver.find_element(By.ID, "decision").get_attribute("data-outcome") == (
        "not-found"
    )
    browser.open(site.url + "/ui/main/project/hello-world/why")
    assert "not a composed index" in _text(browser, "main")
    _signed_out(browser, site)


def test_dark_scheme_passes_contrast_checks(site: Site) -> None:
    from tests.browser import launch

    with launch(dark=True) as dark:
        dark.open(site.url + "/ui/main/project/hello-world")
        background = dark.run("return getComputedStyle(document.body).backgroundColor;")
        assert background == "rgb(17, 20, 24)", background  # the dark scheme applied
        assert dark.axe() == []
        dark.screenshot("project-dark")
        time.sleep(0)
