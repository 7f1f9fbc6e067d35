"""Faults on a cluster (tests/cluster.py): a node SIGKILLed mid-upload, PostgreSQL unreachable,
a node started against a schema it does not know. Real twine through real nginx."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import psycopg
import pytest

from headwater.simple.json import parse_project_page_json
from tests.cluster import Cluster, cluster
from tests.scaleout.dists import big_wheel, sha256_of
from tests.server.hosting import dists, request, twine

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
#: Each test starts, kills, cuts or restarts real processes: a few seconds to tens of seconds.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster_of_two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two nodes on PostgreSQL and SeaweedFS, shared by the tests of this module (each one
    restores what it breaks: the suite's time stays low)."""
    with cluster(tmp_path_factory.mktemp("faults"), nodes=2, storage="s3") as group:
        yield group


@pytest.fixture
def pair(cluster_of_two: Cluster) -> Iterator[Cluster]:
    """The module's cluster, every node running and every gate open again after the test."""
    yield cluster_of_two
    cluster_of_two.db_gate.restore()
    if cluster_of_two.store_gate is not None:
        cluster_of_two.store_gate.restore()
        cluster_of_two.store_gate.delay = 0.0
    for node in cluster_of_two.nodes:
        if not node.running:
            cluster_of_two.start(node.number)
            cluster_of_two.wait_ready(node.number)


def _rows_have_their_objects(group: Cluster) -> list[str]:
    """Every file listed by the balancer's pages has its object in the shared storage, whole;
    returns the filenames."""
    names: list[str] = []
    listing = request(group.url + "/main/simple/", headers=JSON)
    assert listing.status == 200, listing.text
    for project in json.loads(listing.body)["projects"]:
        page = request(f"{group.url}/main/simple/{project['name']}/", headers=JSON)
        for f in parse_project_page_json(page.body).files:
            key = "web/" + f.url.removeprefix("../../")
            data = group.object_bytes("hosted", "main", key)
            assert data is not None, f"{f.filename}: its row points at a missing object"
            assert hashlib.sha256(data).hexdigest() == f.hashes["sha256"], f"{f.filename}: partial"
            names.append(f.filename)
    return names


class Watcher:
    """Polls a node's page while an upload runs: every file it ever lists must download whole
    (no partial file is ever visible)."""

    def __init__(self, url: str, project: str) -> None:
        self.url, self.project = url, project
        self.stop = threading.Event()
        self.seen: list[str] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        page_url = f"{self.url}/main/simple/{self.project}/"
        while not self.stop.is_set():
            try:
                reply = request(page_url, headers=JSON)
                if reply.status == 200:
                    for f in parse_project_page_json(reply.body).files:
                        got = request(urljoin(page_url, f.url))
                        if hashlib.sha256(got.body).hexdigest() != f.hashes["sha256"]:
                            self.errors.append(
                                f"{f.filename}: listed, but {got.status} with {len(got.body)} bytes"
                            )
                        self.seen.append(f.filename)
            except OSError:  # this node was killed (and is not answering yet)
                pass
            time.sleep(0.02)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


def test_a_node_killed_mid_upload_loses_nothing_and_the_retry_succeeds(
    pair: Cluster, tmp_path: Path
) -> None:
    wheel = big_wheel(tmp_path / "dist", "Killed-Mid", "1.0", 48 << 20)
    digest = sha256_of(wheel)
    watchers = [Watcher(node.url, "killed-mid") for node in pair.nodes]
    result: dict[str, object] = {}

    def upload() -> None:
        result["first"] = twine(pair.url + "/main/legacy/", pair.admin, [wheel])

    client = threading.Thread(target=upload)
    client.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and client.is_alive():
        for node in pair.nodes:
            spool = node.spool()
            if spool.exists() and any(spool.iterdir()):
                victim = node.number
                break
        time.sleep(0.002)
    assert victim is not None, "no node ever received the upload's body"
    pair.kill(victim)
    client.join(120)
    first = result["first"]
    assert hasattr(first, "returncode")
    if first.returncode != 0:  # type: ignore[attr-defined]
        # nginx could not send it again (the body was consumed): the client retries.
        retry = twine(pair.url + "/main/legacy/", pair.admin, [wheel])
        assert retry.returncode == 0, retry.stdout + retry.stderr
    for watcher in watchers:
        watcher.close()
        assert watcher.errors == []
    page = parse_project_page_json(
        request(f"{pair.url}/main/simple/killed-mid/", headers=JSON).body
    )
    assert [(f.filename, f.hashes["sha256"]) for f in page.files] == [(wheel.name, digest)]
    assert _rows_have_their_objects(pair) == [wheel.name]
    # The killed node comes back and serves the same file.
    pair.start(victim)
    pair.wait_ready(victim)
    again = request(f"{pair.nodes[victim].url}/main/simple/killed-mid/", headers=JSON)
    assert [f.filename for f in parse_project_page_json(again.body).files] == [wheel.name]
    # What the dead node had written and not recorded is for the collector, and only that.
    gc = pair.headwater("gc", *pair.admin_args(), "--grace", "0", "--delete")
    assert "0 unreferenced" in gc.stdout or "deleted" in gc.stdout
    assert _rows_have_their_objects(pair) == [wheel.name]


