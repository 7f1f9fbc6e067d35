"""Mirror and proxy status: freshness decisions, the ``/mirrors.json`` document, peer mirrors,
and the scheduled checks behind them (docs/web-interface.md, "Mirror status")."""

from headwater.server.status.document import Document
from headwater.server.status.freshness import Thresholds, UpstreamCheck, mirror_freshness
from headwater.server.status.routes import MIRRORS_JSON, status_routes
from headwater.server.status.service import StatusService

__all__ = [
    "MIRRORS_JSON",
    "Document",
    "StatusService",
    "Thresholds",
    "UpstreamCheck",
    "mirror_freshness",
    "status_routes",
]
