"""Building the application from a :class:`~headwater.config.settings.ServePlan`.

``build_app`` is what tests call; ``app_from_env`` is what each server worker process calls (the
plan arrives as JSON in ``HEADWATER_SERVE_PLAN``, written by ``headwater serve``).

Browser pages are a layer above this one (:mod:`headwater.ui`): they arrive as ``pages``, a
function given the built :class:`Served` parts (sources, database, authenticator, which indexes
are private) that returns Starlette routes. The server mounts them behind its hot path, so the
Simple API never passes through them, and with them the root ``/`` becomes the interface's home.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from headwater.assembly import Sources, base_url, build_sources, database_url, run_dir
from headwater.config.settings import ServePlan
from headwater.db import Database
from headwater.errors import HeadwaterError
from headwater.provenance import TrustRoot
from headwater.repository.publishers import TreeLedger
from headwater.repository.tree import TreeSource
from headwater.server.api import api_routes
from headwater.server.app import IndexApp
from headwater.server.auth import Authenticator
from headwater.server.authz import Credentials
from headwater.server.health import health_routes
from headwater.server.held import held_routes
from headwater.server.metrics import Metrics
from headwater.server.status import StatusService, status_routes
from headwater.server.types import Scope
from headwater.server.upload import UploadEndpoint
from headwater.storage.base import Storage

__all__ = ["PLAN_ENV", "Pages", "Served", "app_from_env", "build_app", "plan_from_env"]

PLAN_ENV = "HEADWATER_SERVE_PLAN"


@dataclass(frozen=True)
class Served:
    """What the server built for a plan, handed to the pages mounted on it (read-only)."""

    plan: ServePlan
    sources: Sources
    #: None when the plan has no hosted index (then nothing is private and nobody signs in).
    database: Database | None
    authenticator: Authenticator | None
    #: Private indexes -> their private sources (see IndexApp); reading them needs a token.
    private: dict[str, frozenset[str]]
    metrics: Metrics
    #: Mirror, proxy and peer status (what /mirrors.json serves; docs/web-interface.md).
    status: StatusService


#: Builds the browser pages' routes over what the server built (see the module docstring).
Pages = Callable[[Served], list[BaseRoute]]


def build_app(
    plan: ServePlan, *, db: Database | None = None, pages: Pages | None = None
) -> IndexApp:
    """The whole ASGI application for ``plan``. ``db`` is opened from the plan when not given
    (and only when the plan has hosted indexes); the app closes what it opened. ``pages``: the
    browser interface's routes (:func:`headwater.ui.build_app` passes them); with them, ``/`` is
    answered by their route for ``/`` instead of the plain landing page."""
    page_max_age: dict[str, int] = {}
    metrics = Metrics(run_dir(plan) / "metrics")
    routes: list[BaseRoute] = []
    on_startup: list[Callable[[], Awaitable[None]]] = []
    on_shutdown: list[Callable[[], Awaitable[None]]] = []
    # Private indexes -> their private sources (a composed index's; empty for a hosted one).
    private: dict[str, frozenset[str]] = {}
    credentials: Callable[[Scope], Awaitable[Credentials]] | None = None
    extra_checks: dict[str, Callable[[], Awaitable[None]]] = {}
    database: Database | None = None
    auth: Authenticator | None = None
    if plan.hosted:
        database = db if db is not None else Database.connect(database_url(plan))
    built = build_sources(plan, database)
    sources = built.all
    if database is not None:
        auth = Authenticator(database)
        for name, settings in plan.hosted.items():
            page_max_age[name] = settings.page_max_age
            if settings.read == "token":
                private[name] = frozenset()
        for name, index in plan.indexes.items():
            hidden = frozenset(s for s in index.sources if s in plan.hosted and s in private)
            if hidden:
                # A composed index shows what its private sources hold: it is private too.
                private[name] = hidden

        async def read_credentials(scope: Scope) -> Credentials:
            return await auth.credentials(scope, cached=True)

        credentials = read_credentials
        upload = UploadEndpoint(
            database,
            built.hosted,
            plan.hosted,
            auth,
            metrics,
            run_dir(plan) / "uploads",
            default=plan.upload_target(None),
            trust=TrustRoot(plan.settings.trusted_root),
        )
        to_target = _upload_target(plan, upload.handle)
        after_schema: list[Callable[[], Awaitable[None]]] = []
        routes += _trusted_publishing(plan, database, after_schema, on_shutdown)
        routes += [
            Route("/{index}/legacy/", to_target, methods=["POST"]),
            Route("/{index}/legacy", to_target, methods=["POST"]),  # U1: PyPI redirects; we accept
            Route("/legacy/", upload.handle, methods=["POST"]),
            Route("/legacy", upload.handle, methods=["POST"]),
            *api_routes(
                database,
                built.hosted,
                auth,
                private=private,
                composed={
                    name: [s for s in index.sources if s in plan.hosted]
                    for name, index in plan.indexes.items()
                },
            ),
            # The publisher guard of mirrors and proxies (docs/provenance.md): held releases,
            # accepting one.
            *held_routes(
                database,
                {
                    **{name: TreeLedger(_tree_storage(sources[name])) for name in plan.mirrors},
                    **{name: proxy.guard.ledger for name, proxy in built.proxies.items()},
                },
                auth,
            ),
        ]
        opened = database

        async def check_database() -> None:
            await asyncio.to_thread(opened.ping)

        async def check_schema() -> None:
            await asyncio.to_thread(opened.check_schema)

        extra_checks["database"] = check_database
        on_startup.append(check_schema)
        on_startup.extend(after_schema)  # the publishers of the file, once the schema is known
        if db is None:

            async def close() -> None:
                await asyncio.to_thread(opened.close)

            on_shutdown.append(close)
    for name, proxy in plan.proxies.items():
        page_max_age[name] = min(plan.settings.page_max_age, int(proxy.ttl))
        metrics.track_proxy(name, built.proxies[name].stats)
    on_shutdown.append(built.aclose)
    for name, index in plan.indexes.items():
        page_max_age[name] = min(
            page_max_age.get(member, plan.settings.page_max_age) for member in index.sources
        )
    shown_private = frozenset() if plan.settings.metrics_private_labels else frozenset(private)
    routes += health_routes(sources, metrics, extra_checks, private=shown_private)
    status = StatusService(
        # The trees' own storage, as the sources were built (a directory or a bucket).
        mirrors={
            name: source.storage
            for name in plan.mirrors
            if isinstance(source := sources[name], TreeSource)
        },
        proxies=dict(built.proxies),
        settings=plan.status,
        metrics=metrics,
        base_url=base_url(plan),
        directory=run_dir(plan) / "status",
    )
    routes += status_routes(status)

    async def start_status() -> None:
        status.start()

    on_startup.append(start_status)
    on_shutdown.append(status.aclose)
    if pages is not None:
        routes += pages(Served(plan, built, database, auth, private, metrics, status))
    rest = Starlette(routes=routes)
    # Starlette answers a path with a trailing slash too many by a 307 to an absolute URL built
    # from the request's Host header: a forged Host sent clients (with their credentials, and a
    # DELETE kept by the 307) to another host. Every route is registered as documented (both
    # forms of /legacy/ are), so another spelling is a 404 like any unknown path.
    rest.router.redirect_slashes = False
    return IndexApp(
        plan.settings,
        sources,
        default=plan.default,
        rest=rest,
        metrics=metrics,
        page_max_age=page_max_age,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        private=private,
        credentials=credentials,
        landing=pages is None,
    )


def _trusted_publishing(
    plan: ServePlan,
    database: Database,
    on_startup: list[Callable[[], Awaitable[None]]],
    on_shutdown: list[Callable[[], Awaitable[None]]],
) -> list[BaseRoute]:
    """Trusted publishing's routes (docs/trusted-publishing.md); at startup, the configuration
    file's publishers are written to the database (``sync_publishers``)."""
    from headwater.db import ConfiguredPublisher, DatabaseError, InvalidArgument, identities
    from headwater.repository._client import HttpClient
    from headwater.server.oidc import Exchange, KeyCache, http_fetcher, oidc_routes

    client = HttpClient(connections=8, connect_timeout=10.0, read_timeout=10.0)
    exchange = Exchange(
        database,
        KeyCache(http_fetcher(client)),
        audience=plan.settings.audience,
        lifetime=plan.settings.minted_token_lifetime,
        hosted=plan.hosted,
    )
    configured: dict[str, list[ConfiguredPublisher]] = {}
    for name, hosted in plan.hosted.items():
        entries = configured[name] = []
        for entry in hosted.publishers:
            kind = "github" if entry.github else "gitlab" if entry.gitlab else "oidc"
            table = entry.github or entry.gitlab or entry.oidc or {}
            try:
                identity = identities.check_identity(
                    identities.decode_identity({"type": kind, **table})
                )
            except (msgspec.ValidationError, TypeError, InvalidArgument) as exc:
                raise HeadwaterError(
                    f"[[hosted.{name}.publishers]] for {entry.project!r}: {exc} (see "
                    "docs/trusted-publishing.md for the fields of a publisher)"
                ) from None
            entries.append(
                ConfiguredPublisher(project=entry.project, identity=identity, owner=entry.owner)
            )

    async def sync() -> None:
        for name, entries in configured.items():
            try:
                await asyncio.to_thread(database.sync_publishers, name, entries)
            except (DatabaseError, InvalidArgument) as exc:
                raise HeadwaterError(f"[[hosted.{name}.publishers]]: {exc}") from None

    async def close() -> None:
        await client.close()

    on_startup.append(sync)
    on_shutdown.append(close)
    targets = {name: name for name in plan.hosted}
    for name, index in plan.indexes.items():
        if index.upload is not None:
            targets[name] = index.upload
    return list(
        oidc_routes(
            exchange,
            targets,
            default=plan.upload_target(None),
            base_url=plan.settings.base_url,
        )
    )