def _poll(what: str, check: object, limit: float = 20.0) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > limit:
            raise AssertionError(f"{what}: not within {limit} s")
        time.sleep(0.05)
    return time.monotonic() - started


def test_postgresql_unreachable_is_503_with_a_reason_and_not_ready_then_recovers(
    pair: Cluster, tmp_path: Path
) -> None:
    files = dists(tmp_path / "d", "Pg-Down", "1.0")
    assert twine(pair.url + "/main/legacy/", pair.admin, files).returncode == 0
    page_url = "/main/simple/pg-down/"
    for node in pair.nodes:
        assert request(node.url + page_url, headers=JSON).status == 200  # warm caches
    pair.db_gate.cut()
    try:
        for node in pair.nodes:
            _poll(
                f"node {node.number} refuses",
                lambda n=node: request(n.url + page_url).status == 503,
            )
            reply = request(node.url + page_url)
            assert reply.headers.get("cache-control") == "no-store"
            assert "database" in reply.text.lower()
            ready = request(node.url + "/health/ready")
            assert ready.status == 503
            checks = json.loads(ready.body)["checks"]
            assert checks["database"] != "ok" and "DatabaseUnavailable" in checks["database"]
        # Through the balancer: the same refusal (a 503 is an answer, not a connection error).
        assert request(pair.url + page_url).status == 503
        refused = twine(
            pair.url + "/main/legacy/", pair.admin, dists(tmp_path / "e", "Pg-Down", "2.0")
        )
        assert refused.returncode != 0
        # Files already listed still have their objects; the page is not served stale.
    finally:
        pair.db_gate.restore()
    for node in pair.nodes:
        _poll(
            f"node {node.number} ready again",
            lambda n=node: request(n.url + "/health/ready").status == 200,
        )
        assert request(node.url + page_url, headers=JSON).status == 200
        assert node.running  # recovered without a restart
    again = twine(pair.url + "/main/legacy/", pair.admin, dists(tmp_path / "e", "Pg-Down", "2.0"))
    assert again.returncode == 0, again.stdout + again.stderr
    _rows_have_their_objects(pair)


def test_a_node_started_against_another_schema_version_is_refused(
    pair: Cluster, tmp_path: Path
) -> None:
    with psycopg.connect(pair.database, autocommit=True) as conn:
        (before,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()  # type: ignore[misc]
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    try:
        pair.kill(1)
        pair.start(1)
        node = pair.nodes[1]
        assert node.process is not None
        assert node.process.wait(60) != 0
        said = node.output()
        assert "revision 9999, which this headwater does not know" in said
        assert "a newer headwater migrated it" in said and "Traceback" not in said
        # The other node keeps serving meanwhile.
        assert request(pair.nodes[0].url + "/health/live").status == 200
    finally:
        with psycopg.connect(pair.database, autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = %s", (before,))
    pair.start(1)
    pair.wait_ready(1)


def test_the_object_store_down_or_slow_is_503_with_a_reason_and_not_ready_then_recovers(
    pair: Cluster, tmp_path: Path
) -> None:
    files = dists(tmp_path / "d", "S3-Down", "1.0")
    assert twine(pair.url + "/main/legacy/", pair.admin, files).returncode == 0
    page_url = "/main/simple/s3-down/"
    page = parse_project_page_json(request(pair.url + page_url, headers=JSON).body)
    file_url = urljoin(page_url, page.files[0].url)
    assert pair.store_gate is not None
    pair.store_gate.cut()
    try:
        for node in pair.nodes:
            _poll(
                f"node {node.number} not ready",
                lambda n=node: request(n.url + "/health/ready").status == 503,
            )
            checks = json.loads(request(node.url + "/health/ready").body)["checks"]
            assert checks["index:main"] != "ok" and checks["database"] == "ok"
            # Pages come from the database and memory: still served (and correct).
            assert request(node.url + page_url, headers=JSON).status == 200
            # A file cannot be: 503 naming the storage, never a partial or empty 200.
            reply = request(node.url + file_url)
            assert reply.status == 503, (reply.status, reply.text)
            assert "cannot read its storage" in reply.text
            assert pair.s3 is not None and pair.s3.bucket not in reply.text  # the log's business
        refused = twine(
            pair.url + "/main/legacy/", pair.admin, dists(tmp_path / "e", "S3-Down", "2.0")
        )
        assert refused.returncode != 0
    finally:
        pair.store_gate.restore()
    for node in pair.nodes:
        _poll(
            f"node {node.number} ready again",
            lambda n=node: request(n.url + "/health/ready").status == 200,
        )
        got = request(node.url + file_url)
        assert got.status == 200
        assert hashlib.sha256(got.body).hexdigest() == page.files[0].hashes["sha256"]
        assert node.running
    # Slow, not down: readiness gives up within its limit and says so.
    pair.store_gate.delay = 3.0
    try:
        ready = request(pair.nodes[0].url + "/health/ready")
        assert ready.status == 503
        assert "no answer within" in json.loads(ready.body)["checks"]["index:main"]
    finally:
        pair.store_gate.delay = 0.0
    again = twine(pair.url + "/main/legacy/", pair.admin, dists(tmp_path / "e", "S3-Down", "2.0"))
    assert again.returncode == 0, again.stdout + again.stderr
    _rows_have_their_objects(pair)
