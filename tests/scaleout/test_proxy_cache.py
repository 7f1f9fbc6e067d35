"""A proxy's cache shared by two nodes (one storage): both fetch the same cold page and the same
cold file at once, from a slow upstream (tests/cluster.py; headwater.testing.upstream).

What must hold: every client gets the upstream's bytes (sha256 checked), the storage holds one
object per file key and no leftover temporary file, and the cached page is a whole page. What is
measured and stated: coalescing is per process (repository/_flight.py, _proxy_files.py), so
the upstream sees at most one fetch per node for a cold object, never one per client.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from urllib.parse import urljoin

import pytest

from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.cluster import Cluster, cluster
from tests.server.hosting import Reply, request

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
PER_NODE = 4  # concurrent clients per node


@pytest.fixture(scope="module", params=["s3", pytest.param("directory", marks=pytest.mark.slow)])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, Upstream, Corpus]]:
    corpus = Corpus.generate(3, releases=1, files=1, seed=11)
    with Upstream(corpus).running() as up:
        # Slow enough that every client's request arrives while the first fetch is running.
        up.add_fault("delay", "/simple/*", delay=1.0)
        up.add_fault("delay", "/packages/*", delay=1.0)
        work = tmp_path_factory.mktemp("proxy-cluster")
        with cluster(
            work, nodes=2, storage=request.param, proxies={"up": {"url": up.simple_url}}
        ) as group:
            yield group, up, corpus


def _all_at_once(urls: list[str], headers: dict[str, str] | None = None) -> list[Reply]:
    replies: list[Reply | None] = [None] * len(urls)
    start = threading.Barrier(len(urls))

    def fetch(i: int) -> None:
        start.wait()
        replies[i] = request(urls[i], headers=headers)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in replies)
    return [r for r in replies if r is not None]


def _leftovers(keys: list[str]) -> list[str]:
    """Anything in the shared cache that is not a finished object (temp files, partial names)."""
    return [
        k
        for k in keys
        if ".headwater-tmp" in k or k.rsplit("/", 1)[-1].startswith(".") or k.endswith(".tmp")
    ]


def test_two_nodes_fetching_the_same_cold_page_and_file_at_once(
    setup: tuple[Cluster, Upstream, Corpus],
) -> None:
    group, up, corpus = setup
    project = corpus.project_list().projects[0].normalized
    up.reset_stats()
    page_urls = [f"{n.url}/up/simple/{project}/" for n in group.nodes for _ in range(PER_NODE)]
    pages = _all_at_once(page_urls, JSON)
    assert {r.status for r in pages} == {200}
    bodies = {json.loads(r.body)["files"][0]["hashes"]["sha256"] for r in pages}
    assert len(bodies) == 1
    page_fetches = up.requests(f"/simple/{project}/")
    # Per-process coalescing: at most one upstream fetch per node, not one per client.
    assert 1 <= page_fetches <= len(group.nodes), up.stats

    file = json.loads(pages[0].body)["files"][0]
    file_urls = [
        urljoin(f"{n.url}/up/simple/{project}/", file["url"])
        for n in group.nodes
        for _ in range(PER_NODE)
    ]
    upstream_path = next(p for p in up.stats if p.startswith("/simple/"))  # (asked above)
    assert upstream_path
    up.reset_stats()
    files = _all_at_once(file_urls)
    for reply in files:
        assert reply.status == 200
        assert hashlib.sha256(reply.body).hexdigest() == file["hashes"]["sha256"]
    file_fetches = sum(n for p, n in up.stats.items() if p.startswith("/packages/"))
    assert 1 <= file_fetches <= len(group.nodes), up.stats

    stored = group.object_keys("proxy", "up")
    named = [k for k in stored if k.startswith("web/packages/") and k.endswith(file["filename"])]
    assert len(named) == 1, stored  # one object per key: no duplicate blob
    kept = group.object_bytes("proxy", "up", named[0])
    assert kept is not None and hashlib.sha256(kept).hexdigest() == file["hashes"]["sha256"]
    assert _leftovers(stored) == []
    # The kept page is whole JSON, and both nodes now answer from the cache without the upstream.
    page_json = group.object_bytes("proxy", "up", f"state/pages/{project}/page.json")
    assert page_json is not None
    json.loads(page_json)
    up.reset_stats()
    for node in group.nodes:
        again = request(urljoin(f"{node.url}/up/simple/{project}/", file["url"]))
        assert hashlib.sha256(again.body).hexdigest() == file["hashes"]["sha256"]
    assert not any(p.startswith("/packages/") for p in up.stats), up.stats
