"""A hostile or broken upstream, table-driven: every bad input is retried or refused with a clear
message, nothing unverified becomes visible, the rest of the sync goes on, and the exit status says
so. Transport faults come from the test upstream's fault injection; hostile pages come from a
deliberately hostile index (a real HTTP server on loopback serving crafted bytes)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.simple.negotiation import JSON_V1
from headwater.storage import FileStorage
from headwater.sync.engine import Mirror, Summary
from headwater.sync.filters import FilterConfig
from headwater.sync.wants import TreeWants
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.aioserve import aiohttp_serving
from tests.sync.test_crash import assert_consistent

FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002)
HEADWATER = str(Path(sys.executable).with_name("headwater"))

# --- transport faults, through the test upstream ------------------------------------------------

FAULTS: list[tuple[str, str, dict[str, Any], str | None]] = [
    # (id, where, fault options, expected failure text or None if retried to success)
    ("5xx-transient", "page", {"kind": "status", "status": 503, "times": 2}, None),
    ("5xx-persistent", "page", {"kind": "status", "status": 502}, "HTTP 502"),
    ("reset-transient", "page", {"kind": "reset", "times": 2}, None),
    ("reset-persistent", "page", {"kind": "reset"}, "reset"),
    ("timeout", "page", {"kind": "delay", "delay": 3.0}, "timed out"),
    ("truncated-file-once", "file", {"kind": "truncate", "times": 1}, None),
    ("truncated-file-always", "file", {"kind": "truncate"}, "cut short"),
    ("wrong-hash-once", "file", {"kind": "corrupt", "times": 1}, None),
    ("wrong-hash-always", "file", {"kind": "corrupt"}, "its page promised"),
    ("stale-serial-always", "page", {"kind": "stale"}, "stale cache copy"),
    ("malformed-page", "page", {"kind": "malformed"}, "is not valid JSON"),
]


@pytest.mark.parametrize(
    ("where", "fault", "expected"), [pytest.param(w, f, e, id=i) for i, w, f, e in FAULTS]
)
def test_transport_faults(
    tmp_path: Path, where: str, fault: dict[str, Any], expected: str | None
) -> None:
    corpus = Corpus.generate(4, releases=1, files=1, seed=40)
    victim = corpus.project_list().projects[0].normalized
    corpus.add_release(victim, "9.0", files=1)  # so a stale copy (the page before this) exists
    project = corpus.get(victim)
    assert project is not None
    path = (
        f"/simple/{victim}/"
        if where == "page"
        else max(project.files(), key=lambda f: f.version).path
    )

    async def go() -> Summary:
        async with (
            Upstream(corpus) as up,
            client_session(connections=8, read_timeout=1.0) as session,
        ):
            up.add_fault(path=path, **fault)
            mirror = Mirror(
                HttpRepository(up.simple_url, session, retry=FAST), FileStorage(tmp_path), workers=4
            )
            return await mirror.run()

    summary = asyncio.run(go())
    assert_consistent(tmp_path)  # nothing unverified is visible, whatever happened
    assert summary.synced == (4 if expected is None else 3)  # the rest of the sync went on
    if expected is None:
        assert summary.ok, summary.failed
    else:
        assert list(summary.failed) == [victim]
        assert expected in summary.failed[victim], summary.failed[victim]
        assert not (tmp_path / f"web/simple/{victim}").exists()


# --- hostile pages, through a hostile index ------------------------------------------------------

GOOD = b"good wheel bytes"
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


def _file(filename: str, url: str | None = None) -> dict[str, Any]:
    return {
        "filename": filename,
        "url": url or f"/files/{GOOD_SHA}",
        "hashes": {"sha256": GOOD_SHA},
        "size": len(GOOD),
    }


def _page(
    name: str, files: list[dict[str, Any]], versions: list[str] | None = None
) -> dict[str, Any]:
    return {
        "meta": {"api-version": "1.1"},
        "name": name,
        "files": files,
        "versions": versions or ["1.0"],
    }


HOSTILE_PAGES: dict[str, dict[str, Any]] = {
    "good": _page("good", [_file("good-1.0-py3-none-any.whl")]),
    "traversal-file": _page("traversal-file", [_file("../../../etc/passwd")]),
    "absolute-file": _page("absolute-file", [_file("/etc/passwd.whl")]),
    "nul-file": _page("nul-file", [_file("nul_file-1.0\x00.whl")]),
    "long-file": _page("long-file", [_file("long_file-1.0-" + "x" * 300 + "-py3-none-any.whl")]),
    "wrong-project": _page(
        "good", [_file("good-1.0-py3-none-any.whl")]
    ),  # answers for another name
}
HOSTILE_NAMES = ["../evil", "/etc/passwd", "nul\x00name", "a" * 300, "spaced name"]


@asynccontextmanager
async def hostile_index(
    extra: dict[str, dict[str, Any]] | None = None, extra_routes: dict[str, bytes] | None = None
) -> AsyncIterator[str]:
    pages = {**HOSTILE_PAGES, **(extra or {})}

    async def root(request: web.Request) -> web.Response:
        projects = [{"name": n} for n in [*pages, *HOSTILE_NAMES]]
        body = json.dumps({"meta": {"api-version": "1.1"}, "projects": projects})
        return web.Response(body=body.encode(), content_type=JSON_V1)

    async def project(request: web.Request) -> web.Response:
        page = pages.get(request.match_info["name"])
        if page is None:
            return web.Response(status=404)
        return web.Response(body=json.dumps(page).encode(), content_type=JSON_V1)

    async def files(request: web.Request) -> web.Response:
        return web.Response(body=GOOD, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/simple/", root)
    app.router.add_get("/simple/{name}/", project)
    app.router.add_get("/files/{sha}", files)
    for path, body in (extra_routes or {}).items():
        app.router.add_get(path, _static(body))
    async with aiohttp_serving(app) as url:
        yield url


def _static(body: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/octet-stream")

    return handler


def _mirror(url: str, root: Path, wants: TreeWants | None = None) -> Summary:
    async def go() -> Summary:
        async with client_session() as session:
            return await Mirror(
                HttpRepository(url, session, retry=FAST), FileStorage(root), wants=wants
            ).run()

    return asyncio.run(go())


def test_hostile_names_and_filenames_are_refused(tmp_path: Path) -> None:
    async def serve_and_mirror() -> Summary:
        async with hostile_index() as url:
            return await asyncio.to_thread(_mirror, url, tmp_path)

    summary = asyncio.run(serve_and_mirror())
    assert summary.synced == 1  # "good" went through despite everything around it
    assert set(summary.refused) == set(HOSTILE_NAMES) - {"a" * 300} | {"a" * 200}
    assert all("not a valid project name" in reason for reason in summary.refused.values())
    for name in ("traversal-file", "absolute-file", "nul-file", "long-file"):
        assert (
            "unsafe distribution filename" in summary.failed[name]
            or "too long" in summary.failed[name]
        ), summary.failed[name]
    assert (
        "asked for project 'wrong-project' but the page is for 'good'"
        in summary.failed["wrong-project"]
    )
    # Nothing escaped the tree, and only the good file is in it.
    assert not (tmp_path.parent / "etc").exists()
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "packages" in p.parts]
    assert [p.name for p in files] == ["good-1.0-py3-none-any.whl"]
    assert_consistent(tmp_path)


def test_a_page_with_100000_files(tmp_path: Path) -> None:
    versions = [f"{i // 1000}.{i % 1000}" for i in range(100_000)]
    big = _page("big", [_file(f"big-{v}-py3-none-any.whl") for v in versions], versions)
    keep_newest = TreeWants(filters=FilterConfig(latest=1))

    async def serve_and_mirror() -> Summary:
        async with hostile_index({"big": big}) as url:
            return await asyncio.to_thread(_mirror, url, tmp_path, keep_newest)

    summary = asyncio.run(serve_and_mirror())
    assert "big" not in summary.failed
    page = json.loads((tmp_path / "web/simple/big/index.v1_json").read_text())
    assert [f["filename"] for f in page["files"]] == ["big-99.999-py3-none-any.whl"]


BIG = bytes(range(256)) * 12_000  # 3 MB: many chunks, read whole (under the 4 MiB threshold)
BIG_SHA = hashlib.sha256(BIG).hexdigest()


@pytest.mark.parametrize(
    ("promised", "ok"),
    [(len(BIG), True), (1000, False)],
    ids=["big-file", "body-longer-than-promised"],
)
def test_file_bodies_are_read_in_full_and_capped(tmp_path: Path, promised: int, ok: bool) -> None:
    page = {
        "meta": {"api-version": "1.1"},
        "name": "big-file",
        "versions": ["1.0"],
        "files": [
            {
                "filename": "big_file-1.0.tar.gz",
                "url": "/big",
                "hashes": {"sha256": BIG_SHA},
                "size": promised,
            }
        ],
    }

    async def serve_and_mirror() -> Summary:
        async with hostile_index({"big-file": page}, extra_routes={"/big": BIG}) as url:
            return await asyncio.to_thread(_mirror, url, tmp_path)

    summary = asyncio.run(serve_and_mirror())
    if ok:
        assert "big-file" not in summary.failed
        assert [p.read_bytes() == BIG for p in tmp_path.rglob("big_file-1.0.tar.gz")] == [True]
    else:
        assert "larger than the 1000 bytes its page promised" in summary.failed["big-file"]
        assert not list(tmp_path.rglob("big_file-1.0.tar.gz"))


@pytest.mark.parametrize("tracks", [True, False])
def test_upstream_tracks_are_never_copied(tmp_path: Path, tracks: bool) -> None:
    # PEP 708: tracks is set by the operator of the repository that serves the page.
    page = _page("tracked", [_file("tracked-1.0-py3-none-any.whl")])
    page["meta"]["tracks"] = ["https://elsewhere.example/simple/tracked/"]

    async def serve_and_mirror() -> tuple[Summary, str]:
        async with hostile_index({"tracked": page}) as url:

            async def go() -> Summary:
                async with client_session() as session:
                    repo = HttpRepository(url, session, retry=FAST)
                    return await Mirror(
                        repo, FileStorage(tmp_path), wants=TreeWants(tracks=tracks)
                    ).run()

            return await go(), url

    summary, url = asyncio.run(serve_and_mirror())
    assert "tracked" not in summary.failed
    written = json.loads((tmp_path / "web/simple/tracked/index.v1_json").read_text())
    assert written["meta"].get("tracks", []) == ([f"{url}tracked/"] if tracks else [])


def test_an_http_provenance_url_is_never_mirrored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # PEP 740: provenance "MUST be a secure origin". An upstream's http:// one is left out of
    # both forms of the mirrored page (and said once in the log), and never fetched.
    files = [
        _file("attested-1.0-py3-none-any.whl") | {"provenance": "http://attest.example/p1"},
        _file("attested-1.0.tar.gz"),
    ]
    page = _page("attested", files)
    page["meta"]["api-version"] = "1.3"

    async def serve_and_mirror() -> Summary:
        async with hostile_index({"attested": page}) as url:
            return await asyncio.to_thread(_mirror, url, tmp_path)

    with caplog.at_level("WARNING", logger="headwater"):
        summary = asyncio.run(serve_and_mirror())
    assert "attested" not in summary.failed
    web = tmp_path / "web/simple/attested"
    written = {f["filename"]: f for f in json.loads((web / "index.v1_json").read_text())["files"]}
    assert "provenance" not in written["attested-1.0-py3-none-any.whl"]
    html = (web / "index.v1_html").read_text()
    assert "http://attest.example" not in html
    said = [r.getMessage() for r in caplog.records if "provenance" in r.getMessage()]
    assert len(said) == 1 and "attested" in said[0] and "http://attest.example/p1" in said[0]
    assert not list(tmp_path.rglob("*.provenance"))


def test_an_https_provenance_the_mirror_cannot_fetch_fails_the_project(tmp_path: Path) -> None:
    # The mirror keeps (and verifies) the provenance a page lists: one it cannot fetch (here a
    # host outside the fetch boundary, never contacted) fails the file like a missing file
    # would, so the page is not written without it.
    files = [_file("attested-1.0.tar.gz") | {"provenance": "https://attest.example/p2"}]
    page = _page("attested", files)
    page["meta"]["api-version"] = "1.3"

    async def serve_and_mirror() -> Summary:
        async with hostile_index({"attested": page}) as url:
            return await asyncio.to_thread(_mirror, url, tmp_path)

    summary = asyncio.run(serve_and_mirror())
    assert "attest.example" in summary.failed["attested"]
    assert not (tmp_path / "web/simple/attested").exists()


def test_exit_status_says_so(tmp_path: Path) -> None:
    async def serve_and_run() -> subprocess.CompletedProcess[str]:
        async with hostile_index() as url:
            return await asyncio.to_thread(
                subprocess.run,
                [
                    HEADWATER,
                    "mirror",
                    "--upstream",
                    url,
                    "--target",
                    str(tmp_path / "t"),
                    "--quiet",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

    result = asyncio.run(serve_and_run())
    assert result.returncode == 1
    assert "refused '../evil': not a valid project name" in result.stderr
    assert (
        "failed traversal-file: " in result.stderr
        and "unsafe distribution filename" in result.stderr
    )
