"""The test upstream's routes and headers, seen by a real HTTP client (aiohttp) on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json

import msgspec
import pytest

from headwater.simple.html import parse_project_page_html
from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.testing.conftest import HTML, JSON, fetch


def _display(corpus: Corpus, name: str) -> str:
    project = corpus.get(name)
    assert project is not None
    return project.display_name


def test_item_1_project_page_at_normalized_url(upstream: Upstream, name: str) -> None:
    resp = fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": JSON})
    assert resp.status == 200
    page = parse_project_page_json(resp.body)
    assert page.name == name and len(page.files) == 9


@pytest.mark.parametrize("variant", ["upper", "underscore", "dots"])
def test_item_3_unnormalized_name_redirects_301(
    upstream: Upstream, name: str, variant: str
) -> None:
    assert "-" in name
    raw = {
        "upper": name.upper(),
        "underscore": name.replace("-", "_"),
        "dots": name.replace("-", "."),
    }
    resp = fetch(f"{upstream.url}/simple/{raw[variant]}/?format={JSON}")
    assert resp.status == 301
    assert resp.headers["Location"] == f"/simple/{name}/?format={JSON}"


def test_item_4_slashless_url_redirects(upstream: Upstream, name: str) -> None:
    resp = fetch(f"{upstream.url}/simple/{name}")
    assert (resp.status, resp.headers["Location"]) == (301, f"/simple/{name}/")
    assert fetch(f"{upstream.url}/simple").headers["Location"] == "/simple/"


def test_unknown_project_is_404(upstream: Upstream) -> None:
    assert fetch(f"{upstream.url}/simple/does-not-exist/").status == 404
    assert fetch(f"{upstream.url}/pypi/does-not-exist/json").status == 404
    assert fetch(f"{upstream.url}/nowhere").status == 404


def test_item_7_html_carries_repository_version(upstream: Upstream, name: str) -> None:
    resp = fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": HTML})
    assert b'<meta name="pypi:repository-version" content="1.4">' in resp.body
    assert resp.headers["Content-Type"] == HTML


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (JSON, JSON),
        (HTML, HTML),
        ("text/html", "text/html"),
        ("application/vnd.pypi.simple.latest+json", JSON),  # item 44: concrete type
        (None, "text/html"),  # item 45: missing Accept is */*; PyPI answers HTML
        (f"{JSON}, {HTML};q=0.1, text/html;q=0.01", JSON),  # pip's Accept
    ],
    ids=[
        "item_43_json",
        "item_43_html",
        "item_43_text_html",
        "item_44_latest",
        "item_45_none",
        "item_50_pip",
    ],
)
def test_item_43_negotiated_content_type(
    upstream: Upstream, name: str, accept: str | None, expected: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    for path in ("/simple/", f"/simple/{name}/"):
        resp = fetch(upstream.url + path, headers=headers)
        assert resp.status == 200
        assert resp.headers["Content-Type"] == expected  # item 48: always sent, concrete
        assert resp.headers["Vary"] == "Accept"  # item 53


def test_item_46_unacceptable_is_406(upstream: Upstream, name: str) -> None:
    resp = fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": "application/xml"})
    assert resp.status == 406
    assert resp.headers["Vary"] == "Accept"


def test_item_51_format_parameter_overrides_accept(upstream: Upstream, name: str) -> None:
    resp = fetch(f"{upstream.url}/simple/{name}/?format={JSON}", headers={"Accept": "text/html"})
    assert resp.headers["Content-Type"] == JSON
    assert fetch(f"{upstream.url}/simple/{name}/?format=text/plain").status == 406


def test_item_57_json_last_serial(upstream: Upstream, corpus: Corpus, name: str) -> None:
    listing = parse_project_list_json(
        fetch(f"{upstream.url}/simple/", headers={"Accept": JSON}).body
    )
    assert listing.last_serial == corpus.serial
    assert {e.normalized: e.last_serial for e in listing.projects}[name] == corpus.project_serial(
        name
    )
    page = parse_project_page_json(
        fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": JSON}).body
    )
    assert page.last_serial == corpus.project_serial(name)


def test_item_58_html_serial_comment(upstream: Upstream, corpus: Corpus, name: str) -> None:
    resp = fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": "text/html"})
    assert f"<!--SERIAL {corpus.project_serial(name)}-->".encode() in resp.body


@pytest.mark.parametrize(
    "path", ["/simple/", "/simple/{n}/", "/pypi/{n}/json", "/pypi/{n}/{v}/json"]
)
def test_item_59_last_serial_header(
    upstream: Upstream, corpus: Corpus, name: str, path: str
) -> None:
    project = corpus.get(name)
    assert project is not None
    url = upstream.url + path.format(n=name, v=next(iter(project.releases)))
    expected = corpus.serial if path == "/simple/" else project.last_serial
    assert fetch(url).headers["X-PyPI-Last-Serial"] == str(expected)


def test_etag_if_none_match_gives_304(upstream: Upstream, name: str) -> None:
    url = f"{upstream.url}/simple/{name}/"
    first = fetch(url, headers={"Accept": JSON})
    etag = first.headers["ETag"]
    again = fetch(url, headers={"Accept": JSON, "If-None-Match": etag})
    assert (again.status, again.body, again.headers["ETag"]) == (304, b"", etag)
    # The HTML representation has another ETag, so a cache keyed on URL+Accept stays correct.
    other = fetch(url, headers={"Accept": HTML, "If-None-Match": etag})
    assert other.status == 200 and other.headers["ETag"] != etag


def test_etag_changes_after_mutation(upstream: Upstream, corpus: Corpus, name: str) -> None:
    url = f"{upstream.url}/simple/{name}/"
    etag = fetch(url, headers={"Accept": JSON}).headers["ETag"]
    corpus.add_release(name, "50.0")
    resp = fetch(url, headers={"Accept": JSON, "If-None-Match": etag})
    assert resp.status == 200 and "50.0" in parse_project_page_json(resp.body).versions  # type: ignore[operator]


def test_item_19_metadata_file_matches_announced_hash(upstream: Upstream, name: str) -> None:
    page = parse_project_page_json(
        fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": JSON}).body
    )
    wheel = next(f for f in page.files if f.filename.endswith(".whl"))
    assert isinstance(wheel.core_metadata, dict)
    resp = fetch(wheel.metadata_url)
    assert resp.status == 200
    assert hashlib.sha256(resp.body).hexdigest() == wheel.core_metadata["sha256"]
    sdist = next(f for f in page.files if f.filename.endswith(".tar.gz"))
    assert sdist.core_metadata is None
    assert fetch(sdist.metadata_url).status == 404


def test_item_20_html_core_metadata_attributes(upstream: Upstream, name: str) -> None:
    body = fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": HTML}).body
    page = parse_project_page_html(body, name=name, base_url=f"{upstream.url}/simple/{name}/")
    assert any(isinstance(f.core_metadata, dict) for f in page.files)
    assert body.count(b"data-core-metadata=") == body.count(b"data-dist-info-metadata=")


def test_files_download_with_right_hash_head_and_range(upstream: Upstream, name: str) -> None:
    page = parse_project_page_json(
        fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": JSON}).body
    )
    file = page.files[0]
    resp = fetch(file.url)
    assert resp.status == 200 and hashlib.sha256(resp.body).hexdigest() == file.hashes["sha256"]
    assert len(resp.body) == file.size
    head = fetch(file.url, method="HEAD")
    assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", str(file.size))
    part = fetch(file.url, headers={"Range": "bytes=10-19"})
    assert (part.status, part.body) == (206, resp.body[10:20])
    assert part.headers["Content-Range"] == f"bytes 10-19/{file.size}"
    tail = fetch(file.url, headers={"Range": "bytes=-5"})
    assert tail.body == resp.body[-5:]
    assert fetch(file.url, headers={"Range": f"bytes={file.size}-"}).status == 416
    # The sha256 path must match the file: a wrong digest is a 404, not another file.
    wrong = file.url.replace("/packages/", "/packages/00", 1)
    assert fetch(wrong).status == 404


def test_item_61_quarantined_project_hidden(upstream: Upstream, corpus: Corpus, name: str) -> None:
    corpus.set_status(name, "quarantined", "malware")
    listing = parse_project_list_json(
        fetch(f"{upstream.url}/simple/", headers={"Accept": JSON}).body
    )
    assert name not in {e.normalized for e in listing.projects}
    page = parse_project_page_json(
        fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": JSON}).body
    )
    assert page.files == () and page.status == "quarantined"


def test_item_36_yank_is_served(upstream: Upstream, corpus: Corpus, name: str) -> None:
    version = next(iter(corpus.get(name).releases))  # type: ignore[union-attr]
    corpus.yank(name, version, "broken")
    page = parse_project_page_json(
        fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": JSON}).body
    )
    assert {f.yanked_reason for f in page.files if f.yanked} == {"broken"}
    data = json.loads(fetch(f"{upstream.url}/pypi/{name}/{version}/json").body)
    assert all(u["yanked"] and u["yanked_reason"] == "broken" for u in data["urls"])


def test_legacy_json_api_has_what_bandersnatch_reads(
    upstream: Upstream, corpus: Corpus, name: str
) -> None:
    resp = fetch(f"{upstream.url}/pypi/{name}/json")
    assert resp.headers["Content-Type"] == "application/json"
    data = json.loads(resp.body)
    assert data["info"]["name"] == _display(corpus, name)
    assert data["last_serial"] == corpus.project_serial(name)
    assert set(data["releases"]) == set(corpus.get(name).releases)  # type: ignore[union-attr]
    for files in data["releases"].values():
        for f in files:
            assert set(f["digests"]) == {"md5", "sha256", "blake2b_256"}
            body = fetch(f["url"]).body
            assert hashlib.sha256(body).hexdigest() == f["digests"]["sha256"]
            assert hashlib.md5(body).hexdigest() == f["digests"]["md5"]
            assert f["size"] == len(body)
            assert f["packagetype"] in {"sdist", "bdist_wheel"}
            assert f["upload_time_iso_8601"].endswith("Z")
            assert f["core-metadata"] == f["data-dist-info-metadata"]
            assert "dist-info-metadata" not in f  # item 60
    assert data["urls"] and all(u["filename"] for u in data["urls"])
    assert fetch(f"{upstream.url}/pypi/{name.upper()}/json").status == 301
    assert fetch(f"{upstream.url}/pypi/{name}/999.0/json").status == 404


def test_no_serials_switch(corpus: Corpus, name: str) -> None:
    with Upstream(corpus, serials=False).running() as up:
        resp = fetch(f"{up.url}/simple/{name}/", headers={"Accept": JSON})
        assert "X-PyPI-Last-Serial" not in resp.headers
        assert parse_project_page_json(resp.body).last_serial is None
        html = fetch(f"{up.url}/simple/{name}/", headers={"Accept": HTML}).body
        assert b"<!--SERIAL" not in html
        assert "last_serial" not in json.loads(fetch(f"{up.url}/pypi/{name}/json").body)


def test_html_only_switch(corpus: Corpus, name: str) -> None:
    with Upstream(corpus, json=False).running() as up:
        resp = fetch(f"{up.url}/simple/{name}/", headers={"Accept": JSON})
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/html"
        assert fetch(f"{up.url}/pypi/{name}/json").status == 404


def test_no_metadata_switch(corpus: Corpus, name: str) -> None:
    with Upstream(corpus, metadata=False).running() as up:
        page = parse_project_page_json(
            fetch(f"{up.url}/simple/{name}/", headers={"Accept": JSON}).body
        )
        assert all(f.core_metadata is None for f in page.files)
        assert fetch(page.files[0].metadata_url).status == 404


def test_async_context_manager_and_keep_alive(corpus: Corpus, name: str) -> None:
    import aiohttp

    async def main() -> tuple[int, int]:
        async with Upstream(corpus) as up, aiohttp.ClientSession() as session:
            for _ in range(20):  # one pooled connection, many requests
                async with session.get(f"{up.url}/simple/{name}/") as resp:
                    assert resp.status == 200
                    await resp.read()
            return up.requests(f"/simple/{name}/"), len(up._connections)

    count, connections = asyncio.run(main())
    assert count == 20 and connections <= 1


def test_control_api_mutate_and_stats(upstream: Upstream, corpus: Corpus, name: str) -> None:
    control = f"{upstream.url}/_upstream"
    fetch(f"{upstream.url}/simple/{name}/")
    stats = json.loads(fetch(f"{control}/stats").body)
    assert stats["paths"] == {f"/simple/{name}/": 1} and stats["total"] == 1
    before = corpus.serial
    resp = fetch(
        f"{control}/mutate",
        method="POST",
        data=msgspec.json.encode({"op": "add_release", "project": name, "version": "77.0"}),
    )
    assert json.loads(resp.body) == {"serial": before + 1}
    page = parse_project_page_json(
        fetch(f"{upstream.url}/simple/{name}/", headers={"Accept": JSON}).body
    )
    assert "77.0" in (page.versions or ()) and page.last_serial == before + 1
    bad = fetch(f"{control}/mutate", method="POST", data=b'{"op": "explode", "project": "x"}')
    assert bad.status == 400 and "unknown mutation" in json.loads(bad.body)["error"]
    fetch(f"{control}/stats/reset", method="POST")
    assert json.loads(fetch(f"{control}/stats").body)["total"] == 0
    state = json.loads(fetch(f"{control}/state").body)
    assert state["serial"] == corpus.serial and state["json"] is True


def test_control_api_config_switches(upstream: Upstream, name: str) -> None:
    fetch(f"{upstream.url}/_upstream/config", method="POST", data=b'{"serials": false}')
    assert "X-PyPI-Last-Serial" not in fetch(f"{upstream.url}/simple/{name}/").headers
