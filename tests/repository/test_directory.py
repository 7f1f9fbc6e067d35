"""The directory source: a folder of real wheels and sdists served as pages and files, rescans,
hashing once, skipped files, and installs by real pip through the ASGI app."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from headwater.config.settings import ServeSettings
from headwater.policy import Rules
from headwater.policy.rules import SourceSpec
from headwater.repository.base import FileRef, SourceUnavailable
from headwater.repository.directory import DirectorySource
from headwater.repository.index import ComposedIndex
from headwater.server.app import IndexApp
from headwater.simple.html import parse_project_page_html
from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.simple.model import ProjectPage
from headwater.simple.names import NormalizedName, normalize_name
from headwater.testing.wheels import (
    build_sdist,
    build_wheel,
    core_metadata,
    sdist_filename,
    wheel_filename,
)
from tests.server.asgi import call

ALPHA = normalize_name("alpha-pkg")
BETA = normalize_name("beta")


def put_wheel(folder: Path, name: NormalizedName, version: str, **kw: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / wheel_filename(name, version)
    metadata = core_metadata(name, version, requires_python=kw.get("requires_python"))
    path.write_bytes(build_wheel(name, name, version, metadata=metadata))
    return path


def put_sdist(folder: Path, name: NormalizedName, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / sdist_filename(name, version)
    path.write_bytes(build_sdist(name, name, version))
    return path


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


async def model(source: DirectorySource, name: NormalizedName) -> ProjectPage:
    page = await source.page(name, "json")
    assert page is not None
    return parse_project_page_json(page.body)


async def read(ref: FileRef) -> bytes:
    if ref.body is not None:
        return ref.body
    assert ref.local_path is not None
    return ref.local_path.read_bytes()


def test_projects_pages_and_files(tmp_path: Path) -> None:
    wheel = put_wheel(tmp_path, ALPHA, "1.0", requires_python=">=3.9")
    sdist = put_sdist(tmp_path / "sub" / "deeper", ALPHA, "1.0")
    other = put_wheel(tmp_path / "sub", BETA, "2.0")
    os.utime(wheel, (1_600_000_000, 1_600_000_000))

    async def t() -> None:
        source = DirectorySource("local", tmp_path, revalidate=0)
        assert source.kind == "directory" and source.local
        listing = await source.page(None, "json")
        assert listing is not None
        assert [p.name for p in parse_project_list_json(listing.body).projects] == [ALPHA, BETA]
        assert await source.project_names() == [ALPHA, BETA]
        page = await model(source, ALPHA)
        assert [f.filename for f in page.files] == sorted([wheel.name, sdist.name])
        for file in page.files:
            real = wheel if file.filename == wheel.name else sdist
            sha = hashlib.sha256(real.read_bytes()).hexdigest()
            assert file.hashes == {"sha256": sha}
            assert file.url == f"../../packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{file.filename}"
            assert file.size == real.stat().st_size
            assert file.upload_time is not None
            assert file.upload_time.timestamp() == pytest.approx(real.stat().st_mtime)
            ref = await source.file(file.url.removeprefix("../../packages/"))
            assert ref is not None and ref.local_path == real.resolve()
            assert await read(ref) == real.read_bytes()
        whl = next(f for f in page.files if f.filename == wheel.name)
        assert whl.requires_python == ">=3.9"
        assert isinstance(whl.core_metadata, dict)
        meta = await source.file(whl.url.removeprefix("../../packages/") + ".metadata")
        assert meta is not None and meta.body is not None
        assert hashlib.sha256(meta.body).hexdigest() == whl.core_metadata["sha256"]
        assert b"Name: alpha-pkg" in meta.body
        html = await source.page(ALPHA, "html")
        assert html is not None
        assert len(parse_project_page_html(html.body, name=ALPHA).files) == 2
        project = await source.project(ALPHA)
        assert project.url is None and project.page is not None and project.claimed
        assert (await source.project(normalize_name("nope"))).page is None
        assert await source.page(normalize_name("nope"), "json") is None
        assert await source.file("aa/bb/" + "c" * 60 + "/" + other.name) is None

    run(t)


def test_rescan_sees_added_changed_and_removed_files_and_hashes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = put_wheel(tmp_path, ALPHA, "1.0")
    hashed: list[str] = []
    real_digest = hashlib.file_digest

    def counting(handle: object, digest: str) -> object:
        hashed.append(getattr(handle, "name", "?"))
        return real_digest(handle, digest)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "file_digest", counting)

    async def t() -> None:
        source = DirectorySource("local", tmp_path, revalidate=0.2)
        before = await source.project(ALPHA)
        assert before.page is not None and len(before.page.files) == 1
        second = put_wheel(tmp_path, ALPHA, "2.0")
        # Within `revalidate`: the old scan is still served.
        assert len((await model(source, ALPHA)).files) == 1
        await asyncio.sleep(0.25)
        after = await source.project(ALPHA)
        assert after.page is not None and len(after.page.files) == 2
        assert after.version != before.version
        assert hashed.count(str(first)) == 1  # not hashed again by the second scan
        # Replaced in place (new bytes, new mtime): hashed again, new URL.
        second.write_bytes(build_wheel(ALPHA, "Alpha-Pkg", "2.0"))
        os.utime(second, (1_700_000_000, 1_700_000_000))
        first.unlink()
        await asyncio.sleep(0.25)
        page = await model(source, ALPHA)
        assert [f.filename for f in page.files] == [second.name]
        assert page.files[0].hashes["sha256"] == hashlib.sha256(second.read_bytes()).hexdigest()
        second.unlink()
        await asyncio.sleep(0.25)
        assert await source.page(ALPHA, "json") is None
        assert await source.project_names() == []

    run(t)


def test_unparseable_and_hidden_files_are_skipped_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    put_wheel(tmp_path, ALPHA, "1.0")
    (tmp_path / "README.txt").write_text("not a distribution")
    (tmp_path / "notes-1.0.whl").write_bytes(b"not a wheel name")
    (tmp_path / ".hidden").mkdir()
    put_wheel(tmp_path / ".hidden", BETA, "1.0")
    dup = put_wheel(tmp_path / "copy", ALPHA, "1.0")
    dup.write_bytes(dup.read_bytes() + b"")  # same name in another folder

    async def t() -> None:
        source = DirectorySource("local", tmp_path, revalidate=0)
        with caplog.at_level("WARNING", logger="headwater.directory"):
            assert await source.project_names() == [ALPHA]
            await source.project_names()  # a second scan reports nothing new
        messages = [record.getMessage() for record in caplog.records]

        def reported(text: str) -> int:
            return sum(text in message for message in messages)

        assert reported("README.txt") == 1
        assert reported("notes-1.0.whl") == 1
        assert reported("copy/alpha_pkg-1.0-py3-none-any.whl same filename") == 1
        assert reported("beta") == 0  # hidden folders are not looked into

    run(t)


def _composed(source: DirectorySource, other: DirectorySource) -> ComposedIndex:
    return ComposedIndex(
        "main",
        [source, other],
        Rules(
            index="main",
            sources=(SourceSpec(source.name, "directory"), SourceSpec(other.name, "directory")),
        ),
        project_url=lambda s, n: f"http://testserver/{s}/simple/{n}/",
    )


@pytest.mark.parametrize("broken", ["missing", "a file", "unreadable subfolder"])
def test_a_folder_that_cannot_be_read_is_an_unavailable_source_until_it_can(
    tmp_path: Path, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Never a 500, never empty (which would hand its projects to the next source): a 503
    refusal naming the source and the folder, standalone and through a composed index, with
    no traceback logged; served again at the first request after the folder is back."""
    if broken == "unreadable subfolder" and os.geteuid() == 0:
        pytest.skip("root reads every folder")
    folder = tmp_path / "local"
    other = tmp_path / "other"
    other.mkdir()
    put_wheel(other, ALPHA, "9.0")  # a lower-priority source that must not answer instead
    if broken == "a file":
        folder.write_text("not a folder")
    elif broken == "unreadable subfolder":
        put_wheel(folder / "sub", ALPHA, "1.0")
        (folder / "sub").chmod(0)
    source = DirectorySource("local", folder)
    index = _composed(source, DirectorySource("other", other))
    app = IndexApp(ServeSettings(), {"local": source, "main": index}, default="main")

    async def t() -> None:
        for path in ("/local/simple/alpha-pkg/", "/main/simple/alpha-pkg/"):
            for accept in ("application/vnd.pypi.simple.v1+json", "text/html"):
                answer = await call(app, "GET", path, headers={"Accept": accept})
                if answer.status == 302:  # a refusal's form for clients other than pip
                    where, _, query = answer.headers["location"].partition("?")
                    answer = await call(app, "GET", where, query=query)
                assert answer.status == 503, (path, answer.status, answer.body[:300])
                text = answer.body.decode()
                assert "'local'" in text and str(folder) in text, text
        with pytest.raises(SourceUnavailable, match=str(folder)) as raised:
            await source.check()
        assert raised.value.source == "local"
        assert "Traceback" not in caplog.text
        # The folder is back: the next request serves it.
        if broken == "a file":
            folder.unlink()
        if broken == "unreadable subfolder":
            (folder / "sub").chmod(0o755)
        else:
            put_wheel(folder, ALPHA, "1.0")
        for path in ("/local/simple/alpha-pkg/", "/main/simple/alpha-pkg/"):
            answer = await call(
                app, "GET", path, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
            )
            assert answer.status == 200, (path, answer.body[:300])
            files = [f.filename for f in parse_project_page_json(answer.body).files]
            assert files == ["alpha_pkg-1.0-py3-none-any.whl"], files
        await source.check()

    run(t)


