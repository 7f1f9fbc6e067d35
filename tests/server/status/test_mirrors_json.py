"""/mirrors.json from real pieces: trees synced by `headwater mirror` (with their history), a
proxy serving requests, upstream serial checks against the real test upstream; and from a real
`headwater serve` process whose scheduled checks fill it in."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

import msgspec
from starlette.applications import Starlette

from headwater.cli.main import main
from headwater.config.status import StatusSettings
from headwater.repository.proxy import ProxySource
from headwater.server.metrics import Metrics
from headwater.server.status.document import Document, decode_peer_document
from headwater.server.status.routes import status_routes
from headwater.server.status.service import StatusService
from headwater.storage import FileStorage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.server.asgi import call
from tests.server.live import serve


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_mirror_and_proxy_status_from_real_runs_and_requests(tmp_path: Path) -> None:
    corpus = Corpus.generate(3, releases=1, files=1, seed=31)
    tree = tmp_path / "tree"
    clock = Clock()
    with Upstream(corpus).running() as up:
        assert main(["mirror", "--upstream", up.simple_url, "--target", str(tree), "--quiet"]) == 0

        async def go() -> tuple[Document, Document, Document, bytes]:
            proxy = ProxySource("cache", up.simple_url, FileStorage(tmp_path / "proxy"))
            metrics = Metrics()
            metrics.track_proxy("cache", proxy.stats)
            service = StatusService(
                mirrors={"pypi": FileStorage(tree)},
                proxies={"cache": proxy},
                settings=StatusSettings(),
                metrics=metrics,
                base_url="https://pkgs.example.org/",
                directory=tmp_path / "run" / "status",
                clock=clock,
            )
            try:
                name = corpus.project_list().projects[0].normalized
                for _ in range(4):
                    await proxy.page(name, "json")
                await service.check_once()
                first = await service.document()
                corpus.add_release(name, "9.0")  # upstream moves on; the tree does not
                await service.check_once()
                service._document = None
                second = await service.document()
                clock.now += 3 * 3600
                service._document = None
                third = await service.document()
                routes = status_routes(service)
                answer = await call(Starlette(routes=routes), "GET", "/mirrors.json")
                assert answer.status == 200
                assert answer.headers["content-type"] == "application/json"
                return first, second, third, answer.body
            finally:
                await service.aclose()
                await proxy.aclose()

        first, second, third, body = asyncio.run(go())
    (mirror,) = first.mirrors
    assert mirror.name == "pypi" and mirror.url == "https://pkgs.example.org/pypi/simple/"
    assert mirror.upstream == up.simple_url
    assert mirror.state == "fresh" and mirror.lag_serials == 0 and mirror.lag_seconds == 0
    assert mirror.serial is not None and mirror.serial == mirror.upstream_serial
    assert len(mirror.runs) == 1 and mirror.runs[0].ok and mirror.runs[0].synced == 3
    assert mirror.upstream_checked is not None and mirror.upstream_error is None
    (proxy,) = first.proxies
    assert (proxy.page_requests, proxy.page_fetches) == (4, 1)
    assert proxy.hit_rate == 0.75 and proxy.state == "fresh"
    assert proxy.cache_files == 0 and proxy.cache_bytes == 0
    # The upstream moved: serials behind, but the sync is recent.
    (mirror,) = second.mirrors
    assert mirror.lag_serials is not None and mirror.lag_serials > 0
    assert mirror.state == "fresh"
    # Three hours later with no sync: behind.
    assert third.mirrors[0].state == "behind" and " h ago" in third.mirrors[0].reason
    # What /mirrors.json serves is what a peer can read back.
    assert decode_peer_document(body).mirrors[0].name == "pypi"


def test_a_tree_without_history_and_a_checks_file_that_is_damaged(tmp_path: Path) -> None:
    status_dir = tmp_path / "status"
    status_dir.mkdir()
    (status_dir / "checks.json").write_bytes(b"{torn")

    async def go() -> Document:
        service = StatusService(
            mirrors={"old": FileStorage(tmp_path / "bandersnatch-tree")},
            proxies={},
            settings=StatusSettings(peers=["https://peer.example/"]),
            metrics=Metrics(),
            base_url="http://h",
            directory=status_dir,
        )
        return await service.document()

    document = asyncio.run(go())
    assert (
        document.mirrors[0].state == "unknown" and "headwater mirror" in document.mirrors[0].reason
    )
    assert document.peers[0].url == "https://peer.example/"
    assert document.peers[0].state == "unknown" and "not checked" in document.peers[0].reason


def test_a_real_server_checks_on_its_schedule_and_serves_mirrors_json(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=37)
    tree = tmp_path / "tree"
    with Upstream(corpus).running() as up:
        assert main(["mirror", "--upstream", up.simple_url, "--target", str(tree), "--quiet"]) == 0
        config = tmp_path / "headwater.toml"
        config.write_text(
            f'[serve]\ndata_dir = "{tmp_path / "data"}"\nworkers = 2\n'
            f'[mirror.pypi]\nupstream = "{up.simple_url}"\ntarget = "{tree}"\n'
            f'[proxy.cache]\nurl = "{up.simple_url}"\n'
            "[status]\ncheck_interval = 10\n"
        )
        with serve(["--config", str(config)], tmp_path) as live:
            deadline = time.monotonic() + 20
            while True:
                with urllib.request.urlopen(live.url + "/mirrors.json", timeout=5) as answer:
                    document = msgspec.json.decode(answer.read(), type=Document)
                    cors = answer.headers["Access-Control-Allow-Origin"]
                if document.mirrors[0].upstream_checked and document.proxies[0].upstream_checked:
                    break
                assert time.monotonic() < deadline, document
                time.sleep(0.3)
            # Checked once (by one of the two workers), not per request.
            checks = up.requests("/simple/")
            for _ in range(5):
                urllib.request.urlopen(live.url + "/mirrors.json", timeout=5).read()
            assert up.requests("/simple/") == checks
    assert cors == "*"
    assert document.mirrors[0].state == "fresh" and document.mirrors[0].lag_serials == 0
    assert document.proxies[0].state == "fresh"
    # Two worker processes, one checker: one check of the (shared) upstream per interval.
    assert checks <= 2 + 1  # one by `headwater mirror`, one or two by the checker
