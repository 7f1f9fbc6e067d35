"""The server's hot path on a mirrored tree: pages, negotiation, validators, files, redirects."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from headwater.config.settings import ServeSettings
from headwater.repository.tree import TreeSource
from headwater.server.app import IndexApp
from headwater.simple.html import parse_project_page_html
from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.storage import FileStorage
from headwater.testing.corpus import Corpus
from tests.server.asgi import Answer, call

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {HTML}; q=0.1, text/html; q=0.01"


def make_app(tree: Path, **settings: Any) -> IndexApp:
    source = TreeSource(
        "pypi",
        FileStorage(tree),
        revalidate=settings.pop("revalidate", 1.0),
        memory_file_size=settings.pop("memory_file_size", 256 << 10),
    )
    return IndexApp(ServeSettings(**settings), {"pypi": source}, default="pypi")


def get(app: IndexApp, path: str, **kw: Any) -> Answer:
    return asyncio.run(call(app, kw.pop("method", "GET"), path, **kw))


def first_project(corpus: Corpus) -> str:
    return corpus.project_list().projects[0].normalized


def test_root_page_json_and_html(tree: Path, corpus: Corpus) -> None:
    app = make_app(tree)
    answer = get(app, "/pypi/simple/", headers={"Accept": JSON})
    assert answer.status == 200
    assert answer.headers["content-type"] == JSON
    listing = parse_project_list_json(answer.body)
    assert {p.normalized for p in listing.projects} == {
        p.normalized for p in corpus.project_list().projects
    }
    html = get(app, "/pypi/simple/", headers={"Accept": "text/html"})
    assert html.headers["content-type"] == "text/html"
    assert first_project(corpus).encode() in html.body


def test_item_53_vary_cors_and_serial_headers(tree: Path, corpus: Corpus) -> None:
    answer = get(
        make_app(tree), f"/pypi/simple/{first_project(corpus)}/", headers={"Accept": PIP_ACCEPT}
    )
    assert answer.headers["vary"] == "Accept, Accept-Encoding"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "X-PyPI-Last-Serial" in answer.headers["access-control-expose-headers"]
    page = parse_project_page_json(answer.body)
    assert int(answer.headers["x-pypi-last-serial"]) == page.last_serial
    assert answer.headers["cache-control"] == "max-age=600, public"


@pytest.mark.parametrize(
    ("accept", "query", "expected"),
    [
        (PIP_ACCEPT, "", JSON),
        (None, "", "text/html"),  # item 45: no Accept is */*; PyPI answers text/html
        ("application/vnd.pypi.simple.latest+json", "", JSON),  # item 44
        ("application/vnd.pypi.simple.v1+html", "", HTML),
        ("text/html", f"format={JSON}", JSON),  # item 51: ?format= overrides Accept
    ],
    ids=["pip", "item_45_none", "item_44_latest", "item_43_v1_html", "item_51_format"],
)
def test_negotiation(
    tree: Path, corpus: Corpus, accept: str | None, query: str, expected: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    answer = get(
        make_app(tree), f"/pypi/simple/{first_project(corpus)}/", headers=headers, query=query
    )
    assert answer.status == 200
    assert answer.headers["content-type"] == expected  # item 48: always the concrete type
    if expected == JSON:
        parse_project_page_json(answer.body)
    else:
        parse_project_page_html(answer.body, name=first_project(corpus))


def test_item_46_unacceptable_is_406(tree: Path, corpus: Corpus) -> None:
    answer = get(
        make_app(tree), f"/pypi/simple/{first_project(corpus)}/", headers={"Accept": "image/png"}
    )
    assert answer.status == 406
    assert b"image/png" in answer.body


@pytest.mark.parametrize("fixed", ["v1+json", "v1+html"])
def test_item_52_endpoint_configuration(tree: Path, corpus: Corpus, fixed: str) -> None:
    name = first_project(corpus)
    answer = get(make_app(tree), f"/pypi/{fixed}/simple/{name}/", headers={"Accept": "text/html"})
    assert answer.status == 200
    assert answer.headers["content-type"] == f"application/vnd.pypi.simple.{fixed}"
    # The relative file URLs on the page resolve below the same prefix, and are served there.
    page = (
        parse_project_page_json(answer.body)
        if fixed == "v1+json"
        else parse_project_page_html(answer.body, name=name)
    )
    url = page.files[0].url
    assert url.startswith("../../packages/")
    file_answer = get(
        make_app(tree), f"/pypi/{fixed}/packages/{url.removeprefix('../../packages/')}"
    )
    assert file_answer.status == 200


def test_default_index_at_simple(tree: Path, corpus: Corpus) -> None:
    app = make_app(tree)
    name = first_project(corpus)
    assert (
        get(app, f"/simple/{name}/", headers={"Accept": JSON}).body
        == get(app, f"/pypi/simple/{name}/", headers={"Accept": JSON}).body
    )


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/pypi/simple/{upper}/", "/pypi/simple/{name}/"),
        ("/pypi/simple/{name}", "/pypi/simple/{name}/"),
        ("/simple/{upper}", "/simple/{name}/"),
        ("/pypi/simple", "/pypi/simple/"),
        ("/pypi", "/pypi/simple/"),
    ],
    ids=["item_1_normalize", "slash", "default_normalize", "root_slash", "index_root"],
)
def test_redirects_to_the_canonical_url(
    tree: Path, corpus: Corpus, path: str, location: str
) -> None:
    name = first_project(corpus)
    upper = name.upper().replace("-", "_")
    answer = get(
        make_app(tree),
        path.format(name=name, upper=upper),
        query="format=text/html" if "{upper}" in path else "",
    )
    assert answer.status == 301
    expected = location.format(name=name)
    if "{upper}" in path:
        expected += "?format=text/html"  # the query string is kept
    assert answer.headers["location"] == expected


@pytest.mark.parametrize(
    "path",
    [
        "/pypi/simple/no-such-project/",
        "/pypi/simple/../etc/",
        "/pypi/simple/a/b/",
        "/pypi/simple/-bad-/",
        "/pypi/packages/../../state/x",
        "/pypi/packages/ab/cd/ef/x.whl",
        "/nothing/simple/",
    ],
)
def test_not_found(tree: Path, path: str) -> None:
    answer = get(make_app(tree), path, headers={"Accept": JSON})
    assert answer.status == 404, path
    assert answer.headers["content-type"].startswith("text/plain")


def test_etag_conditional_get_and_head(tree: Path, corpus: Corpus) -> None:
    app = make_app(tree)
    path = f"/pypi/simple/{first_project(corpus)}/"
    first = get(app, path, headers={"Accept": JSON})
    etag = first.headers["etag"]
    again = get(app, path, headers={"Accept": JSON, "If-None-Match": etag})
    assert (again.status, again.body) == (304, b"")
    assert again.headers["etag"] == etag
    other = get(app, path, headers={"Accept": "text/html", "If-None-Match": etag})
    assert other.status == 200  # another representation, another validator
    head = get(app, path, headers={"Accept": JSON}, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(first.body))


def test_gzip_when_accepted(tree: Path) -> None:
    app = make_app(tree)
    plain = get(app, "/pypi/simple/", headers={"Accept": "text/html"})
    zipped = get(
        app, "/pypi/simple/", headers={"Accept": "text/html", "Accept-Encoding": "gzip, deflate"}
    )
    if len(plain.body) >= 512:
        assert zipped.headers["content-encoding"] == "gzip"
        assert gzip.decompress(zipped.body) == plain.body
        assert zipped.headers["etag"] != plain.headers["etag"]
    page = get(
        app,
        f"/pypi/simple/{parse_project_list_json(get(app, '/pypi/simple/', headers={'Accept': JSON}).body).projects[0].normalized}/",
        headers={"Accept": JSON, "Accept-Encoding": "gzip"},
    )
    assert page.headers.get("content-encoding") == "gzip"
    parse_project_page_json(gzip.decompress(page.body))


def _a_file(app: IndexApp, corpus: Corpus) -> tuple[str, Any]:
    page = parse_project_page_json(
        get(app, f"/pypi/simple/{first_project(corpus)}/", headers={"Accept": JSON}).body
    )
    file = page.files[0]
    return "/pypi/packages/" + file.url.removeprefix("../../packages/"), file


def test_file_download_matches_its_hash(tree: Path, corpus: Corpus) -> None:
    app = make_app(tree)
    path, file = _a_file(app, corpus)
    answer = get(app, path)
    assert answer.status == 200
    assert hashlib.sha256(answer.body).hexdigest() == file.hashes["sha256"]
    assert "immutable" in answer.headers["cache-control"]
    assert answer.headers["accept-ranges"] == "bytes"
    head = get(app, path, method="HEAD")
    assert (head.status, head.body, head.headers["content-length"]) == (
        200,
        b"",
        str(len(answer.body)),
    )
    assert get(app, path, headers={"If-None-Match": answer.headers["etag"]}).status == 304


def test_item_pep658_metadata_file(tree: Path, corpus: Corpus) -> None:
    app = make_app(tree)
    path, file = _a_file(app, corpus)
    assert file.core_metadata  # the tree mirrors .metadata for wheels
    answer = get(app, path + ".metadata")
    assert answer.status == 200
    assert isinstance(file.core_metadata, dict)
    assert hashlib.sha256(answer.body).hexdigest() == file.core_metadata["sha256"]
    assert answer.body.startswith(b"Metadata-Version:")


@pytest.mark.parametrize(
    ("range_header", "status", "span"),
    [
        ("bytes=0-9", 206, (0, 10)),
        ("bytes=5-", 206, (5, None)),
        ("bytes=-4", 206, (-4, None)),
        ("bytes=999999999-", 416, None),
        ("bytes=0-1,4-5", 200, (0, None)),
        ("items=0-1", 200, (0, None)),
    ],
)
@pytest.mark.parametrize("in_memory", [True, False], ids=["memory", "streamed"])
def test_range_requests(
    tree: Path,
    corpus: Corpus,
    range_header: str,
    status: int,
    span: tuple[int, int | None] | None,
    in_memory: bool,
) -> None:
    app = make_app(tree, memory_file_size=1 << 20 if in_memory else 0)
    path, _ = _a_file(app, corpus)
    whole = get(app, path).body
    answer = get(app, path, headers={"Range": range_header})
    assert answer.status == status
    if span is not None:
        assert answer.body == whole[span[0] : span[1]]
    if status == 206:
        assert answer.headers["content-range"].endswith(f"/{len(whole)}")
    if status == 416:
        assert answer.headers["content-range"] == f"bytes */{len(whole)}"


def test_small_files_are_served_from_memory(tree: Path, corpus: Corpus) -> None:
    app = make_app(tree)
    path, _ = _a_file(app, corpus)
    first = asyncio.run(call(app, "GET", path, extensions={"http.response.pathsend": {}}))
    again = asyncio.run(call(app, "GET", path, extensions={"http.response.pathsend": {}}))
    assert first.body == again.body and first.body
    assert not [m for m in again.messages if m["type"] == "http.response.pathsend"]
    source = app.sources["pypi"]
    assert isinstance(source, TreeSource) and source.files.used >= len(first.body)


def test_pathsend_used_when_the_server_offers_it(tree: Path, corpus: Corpus) -> None:
    app = make_app(tree, memory_file_size=0)
    path, _ = _a_file(app, corpus)
    answer = asyncio.run(call(app, "GET", path, extensions={"http.response.pathsend": {}}))
    sent = [m for m in answer.messages if m["type"] == "http.response.pathsend"]
    assert len(sent) == 1 and Path(sent[0]["path"]).is_file()
    assert str(tree) in sent[0]["path"]


def test_sync_becomes_visible_after_revalidation(tmp_path: Path, corpus: Corpus) -> None:
    from tests.server.conftest import build_tree

    build_tree(tmp_path, corpus)
    app = make_app(tmp_path, revalidate=0.0)
    before = get(app, "/pypi/simple/", headers={"Accept": JSON})
    key = tmp_path / "web/simple/index.v1_json"
    listing = msgspec.json.decode(key.read_bytes())
    listing["projects"] = listing["projects"][:1]
    key.write_bytes(msgspec.json.encode(listing))
    after = get(app, "/pypi/simple/", headers={"Accept": JSON})
    assert len(parse_project_list_json(after.body).projects) == 1
    assert after.headers["etag"] != before.headers["etag"]


def test_legacy_host_redirects_keep_the_path(tree: Path) -> None:
    app = make_app(tree, base_url="https://pypi.example.org", legacy_hosts=["old.example.org"])
    answer = get(
        app, "/pypi/simple/foo/", headers={"Host": "old.example.org:8080"}, query="format=text/html"
    )
    assert answer.status == 301
    assert (
        answer.headers["location"] == "https://pypi.example.org/pypi/simple/foo/?format=text/html"
    )
    post = get(app, "/pypi/legacy/", headers={"Host": "OLD.example.org"}, method="POST")
    assert post.status == 308  # keeps the method and body, unlike 301
    assert get(app, "/pypi/simple/", headers={"Host": "pypi.example.org"}).status == 200


def test_landing_page_lists_indexes(tree: Path) -> None:
    answer = get(make_app(tree), "/")
    assert answer.status == 200 and b"/pypi/simple/" in answer.body


def test_pypi_legacy_json_for_bandersnatch(tree: Path, corpus: Corpus) -> None:
    app = make_app(tree)
    name = first_project(corpus)
    answer = get(app, f"/pypi/pypi/{name}/json", headers={"Host": "mirror.example:8080"})
    assert answer.status == 200 and answer.headers["content-type"] == "application/json"
    body = msgspec.json.decode(answer.body)
    page = parse_project_page_json(get(app, f"/pypi/simple/{name}/", headers={"Accept": JSON}).body)
    assert body["last_serial"] == page.last_serial == int(answer.headers["x-pypi-last-serial"])
    files = [f for release in body["releases"].values() for f in release]
    assert sorted(f["filename"] for f in files) == sorted(f.filename for f in page.files)
    for entry in files:
        # Path-absolute without base_url: the Host header never reaches the body.
        assert entry["url"].startswith("/pypi/packages/")
        downloaded = get(app, entry["url"])
        assert hashlib.sha256(downloaded.body).hexdigest() == entry["digests"]["sha256"]
    assert body["info"]["version"] in body["releases"]
    assert body["urls"] == body["releases"][body["info"]["version"]]
    assert get(app, f"/pypi/pypi/{name}/nope").status == 404
    assert get(app, "/pypi/pypi/no-such-project/json").status == 404


def test_pypi_json_of_the_default_index_beside_an_index_called_pypi(
    tree: Path, corpus: Corpus
) -> None:
    # bandersnatch asks <base>/pypi/<project>/json; here the default index is itself "pypi".
    name = first_project(corpus)
    answer = get(make_app(tree), f"/pypi/{name}/json", headers={"Host": "h"})
    assert answer.status == 200
    urls = [f["url"] for r in msgspec.json.decode(answer.body)["releases"].values() for f in r]
    assert urls and all(u.startswith("/packages/") for u in urls)  # host-root files


def test_pypi_json_does_not_depend_on_the_host_header(tree: Path, corpus: Corpus) -> None:
    """Any number of Host values: one rendering, the same bytes, no Host in them (it used to be
    one cached rendering per Host, with the Host in every file URL of a public response)."""
    app = make_app(tree)
    name = first_project(corpus)
    hosts = ["a.example", "b.example:8080", "[::1", "\xff", "", '"><script>'] + [
        f"h{n}.example" for n in range(50)
    ]
    bodies = set()
    for host in hosts:
        answer = get(app, f"/pypi/pypi/{name}/json", headers={"Host": host})
        assert answer.status == 200, host
        assert "host" not in answer.headers.get("vary", "").lower()
        bodies.add(answer.body)
    assert len(bodies) == 1
    assert not any(host.encode() in next(iter(bodies)) for host in hosts if host)
    assert len(app._pypi_cache) == 1


def test_pypi_json_urls_are_absolute_with_base_url(tree: Path, corpus: Corpus) -> None:
    app = make_app(tree, base_url="https://pypi.example.org/")
    name = first_project(corpus)
    answer = get(app, f"/pypi/pypi/{name}/json", headers={"Host": "evil.example"})
    urls = [f["url"] for r in msgspec.json.decode(answer.body)["releases"].values() for f in r]
    assert urls and all(u.startswith("https://pypi.example.org/pypi/packages/") for u in urls)
