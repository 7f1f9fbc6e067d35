"""``headwater nginx-config`` end to end: a real nginx serving a real tree to aiohttp, pip and uv.

The tree is built by hand with the renderers and real wheels (headwater.testing.wheels), laid out
as headwater.storage.layout says; nginx runs on a loopback port with the generated config
(tests/nginx.py). Item numbers are those of standards.md section 1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from headwater.cli import nginx_config as cli
from headwater.simple.html import (
    parse_project_page_html,
    render_project_list_html,
    render_project_page_html,
)
from headwater.simple.json import (
    parse_project_page_json,
    render_project_list_json,
    render_project_page_json,
)
from headwater.simple.model import File, ProjectList, ProjectListEntry, ProjectPage
from headwater.simple.names import NormalizedName, normalize_name
from headwater.simple.negotiation import (
    HTML_V1,
    JSON_V1,
    TEXT_HTML,
    NotAcceptable,
    select_content_type,
)
from headwater.storage import layout
from headwater.sync.nginx import (
    FILE_CACHE_CONTROL,
    PAGE_CACHE_CONTROL,
    InvalidNginxConfig,
    NginxConfig,
    render_nginx_config,
)
from headwater.testing.wheels import build_sdist, build_wheel, core_metadata
from tests.clients import clean_env, installed_version, make_venv, run_ok, uv_install
from tests.nginx import Nginx, require_nginx, start_nginx
from tests.tls import self_signed

# --------------------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class Dist:
    project: NormalizedName
    filename: str
    sha256: str
    url_path: str  # the path under the prefix, e.g. "packages/ab/cd/.../x.whl"
    body: bytes
    metadata: bytes | None


def _write(root: Path, key: str, data: bytes) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build_tree(root: Path) -> dict[str, list[Dist]]:
    """A small tree: Foo_Bar 1.0 and 2.0 (wheels, and an sdist of 2.0), another 0.1."""
    releases = {"Foo_Bar": ["1.0", "2.0"], "another": ["0.1"]}
    dists: dict[str, list[Dist]] = {}
    for display, versions in releases.items():
        name = normalize_name(display)
        files: list[File] = []
        for version in versions:
            meta = core_metadata(display, version)
            built: list[tuple[str, bytes, bytes | None]] = [
                (
                    f"{name.replace('-', '_')}-{version}-py3-none-any.whl",
                    build_wheel(name, display, version, metadata=meta),
                    meta,
                )
            ]
            if display == "Foo_Bar" and version == "2.0":
                built.append(
                    (f"foo_bar-{version}.tar.gz", build_sdist(name, display, version), None)
                )
            for filename, body, metadata in built:
                sha = hashlib.sha256(body).hexdigest()
                _write(root, layout.file_key(sha, filename), body)
                if metadata is not None:
                    _write(root, layout.metadata_key(sha, filename), metadata)
                files.append(
                    File(
                        filename=filename,
                        url=layout.file_url_from_project_page(sha, filename),
                        hashes={"sha256": sha},
                        core_metadata=(
                            {"sha256": hashlib.sha256(metadata).hexdigest()} if metadata else None
                        ),
                        size=len(body),
                        upload_time=datetime(2026, 1, 1, tzinfo=UTC),
                    )
                )
                dists.setdefault(name, []).append(
                    Dist(
                        name,
                        filename,
                        sha,
                        layout.file_key(sha, filename).removeprefix("web/"),
                        body,
                        metadata,
                    )
                )
        page = ProjectPage(name=name, files=tuple(files))
        _write(root, layout.page_key(name, "json"), render_project_page_json(page))
        html = render_project_page_html(page)
        _write(root, layout.page_key(name, "html"), html)
        _write(root, layout.page_key(name, "plain-html"), html)
    listing = ProjectList(projects=tuple(ProjectListEntry(name=n) for n in releases))
    _write(root, layout.page_key(None, "json"), render_project_list_json(listing))
    _write(root, layout.page_key(None, "html"), render_project_list_html(listing))
    _write(root, layout.page_key(None, "plain-html"), render_project_list_html(listing))
    _write(root, layout.LAST_MODIFIED, b"20260101T00:00:00\n")
    # Things that must never be served.
    _write(root, "state/serials.json", b"{}")
    _write(root, "web/simple/.hidden/index.html", b"secret")
    _write(root, "web/simple/foo-bar/.index.v1_json.tmp", b"partial")
    first = dists["foo-bar"][0]
    _write(root, "web/" + first.url_path.rsplit("/", 1)[0] + "/.tmp-upload", b"partial")
    _write(root, "web/.git/config", b"[core]")
    return dists


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Dist]]]:
    root = tmp_path_factory.mktemp("tree")
    return root, build_tree(root)


@pytest.fixture(scope="module")
def server(
    tree: tuple[Path, dict[str, list[Dist]]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    root, _ = tree
    running = start_nginx(
        tmp_path_factory.mktemp("nginx"),
        lambda port: render_nginx_config(
            NginxConfig(root=str(root), listen=(f"127.0.0.1:{port}",))
        ),
    )
    yield running
    running.stop()


# ------------------------------------------------------------------------------------ HTTP helper


@dataclass
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def vary(self) -> set[str]:
        return {v.strip().lower() for h in self.headers.getall("Vary", []) for v in h.split(",")}


async def _fetch_all(
    requests: list[tuple[str, dict[str, str] | None]], *, decompress: bool = True
) -> list[Response]:
    out = []
    # No automatic Accept: a test that wants one says so (item 45 needs its absence).
    async with aiohttp.ClientSession(
        skip_auto_headers=["Accept"], auto_decompress=decompress
    ) as session:
        for url, headers in requests:
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                out.append(Response(resp.status, resp.headers, await resp.read()))
    return out


def get(url: str, headers: dict[str, str] | None = None, *, decompress: bool = True) -> Response:
    return asyncio.run(_fetch_all([(url, headers)], decompress=decompress))[0]


_PAGE_FORMATS: dict[str, layout.PageFormat] = {
    JSON_V1: "json",
    HTML_V1: "html",
    TEXT_HTML: "plain-html",
}


def _expected_file(root: Path, content_type: str, project: str | None = "foo-bar") -> bytes:
    """The bytes of the page file the tree holds for ``content_type``."""
    name = None if project is None else NormalizedName(project)
    return (root / layout.page_key(name, _PAGE_FORMATS[content_type])).read_bytes()


# ------------------------------------------------------------------------- content negotiation

PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
POETRY = "application/vnd.pypi.simple.v1+json, */*;q=0.1"
BANDERSNATCH = "application/vnd.pypi.simple.v1+json"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CHROME = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"

# (id, Accept or None for no header, the expected Content-Type or None for 406)
ACCEPT_TABLE = [
    ("item_50_pip", PIP, JSON_V1),
    ("item_50_uv", UV, JSON_V1),
    ("item_50_poetry", POETRY, JSON_V1),
    ("item_50_bandersnatch", BANDERSNATCH, JSON_V1),
    ("item_50_pip_html_only_era", "text/html", TEXT_HTML),
    ("item_49_curl_wildcard_gets_text_html", "*/*", TEXT_HTML),
    ("item_49_firefox", FIREFOX, TEXT_HTML),
    ("item_49_chrome", CHROME, TEXT_HTML),
    ("item_45_no_accept_is_wildcard", None, TEXT_HTML),
    ("item_45_blank_accept_is_wildcard", "  ", TEXT_HTML),
    ("item_43_v1_html", HTML_V1, HTML_V1),
    ("item_43_text_html_alias", "text/html;q=0.5", TEXT_HTML),
    ("item_44_latest_json", "application/vnd.pypi.simple.latest+json", JSON_V1),
    ("item_44_latest_html", "application/vnd.pypi.simple.latest+html", HTML_V1),
    ("item_43_case_insensitive", "Application/VND.PyPI.Simple.V1+JSON", JSON_V1),
    ("item_47_q_orders_not_position", f"{HTML_V1};q=0.5, {JSON_V1};q=0.4", HTML_V1),
    ("item_47_q_three_decimals", f"{JSON_V1};q=0.101, {HTML_V1};q=0.1", JSON_V1),
    ("item_47_q_three_decimals_low", f"{JSON_V1};q=0.009, {HTML_V1};q=0.01", HTML_V1),
    ("item_47_json_low_text_high", f"{JSON_V1};q=0.1, text/html;q=0.5", TEXT_HTML),
    ("item_47_q_zero_refuses", f"{JSON_V1};q=0, */*", TEXT_HTML),
    ("item_47_q_zero_text_wildcard_rest", "text/html;q=0, */*", HTML_V1),
    ("item_47_specific_beats_wildcard_q", f"{JSON_V1};q=0.2, */*;q=0.9", TEXT_HTML),
    ("item_47_params_before_q", f"{JSON_V1};charset=utf-8;q=0.2, {HTML_V1};q=0.3", HTML_V1),
    ("item_47_invalid_q_drops_range", f"{JSON_V1};q=2, {HTML_V1};q=0.1", HTML_V1),
    ("item_47_first_duplicate_wins", f"{JSON_V1};q=0.1, {JSON_V1}, {HTML_V1};q=0.5", HTML_V1),
    ("item_49_application_wildcard_prefers_json", "application/*", JSON_V1),
    ("item_49_text_wildcard", "text/*", TEXT_HTML),
    ("item_49_equal_q_prefers_json", f"{HTML_V1}, {JSON_V1}", JSON_V1),
    ("item_46_unsupported_406", "application/json", None),
    ("item_46_all_refused_406", f"{JSON_V1};q=0, {HTML_V1};q=0, text/html;q=0", None),
    ("item_46_wildcard_refused_406", "*/*;q=0", None),
    ("item_46_image_406", "image/png", None),
    ("item_46_empty_ranges_406", " , ", None),
]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [pytest.param(a, e, id=i) for i, a, e in ACCEPT_TABLE],
)
def test_item_43_to_50_accept_table(
    server: Nginx,
    tree: tuple[Path, dict[str, list[Dist]]],
    accept: str | None,
    expected: str | None,
) -> None:
    # The table is checked against the Python reference first, so a wrong row cannot pass.
    try:
        reference: str | None = select_content_type(accept)
    except NotAcceptable:
        reference = None
    assert reference == expected
    headers = None if accept is None else {"Accept": accept}
    for path, project in (("/simple/", None), ("/simple/foo-bar/", "foo-bar")):
        resp = get(server.url + path, headers)
        # Item 53: every negotiated answer (the 406 too) varies on Accept.
        assert "accept" in resp.vary()
        if expected is None:
            assert resp.status == 406
            assert b"406 Not Acceptable" in resp.body
            continue
        assert resp.status == 200, resp.body[:200]
        # Item 48: always a concrete Content-Type (item 44: never "latest").
        assert resp.content_type == expected
        assert resp.body == _expected_file(tree[0], expected, project)
        assert resp.headers["Cache-Control"] == PAGE_CACHE_CONTROL
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


_RANGE_CHOICES = [
    JSON_V1,
    HTML_V1,
    TEXT_HTML,
    "application/vnd.pypi.simple.latest+json",
    "application/vnd.pypi.simple.latest+html",
    "application/*",
    "text/*",
    "*/*",
    "application/json",
    "image/webp",
]


def _random_accept(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 5)):
        media = rng.choice(_RANGE_CHOICES)
        if rng.random() < 0.3:
            media = media.upper()
        roll = rng.random()
        if roll < 0.3:
            parts.append(media)
        elif roll < 0.5:
            parts.append(f"{media};q={rng.choice(['0', '1', '0.0', '1.000', '0.5', '0.50', '.5'])}")
        else:
            q = rng.randint(0, 1000) / 1000
            parts.append(f"{media}; q={q:.{rng.randint(1, 3)}f}".rstrip())
    return rng.choice([",", ", ", " ,"]).join(parts)


def test_item_47_nginx_agrees_with_select_content_type_on_random_accept(
    server: Nginx, tree: tuple[Path, dict[str, list[Dist]]]
) -> None:
    """600 generated Accept headers (q-values with at most 3 decimals, the RFC 9110 form): nginx
    picks exactly what headwater.simple.negotiation.select_content_type picks."""
    rng = random.Random(691)
    accepts = [_random_accept(rng) for _ in range(600)]
    responses = asyncio.run(
        _fetch_all([(server.url + "/simple/foo-bar/", {"Accept": a}) for a in accepts])
    )
    disagreements = []
    outcomes = set()
    for accept, resp in zip(accepts, responses, strict=True):
        try:
            want: str | None = select_content_type(accept)
        except NotAcceptable:
            want = None
        got = None if resp.status == 406 else resp.content_type
        if got is not None:
            assert resp.body == _expected_file(tree[0], got)  # the file of the type it claims
        outcomes.add(got)
        if got != want:
            disagreements.append((accept, want, got))
    assert disagreements == []
    assert outcomes == {JSON_V1, HTML_V1, TEXT_HTML, None}  # the generator reached every answer


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            "format=application/vnd.pypi.simple.v1%2Bjson", JSON_V1, id="item_51_json_encoded"
        ),
        pytest.param(
            "format=application%2Fvnd.pypi.simple.v1%2Bhtml", HTML_V1, id="item_51_html_encoded"
        ),
        pytest.param("format=application/vnd.pypi.simple.v1+json", JSON_V1, id="item_51_json_plus"),
        pytest.param(
            "format=application/vnd.pypi.simple.latest%2Bjson", JSON_V1, id="item_51_latest"
        ),
        pytest.param("format=text/html", TEXT_HTML, id="item_51_text_html"),
        pytest.param("format=application/json", None, id="item_51_unsupported_406"),
        pytest.param("format=text/*", None, id="item_51_no_wildcards_406"),
    ],
)
def test_item_51_format_parameter_overrides_accept(
    server: Nginx, tree: tuple[Path, dict[str, list[Dist]]], query: str, expected: str | None
) -> None:
    resp = get(f"{server.url}/simple/foo-bar/?{query}", {"Accept": PIP})
    if expected is None:
        assert resp.status == 406
    else:
        assert resp.status == 200
        assert resp.content_type == expected
        assert resp.body == _expected_file(tree[0], expected)


def test_item_53_pages_are_gzipped_for_clients_that_ask(
    server: Nginx, tree: tuple[Path, dict[str, list[Dist]]]
) -> None:
    raw = get(
        server.url + "/simple/foo-bar/",
        {"Accept": BANDERSNATCH, "Accept-Encoding": "gzip"},
        decompress=False,
    )
    assert raw.headers.get("Content-Encoding") == "gzip"
    assert {"accept", "accept-encoding"} <= raw.vary()
    import gzip

    assert gzip.decompress(raw.body) == _expected_file(tree[0], JSON_V1)


# ---------------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    ("path", "location"),
    [
        pytest.param("/simple", "/simple/", id="item_4_root_without_slash"),
        pytest.param("/simple/foo-bar", "/simple/foo-bar/", id="item_4_project_without_slash"),
        pytest.param("/simple/Foo_Bar/", "/simple/foo-bar/", id="item_3_case_and_underscore"),
        pytest.param("/simple/Foo_Bar", "/simple/foo-bar/", id="item_3_and_4_together"),
        pytest.param("/simple/FOO.-_.BAR/", "/simple/foo-bar/", id="item_1_separator_run"),
        pytest.param("/simple/foo--bar/", "/simple/foo-bar/", id="item_1_double_dash"),
        pytest.param(
            "/simple/a.b.c.d.e.f.g.h.i.j/", "/simple/a-b-c-d-e-f-g-h-i-j/", id="item_1_many_runs"
        ),
        pytest.param("/simple/PyYAML/", "/simple/pyyaml/", id="item_1_pyyaml"),
        pytest.param(
            "/simple/Flask_SQLAlchemy/", "/simple/flask-sqlalchemy/", id="item_1_repeated_letters"
        ),
        pytest.param(
            "/simple/ZYXWVUTSRQPONMLKJIHGFEDCBA/",
            "/simple/zyxwvutsrqponmlkjihgfedcba/",
            id="item_1_alphabet_backwards",
        ),
        pytest.param("/simple/AAAAAAAA/", "/simple/aaaaaaaa/", id="item_1_letter_eight_times"),
        pytest.param(
            "/simple/Foo_Bar/?format=text/html",
            "/simple/foo-bar/?format=text/html",
            id="item_3_query_kept",
        ),
        pytest.param("/", "/simple/", id="root_to_simple"),
    ],
)
def test_item_1_3_4_redirects(server: Nginx, path: str, location: str) -> None:
    resp = get(server.url + path, {"Accept": PIP})
    assert resp.status == 301
    assert resp.headers["Location"] == location
    name = path.removeprefix("/simple/").split("/")[0].split("?")[0]
    if name and path.startswith("/simple/"):
        # The Python reference agrees on the normalized name.
        assert location == f"/simple/{normalize_name(name)}/" + (
            "?" + path.split("?")[1] if "?" in path else ""
        )


def test_item_3_a_name_past_the_rewrite_limit_is_404_not_500(server: Nginx) -> None:
    # Nine occurrences of one letter need nine passes; nginx allows eight (docs/nginx.md).
    resp = get(server.url + "/simple/AAAAAAAAA/", {"Accept": PIP})
    assert resp.status == 404


def test_item_1_redirect_then_page(server: Nginx) -> None:
    async def follow() -> tuple[int, str, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.url + "/simple/FOO_bar", headers={"Accept": PIP}) as resp,
        ):
            return resp.status, str(resp.url), resp.headers["Content-Type"]

    status, url, ctype = asyncio.run(follow())
    assert (status, url, ctype) == (200, server.url + "/simple/foo-bar/", JSON_V1)


# ------------------------------------------------------------------------------ 404s and denials


@pytest.mark.parametrize(
    "path",
    [
        "/simple/nope/",
        "/simple/-foo/",  # item 6: not a valid name
        "/simple/foo-bar/index.html",
        "/simple/foo-bar/index.v1_json",
        "/packages/",
        "/packages/ab/",
        "/state/serials.json",
        "/web/simple/",
        "/last-modified/x",
        "/index.html",
    ],
)
def test_not_found(server: Nginx, path: str) -> None:
    assert get(server.url + path, {"Accept": PIP}).status == 404


def test_held_urls_answer_a_refusal_never_a_file(server: Nginx) -> None:
    # policy/held.py: a held file's URL on a page; the query carries the refusal's text.
    resp = get(server.url + "/held/foo-bar/foo_bar-9.0-py3-none-any.whl?headwater-refused=x")
    assert resp.status == 409
    assert b"held by the publisher guard" in resp.body
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["x-headwater-refused"] == "publisher-held"


@pytest.mark.parametrize(
    "path",
    [
        "/.git/config",
        "/simple/.hidden/",
        "/simple/.hidden/index.html",
        "/simple/foo-bar/.index.v1_json.tmp",
        "/packages/%s/.tmp-upload",
    ],
)
def test_dotfiles_are_denied(
    server: Nginx, tree: tuple[Path, dict[str, list[Dist]]], path: str
) -> None:
    if "%s" in path:
        path = "/" + (
            path % tree[1]["foo-bar"][0].url_path.rsplit("/", 1)[0].removeprefix("packages/")
        ).lstrip("/")
    resp = get(server.url + path)
    assert resp.status == 403
    assert b"secret" not in resp.body and b"partial" not in resp.body


def test_outside_web_is_never_served(server: Nginx) -> None:
    # A traversal is normalized by nginx before locations match, so it lands inside web/ or fails.
    for path in (
        "/../state/serials.json",
        "/simple/../../state/serials.json",
        "/%2e%2e/state/serials.json",
    ):
        resp = get(server.url + path)
        assert resp.status in (400, 404), path
        assert resp.body != b"{}"


# ---------------------------------------------------------------------------------- files


def test_item_62_files_and_metadata(
    server: Nginx, tree: tuple[Path, dict[str, list[Dist]]]
) -> None:
    expected_types = {".whl": "application/zip", ".tar.gz": "application/gzip"}
    for dist in (d for ds in tree[1].values() for d in ds):
        resp = get(f"{server.url}/{dist.url_path}")
        assert resp.status == 200
        assert hashlib.sha256(resp.body).hexdigest() == dist.sha256
        suffix = ".whl" if dist.filename.endswith(".whl") else ".tar.gz"
        assert resp.content_type == expected_types[suffix]
        assert resp.headers["Cache-Control"] == FILE_CACHE_CONTROL
        assert "Content-Encoding" not in resp.headers  # hashes are of the bytes as stored
        meta = get(
            f"{server.url}/{dist.url_path}.metadata", {"Accept-Encoding": "gzip"}, decompress=False
        )
        if dist.metadata is None:
            assert meta.status == 404
            continue
        # Item 19/33: the promised .metadata is served, byte for byte.
        assert meta.status == 200
        assert meta.body == dist.metadata
        assert meta.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert meta.headers["Cache-Control"] == FILE_CACHE_CONTROL


@pytest.mark.parametrize("fmt", ["json", "html"])
def test_item_5_relative_file_urls_resolve_from_served_pages(
    server: Nginx, tree: tuple[Path, dict[str, list[Dist]]], fmt: str
) -> None:
    page_url = server.url + "/simple/foo-bar/"
    resp = get(page_url, {"Accept": JSON_V1 if fmt == "json" else HTML_V1})
    page = (
        parse_project_page_json(resp.body, base_url=page_url)
        if fmt == "json"
        else parse_project_page_html(resp.body, name="foo-bar", base_url=page_url)
    )
    assert len(page.files) == 3
    for file in page.files:
        body = get(urljoin(page_url, file.url.split("#")[0])).body
        assert hashlib.sha256(body).hexdigest() == file.hashes["sha256"]


def test_last_modified(server: Nginx) -> None:
    resp = get(server.url + "/last-modified")
    assert resp.status == 200
    assert resp.body == b"20260101T00:00:00\n"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.headers["Cache-Control"] == PAGE_CACHE_CONTROL


# --------------------------------------------------------------------------- other configs


def test_prefix(tree: tuple[Path, dict[str, list[Dist]]], tmp_path: Path) -> None:
    root, dists = tree
    running = start_nginx(
        tmp_path,
        lambda port: render_nginx_config(
            NginxConfig(root=str(root), listen=(f"127.0.0.1:{port}",), prefix="/pypi/")
        ),
    )
    try:
        assert get(running.url + "/pypi/simple/foo-bar/", {"Accept": PIP}).content_type == JSON_V1
        assert get(running.url + "/simple/foo-bar/", {"Accept": PIP}).status == 404
        resp = get(running.url + "/pypi/simple/Foo_Bar", {"Accept": PIP})
        assert (resp.status, resp.headers["Location"]) == (301, "/pypi/simple/foo-bar/")
        assert get(running.url + "/pypi/simple", {}).headers["Location"] == "/pypi/simple/"
        dist = dists["another"][0]
        assert get(f"{running.url}/pypi/{dist.url_path}").body == dist.body
        assert get(f"{running.url}/{dist.url_path}").status == 404
    finally:
        running.stop()


def test_tls_http2(tree: tuple[Path, dict[str, list[Dist]]], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)

    def config(port: int) -> str:
        return render_nginx_config(
            NginxConfig(
                root=str(tree[0]),
                listen=(f"127.0.0.1:{port}",),
                tls_certificate=str(cert),
                tls_key=str(key),
            )
        )

    assert "listen 127.0.0.1:1 ssl http2;" in config(1)
    running = start_nginx(tmp_path / "nginx", config)
    try:

        async def fetch() -> tuple[int, str]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"https://127.0.0.1:{running.port}/simple/foo-bar/",
                    headers={"Accept": PIP},
                    ssl=False,
                ) as resp,
            ):
                return resp.status, resp.headers["Content-Type"]

        assert asyncio.run(fetch()) == (200, JSON_V1)
    finally:
        running.stop()


# ------------------------------------------------------------------------------ real clients


@pytest.mark.slow
def test_pip_install_and_download_use_json_and_pep_658(server: Nginx, tmp_path: Path) -> None:
    python = make_venv(tmp_path / "venv")
    env = clean_env(tmp_path)
    index = server.url + "/simple/"
    before = len(server.access_lines())
    run_ok(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--isolated",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--index-url",
            index,
            "Foo.Bar",
        ],
        env,
    )
    assert installed_version(python, "foo_bar") == "2.0"
    installed = [line for line in server.access_lines()[before:] if "pip/" in line]
    # pip asked with its Accept and got JSON (items 43, 50).
    assert any(
        line.startswith('GET /simple/foo-bar/ 200 "application/vnd.pypi.simple.v1+json"')
        for line in installed
    ), installed
    before = len(server.access_lines())
    run_ok(
        [
            str(python),
            "-m",
            "pip",
            "download",
            "--isolated",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-deps",
            "-d",
            str(tmp_path / "dl"),
            "--index-url",
            index,
            "another==0.1",
        ],
        env,
    )
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["another-0.1-py3-none-any.whl"]
    lines = [line for line in server.access_lines()[before:] if "pip/" in line]
    # PEP 658: pip download fetched the .metadata, and before the wheel (item 19).
    metadata = [
        i for i, line in enumerate(lines) if "another-0.1-py3-none-any.whl.metadata 200" in line
    ]
    wheel = [i for i, line in enumerate(lines) if "another-0.1-py3-none-any.whl 200" in line]
    assert metadata and wheel and metadata[0] < wheel[0], lines


@pytest.mark.slow
def test_uv_pip_install(server: Nginx, tmp_path: Path, uv: Path) -> None:
    before = len(server.access_lines())
    python = uv_install(uv, server.url + "/simple/", "foo-bar", tmp_path)
    assert installed_version(python, "foo_bar") == "2.0"
    lines = [line for line in server.access_lines()[before:] if "uv/" in line]
    assert any(
        line.startswith('GET /simple/foo-bar/ 200 "application/vnd.pypi.simple.v1+json"')
        for line in lines
    ), lines


# --------------------------------------------------------------------------------- unit tests


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"root": "tree"}, "not an absolute path"),
        ({"root": "/srv/$tree"}, "'$'"),
        ({"root": '/srv/"x'}, "'$'"),
        ({"root": "/srv", "prefix": "pypi/"}, "--prefix"),
        ({"root": "/srv", "prefix": "/pypi"}, "--prefix"),
        ({"root": "/srv", "prefix": "/a/../b/"}, "--prefix"),
        ({"root": "/srv", "prefix": "/a b/"}, "--prefix"),
        ({"root": "/srv", "listen": ("80; include /etc/passwd",)}, "--listen"),
        ({"root": "/srv", "server_name": ("a;b",)}, "--server-name"),
        ({"root": "/srv", "server_name": ()}, "--server-name"),
        ({"root": "/srv", "tls_certificate": "/c.pem"}, "both"),
        ({"root": "/srv", "tls_key": "/k.pem"}, "both"),
        ({"root": "/srv", "tls_certificate": "c.pem", "tls_key": "/k.pem"}, "--tls-certificate"),
    ],
)
def test_invalid_options_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidNginxConfig, match=message.replace("$", r"\$")):
        NginxConfig(**kwargs)  # type: ignore[arg-type]


def test_defaults_and_no_maps() -> None:
    text = render_nginx_config(NginxConfig(root="/srv/mirror/"))
    assert "listen 80;" in text and 'root "/srv/mirror/web";' in text and "server_name _;" in text
    assert text.count("map ") > 10
    tls = render_nginx_config(
        NginxConfig(root="/srv", tls_certificate="/c", tls_key="/k", include_maps=False)
    )
    assert "listen 443 ssl http2;" in tls and "map " not in tls


def test_cli_prints_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "nginx-config",
            "--root",
            str(tmp_path),
            "--listen",
            "8080",
            "--listen",
            "[::]:8080",
            "--server-name",
            "pypi.example.org",
            "--prefix",
            "/pypi/",
        ]
    )
    assert args.run(args) == 0
    out, err = capsys.readouterr()
    assert f'root "{tmp_path}/web";' in out
    assert "listen 8080;" in out and "listen [::]:8080;" in out
    assert "server_name pypi.example.org;" in out
    assert "location ^~ /pypi/simple/" in out
    assert "does not exist yet" in err  # no web/simple in an empty directory


def test_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = require_nginx()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "events {}\nhttp {\n"
        + render_nginx_config(NginxConfig(root=str(tmp_path), listen=("127.0.0.1:1",)))
        + "}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "e.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "[warn]" not in result.stderr, result.stderr


def test_missing_nginx_fails_with_setup_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.setattr("os.access", lambda *_args: False)
    with pytest.raises(pytest.fail.Exception, match="scripts/setup-system"):
        require_nginx()


def test_docs_example_is_current() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "nginx.md").read_text(encoding="utf-8")
    example = docs.split("## Example output", 1)[1].split("```nginx\n", 1)[1].split("```", 1)[0]
    expected = render_nginx_config(
        NginxConfig(root="/srv/headwater", server_name=("pypi.example.org",))
    )
    assert example == expected


def test_setup_system_is_idempotent_and_skips_apt_when_installed(tmp_path: Path) -> None:
    require_nginx()
    marker = tmp_path / "apt-called"
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("apt-get", "sudo"):
        (fake / tool).write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 1\n')
        (fake / tool).chmod(0o755)
    script = Path(__file__).parents[2] / "scripts" / "setup-system"
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    for _ in range(2):
        result = subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "already installed: nginx" in result.stdout
    assert not marker.exists()  # no apt-get update when nothing is missing
