"""The mirror engine against the real test upstream on loopback."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from posixpath import normpath
from typing import Any

import pytest

from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.simple.names import NormalizedName
from headwater.storage import FileStorage
from headwater.storage.layout import page_key
from headwater.sync.engine import Mirror, Summary
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream

FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002)


async def mirror_once(up: Upstream, root: Path, **options: Any) -> Summary:
    only = options.pop("only", None)
    async with client_session(connections=8) as session:
        repo = HttpRepository(up.simple_url, session, retry=FAST)
        return await Mirror(repo, FileStorage(root), workers=4, **options).run(only=only)


def check_tree(root: Path) -> dict[str, list[str]]:
    """Every page points at files that exist with the promised sha256; return project -> files."""
    listing = parse_project_list_json((root / "web/simple/index.v1_json").read_bytes())
    result: dict[str, list[str]] = {}
    for entry in listing.projects:
        name = entry.normalized
        page_dir = f"web/simple/{name}"
        page = parse_project_page_json((root / page_dir / "index.v1_json").read_bytes())
        assert (root / page_dir / "index.html").read_bytes() == (
            root / page_dir / "index.v1_html"
        ).read_bytes()
        for file in page.files:
            path = root / normpath(f"{page_dir}/{file.url}")
            assert hashlib.sha256(path.read_bytes()).hexdigest() == file.hashes["sha256"], (
                file.filename
            )
            if file.core_metadata:
                assert isinstance(file.core_metadata, dict)
                meta = path.with_name(path.name + ".metadata").read_bytes()
                assert hashlib.sha256(meta).hexdigest() == file.core_metadata["sha256"]
        result[name] = sorted(f.filename for f in page.files)
    return result


def test_full_then_incremental(tmp_path: Path) -> None:
    corpus = Corpus.generate(6, releases=2, files=2, seed=11)

    async def go() -> None:
        async with Upstream(corpus) as up:
            first = await mirror_once(up, tmp_path)
            assert first.ok, first.failed
            assert (first.synced, first.files_downloaded) == (6, 24)
            tree = check_tree(tmp_path)
            assert len(tree) == 6
            page = parse_project_page_json(
                (tmp_path / page_key(NormalizedName(next(iter(tree))), "json")).read_bytes()
            )
            assert page.tracks == (
                f"{up.simple_url}{page.name}/",
            )  # PEP 708: the mirror tracks its upstream

            up.reset_stats()
            again = await mirror_once(up, tmp_path)
            assert (again.synced, again.unchanged, again.files_downloaded) == (0, 6, 0)
            assert (
                sum(n for path, n in up.stats.items() if path != "/simple/") == 0
            )  # only the list

            names = list(tree)
            corpus.add_release(names[0], "9.0")
            corpus.yank(names[1], next(iter(corpus.get(names[1]).releases)), "broken")  # type: ignore[union-attr]
            victim = tree[names[2]][0]
            corpus.delete_file(names[2], victim)
            corpus.delete_project(names[3])
            third = await mirror_once(up, tmp_path)
            assert third.ok, third.failed
            assert (third.synced, third.deleted) == (3, 1)
            assert third.files_downloaded == 2  # only the new release's files
            after = check_tree(tmp_path)
            assert (
                names[3] not in after
                and not (tmp_path / f"web/simple/{names[3]}").joinpath("index.html").exists()
            )
            assert victim not in after[names[2]]
            assert not list(tmp_path.glob(f"web/packages/*/*/*/{victim}"))  # the file is gone too
            yanked = parse_project_page_json(
                (tmp_path / page_key(NormalizedName(names[1]), "json")).read_bytes()
            )
            assert any(f.yanked and f.yanked_reason == "broken" for f in yanked.files)

    asyncio.run(go())


def test_project_subset(tmp_path: Path) -> None:
    corpus = Corpus.generate(4, releases=1, files=1, seed=2)

    async def go() -> None:
        async with Upstream(corpus) as up:
            name = corpus.project_list().projects[1].normalized
            summary = await mirror_once(up, tmp_path, only=[name])
            assert summary.synced == 1
            assert list(check_tree(tmp_path)) == [name]

    asyncio.run(go())


def test_failed_project_is_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    corpus = Corpus.generate(4, releases=1, files=1, seed=5)

    async def go() -> None:
        async with Upstream(corpus) as up:
            bad = corpus.project_list().projects[0].normalized
            project = corpus.get(bad)
            assert project is not None
            up.add_fault("corrupt", next(iter(project.files())).path)
            summary = await mirror_once(up, tmp_path)
            assert list(summary.failed) == [bad]
            assert "promised" in summary.failed[bad]
            tree = check_tree(tmp_path)
            assert bad not in tree and len(tree) == 3  # nothing unverified became visible
            up.faults.clear()
            retry = await mirror_once(up, tmp_path)
            assert retry.ok and retry.synced == 1
            assert len(check_tree(tmp_path)) == 4

    asyncio.run(go())


@pytest.mark.parametrize("options", [{"serials": False}, {"json": False}])
def test_indexes_without_serials_or_json(tmp_path: Path, options: dict[str, bool]) -> None:
    corpus = Corpus.generate(3, releases=1, files=1, seed=8)

    async def go() -> None:
        async with Upstream(corpus, **options) as up:
            first = await mirror_once(up, tmp_path)
            assert first.ok and first.synced == 3, first
            assert len(check_tree(tmp_path)) == 3
            second = await mirror_once(up, tmp_path)
            assert second.ok and second.files_downloaded == 0

    asyncio.run(go())


def test_item_54_yank_state_is_mutable(tmp_path: Path) -> None:
    corpus = Corpus.generate(1, releases=2, files=1, seed=30)
    name = corpus.project_list().projects[0].normalized
    version = sorted(corpus.get(name).releases)[0]  # type: ignore[union-attr]

    def yanked() -> list[tuple[str, bool, str | None]]:
        page = parse_project_page_json(
            (tmp_path / page_key(NormalizedName(name), "json")).read_bytes()
        )
        return sorted((f.filename, f.yanked, f.yanked_reason) for f in page.files)

    async def go() -> None:
        async with Upstream(corpus) as up:
            await mirror_once(up, tmp_path)
            assert not any(y for _, y, _ in yanked())
            corpus.yank(name, version, "bad build")
            await mirror_once(up, tmp_path)
            assert [(y, r) for f, y, r in yanked() if version in f] == [(True, "bad build")]
            corpus.unyank(name, version)
            summary = await mirror_once(up, tmp_path)
            assert summary.files_downloaded == 0  # same files, only the flag changed
            assert not any(y for _, y, _ in yanked())

    asyncio.run(go())


def test_projects_in_flight_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Memory must not grow with the number of projects: at most workers * 2 are being synced at
    # any moment, whatever the plan's size.
    corpus = Corpus.generate(60, releases=1, files=1, seed=31)
    in_flight = 0
    peak = 0
    real = Mirror._sync_project

    async def counting(self: Mirror, task: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await real(self, task)  # what the committer publishes
        finally:
            in_flight -= 1

    monkeypatch.setattr(Mirror, "_sync_project", counting)

    async def go() -> Summary:
        async with Upstream(corpus) as up:
            up.add_fault("delay", "/simple/*/", delay=0.01)
            return await mirror_once(up, tmp_path)  # workers=4

    summary = asyncio.run(go())
    assert summary.synced == 60
    assert 1 < peak <= 8


def test_nothing_changed_writes_nothing(tmp_path: Path) -> None:
    corpus = Corpus.generate(3, releases=1, files=1, seed=32)

    async def go() -> None:
        async with Upstream(corpus) as up:
            await mirror_once(up, tmp_path)
            before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
            summary = await mirror_once(up, tmp_path)
            assert summary.ok and summary.unchanged == 3
            after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
            assert after == before  # not a byte rewritten: cron no-op runs cost one request

    asyncio.run(go())
