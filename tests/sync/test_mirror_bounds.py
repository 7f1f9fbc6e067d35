"""The mirror's reads of a hostile upstream are bounded like the proxy's (docs/proxy.md
"Bounds"): black-box, through `headwater mirror`, against a scripted upstream on loopback.

Found by redteam2: with `timeout = 3`, an upstream that sends a page or a file a byte a second
held `headwater mirror` for the whole 200 s drip (the timeout bounds only each wait); and a file
whose page gives no size was read whole (100 MiB of a hostile stream) although the filters'
`max_size` was 1 MB and the file could never be kept."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from tests.repository.rawupstream import answer, chunked, raw_upstream

HEADWATER = str(Path(sys.executable).with_name("headwater"))
MIB = 1 << 20
JSON = "application/vnd.pypi.simple.v1+json"


def page(name: str, files: list[dict[str, object]]) -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()


def root(names: list[str]) -> bytes:
    return json.dumps(
        {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
    ).encode()


async def run_mirror(config: Path, *projects: str) -> tuple[int, str, float]:
    args = [HEADWATER, "mirror", "--config", str(config), "--quiet"]
    for p in projects:
        args += ["--project", p]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(errors="replace"), time.monotonic() - started


def config(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "headwater.toml"
    path.write_text(
        f'[mirror.m]\nupstream = "{url}"\ntarget = "tree"\ntimeout = 1\nretries = 1\n'
        f"workers = 4\n{extra}"
    )
    return path


DRIP_SECONDS = 20


def test_a_dripping_upstream_is_cut_off_by_a_deadline(tmp_path: Path) -> None:
    body = b"x" * DRIP_SECONDS * 2
    good = b"a real file"

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if path == "/simple/":
            return answer(root(["drip-page", "drip-file"]))
        if path == "/simple/drip-page/":
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {JSON}\r\n\r\n".encode()
            return [(head, 0.0)] + [(b" ", 0.5)] * (DRIP_SECONDS * 2)
        if path == "/simple/drip-file/":
            entry: dict[str, object] = {
                "filename": "drip_file-1.0.tar.gz",
                "url": "/files/drip_file-1.0.tar.gz",
                "hashes": {"sha256": hashlib.sha256(good).hexdigest()},
                "size": len(body),
            }
            return answer(page("drip-file", [entry]))
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        return [(head, 0.0)] + [(b"x", 0.5)] * len(body)

    async def t() -> tuple[int, str, float]:
        async with raw_upstream(script) as up:
            return await run_mirror(config(tmp_path, up.url), "drip-page", "drip-file")

    status, out, elapsed = asyncio.run(t())
    assert status == 1, out
    # timeout = 1: a deadline of a few times that, not the upstream's 20 s drip.
    assert elapsed < DRIP_SECONDS / 2, (elapsed, out)


def test_a_file_without_size_is_not_read_past_the_filters_max_size(tmp_path: Path) -> None:
    good = b"a real file"

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if path == "/simple/":
            return answer(root(["nosize"]))
        if path == "/simple/nosize/":
            entry: dict[str, object] = {
                "filename": "nosize-1.0.tar.gz",
                "url": "/files/nosize-1.0.tar.gz",
                "hashes": {"sha256": hashlib.sha256(good).hexdigest()},
            }
            return answer(page("nosize", [entry]))
        return chunked((b"x" * MIB, 0.0) for _ in range(256))

    async def t() -> tuple[int, str, dict[str, int]]:
        async with raw_upstream(script) as up:
            cfg = config(tmp_path, up.url, "[mirror.m.filters]\nmax_size = 1000000\n")
            status, out, _ = await run_mirror(cfg, "nosize")
            await asyncio.sleep(0.2)
            return status, out, dict(up.written)

    status, out, written = asyncio.run(t())
    assert status == 1, out
    sent = written.get("/files/nosize-1.0.tar.gz", 0)
    # Cut off at the cap (plus what the socket buffers hold), not read to the 256 MiB end.
    assert sent < 40 * MIB, (sent, out)


BOMB_MIB = 600


def test_a_gzip_bomb_page_is_refused_without_holding_it(tmp_path: Path) -> None:
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [c.compress(b" " * MIB) for _ in range(BOMB_MIB)]
    parts.append(c.compress(page("bomb", [])))
    parts.append(c.flush())
    gz = b"".join(parts)

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if path == "/simple/":
            return answer(root(["bomb"]))
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {JSON}\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(gz)}\r\n\r\n"
        ).encode()
        return [(head + gz, 0.0)]

    measure = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )

    async def t() -> int:
        async with raw_upstream(script) as up:
            cfg = config(tmp_path, up.url)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                measure,
                HEADWATER,
                "mirror",
                "--config",
                str(cfg),
                "--quiet",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
            return int(out.decode().split()[-1])

    peak_kib = asyncio.run(t())
    # The page is refused well before it is held whole (the proxy's limit is 256 MiB).
    assert peak_kib < 400 * 1024, peak_kib
