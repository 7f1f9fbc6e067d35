"""Conformance, hostile-input and captured-page tests for :mod:`headwater.simple.html`.

Test names carry the number of the standards.md section 1 item they check (``item_N``); section 1.9
tolerances are ``s1_9``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from headwater.simple.html import (
    parse_project_list_html,
    parse_project_page_html,
    render_project_list_html,
    render_project_page_html,
)
from headwater.simple.model import (
    File,
    InvalidPage,
    NewerAPIVersionWarning,
    ProjectList,
    ProjectListEntry,
    ProjectPage,
    ProjectStatus,
    UnsupportedAPIVersion,
)
from headwater.simple.names import InvalidName, NormalizedName
from headwater.simple.text import neutralise

DATA = Path(__file__).parent.parent / "data" / "html"
SHA = "a" * 64
SHA2 = "b" * 64
WHEEL = "demo-1.0-py3-none-any.whl"
URL = f"https://files.example/{WHEEL}"


def page_html(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>"


def one_file(attrs: str, text: str = WHEEL, href: str = f"{URL}#sha256={SHA}") -> File:
    page = parse_project_page_html(page_html(f'<a href="{href}" {attrs}>{text}</a>'), name="demo")
    assert len(page.files) == 1
    return page.files[0]


def render_one(**fields: object) -> str:
    file = File(filename=WHEEL, url=URL, **fields)  # type: ignore[arg-type]
    return render_project_page_html(
        ProjectPage(name=NormalizedName("demo"), files=(file,))
    ).decode()


def anchors(html: str) -> list[str]:
    return re.findall(r"<a [^>]*>", html)


# ----------------------------------------------------------------------------- versioning


def test_item_7_renderers_declare_repository_version() -> None:
    detail = render_project_page_html(ProjectPage(name=NormalizedName("demo"))).decode()
    root = render_project_list_html(ProjectList()).decode()
    for html in (detail, root):
        assert '<meta name="pypi:repository-version" content="1.4">' in html
        assert html.startswith("<!DOCTYPE html>")


def test_item_7_parser_reads_declared_version() -> None:
    head = '<meta name="pypi:repository-version" content="1.3">'
    assert parse_project_page_html(page_html("", head), name="demo").api_version == "1.3"
    assert parse_project_list_html(page_html("", head)).api_version == "1.3"


def test_item_9_missing_version_means_1_0() -> None:
    assert parse_project_page_html(page_html(""), name="demo").api_version == "1.0"
    assert parse_project_list_html(page_html("")).api_version == "1.0"


@pytest.mark.parametrize("parse", ["list", "page"])
def test_item_10_greater_major_hard_fails(parse: str) -> None:
    html = page_html("", '<meta name="pypi:repository-version" content="2.0">')
    with pytest.raises(UnsupportedAPIVersion, match=r"2\.0"):
        if parse == "list":
            parse_project_list_html(html)
        else:
            parse_project_page_html(html, name="demo")


def test_item_10_greater_minor_is_accepted_and_kept() -> None:
    html = page_html("", '<meta name="pypi:repository-version" content="1.99">')
    with pytest.warns(NewerAPIVersionWarning, match="1.99"):
        assert parse_project_page_html(html, name="demo").api_version == "1.99"


def test_item_10_malformed_version_is_invalid_page() -> None:
    html = page_html("", '<meta name="pypi:repository-version" content="one">')
    with pytest.raises(InvalidPage, match=r"MAJOR\.MINOR"):
        parse_project_page_html(html, name="demo")


@pytest.mark.parametrize("declared", ["1.0", "1.1", "1.5"])
def test_item_11_html_always_declares_1_4(declared: str) -> None:
    page = ProjectPage(name=NormalizedName("demo"), api_version=declared)
    html = render_project_page_html(page).decode()
    assert 'content="1.4"' in html
    assert f'content="{declared}"' not in html
    root = ProjectList(api_version=declared)
    assert 'content="1.4"' in render_project_list_html(root).decode()


# ----------------------------------------------------------------------------- project list


def test_item_12_root_one_anchor_per_project_text_is_name() -> None:
    plist = ProjectList(projects=(ProjectListEntry("Django"), ProjectListEntry("zope.Interface")))
    html = render_project_list_html(plist).decode()
    assert '<a href="django/">Django</a>' in html
    assert '<a href="zope-interface/">zope.Interface</a>' in html
    assert len(anchors(html)) == 2
    parsed = parse_project_list_html(html)
    assert [p.name for p in parsed.projects] == ["Django", "zope.Interface"]
    assert parsed.rejected == ()


def test_item_12_invalid_and_duplicate_names_are_rejected_not_fatal() -> None:
    html = page_html(
        '<a href="a/">Foo_Bar</a><a href="b/">foo-bar</a><a href="c/">-bad-</a>'
        '<a href="d/">ok</a><a href="e/">\u212aelvin</a>'
    )
    parsed = parse_project_list_html(html)
    assert [p.name for p in parsed.projects] == ["Foo_Bar", "ok"]
    reasons = {r.value: r.reason for r in parsed.rejected}
    assert set(reasons) == {"foo-bar", "-bad-", "\u212aelvin"}
    assert "duplicate" in reasons["foo-bar"] and "Foo_Bar" in reasons["foo-bar"]
    assert "not a valid project name" in reasons["-bad-"]


def test_item_12_empty_anchor_text_falls_back_to_href() -> None:
    parsed = parse_project_list_html(page_html('<a href="/simple/Some.Project/"></a>'))
    assert [p.name for p in parsed.projects] == ["Some.Project"]


@pytest.mark.parametrize(
    "bad",
    ["<script>alert(1)</script>", 'a"b', "a&b", "caf\u00e9", "line\nbreak", "a\nb", "", "-x"],
)
def test_item_12_renderer_refuses_invalid_names(bad: str) -> None:
    plist = ProjectList(projects=(ProjectListEntry("good"), ProjectListEntry(bad)))
    with pytest.raises(InvalidPage, match="not a valid project name"):
        render_project_list_html(plist)


def test_item_12_renderer_refuses_duplicate_normalized_names() -> None:
    plist = ProjectList(projects=(ProjectListEntry("Foo.Bar"), ProjectListEntry("foo_bar")))
    with pytest.raises(InvalidPage, match="foo-bar"):
        render_project_list_html(plist)


def test_item_12_root_href_is_relative_and_normalized() -> None:
    html = render_project_list_html(ProjectList(projects=(ProjectListEntry("A__b--C.d"),))).decode()
    assert '<a href="a-b-c-d/">A__b--C.d</a>' in html


# ----------------------------------------------------------------------------- project page


def test_item_13_anchor_text_is_filename() -> None:
    html = render_one()
    assert f">{WHEEL}</a>" in html
    assert len(anchors(html)) == 1
    assert one_file("").filename == WHEEL


def test_item_13_filename_falls_back_to_url_path() -> None:
    file = one_file("", text="", href="https://x.example/p/demo-1.0%2Blocal-py3-none-any.whl?x=1")
    assert file.filename == "demo-1.0+local-py3-none-any.whl"


@pytest.mark.parametrize(
    "text", ["../etc/passwd", "a/b.whl", "a\\b.whl", ".hidden.whl", "x\x01.whl", "x" * 300]
)
def test_item_13_unsafe_filename_is_invalid_page(text: str) -> None:
    with pytest.raises(InvalidPage, match=r"unsafe|too long"):
        one_file("", text=text)


def test_item_13_anchor_without_href_is_not_a_file() -> None:
    page = parse_project_page_html(page_html(f'<a name="top">{WHEEL}</a>'), name="demo")
    assert page.files == ()


def test_item_14_hash_fragment_parsed_and_name_lowercased() -> None:
    file = one_file("", href=f"{URL}#SHA256={SHA.upper()}")
    assert file.hashes == {"sha256": SHA}
    assert file.url == URL


def test_item_14_renderer_prefers_sha256() -> None:
    html = render_one(hashes={"md5": "c" * 32, "sha256": SHA, "sha512": "d" * 128})
    assert f'href="{URL}#sha256={SHA}"' in html


@pytest.mark.parametrize(
    ("hashes", "fragment"),
    [
        ({"md5": "c" * 32, "sha512": "d" * 128}, "#sha512=" + "d" * 128),
        ({"md5": "c" * 32}, "#md5=" + "c" * 32),
        ({}, ""),
        ({"sha256": "not-hex"}, ""),
        ({"shake_128": "ab"}, ""),
    ],
    ids=["sha512-over-md5", "md5-only", "none", "non-hex-dropped", "shake-not-named"],
)
def test_item_14_renderer_hash_fallback(hashes: dict[str, str], fragment: str) -> None:
    assert f'href="{URL}{fragment}"' in render_one(hashes=hashes)


def test_item_15_other_elements_and_metas_are_ignored() -> None:
    html = page_html(
        f'<h1>Links</h1><p>intro <b>bold</b></p><a href="{URL}">{WHEEL}</a><br/><hr>',
        '<meta charset="utf-8"><meta name="viewport" content="x"><link rel="x" href="y.css">',
    )
    page = parse_project_page_html(html, name="demo")
    assert [f.filename for f in page.files] == [WHEEL]


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("TRUE", True)])
def test_item_16_gpg_sig(value: str, expected: bool) -> None:
    assert one_file(f'data-gpg-sig="{value}"').gpg_sig is expected
    assert one_file("").gpg_sig is None
    assert f'data-gpg-sig="{str(expected).lower()}"' in render_one(gpg_sig=expected)


def test_item_17_requires_python_escaped_on_render() -> None:
    html = render_one(requires_python='<4,>=3.8 & "x"')
    assert 'data-requires-python="&lt;4,&gt;=3.8 &amp; &quot;x&quot;"' in html


@pytest.mark.parametrize(
    "attr",
    ['data-requires-python="&lt;4,&gt;=3.8"', 'data-requires-python="<4,>=3.8"',
     "data-requires-python='&lt;4,&gt;=3.8'", "data-requires-python=&lt;4,&gt;=3.8"],
    ids=["escaped", "raw-in-quotes", "single-quoted", "unquoted"],
)  # fmt: skip
def test_item_17_requires_python_unescaped_on_parse(attr: str) -> None:
    assert one_file(attr).requires_python == "<4,>=3.8"


def test_item_18_yanked_without_reason() -> None:
    for attr in ('data-yanked=""', "data-yanked"):
        file = one_file(attr)
        assert file.yanked and file.yanked_reason is None
    assert not one_file("").yanked
    assert 'data-yanked=""' in render_one(yanked=True)
    assert "data-yanked" not in render_one()


def test_item_18_yanked_reason_unescaped_and_escaped() -> None:
    file = one_file('data-yanked="bad &lt;build&gt; &amp; &quot;more&quot;"')
    assert (file.yanked, file.yanked_reason) == (True, 'bad <build> & "more"')
    html = render_one(yanked=True, yanked_reason='<script>alert("x")</script> & more')
    assert 'data-yanked="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more"' in html


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        ('data-core-metadata="true"', True),
        (f'data-core-metadata="sha256={SHA}"', {"sha256": SHA}),
        (f'data-core-metadata="SHA256={SHA.upper()}"', {"sha256": SHA}),
        ("", None),
    ],
    ids=["true", "hash", "uppercase-hash", "absent"],
)
def test_item_19_core_metadata_parse(attr: str, expected: object) -> None:
    assert one_file(attr).core_metadata == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "true"), ({"sha256": SHA}, f"sha256={SHA}"), ({"md5": "c" * 32}, "md5=" + "c" * 32)],
)
def test_item_19_core_metadata_render(value: object, expected: str) -> None:
    assert f'data-core-metadata="{expected}"' in render_one(core_metadata=value)


@pytest.mark.parametrize("value", [None, False])
def test_item_19_no_core_metadata_attribute_when_unknown_or_absent(value: object) -> None:
    # HTML has no "false" value; pip would read any non-"true" value as a hash, so emit nothing.
    assert "metadata" not in render_one(core_metadata=value)


def test_item_20_dist_info_metadata_mirrors_core_metadata() -> None:
    for value in (True, {"sha256": SHA}):
        html = render_one(core_metadata=value)
        core = re.search(r'data-core-metadata="([^"]*)"', html)
        legacy = re.search(r'data-dist-info-metadata="([^"]*)"', html)
        assert core is not None and legacy is not None
        assert core[1] == legacy[1]


def test_item_21_core_metadata_wins_over_legacy() -> None:
    attrs = f'data-dist-info-metadata="sha256={SHA2}" data-core-metadata="sha256={SHA}"'
    assert one_file(attrs).core_metadata == {"sha256": SHA}


def test_item_21_legacy_attribute_is_the_fallback() -> None:
    assert one_file(f'data-dist-info-metadata="sha256={SHA2}"').core_metadata == {"sha256": SHA2}
    assert one_file('data-dist-info-metadata="true"').core_metadata is True


def test_item_22_metadata_attribute_promises_metadata_file() -> None:
    file = one_file('data-core-metadata="true"')
    assert file.has_metadata
    assert file.metadata_url == URL + ".metadata"
    assert not one_file("").has_metadata


def test_item_23_provenance() -> None:
    prov = "https://pypi.example/integrity/demo/1.0/x/provenance?a=1&b=2"
    assert one_file('data-provenance="' + prov.replace("&", "&amp;") + '"').provenance == prov
    assert 'data-provenance="https://pypi.example/integrity/demo/1.0/x/provenance?a=1&amp;b=2"' in (
        render_one(provenance=prov)
    )


@pytest.mark.parametrize("status", list(ProjectStatus))
def test_item_24_project_status_round_trip(status: ProjectStatus) -> None:
    page = ProjectPage(name=NormalizedName("demo"), status=status, status_reason="why <not>")
    html = render_project_page_html(page).decode()
    assert ('name="pypi:project-status"' in html) is (status is not ProjectStatus.ACTIVE)
    assert 'content="why &lt;not&gt;"' in html
    parsed = parse_project_page_html(html, name="demo")
    assert (parsed.status, parsed.status_reason) == (status, "why <not>")


def test_item_24_unknown_status_is_invalid_page() -> None:
    html = page_html("", '<meta name="pypi:project-status" content="retired">')
    with pytest.raises(InvalidPage, match="retired"):
        parse_project_page_html(html, name="demo")


def test_item_58_serial_trailer() -> None:
    page = ProjectPage(name=NormalizedName("demo"), last_serial=12345)
    html = render_project_page_html(page).decode()
    assert html.rstrip().endswith("<!--SERIAL 12345-->")
    assert parse_project_page_html(html, name="demo").last_serial == 12345
    plist = ProjectList(projects=(ProjectListEntry("a"),), last_serial=7)
    assert parse_project_list_html(render_project_list_html(plist)).last_serial == 7


def test_item_58_no_serial_unless_set() -> None:
    assert b"SERIAL" not in render_project_page_html(ProjectPage(name=NormalizedName("demo")))
    assert b"SERIAL" not in render_project_list_html(ProjectList())
    assert parse_project_page_html(page_html("<!-- SERIALS 3 -->"), name="x").last_serial is None


@pytest.mark.parametrize("meta", ["pypi:alternate-locations", "pypi-alternate-locations"])
def test_s1_9_alternate_locations_both_spellings(meta: str) -> None:
    head = (
        f'<meta name="{meta}" content="https://a.example/simple/demo/">'
        f'<meta name="{meta}" content="https://b.example/simple/demo/">'
    )
    page = parse_project_page_html(page_html("", head), name="demo")
    assert page.alternate_locations == (
        "https://a.example/simple/demo/",
        "https://b.example/simple/demo/",
    )


def test_s1_9_tracks_repeated_round_trip() -> None:
    tracks = ("https://pypi.org/simple/demo/", "https://mirror.example/simple/demo/")
    alts = ("https://alt.example/simple/demo/",)
    page = ProjectPage(name=NormalizedName("demo"), tracks=tracks, alternate_locations=alts)
    html = render_project_page_html(page).decode()
    assert html.count('name="pypi:tracks"') == 2
    parsed = parse_project_page_html(html, name="demo")
    assert (parsed.tracks, parsed.alternate_locations) == (tracks, alts)


def test_s1_9_declared_1_4_without_1_2_fields() -> None:
    head = '<meta name="pypi:repository-version" content="1.4">'
    page = parse_project_page_html(page_html("", head), name="demo")
    assert (page.tracks, page.alternate_locations) == ((), ())


# ----------------------------------------------------------------------------- URLs and errors


def test_relative_hrefs_resolved_against_base_url() -> None:
    html = page_html(f'<a href="../../files/{WHEEL}#sha256={SHA}">{WHEEL}</a>')
    page = parse_project_page_html(html, name="demo", base_url="https://idx.example/simple/demo/")
    assert page.files[0].url == f"https://idx.example/files/{WHEEL}"
    unresolved = parse_project_page_html(html, name="demo")
    assert unresolved.files[0].url == f"../../files/{WHEEL}"


def test_base_element_is_honoured() -> None:
    html = page_html(f'<a href="{WHEEL}">{WHEEL}</a>', '<base href="https://cdn.example/p/">')
    page = parse_project_page_html(html, name="demo", base_url="https://idx.example/simple/demo/")
    assert page.files[0].url == f"https://cdn.example/p/{WHEEL}"


def test_name_is_validated_and_normalized() -> None:
    assert parse_project_page_html(page_html(""), name="Demo_Pkg").name == "demo-pkg"
    with pytest.raises(InvalidName):
        parse_project_page_html(page_html(""), name="../etc")


def test_non_utf8_page_is_invalid_page() -> None:
    with pytest.raises(InvalidPage, match="UTF-8"):
        parse_project_page_html(b"<a href='x'>\xff</a>", name="demo")
    with pytest.raises(InvalidPage, match="UTF-8"):
        parse_project_list_html(b"\xc3(")


# ----------------------------------------------------------------------------- hostile input

HOSTILE_PAGES = [
    # (id, body, expected filenames)
    ("single-quotes", f"<a href='{URL}' data-yanked='it\"s'>{WHEEL}</a>", [WHEEL]),
    ("unquoted", f"<a href={URL}#sha256={SHA} data-gpg-sig=true>{WHEEL}</a>", [WHEEL]),
    ("uppercase-tags", f'<A HREF="{URL}" DATA-YANKED="">{WHEEL}</A>', [WHEEL]),
    ("in-comment", f'<!-- <a href="{URL}">{WHEEL}</a> -->', []),
    ("comment-with-dashes", f'<!-- -- <a href="{URL}">x.whl</a> --!> <a href="{URL}">{WHEEL}</a>', [WHEEL]),
    ("empty-comment-then-link", f'<!--><a href="{URL}">{WHEEL}</a>', [WHEEL]),
    ("unclosed-comment", f'<a href="{URL}">{WHEEL}</a><!-- <a href="{URL}">b.whl</a>', [WHEEL]),
    ("in-script", f'<script>var s = \'<a href="{URL}">x.whl</a>\';</script>', []),
    ("in-uppercase-style", '<STYLE>a::after {content: "<a href=x>y.whl</a>"}</Style>', []),
    ("in-title", f'<title><a href="{URL}">t.whl</a></title><a href="{URL}">{WHEEL}</a>', [WHEEL]),
    ("in-attribute", f'<div title="<a href={URL}>x.whl</a>"></div>', []),
    ("nested-markup-in-text", f'<a href="{URL}"><span>{WHEEL}</span></a>', [WHEEL]),
    ("whitespace-in-text", f'<a href="{URL}">\n  {WHEEL}\n</a>', [WHEEL]),
    ("unclosed-anchors", f'<a href="{URL}">{WHEEL}<a href="{URL}">b-1.0.tar.gz', [WHEEL, "b-1.0.tar.gz"]),
    ("entity-in-text", f'<a href="{URL}">demo-1.0&#43;local.tar.gz</a>', ["demo-1.0+local.tar.gz"]),
    ("abbr-is-not-a", f'<abbr href="{URL}">{WHEEL}</abbr>', []),
    ("self-closing-a", f'<a href="{URL}"/>{WHEEL}</a>', [WHEEL]),
    ("newlines-in-tag", f'<a\nhref="{URL}"\n  data-yanked\n>{WHEEL}</a>', [WHEEL]),
    ("broken-tag-then-link", f'<a href="x <a href="{URL}">{WHEEL}</a>', [WHEEL]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in HOSTILE_PAGES], ids=[c[0] for c in HOSTILE_PAGES]
)
def test_hostile_markup(body: str, expected: list[str]) -> None:  # fmt: skip
    page = parse_project_page_html(page_html(body), name="demo")
    assert [f.filename for f in page.files] == expected


def test_hostile_attribute_details() -> None:
    file = one_file("", href=URL)
    assert file.yanked is False
    page = parse_project_page_html(page_html(HOSTILE_PAGES[0][1]), name="demo")
    assert page.files[0].yanked_reason == 'it"s'
    upper = parse_project_page_html(page_html(HOSTILE_PAGES[2][1]), name="demo").files[0]
    assert upper.yanked and upper.url == URL
    unquoted = parse_project_page_html(page_html(HOSTILE_PAGES[1][1]), name="demo").files[0]
    assert unquoted.hashes == {"sha256": SHA} and unquoted.gpg_sig is True


def test_duplicate_attribute_first_wins() -> None:
    assert one_file(
        'data-requires-python=">=3.8" data-requires-python=">=3.12"'
    ).requires_python == (">=3.8")


@pytest.mark.parametrize(
    "reason",
    ["<script>alert(1)</script>", "\"'; DROP", "a & b &amp; c", "caf\u00e9 \u2603 \U0001f600",
     "line1\r\nline2", "--> <!--", "&lt;already escaped&gt;", "bell\x07 nul\x00 c1\x85"],
)  # fmt: skip
def test_hostile_reason_round_trips_escaped(reason: str) -> None:
    # What HTML5 cannot carry comes back neutralised (headwater.simple.text); the rest as it was.
    html = render_one(yanked=True, yanked_reason=reason)
    assert "<script>" not in html and "<!--" not in html.split("<body>")[1]
    file = parse_project_page_html(html, name="demo").files[0]
    assert file.yanked_reason == neutralise(reason)
    status = ProjectPage(name=NormalizedName("demo"), status_reason=reason)
    assert parse_project_page_html(render_project_page_html(status), name="demo").status_reason == (
        neutralise(reason)
    )


def test_hostile_url_and_filename_escaped() -> None:
    file = File(filename="demo-1.0&amp;.tar.gz", url='https://x.example/"><script>/demo.tar.gz')
    html = render_project_page_html(
        ProjectPage(name=NormalizedName("demo"), files=(file,))
    ).decode()
    assert "<script>" not in html
    parsed = parse_project_page_html(html, name="demo").files[0]
    assert (parsed.filename, parsed.url) == (file.filename, file.url)


@pytest.mark.parametrize(
    "junk",
    ['<a x="' * 20_000, "<a " * 30_000, "<!--" + "-" * 100_000, "<a href=" + "'" * 50_000,
     "<script>" * 20_000, '<meta content="' * 20_000],
    ids=["unclosed-quotes", "unclosed-tags", "long-comment", "quotes", "scripts", "metas"],
)  # fmt: skip
def test_pathological_input_is_fast(junk: str) -> None:
    start = time.perf_counter()
    parse_project_page_html(junk, name="demo")
    parse_project_list_html(junk)
    assert time.perf_counter() - start < 5.0


# ----------------------------------------------------------------------------- captured pages


def test_captured_pypi_six() -> None:
    page = parse_project_page_html((DATA / "pypi-six.html").read_bytes(), name="six")
    assert page.name == "six" and page.api_version == "1.0"
    assert len(page.files) == 48
    names = {f.filename for f in page.files}
    assert {"six-1.16.0-py2.py3-none-any.whl", "six-0.9.0.tar.gz"} <= names
    first = page.files[0]
    assert first.filename == "six-0.9.0.tar.gz"
    assert first.hashes == {
        "sha256": "14fd1ed3dd0e1a46cc53b8fc890b5a3b11737515aeb7f42c3af9f38e8d8975d7"
    }
    assert first.url.startswith("https://files.pythonhosted.org/packages/0e/f9/")
    assert first.url.endswith("/six-0.9.0.tar.gz")
    assert all(f.hashes and not f.yanked for f in page.files)


def test_captured_pypi_requests_yanked() -> None:
    page = parse_project_page_html((DATA / "pypi-requests.html").read_bytes(), name="requests")
    assert len(page.files) == 244
    yanked = {f.filename: f.yanked_reason for f in page.files if f.yanked}
    assert set(yanked) == {
        "requests-2.32.0-py3-none-any.whl", "requests-2.32.0.tar.gz",
        "requests-2.32.1-py3-none-any.whl", "requests-2.32.1.tar.gz",
    }  # fmt: skip
    assert (
        yanked["requests-2.32.0.tar.gz"] == "Yanked due to conflicts with CVE-2024-35195 mitigation"
    )
    by_name = {f.filename: f for f in page.files}
    assert by_name["requests-2.32.0.tar.gz"].requires_python == ">=3.8"


def test_captured_pypi_pip_many_files() -> None:
    page = parse_project_page_html((DATA / "pypi-pip.html").read_bytes(), name="pip")
    assert len(page.files) == 291
    reasons = [f.yanked_reason for f in page.files if f.yanked]
    assert len(reasons) == 6
    assert reasons.count(None) == 4
    assert reasons.count("See https://github.com/pypa/pip/issues/8711") == 2
    assert all(f.hashes.keys() == {"sha256"} for f in page.files)
    assert any(f.requires_python == ">=3.7" for f in page.files)


def test_captured_local_index_list() -> None:
    plist = parse_project_list_html((DATA / "local-index.html").read_bytes())
    assert len(plist.projects) == 842
    assert plist.rejected == ()
    assert [p.name for p in plist.projects[:3]] == ["absl-py", "accelerate", "aenum"]


def test_captured_local_project_page_relative_href() -> None:
    data = (DATA / "local-aiohttp.html").read_bytes()
    page = parse_project_page_html(
        data, name="aiohttp", base_url="file:///opt/pypi/simple/aiohttp/"
    )
    (file,) = page.files
    assert file.url.startswith("file:///opt/pypi/files/aiohttp-3.14.3-cp311-cp311-")
    assert file.hashes["sha256"].startswith("53e7b4ce")


def test_captured_crafted_pypi_2026_style() -> None:
    data = (DATA / "crafted-pypi-2026-style.html").read_bytes()
    page = parse_project_page_html(data, name="sample-project")
    assert page.api_version == "1.4" and page.last_serial == 31415926
    assert page.status is ProjectStatus.DEPRECATED
    assert page.status_reason == 'Use "sample-ng" & stop using this <one>'
    sdist, wheel, yanked, bare = page.files
    assert sdist.core_metadata is None and sdist.requires_python == ">=3.8"
    assert wheel.core_metadata == {"sha256": "aa00bb11cc22dd33ee44ff5566778899" * 2}
    assert yanked.yanked_reason == "Broken on Windows, see <https://example.invalid/issue/1>"
    assert yanked.requires_python == "<4,>=3.9"
    assert yanked.provenance is not None and yanked.provenance.startswith("https://pypi.org/")
    assert bare.yanked and bare.yanked_reason is None and bare.core_metadata is True


@pytest.mark.parametrize("path", sorted(DATA.glob("*.html")), ids=lambda p: p.name)
def test_captured_pages_survive_render_and_reparse(path: Path) -> None:
    if path.name == "local-index.html":
        plist = parse_project_list_html(path.read_bytes())
        assert parse_project_list_html(render_project_list_html(plist)).projects == plist.projects
        return
    page = parse_project_page_html(path.read_bytes(), name="x")
    again = parse_project_page_html(render_project_page_html(page), name="x")
    assert again.files == page.files
    assert (again.status, again.status_reason, again.last_serial) == (
        page.status, page.status_reason, page.last_serial,
    )  # fmt: skip


def test_item_12_identical_one_letter_names_are_duplicates() -> None:
    # One-character strings are shared objects in CPython: duplicates must be found by value.
    parsed = parse_project_list_html(page_html('<a href="a/">a</a><a href="a/">a</a><a>A</a>'))
    assert [p.name for p in parsed.projects] == ["a"]
    assert [r.value for r in parsed.rejected] == ["a", "A"]


def test_item_12_valid_list_with_one_bad_name_keeps_the_rest() -> None:
    body = "".join(f'<a href="p{i}/">P_{i}</a>' for i in range(50)) + '<a href="x/">bad name</a>'
    parsed = parse_project_list_html(page_html(body))
    assert len(parsed.projects) == 50 and parsed.projects[0].normalized == "p-0"
    assert [r.value for r in parsed.rejected] == ["bad name"]


def test_no_break_space_does_not_separate_attributes() -> None:
    # HTML whitespace is ASCII whitespace: "\u00a0" is part of the unquoted value.
    file = one_file("data-requires-python=~=3.8\u00a0data-yanked")
    assert (file.requires_python, file.yanked) == ("~=3.8\u00a0data-yanked", False)


def test_fast_path_agrees_with_general_path_on_captured_pages() -> None:
    for name in ("pypi-requests.html", "pypi-pip.html", "crafted-pypi-2026-style.html"):
        html = (DATA / name).read_text()
        general = html.replace("<a href=", '<a class="x" href=')
        assert general != html
        assert parse_project_page_html(general, name="x") == parse_project_page_html(html, name="x")
