"""An outside acceptance pass over issue 13 (the web interface), line by line, against the real
``headwater serve`` of tests/ui/conftest.py, real twine uploads and Debian's chromium.

Each test names the issue's promise it holds. The failures this pass found (each test here
failed before its fix):

- the home page's search box ("Search every index you can read") searched the default index
  only: a project of a proxy or another hosted index was not found;
- a method a page does not take got Starlette's plain-text 405, without the interface's page,
  its content security policy or a complete ``Allow``; a path under ``/ui/`` with a line break
  got a plain-text 404 the same way;
- the sign-out button was the one form without a CSRF token;
- a README whose content type PyPI does not know was rendered as reStructuredText (PyPI shows it
  as plain text), and a description in the ``Description`` header (core metadata 1.x, old
  sdists) was shown as broken reStructuredText, its folding indentation kept;
- the project status (PEP 792) was shown only when it was not ``active``;
- the home page did not say whether a proxy's upstream is reachable;
- the install commands of a project with only pre-releases (or only yanked releases) named the
  bare project, which pip and uv then refuse to install.
"""

from __future__ import annotations

import html
import json
import re
import shlex
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from headwater.server.routes import ROUTES, example_path
from headwater.simple.names import normalize_name
from headwater.testing.wheels import build_wheel, wheel_filename
from headwater.ui.readme import render_metadata
from tests.browser import Browser, launch
from tests.clients import clean_env, installed_version, make_venv, run_ok
from tests.server.hosting import api, cli, request, twine
from tests.ui.conftest import Site, wheel

HTML = "text/html; charset=utf-8"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _results(browser: Browser) -> list[str]:
    return [li.text for li in browser.driver.find_elements(By.CSS_SELECTOR, "ol.results li")]


def _sign_in(browser: Browser, site: Site, token: str) -> None:
    browser.open(site.url + "/ui/signin")
    browser.driver.find_element(By.ID, "token").send_keys(token)
    browser.submit("#signin-token")


def _signed_out(browser: Browser, site: Site) -> None:
    browser.open(site.url + "/ui/static/style.css")
    browser.driver.delete_all_cookies()


# -- Home: "a search box"; Search: "across an index" --------------------------------------------


def test_the_home_search_box_searches_every_index_you_may_read(
    site: Site, browser: Browser
) -> None:
    """The box says "Search every index you can read": a name only the proxy ``up`` has is found
    from it, labelled with its index; a private index's names only with a token."""
    _signed_out(browser, site)
    browser.open(site.url + "/")
    box = browser.driver.find_element(By.ID, "home-search")
    box.send_keys("evil")
    box.submit()
    assert _results(browser)[0].startswith("evil in up"), _results(browser)
    browser.driver.find_element(By.CSS_SELECTOR, "ol.results a").click()
    assert browser.driver.current_url == site.url + "/ui/up/project/evil"
    browser.open(site.url + "/ui/search?q=secret-thing")
    assert _results(browser) == []
    suggest = json.loads(request(site.url + "/ui/suggest?q=evi").body)
    assert [(r["name"], r["index"]) for r in suggest["results"]] == [("evil", "up")]
    assert json.loads(request(site.url + "/ui/suggest?q=secret").body)["results"] == []
    _sign_in(browser, site, site.admin)
    browser.open(site.url + "/ui/search?q=secret-thing")
    found = _results(browser)
    assert {line.split(" exact")[0] for line in found} == {
        "secret-thing in all",
        "secret-thing in secret",
    }, found
    # Naming an index still searches that one only.
    browser.open(site.url + "/ui/search?q=evil&index=main")
    assert _results(browser) == []
    assert browser.axe() == []
    browser.screenshot("acceptance-search-everywhere")
    _signed_out(browser, site)


# -- "404/405/400 pages ... never a 500", with the interface's headers --------------------------


def _ui_paths() -> dict[str, set[str]]:
    paths: dict[str, set[str]] = {}
    for route in ROUTES:
        if route.layer == "ui":
            paths.setdefault(example_path(route), set()).update(route.methods)
    return paths


