"""/health and /metrics: readiness names what failed; metrics add up across worker processes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec

from headwater.config.settings import ServePlan, ServeSettings
from headwater.server.factory import build_app
from headwater.server.metrics import Metrics, Snapshot, collect, render
from tests.server.asgi import call


def plan(tmp_path: Path, tree: Path | None) -> ServePlan:
    mirrors = {"pypi": str(tree if tree is not None else tmp_path / "never-synced")}
    return ServePlan(
        settings=ServeSettings(data_dir=str(tmp_path / "data")), mirrors=mirrors, default="pypi"
    )


def test_ready_when_the_tree_is_there(tmp_path: Path, tree: Path) -> None:
    app = build_app(plan(tmp_path, tree))
    answer = asyncio.run(call(app, "GET", "/health/ready"))
    assert answer.status == 200
    assert msgspec.json.decode(answer.body)["checks"] == {"index:pypi": "ok"}
    assert asyncio.run(call(app, "GET", "/health")).status == 200


def test_not_ready_names_the_index_and_the_fix(tmp_path: Path) -> None:
    app = build_app(plan(tmp_path, None))
    answer = asyncio.run(call(app, "GET", "/health/ready"))
    assert answer.status == 503
    report = msgspec.json.decode(answer.body)
    assert report["status"] == "unavailable"
    assert "headwater mirror" in report["checks"]["index:pypi"]
    # Liveness does not depend on the indexes.
    assert asyncio.run(call(app, "GET", "/health/live")).status == 200


def test_metrics_count_requests_by_kind_and_status(tmp_path: Path, tree: Path) -> None:
    app = build_app(plan(tmp_path, tree))

    async def go() -> str:
        await call(app, "GET", "/pypi/simple/", headers={"Accept": "text/html"})
        await call(app, "GET", "/pypi/simple/nope/")
        return (await call(app, "GET", "/metrics")).body.decode()

    text = asyncio.run(go())
    assert 'headwater_requests_total{index="pypi",kind="page",status="200"} 1' in text
    assert 'headwater_requests_total{index="pypi",kind="page",status="404"} 1' in text
    assert 'headwater_request_duration_seconds_count{kind="page"} 2' in text
    assert 'headwater_response_bytes_total{index="pypi",kind="page"}' in text


def test_metrics_add_up_other_processes_snapshots(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    other = Snapshot(requests={"pypi|page|200": 5}, bytes_sent={"pypi|page": 100})
    directory.mkdir()
    (directory / f"{os.getpid() + 1}.json").write_bytes(msgspec.json.encode(other))
    (directory / "999999.json").write_bytes(b"{torn")  # a crash mid-write is skipped, not fatal
    mine = Metrics(directory)
    mine.observe("pypi", "page", 200, 0.002, 10)
    total = collect(mine)
    assert total.requests["pypi|page|200"] == 6
    assert total.bytes_sent["pypi|page"] == 110
    mine.flush()
    assert (directory / f"{os.getpid()}.json").is_file()
    assert collect(mine).requests["pypi|page|200"] == 6  # its own file is not counted twice
    assert "# TYPE headwater_requests_total counter" in render(total)
