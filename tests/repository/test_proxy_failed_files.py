"""A file fetch that fails leaves nothing on disk: not the file, and not the directories made
for it. Black-box probe (redteam2): `headwater serve` with a proxy whose files failed (a size
bound, a deadline) kept `web/packages/<sha[:2]>/<sha[2:4]>/<sha[4:]>/` empty for ever, one per
failed file, the same class as "made-up names must not leave a directory each"."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from headwater.repository.base import SourceUnavailable
from headwater.simple.names import normalize_name
from tests.repository.rawupstream import answer, chunked, raw_upstream
from tests.repository.test_proxy_bounds import dist, page, path_of, proxy_of

BODY = b"the real file"


def failing(kind: str) -> Iterable[tuple[bytes, float]]:
    if kind == "status-500":
        return answer(b"boom", status="500 Oops", content_type="text/plain")
    if kind == "over-size":
        return chunked([(b"x" * 4096, 0.0)] * 4)
    if kind == "corrupt":
        return answer(b"X" * len(BODY), content_type="application/octet-stream")
    if kind == "truncated":
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
        return [(head + BODY[:3], 0.0)]
    raise AssertionError(kind)


def empty_dirs(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir() and not any(p.iterdir())
    )


@pytest.mark.parametrize(
    "kind",
    ["status-500", "over-size", "corrupt", "truncated"],
)
def test_a_failed_file_fetch_leaves_no_directory(tmp_path: Path, kind: str) -> None:
    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if path.startswith("/simple/"):
            return answer(page([dist(BODY, size=len(BODY))]))
        return failing(kind)

    async def t() -> None:
        async with raw_upstream(script) as up:
            proxy = proxy_of(up.url, tmp_path)
            try:
                assert await proxy.page(normalize_name("victim"), "json") is not None
                with pytest.raises(SourceUnavailable):
                    ref = await proxy.file(path_of(BODY))
                    assert ref is not None and ref.stream is not None
                    async for _ in ref.stream:
                        pass
            finally:
                await proxy.aclose()
        hashes = hashlib.sha256(BODY).hexdigest()
        assert not list((tmp_path / "web").rglob(f"*{hashes[4:]}*/*")), "the file was kept"
        assert empty_dirs(tmp_path / "web") == []

    asyncio.run(t())