def _is_interface_page(answer: object, label: str) -> None:
    headers = answer.headers  # type: ignore[attr-defined]
    assert headers.get("content-type") == HTML, label
    assert "script-src 'self'" in headers.get("content-security-policy", ""), label
    assert headers.get("x-content-type-options") == "nosniff", label
    assert headers.get("x-frame-options") == "DENY", label
    assert b"<script>" not in answer.body, label  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", sorted(_ui_paths()))
def test_a_method_a_page_does_not_take_gets_the_interfaces_405(site: Site, path: str) -> None:
    taken = _ui_paths()[path]
    for method in sorted({"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} - taken):
        answer = request(site.url + path, method=method, body=b"" if method != "GET" else None)
        label = f"{method} {path}"
        assert answer.status == 405, (label, answer.status)
        _is_interface_page(answer, label)
        assert set(answer.headers["allow"].split(", ")) == taken, label
        if method != "HEAD":
            assert b"Method not allowed" in answer.body, label


@pytest.mark.parametrize(
    "path",
    [
        "/ui/%0d%0aSet-Cookie:%20planted=1",
        "/ui/main/project/hello-world/%0a%0dx",
        "/ui/a%0Ab/c",
        "/ui/%0A",
    ],
)
def test_a_path_with_line_breaks_is_the_interfaces_404(site: Site, path: str) -> None:
    answer = request(site.url + path)
    assert answer.status == 404, answer.status
    _is_interface_page(answer, path)
    assert "set-cookie" not in answer.headers
    assert b"Not found" in answer.body


# -- "Every form protected against CSRF, every action recorded" --------------------------------


def _audit(site: Site) -> list[dict[str, object]]:
    done = cli("audit", "--data-dir", str(site.data), "--limit", "50", "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_sign_out_is_a_form_with_a_csrf_token(site: Site) -> None:
    """Every form of every page carries the session's CSRF token; signing out without it is
    refused (and recorded), with it the session ends."""
    token = site.token("admin", "read")
    cookie = {"Cookie": f"headwater_session={token}"}
    for path in ("/", "/ui/admin", "/ui/account", "/ui/admin/project/main/hello-world"):
        body = request(site.url + path, headers=cookie).body.decode()
        forms = re.findall(r'<form[^>]*method="post"[^>]*>.*?</form>', body, re.S)
        assert forms, path
        for form in forms:
            assert re.search(r'name="csrf" value="[0-9a-f]{64}"', form), (path, form[:200])
    refused = request(site.url + "/ui/signout", method="POST", body=b"", headers={**cookie, **FORM})
    assert refused.status == 403, refused.status
    _is_interface_page(refused, "refused sign-out")
    assert "set-cookie" not in refused.headers
    entry = _audit(site)[0]
    assert entry["action"] == "refused sign-out" and entry["actor"] == "admin", entry
    page = request(site.url + "/", headers=cookie).body.decode()
    field = re.search(r'action="/ui/signout".*?name="csrf" value="([0-9a-f]{64})"', page, re.S)
    assert field is not None
    done = request(
        site.url + "/ui/signout",
        method="POST",
        body=f"csrf={field.group(1)}".encode(),
        headers={**cookie, **FORM},
    )
    # urllib follows the 303 to / (and keeps the Cookie header it was given): the cookie was
    # cleared on the 303 itself, which urllib does not show; the audit log says it happened.
    assert done.status == 200
    assert _audit(site)[0]["action"] == "sign-out"


# -- README "rendered safely ... as PyPI renders them" ------------------------------------------

_HEAD = "Metadata-Version: 2.1\nName: x\nVersion: 1.0\n"


@pytest.mark.parametrize(
    ("content_type", "body", "shown_as", "expected"),
    [
        ("text/markdown", "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", "markdown", "<table>"),
        (
            "text/markdown; variant=GFM",
            "~~gone~~ and www.example.org",
            "markdown",
            "<del>gone</del>",
        ),
        (
            "text/markdown; charset=UTF-8; variant=CommonMark",
            "| a | b |\n|---|---|\n| 1 | 2 |\n",
            "markdown",
            "<p>| a | b |",
        ),
        ("text/x-rst", "Title\n=====\n\n*emph*\n", "rst", "<em>emph</em>"),
        ("text/x-rst; charset=UTF-8", "Title\n=====\n\n*emph*\n", "rst", "<em>emph</em>"),
        (None, "Title\n=====\n\n*emph*\n", "rst", "<em>emph</em>"),
        ("text/plain", "*not emph* <b>x</b>\n", "plain", "*not emph* &lt;b&gt;x&lt;/b&gt;"),
        # PyPI (warehouse's readme.render) shows an unknown content type as plain text.
        ("text/html", "**bold** <b>x</b>\n", "plain", "**bold** &lt;b&gt;x&lt;/b&gt;"),
        ("text/x-unknown", "Title\n=====\n", "plain", "Title\n====="),
        # reStructuredText docutils cannot render: plain text, as on PyPI.
        ("text/x-rst", "Title\n===\n\n.. raw:: html\n\n   <i>x</i>\n", "plain", "&lt;i&gt;"),
    ],
)
def test_readmes_render_by_content_type_as_pypi_does(
    content_type: str | None, body: str, shown_as: str, expected: str
) -> None:
    typed = f"Description-Content-Type: {content_type}\n" if content_type else ""
    readme = render_metadata(f"{_HEAD}{typed}\n{body}".encode())
    assert readme is not None
    assert readme.rendered_as == shown_as, readme
    assert expected in readme.html, readme.html
    assert "<script" not in readme.html and "onerror" not in readme.html


@pytest.mark.parametrize("fold", [" " * 8, " " * 7 + "|"])
def test_a_description_in_the_header_is_unfolded(fold: str) -> None:
    """Core metadata 1.x (old sdists' PKG-INFO) put the description in a ``Description`` header
    whose continuation lines are indented by 8 spaces (or 7 and ``|``)."""
    text = "Title\n=====\n\nSome *emph* text.\n\n    quoted"
    folded = text.replace("\n", "\n" + fold)
    metadata = (
        f"Metadata-Version: 1.1\nName: x\nVersion: 1.0\nDescription: {folded}\nPlatform: any\n"
    )
    readme = render_metadata(metadata.encode())
    assert readme is not None and readme.rendered_as == "rst", readme
    assert "<h1>Title" in readme.html and "<em>emph</em>" in readme.html, readme.html
    assert "<blockquote>" in readme.html  # the description's own indentation is kept


def test_an_uploaded_header_form_readme_renders_on_the_project_page(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    """End to end: a wheel whose METADATA has its description in the header, uploaded with real
    twine, shows its README rendered (it was shown as broken reStructuredText)."""
    name = normalize_name("old-style-description")
    folded = "Old Style\n=========\n\nAn *old* description.\n".replace("\n", "\n        ")
    metadata = (
        f"Metadata-Version: 2.1\nName: old-style-description\nVersion: 1.0\nSummary: old\n"
        f"Description: {folded.rstrip()}\n"
    ).encode()
    path = tmp_path / wheel_filename(name, "1.0")
    path.write_bytes(build_wheel(name, "old-style-description", "1.0", metadata=metadata))
    done = twine(f"{site.url}/main/legacy/", site.admin, [path])
    assert done.returncode == 0, done.stdout + done.stderr
    _signed_out(browser, site)
    browser.open(site.url + "/ui/main/project/old-style-description")
    readme = browser.driver.find_element(By.CSS_SELECTOR, "section.readme")
    assert readme.find_element(By.TAG_NAME, "h1").text == "Old Style"
    assert readme.find_element(By.TAG_NAME, "em").text == "old"
    assert "Shown as plain text" not in readme.text
    assert browser.axe() == []


# -- Project page: "project status (PEP 792) ... shown" -----------------------------------------


def test_the_project_status_is_shown_when_active_too(site: Site, browser: Browser) -> None:
    _signed_out(browser, site)
    browser.open(site.url + "/ui/main/project/hello-world")
    facts = {
        dt.text: dd.text
        for dt, dd in zip(
            browser.driver.find_elements(By.CSS_SELECTOR, "dl.facts dt"),
            browser.driver.find_elements(By.CSS_SELECTOR, "dl.facts dd"),
            strict=True,
        )
    }
    assert facts["Status"] == "active", facts
    assert facts["Namespace"] == "none", facts
    browser.open(site.url + "/ui/up/project/evil")  # the upstream says deprecated, with a reason
    status = browser.driver.find_element(
        By.XPATH, "//dl[@class='facts']/dt[.='Status']/following-sibling::dd[1]"
    )
    assert status.text.startswith("deprecated: "), status.text
    assert browser.pwned() is None


# -- Home: "its health (upstream reachable, last error)" ----------------------------------------


def test_the_home_page_says_whether_a_proxys_upstream_is_reachable(
    site: Site, browser: Browser
) -> None:
    _signed_out(browser, site)
    browser.open(site.url + "/")
    row = browser.driver.find_element(By.XPATH, "//tbody/tr[th[starts-with(., 'up')]]")
    health = row.find_elements(By.TAG_NAME, "td")[1].text
    assert "upstream reachable" in health and "freshness: fresh" in health, health
    mirrors = json.loads(request(site.url + "/mirrors.json").body)
    (proxy,) = mirrors["proxies"]
    assert proxy["upstream_error"] is None and proxy["upstream_checked"]


# -- "works without JavaScript" ----------------------------------------------------------------


def test_search_sign_in_and_forms_work_without_javascript(site: Site) -> None:
    with launch(javascript=False) as plain:
        plain.open(site.url + "/")
        box = plain.driver.find_element(By.ID, "home-search")
        box.send_keys("Helo_World")
        plain.submit("#main form.search button")
        assert _results(plain)[0].startswith("hello-world in main"), _results(plain)
        # No suggestion list appears: no script ran.
        assert not plain.driver.find_element(By.ID, "site-search-suggestions").is_displayed()
        plain.open(site.url + "/ui/signin")
        plain.driver.find_element(By.ID, "token").send_keys(site.admin)
        plain.submit("#signin-token")
        assert "Signed in as admin" in plain.driver.find_element(By.TAG_NAME, "header").text
        plain.open(site.url + "/ui/admin/project/main/hello-world")
        plain.submit("form[action$='/status'] button")
        assert "status" in plain.driver.find_element(By.TAG_NAME, "main").text.lower()
        plain.submit("header form[action='/ui/signout'] button")
        assert "Sign in" in plain.driver.find_element(By.TAG_NAME, "header").text
        plain.screenshot("acceptance-no-javascript")


# -- Accessibility: "no serious violations on every page", both schemes ------------------------

_PAGES = [
    "/",
    "/ui/search",
    "/ui/search?q=",
    "/ui/search?q=zzzzqqqq",
    "/ui/search?q=helo-wrold",
    "/ui/search?q=e",
    "/ui/search?q=x&index=nosuch",
    "/ui/main/project/hello-world",
    "/ui/main/project/hostile-readme",
    "/ui/up/project/evil",
    "/ui/main/project/nothing-here",
    "/ui/nosuch/project/x",
    "/ui/secret/project/secret-thing",
    "/ui/status",
    "/ui/signin",
    "/ui/admin",
    "/ui/account",
    "/ui/no/such/page",
    "/ui/main/project/%3Cb%3E",
]
_SIGNED_IN = [
    "/",
    "/ui/admin",
    "/ui/account",
    "/ui/admin/project/main/hello-world",
    "/ui/admin/project/main/nothing-here",
    "/ui/admin/grants/main",
    "/ui/all/project/hello-world/why",
    "/ui/all/project/secret-thing/why",
    "/ui/all/project/evil/why",
    "/ui/all/project/nothing-here/why",
    "/ui/main/project/hello-world/why",
    "/ui/search?q=s&index=all&source=secret",
    "/ui/search?q=secret",
]


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_every_page_and_state_passes_axe(site: Site, dark: bool) -> None:
    with launch(dark=dark) as browser:
        for path in _PAGES:
            browser.open(site.url + path)
            assert browser.axe() == [], path
            assert browser.pwned() is None and browser.csp_violations() == [], path
        browser.open(site.url + "/ui/signin")
        browser.driver.find_element(By.ID, "token").send_keys(site.admin)
        browser.submit("#signin-token")
        for path in _SIGNED_IN:
            browser.open(site.url + path)
            assert browser.axe() == [], path
            assert browser.pwned() is None and browser.csp_violations() == [], path
        # A refused form (its CSRF token spoiled in the page): the refusal page.
        browser.open(site.url + "/ui/admin")
        browser.run("document.querySelectorAll('input[name=csrf]').forEach(e => e.value = 'x');")
        browser.submit("header form[action='/ui/signout'] button")
        assert (
            "does not match your session" in browser.driver.find_element(By.TAG_NAME, "main").text
        )
        assert browser.axe() == []
        browser.screenshot(f"acceptance-refused-{'dark' if dark else 'light'}")


# -- Project page: "install snippets for pip and uv with this index's URL" -----------------------


def _snippets(site: Site, project: str) -> list[str]:
    body = request(f"{site.url}/ui/main/project/{project}").body.decode()
    found = re.findall(r"<pre><code>((?:uv )?pip install [^<]*)</code></pre>", body)
    return [html.unescape(line) for line in found]


def _run_snippet(line: str, python: Path, uv: Path, home: Path) -> None:
    """``line`` as a person pastes it: pip run by the venv's python (isolated), uv told which
    venv; nothing else of the line is changed."""
    words = shlex.split(line)
    if words[0] == "pip":
        command = [
            str(python),
            "-m",
            "pip",
            *words[1:2],
            "--isolated",
            "--no-cache-dir",
            *words[2:],
        ]
    else:
        command = [str(uv), *words[1:3], "--no-config", "--no-cache", "--python", str(python)]
        command += words[3:]
    run_ok(command, clean_env(home))


@pytest.mark.parametrize(
    ("project", "versions", "yank", "installed"),
    [
        ("hello-world", [], None, "1.0"),  # a final release, and a newer pre-release
        ("only-pre", ["0.1b1", "0.2rc1"], None, "0.2rc1"),
        ("only-yanked", ["1.0"], "1.0", "1.0"),
    ],
)
def test_the_install_snippets_install_with_real_pip_and_uv(
    site: Site,
    uv: Path,
    tmp_path: Path,
    project: str,
    versions: list[str],
    yank: str | None,
    installed: str,
) -> None:
    """The commands on the project page, run as they are shown, install the project (a project
    with only pre-releases or only yanked releases got a bare name, which pip and uv refuse)."""
    if versions:
        dist = tmp_path / "dist"
        paths = [wheel(dist, project, version, "# readme\n") for version in versions]
        done = twine(f"{site.url}/main/legacy/", site.admin, paths)
        assert done.returncode == 0, done.stdout + done.stderr
    if yank:
        answer = api(
            f"{site.url}/api/main/projects/{project}/yank",
            "POST",
            site.admin,
            {"version": yank, "reason": "test"},
        )
        assert answer.status == 200, answer.text
    lines = _snippets(site, project)
    assert [line.split()[0] for line in lines] == ["pip", "uv"], lines
    assert all(f"--index-url {site.url}/main/simple/ " in line for line in lines), lines
    for line in lines:
        home = tmp_path / line.split()[0]
        python = make_venv(home / "venv", pip=line.startswith("pip"))
        _run_snippet(line, python, uv, home)
        assert installed_version(python, project.replace("-", "_")) == installed, line


# -- "Private indexes are as private in the interface as in the API" ---------------------------


def test_a_private_index_is_not_named_anywhere_without_a_token(site: Site) -> None:
    """The Simple API names no index: a private one must be known to be asked for. Signed out,
    no page of the interface, nor ``/health`` its footer links to, names one (the home page
    listed ``secret`` and ``all`` by name, and ``/health`` had a check for each)."""
    for path in (
        "/",
        "/ui/status",
        "/mirrors.json",
        "/ui/search?q=s",
        "/ui/search?q=thing",
        "/ui/suggest?q=thing",
        "/ui/signin",
        "/ui/admin",
        "/ui/main/project/hello-world",
        "/health",
        "/health/ready",
        "/metrics",
    ):
        body = request(site.url + path).body.decode()
        assert re.search(r"\bsecret|\ball\b(?!\s)|index:all|>all<", body) is None, (
            path,
            re.findall(r".{40}(?:secret|\ball\b).{40}", body)[:3],
        )
    checks = json.loads(request(site.url + "/health").body)["checks"]
    assert checks["index:(private)"] == "ok" and "index:main" in checks, checks
    # Signed in with a token that may read them, the home page lists both.
    cookie = {"Cookie": f"headwater_session={site.token('admin', 'read')}"}
    home = request(site.url + "/", headers=cookie).body.decode()
    assert 'href="/ui/search?index=secret"' in home and 'href="/ui/search?index=all"' in home


def test_health_reports_private_indexes_as_one_check_and_logs_which_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from headwater.server.health import _fold_private_checks

    report = {"index:main": "ok", "index:a": "OSError: /srv/a", "index:b": "ok", "database": "ok"}
    with caplog.at_level("WARNING", logger="headwater.health"):
        folded = _fold_private_checks(report, frozenset({"a", "b"}))
    assert folded == {
        "index:main": "ok",
        "database": "ok",
        "index:(private)": "1 private index(es) not ready (see the server's log)",
    }
    assert "index:a is not ready: OSError: /srv/a" in caplog.text
    assert _fold_private_checks(report, frozenset()) == report


# -- Project page: "tags (platform/Python summarised readably)" ---------------------------------


@pytest.mark.parametrize(
    ("filename", "words"),
    [
        ("cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", "CPython 3.11 · Linux x86-64 (glibc 2.17+)"),
        ("cp311-cp311-macosx_10_9_universal2", "CPython 3.11 · macOS 10.9+ Intel and Apple silicon"),
        ("cp312-cp312-win_amd64", "CPython 3.12 · Windows x86-64"),
        ("cp39-abi3-musllinux_1_2_aarch64", "CPython 3.9 and later (stable ABI) · Linux ARM64 (musl 1.2+)"),
        ("py2.py3-none-any", "Python 2, Python 3 · any platform"),
        ("pp310-pypy310_pp73-win_amd64", "PyPy 3.10 · Windows x86-64"),
        # Found by this pass: shown as the raw tag, or without what matters.
        ("cp313-cp313t-manylinux_2_28_x86_64", "CPython 3.13 (free-threaded) · Linux x86-64 (glibc 2.28+)"),
        ("cp313-cp313-ios_13_0_arm64_iphoneos", "CPython 3.13 · iOS 13.0+ ARM64 (device)"),
        ("cp313-cp313-ios_13_0_arm64_iphonesimulator", "CPython 3.13 · iOS 13.0+ ARM64 (simulator)"),
        ("cp313-cp313-android_21_arm64_v8a", "CPython 3.13 · Android API 21+ ARM64"),
        ("graalpy311-graalpy242_311_native-manylinux_2_28_x86_64", "GraalPy 3.11 · Linux x86-64 (glibc 2.28+)"),
        ("cp312-cp312-pyodide_2024_0_wasm32", "CPython 3.12 · WebAssembly (Pyodide 2024.0)"),
        ("py3-none-emscripten_3_1_58_wasm32", "Python 3 · WebAssembly (Emscripten 3.1.58)"),
        # Not recognised: the tag itself, never a guess.
        ("cp311-cp311-plan9_amd64", "CPython 3.11 · plan9_amd64"),
    ],
)  # fmt: skip
def test_wheel_tags_in_words(filename: str, words: str) -> None:
    from packaging.utils import parse_wheel_filename

    from headwater.ui.tags import describe_tags

    tags = parse_wheel_filename(f"x-1.0-{filename}.whl")[3]
    assert describe_tags(tags) == words
