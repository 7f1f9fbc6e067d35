"""Each injected fault does what it says, as seen by a real client (aiohttp) on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import aiohttp
import msgspec
import pytest

from headwater.simple.json import parse_project_page_json
from headwater.simple.model import InvalidPage
from headwater.testing.corpus import Corpus
from headwater.testing.faults import Fault, FaultInjector, InvalidFault
from headwater.testing.upstream import Upstream
from tests.testing.conftest import JSON, fetch


def _page_url(upstream: Upstream, name: str) -> str:
    return f"{upstream.url}/simple/{name}/"


def test_status_fault_fails_first_two_times_only(upstream: Upstream, name: str) -> None:
    upstream.add_fault("status", f"/simple/{name}/", status=503, times=2)
    statuses = [fetch(_page_url(upstream, name)).status for _ in range(4)]
    assert statuses == [503, 503, 200, 200]


def test_glob_path_matches_many(upstream: Upstream, name: str) -> None:
    upstream.add_fault("status", "/simple/*/", status=502)
    assert fetch(_page_url(upstream, name)).status == 502
    assert fetch(f"{upstream.url}/simple/").status == 200  # "/simple/" has no second segment


def test_rate_is_deterministic_from_seed(corpus: Corpus, name: str) -> None:
    def run() -> list[int]:
        with Upstream(corpus).running() as up:
            up.add_fault("status", "*", rate=0.5, seed=42)
            return [fetch(_page_url(up, name)).status for _ in range(16)]

    first, second = run(), run()
    assert first == second
    assert 200 in first and 503 in first


def test_reset_fault_is_seen_as_reset(upstream: Upstream, name: str) -> None:
    # aiohttp retries an idempotent request once after a reset, so two resets reach the caller.
    upstream.add_fault("reset", f"/simple/{name}/", times=2)
    with pytest.raises(aiohttp.ClientOSError, match="reset"):
        fetch(_page_url(upstream, name))
    assert upstream.requests(f"/simple/{name}/") == 2
    assert fetch(_page_url(upstream, name)).status == 200


def test_delay_fault_delays(upstream: Upstream, name: str) -> None:
    upstream.add_fault("delay", f"/simple/{name}/", delay=0.4, times=1)
    started = time.perf_counter()
    assert fetch(_page_url(upstream, name)).status == 200
    assert time.perf_counter() - started >= 0.4
    started = time.perf_counter()
    fetch(_page_url(upstream, name))
    assert time.perf_counter() - started < 0.4


def test_delay_times_out_a_client(upstream: Upstream, name: str) -> None:
    upstream.add_fault("delay", f"/simple/{name}/", delay=2.0)

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=0.3)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(_page_url(upstream, name)) as resp,
        ):
            await resp.read()

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(main())


def test_truncate_fault_gives_payload_error(upstream: Upstream, name: str) -> None:
    upstream.add_fault("truncate", "/packages/*")
    page = parse_project_page_json(fetch(_page_url(upstream, name), headers={"Accept": JSON}).body)
    with pytest.raises(aiohttp.ClientPayloadError):
        fetch(page.files[0].url)


def test_truncate_fault_on_a_page(upstream: Upstream, name: str) -> None:
    upstream.add_fault("truncate", f"/simple/{name}/")
    with pytest.raises(aiohttp.ClientPayloadError):
        fetch(_page_url(upstream, name))


def test_corrupt_fault_breaks_the_hash(upstream: Upstream, name: str) -> None:
    page = parse_project_page_json(fetch(_page_url(upstream, name), headers={"Accept": JSON}).body)
    file = page.files[0]
    upstream.add_fault("corrupt", "/packages/*", times=1)
    bad = fetch(file.url).body
    assert len(bad) == file.size
    assert hashlib.sha256(bad).hexdigest() != file.hashes["sha256"]
    good = fetch(file.url).body
    assert hashlib.sha256(good).hexdigest() == file.hashes["sha256"]


def test_stale_fault_serves_previous_state_and_serial(
    upstream: Upstream, corpus: Corpus, name: str
) -> None:
    old_serial = corpus.project_serial(name)
    new_serial = corpus.add_release(name, "60.0")
    upstream.add_fault("stale", f"/simple/{name}/", times=1)
    stale = fetch(_page_url(upstream, name), headers={"Accept": JSON})
    assert stale.headers["X-PyPI-Last-Serial"] == str(old_serial)
    page = parse_project_page_json(stale.body)
    assert page.last_serial == old_serial and "60.0" not in (page.versions or ())
    fresh = fetch(_page_url(upstream, name), headers={"Accept": JSON})
    assert fresh.headers["X-PyPI-Last-Serial"] == str(new_serial)
    upstream.add_fault("stale", f"/pypi/{name}/json", times=1)
    data = json.loads(fetch(f"{upstream.url}/pypi/{name}/json").body)
    assert data["last_serial"] == old_serial and "60.0" not in data["releases"]


@pytest.mark.parametrize("accept", [JSON, "text/html"])
def test_malformed_fault_breaks_the_page(upstream: Upstream, name: str, accept: str) -> None:
    upstream.add_fault("malformed", f"/simple/{name}/", times=1)
    resp = fetch(_page_url(upstream, name), headers={"Accept": accept})
    assert resp.status == 200
    if accept == JSON:
        with pytest.raises(InvalidPage):
            parse_project_page_json(resp.body)
    else:
        assert b"href=" not in resp.body.replace(b"<a href=>", b"")


def test_faults_over_the_control_api(upstream: Upstream, name: str) -> None:
    control = f"{upstream.url}/_upstream/faults"
    body = msgspec.json.encode({"kind": "status", "path": f"/simple/{name}/", "status": 500})
    fault = json.loads(fetch(control, method="POST", data=body).body)
    assert fault["kind"] == "status" and fault["id"] >= 1
    assert fetch(_page_url(upstream, name)).status == 500
    listed = json.loads(fetch(control).body)["faults"]
    assert listed[0]["fired"] == 1
    assert fetch(f"{control}/{fault['id']}", method="DELETE").status == 200
    assert fetch(_page_url(upstream, name)).status == 200
    bad = fetch(control, method="POST", data=b'{"kind": "explode"}')
    assert bad.status == 400


def test_control_api_is_never_faulted_nor_counted(upstream: Upstream) -> None:
    upstream.add_fault("status", "*")
    assert fetch(f"{upstream.url}/_upstream/stats").status == 200
    assert fetch(f"{upstream.url}/simple/").status == 503
    assert upstream.stats == {"/simple/": 1}


def test_invalid_faults_are_refused() -> None:
    with pytest.raises(InvalidFault):
        Fault.from_dict({"kind": "status", "rate": 2})
    with pytest.raises(InvalidFault):
        Fault.from_dict({"kind": "status", "status": 42})
    injector = FaultInjector()
    fault = injector.add(Fault.from_dict({"kind": "delay", "path": "/a", "delay": 1}))
    assert injector.select("/b") == [] and injector.select("/a") == [fault]
    assert injector.remove(fault.id) and not injector