def _upload_target(
    plan: ServePlan, handle: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """The upload endpoint for ``/<index>/legacy/``: a composed index with ``upload = "NAME"``
    hands the upload to its hosted source NAME (whose tokens, owners and namespaces decide, as
    if it had been sent to ``/NAME/legacy/``); any other name is handled as it is."""
    targets = {
        name: index.upload for name, index in plan.indexes.items() if index.upload is not None
    }

    async def endpoint(request: Request) -> Response:
        target = targets.get(request.path_params.get("index", ""))
        if target is not None:
            request.scope["path_params"] = {**request.path_params, "index": target}
        return await handle(request)

    return endpoint


def plan_from_env() -> ServePlan:
    """The plan ``headwater serve`` handed its worker processes in ``$HEADWATER_SERVE_PLAN``.

    Raises:
        HeadwaterError: the variable is missing or does not hold a plan.
    """
    raw = os.environ.get(PLAN_ENV)
    if not raw:
        raise HeadwaterError(f"${PLAN_ENV} is not set: start the server with `headwater serve`")
    try:
        return msgspec.json.decode(raw, type=ServePlan)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HeadwaterError(f"${PLAN_ENV} does not hold a serve plan: {exc}") from exc


def app_from_env() -> IndexApp:
    """The application (without the browser interface) for a server worker process, from
    ``$HEADWATER_SERVE_PLAN``; ``headwater serve`` runs :func:`headwater.ui.app_from_env`.

    Raises:
        HeadwaterError: the variable is missing or does not hold a plan.
    """
    return build_app(plan_from_env())


def _tree_storage(source: object) -> Storage:
    """The storage of a mirror's tree (its TreeSource's, so S3 trees are reached the same way)."""
    assert isinstance(source, TreeSource), source
    return source.storage
