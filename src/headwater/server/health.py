"""``/health`` and ``/metrics``: what load balancers and Prometheus ask.

- ``/health/live``: 200 while the process answers at all (restart it when this fails).
- ``/health/ready`` (and ``/health``): 200 when every index can serve, with each check's result
  in a JSON body; 503 naming what failed otherwise (take the process out of rotation). Checks run
  concurrently with a time limit, so a hung database cannot hang the probe.
- ``/metrics``: Prometheus text for the whole server (every worker process).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from headwater.repository.base import ServedSource
from headwater.server.metrics import Metrics, collect, fold_private, render

__all__ = ["PRIVATE_CHECK", "health_routes"]

log = logging.getLogger("headwater.health")

CHECK_TIMEOUT = 2.0


async def _run_check(check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:  # any failure is a "not ready", reported, never raised
        return f"{type(exc).__name__}: {exc}"
    return "ok"


#: The one entry that stands for every private index in ``/health`` (as in ``/metrics``).
PRIVATE_CHECK = "index:(private)"


def _fold_private_checks(report: dict[str, str], private: frozenset[str]) -> dict[str, str]:
    """``report`` with the checks of the ``private`` indexes replaced by one entry: ``ok``, or
    how many are not ready. ``/health`` answers anyone, and a private index's name (and its
    error, which may name it) is for those who may read it: the operator sets
    ``metrics_private_labels`` to see them by name, as for ``/metrics``."""
    folded = {f"index:{name}" for name in private}
    failed = 0
    for key in sorted(folded & report.keys()):
        if report[key] != "ok":
            failed += 1
            log.warning("health: %s is not ready: %s", key, report[key])
    shown = {key: value for key, value in report.items() if key not in folded}
    if folded & report.keys():
        shown[PRIVATE_CHECK] = (
            "ok" if not failed else f"{failed} private index(es) not ready (see the server's log)"
        )
    return shown


def health_routes(
    sources: Mapping[str, ServedSource],
    metrics: Metrics,
    extra_checks: Mapping[str, Callable[[], Awaitable[None]]] | None = None,
    private: frozenset[str] = frozenset(),
) -> list[Route]:
    """The health and metrics routes over ``sources`` (plus e.g. a ``database`` check);
    ``/metrics`` counts the ``private`` indexes together (:func:`fold_private`), and ``/health``
    reports them as one check (:func:`_fold_private_checks`)."""
    checks: dict[str, Callable[[], Awaitable[None]]] = {
        f"index:{name}": source.check for name, source in sources.items()
    }
    checks.update(extra_checks or {})

    async def live(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def ready(request: Request) -> Response:
        started = time.perf_counter()
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[n]) for n in names))
        report = _fold_private_checks(dict(zip(names, results, strict=True)), private)
        ok = all(result == "ok" for result in report.values())
        body = {
            "status": "ok" if ok else "unavailable",
            "checks": report,
            "seconds": round(time.perf_counter() - started, 4),
        }
        return Response(
            msgspec.json.encode(body) + b"\n",
            status_code=200 if ok else 503,
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    async def prometheus(request: Request) -> Response:
        text = render(fold_private(await asyncio.to_thread(collect, metrics), private))
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return [
        Route("/health", ready, methods=["GET", "HEAD"]),
        Route("/health/ready", ready, methods=["GET", "HEAD"]),
        Route("/health/live", live, methods=["GET", "HEAD"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
