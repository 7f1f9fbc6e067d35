"""Running the application under granian, the production server.

Measured on this project's 2-core machine (wrk, 64 connections, one small page): granian answered
46k requests/s from a raw ASGI app against uvicorn's 27k (uvloop + httptools), and 35k against 17k
through Starlette; granian also sends files itself (the ASGI ``pathsend`` extension) and terminates
TLS. See docs/serve.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import msgspec

from headwater.assembly import run_dir
from headwater.config.settings import ServePlan, parse_listen
from headwater.server.factory import PLAN_ENV

__all__ = ["run_server"]


#: What worker processes run by default: the server with the browser interface (an import path,
#: not an import: the interface is the layer above this one).
APP_FACTORY = "headwater.ui.factory:app_from_env"


def run_server(plan: ServePlan, *, app: str = APP_FACTORY) -> None:
    """Serve ``plan`` until interrupted (blocks). Worker processes rebuild the app from the plan
    by calling ``app`` (``module:function``)."""
    from granian import Granian
    from granian.constants import Interfaces, Loops, SSLProtocols

    settings = plan.settings
    host, port = parse_listen(settings.listen)
    # Counters from an earlier run must not be added to this run's.
    shutil.rmtree(run_dir(plan) / "metrics", ignore_errors=True)
    os.environ[PLAN_ENV] = msgspec.json.encode(plan).decode()
    tls = settings.tls_certificate is not None
    server = Granian(
        app,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.auto,
        backlog=2048,
        log_access=False,
        respawn_failed_workers=True,
        ssl_cert=Path(settings.tls_certificate) if tls and settings.tls_certificate else None,
        ssl_key=Path(settings.tls_key) if tls and settings.tls_key else None,
        # TLS 1.2 still matters: older pip builds link OpenSSL versions and proxies without 1.3.
        ssl_protocol_min=SSLProtocols.tls12,
    )
    server.serve()
