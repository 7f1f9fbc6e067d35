"""Hostile content renders inert, in a real browser.

Project READMEs, yank reasons, an upstream's page (yank reason, Requires-Python, project status
reason, versions, tracks, file and provenance URLs, its README) and the request itself (search
text, index and project names in the URL, the sign-in form's ``next``) carry script injections
(tests/ui/conftest.py: ``<script>``, event handler attributes, ``javascript:`` URLs, quotes that
would end an attribute, ``<iframe>``/``<object>``/``<form>``) and control characters. On every
page: no payload ran (``window.__pwned`` unset, ``alert`` never called), no script but the
interface's own is in the document, no element has an event handler attribute, no link, frame or
form points at a ``javascript:`` URL, the content security policy reported nothing (escaping
and sanitising stopped everything before the CSP had to), and axe-core finds no serious
violation. The payloads that are text (a yank reason) are shown as text.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By

from tests.browser import Browser
from tests.ui.conftest import IMG, JS_URL, SCRIPT, Site

_INERT = """
const bad = [];
for (const s of document.scripts) {
  if (s.src !== location.origin + '/ui/static/search.js') bad.push('script: ' + s.outerHTML.slice(0, 120));
}
for (const el of document.querySelectorAll('*')) {
  for (const a of el.attributes) {
    if (a.name.toLowerCase().startsWith('on')) bad.push('handler: ' + el.outerHTML.slice(0, 120));
    if (['href', 'src', 'action', 'data', 'formaction', 'xlink:href'].includes(a.name.toLowerCase())
        && a.value.trim().toLowerCase().startsWith('javascript:')) bad.push('js url: ' + el.outerHTML.slice(0, 120));
  }
}
for (const el of document.querySelectorAll('iframe, object, embed, base, meta[http-equiv]')) {
  bad.push('element: ' + el.outerHTML.slice(0, 120));
}
return bad;
"""

PAGES = [
    ("readme-and-yank-reason", "/ui/main/project/hostile-readme", False),
    ("upstream-page", "/ui/up/project/evil", False),
    ("composed-upstream-page", "/ui/all/project/evil", True),
    ("why-upstream-page", "/ui/all/project/evil/why", True),
    ("search-text", "/ui/search?index=main&q=" + quote(SCRIPT + IMG), False),
    ("search-index", "/ui/search?q=x&index=" + quote(SCRIPT), False),
    ("suggest-source", "/ui/search?q=x&index=all&source=" + quote(SCRIPT), True),
    ("project-name", "/ui/main/project/" + quote(SCRIPT, safe=""), False),
    ("index-name", "/ui/" + quote(IMG, safe="") + "/project/x", False),
    ("sign-in-next", "/ui/signin?next=" + quote(JS_URL + SCRIPT), False),
    (
        "sign-in-next-path",
        "/ui/signin?next=" + quote('/"><script>window.__pwned=1</script>'),
        False,
    ),
    ("home", "/", True),
]


@pytest.mark.parametrize(("name", "path", "signed_in"), PAGES, ids=[p[0] for p in PAGES])
def test_hostile_content_is_inert(
    site: Site, browser: Browser, name: str, path: str, signed_in: bool
) -> None:
    browser.driver.delete_all_cookies()
    if signed_in:
        browser.open(site.url + "/ui/signin")
        browser.driver.find_element(By.ID, "token").send_keys(site.admin)
        browser.submit("#signin-token")
    browser.open(site.url + path)
    assert browser.pwned() is None, name
    assert browser.run(_INERT) == [], name
    assert browser.csp_violations() == [], name
    assert browser.axe() == [], name
    browser.screenshot("hostile-" + name)
    browser.driver.delete_all_cookies()


def test_payloads_that_are_text_are_shown_as_text(site: Site, browser: Browser) -> None:
    browser.driver.delete_all_cookies()
    browser.open(site.url + "/ui/main/project/hostile-readme")
    # The yank reason, exactly as the uploader wrote it, as text.
    assert SCRIPT in browser.driver.find_element(By.CSS_SELECTOR, "section.release").text
    # The README's Markdown survived around the stripped markup.
    assert browser.driver.find_element(By.CSS_SELECTOR, ".readme h1").text.startswith("Hostile")
    # A javascript: link is not a link.
    hrefs = [
        a.get_attribute("href") or ""
        for a in browser.driver.find_elements(By.CSS_SELECTOR, "main a")
    ]
    assert not [h for h in hrefs if h.lower().startswith("javascript")]
    browser.open(site.url + "/ui/up/project/evil")
    text = browser.driver.find_element(By.TAG_NAME, "main").text
    assert "This project is deprecated" in text
    # Control characters never reach the page raw (the page parser replaced them on the way in).
    assert ">=3.8" in text and "\x1b" not in text and "\x07" not in text
