"""The server with the browser interface mounted: what ``headwater serve`` runs."""

from __future__ import annotations

from headwater.config.settings import ServePlan
from headwater.db import Database
from headwater.server.app import IndexApp
from headwater.server.factory import build_app as build_server
from headwater.server.factory import plan_from_env
from headwater.ui.routes import ui_routes

__all__ = ["app_from_env", "build_app"]


def build_app(plan: ServePlan, *, db: Database | None = None) -> IndexApp:
    """:func:`headwater.server.factory.build_app` with the interface's pages, unless the plan
    turns them off (``[serve] ui = false``: then ``/`` is the plain landing page)."""
    return build_server(plan, db=db, pages=ui_routes if plan.settings.ui else None)


def app_from_env() -> IndexApp:
    """The application for a server worker process, from ``$HEADWATER_SERVE_PLAN``."""
    return build_app(plan_from_env())