def test_served_through_the_app(tmp_path: Path) -> None:
    wheel = put_wheel(tmp_path, ALPHA, "1.0")

    async def t() -> None:
        app = IndexApp(
            ServeSettings(), {"local": DirectorySource("local", tmp_path)}, default="local"
        )
        answer = await call(
            app,
            "GET",
            f"/local/simple/{ALPHA}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        assert answer.status == 200
        page = parse_project_page_json(answer.body)
        file_path = os.path.normpath(f"/local/simple/{ALPHA}/{page.files[0].url}")
        got = await call(app, "GET", file_path)
        assert got.status == 200 and got.body == wheel.read_bytes()
        ranged = await call(app, "GET", file_path, headers={"Range": "bytes=0-3"})
        assert ranged.status == 206 and ranged.body == wheel.read_bytes()[:4]
        meta = await call(app, "GET", file_path + ".metadata")
        assert meta.status == 200 and meta.headers["content-type"].startswith("text/plain")

    run(t)


@pytest.mark.slow
def test_pip_installs_from_a_directory_source(tmp_path: Path) -> None:
    from tests.clients import installed_version, pip_install
    from tests.repository.test_proxy import uvicorn_serving

    folder = tmp_path / "wheels"
    put_wheel(folder / "a", ALPHA, "1.0")
    put_wheel(folder / "b", ALPHA, "1.5")
    put_sdist(folder, ALPHA, "1.2")
    app = IndexApp(ServeSettings(), {"local": DirectorySource("local", folder)}, default="local")
    with uvicorn_serving(app) as url:
        python = pip_install(f"{url}/local/simple/", "alpha-pkg", tmp_path / "home")
    assert installed_version(python, "alpha_pkg") == "1.5"
