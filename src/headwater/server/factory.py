"""Building the application from a :class:`~headwater.server.settings.ServePlan`.

``build_app`` is what tests call; ``app_from_env`` is what each server worker process calls (the
plan arrives as JSON in ``HEADWATER_SERVE_PLAN``, written by ``headwater serve``).
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from headwater.errors import HeadwaterError
from headwater.repository.base import ServedSource
from headwater.repository.tree import TreeSource
from headwater.server.app import IndexApp
from headwater.server.health import health_routes
from headwater.server.metrics import Metrics
from headwater.server.settings import ServePlan
from headwater.storage.filesystem import FileStorage

__all__ = ["PLAN_ENV", "app_from_env", "build_app", "run_dir"]

PLAN_ENV = "HEADWATER_SERVE_PLAN"


def run_dir(plan: ServePlan) -> Path:
    """Where server processes keep run-time state (metrics snapshots): ``<data_dir>/run``."""
    return Path(plan.settings.data_dir) / "run"


def build_app(plan: ServePlan) -> IndexApp:
    """The whole ASGI application for ``plan``."""
    sources: dict[str, ServedSource] = {}
    page_max_age: dict[str, int] = {}
    for name, target in plan.mirrors.items():
        sources[name] = TreeSource(name, FileStorage(target), revalidate=plan.settings.revalidate)
    metrics = Metrics(run_dir(plan) / "metrics")
    routes: list[BaseRoute] = list(health_routes(sources, metrics))
    rest = Starlette(routes=routes)
    return IndexApp(
        plan.settings,
        sources,
        default=plan.default,
        rest=rest,
        metrics=metrics,
        page_max_age=page_max_age,
    )


def app_from_env() -> IndexApp:
    """The application for a server worker process, from ``$HEADWATER_SERVE_PLAN``.

    Raises:
        HeadwaterError: the variable is missing or does not hold a plan.
    """
    raw = os.environ.get(PLAN_ENV)
    if not raw:
        raise HeadwaterError(f"${PLAN_ENV} is not set: start the server with `headwater serve`")
    try:
        plan = msgspec.json.decode(raw, type=ServePlan)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HeadwaterError(f"${PLAN_ENV} does not hold a serve plan: {exc}") from exc
    return build_app(plan)
