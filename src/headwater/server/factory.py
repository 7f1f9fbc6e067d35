"""Building the application from a :class:`~headwater.server.settings.ServePlan`.

``build_app`` is what tests call; ``app_from_env`` is what each server worker process calls (the
plan arrives as JSON in ``HEADWATER_SERVE_PLAN``, written by ``headwater serve``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from headwater.db import Database
from headwater.errors import HeadwaterError
from headwater.policy import Rules, SourceKind, SourceSpec, rules_from_config
from headwater.repository.base import ProjectSource, ServedSource
from headwater.repository.directory import DirectorySource
from headwater.repository.hosted import HostedSource
from headwater.repository.index import ComposedIndex
from headwater.repository.proxy import ProxySource
from headwater.repository.tree import TreeSource
from headwater.server.api import api_routes
from headwater.server.app import IndexApp
from headwater.server.auth import Authenticator, token_allows
from headwater.server.health import health_routes
from headwater.server.metrics import Metrics
from headwater.server.settings import ServePlan
from headwater.server.types import Scope
from headwater.server.upload import UploadEndpoint
from headwater.simple.names import NormalizedName
from headwater.storage.filesystem import FileStorage

__all__ = [
    "PLAN_ENV",
    "Sources",
    "app_from_env",
    "base_url",
    "build_app",
    "build_sources",
    "database_url",
    "hosted_storage",
    "index_rules",
    "proxy_storage",
    "run_dir",
]

PLAN_ENV = "HEADWATER_SERVE_PLAN"


def run_dir(plan: ServePlan) -> Path:
    """Where server processes keep run-time state (metrics snapshots): ``<data_dir>/run``."""
    return Path(plan.settings.data_dir) / "run"


def database_url(plan: ServePlan) -> str:
    """The configured database, or SQLite in the data directory."""
    if plan.settings.database:
        return plan.settings.database
    return f"sqlite:///{Path(plan.settings.data_dir) / 'headwater.sqlite3'}"


def hosted_storage(plan: ServePlan, index: str) -> FileStorage:
    """Where a hosted index keeps its files: ``<data_dir>/hosted/<index>`` (a tree layout)."""
    return FileStorage(Path(plan.settings.data_dir) / "hosted" / index)


def proxy_storage(plan: ServePlan, name: str) -> FileStorage:
    """Where a proxy keeps what it fetched: ``<data_dir>/proxy/<name>``."""
    return FileStorage(Path(plan.settings.data_dir) / "proxy" / name)


def _source_kind(plan: ServePlan, name: str) -> SourceKind:
    if name in plan.hosted:
        return SourceKind.HOSTED
    if name in plan.mirrors:
        return SourceKind.MIRROR
    if name in plan.proxies:
        return SourceKind.PROXY
    return SourceKind.DIRECTORY


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise HeadwaterError(f"cannot read {path}: {exc.strerror or exc}") from exc


def index_rules(plan: ServePlan, name: str) -> Rules:
    """The policy rules of the composed index ``name``.

    Raises:
        HeadwaterError: the ``[index.NAME]`` table is invalid (the message names the key).
    """
    index = plan.indexes[name]
    specs = [SourceSpec(name=s, kind=_source_kind(plan, s)) for s in index.sources]
    # For a PEP 708 mapping file (routes-file): which URL names which source.
    base = base_url(plan)
    urls = {proxy.url: source for source, proxy in plan.proxies.items()}
    urls.update({f"{base}/{source}/simple/": source for source in plan.hosted})
    return rules_from_config(
        name,
        index.rules,
        specs,
        where=f"[index.{name}]",
        read_file=_read_file,
        source_urls=urls,
    )


def base_url(plan: ServePlan) -> str:
    """The server's public base URL: ``[serve] base_url``, else http(s)://listen (no trailing /)."""
    settings = plan.settings
    scheme = "https" if settings.tls_certificate else "http"
    return (settings.base_url or f"{scheme}://{settings.listen}").rstrip("/")


class Sources:
    """Every source of a plan, built: mirror trees, hosted indexes (over ``database``),
    proxies, directories and composed indexes, by name. ``hosted`` and ``proxies`` are the same
    objects by kind (the server wires uploads and shutdown to them)."""

    def __init__(self) -> None:
        self.all: dict[str, ServedSource] = {}
        self.hosted: dict[str, HostedSource] = {}
        self.proxies: dict[str, ProxySource] = {}
        self.indexes: dict[str, ComposedIndex] = {}

    async def aclose(self) -> None:
        """Stop work in progress and close what the sources hold open: composed indexes'
        decisions first, then hosted renderings, then the proxies' upstream connections."""
        for index in self.indexes.values():
            await index.aclose()
        for hosted in self.hosted.values():
            await hosted.aclose()
        for proxy in self.proxies.values():
            await proxy.aclose()


def build_sources(plan: ServePlan, database: Database | None) -> Sources:
    """The sources of ``plan``; ``database`` is required when the plan has hosted indexes.

    Raises:
        HeadwaterError: an ``[index.NAME]`` table is invalid.
    """
    built = Sources()
    sources = built.all
    for name, target in plan.mirrors.items():
        sources[name] = TreeSource(name, FileStorage(target), revalidate=plan.settings.revalidate)
    if plan.hosted:
        if database is None:
            raise HeadwaterError("hosted indexes need a database")
        for name, settings in plan.hosted.items():
            built.hosted[name] = sources[name] = HostedSource(
                name,
                database,
                hosted_storage(plan, name),
                revalidate=plan.settings.revalidate,
                private=settings.read == "token",
            )
    for name, proxy in plan.proxies.items():
        built.proxies[name] = sources[name] = ProxySource(
            name,
            proxy.url,
            proxy_storage(plan, name),
            ttl=proxy.ttl,
            max_size=proxy.max_size,
            offline=proxy.offline,
            timeout=proxy.timeout,
        )
    for name, path in plan.directories.items():
        sources[name] = DirectorySource(
            name, Path(path), revalidate=max(plan.settings.revalidate, 1.0)
        )
    base = base_url(plan)

    def own_url(source: str, project: NormalizedName) -> str:
        return f"{base}/{source}/simple/{project}/"

    for name, index in plan.indexes.items():
        members: list[ProjectSource] = []
        for member in index.sources:
            source = sources[member]
            assert isinstance(source, ProjectSource)
            members.append(source)
        built.indexes[name] = sources[name] = ComposedIndex(
            name,
            members,
            index_rules(plan, name),
            project_url=own_url,
            revalidate=plan.settings.revalidate,
        )
    return built


def build_app(plan: ServePlan, *, db: Database | None = None) -> IndexApp:
    """The whole ASGI application for ``plan``. ``db`` is opened from the plan when not given
    (and only when the plan has hosted indexes); the app closes what it opened."""
    page_max_age: dict[str, int] = {}
    metrics = Metrics(run_dir(plan) / "metrics")
    routes: list[BaseRoute] = []
    on_startup: list[Callable[[], Awaitable[None]]] = []
    on_shutdown: list[Callable[[], Awaitable[None]]] = []
    read_guards: dict[str, Callable[[Scope], Awaitable[bool]]] = {}
    extra_checks: dict[str, Callable[[], Awaitable[None]]] = {}
    database: Database | None = None
    if plan.hosted:
        database = db if db is not None else Database.connect(database_url(plan))
    built = build_sources(plan, database)
    sources = built.all
    if database is not None:
        auth = Authenticator(database)
        for name, settings in plan.hosted.items():
            page_max_age[name] = settings.page_max_age
            if settings.read == "token":
                read_guards[name] = _read_guard(auth, name)
        for name, index in plan.indexes.items():
            if any(s in read_guards for s in index.sources):
                # A composed index shows what its private sources hold: it is private too.
                read_guards[name] = _read_guard(auth, name)
        upload = UploadEndpoint(
            database,
            built.hosted,
            plan.hosted,
            auth,
            metrics,
            run_dir(plan) / "uploads",
            default=plan.default if plan.default in built.hosted else None,
        )
        routes += [
            Route("/{index}/legacy/", upload.handle, methods=["POST"]),
            Route(
                "/{index}/legacy", upload.handle, methods=["POST"]
            ),  # U1: PyPI redirects; we accept
            Route("/legacy/", upload.handle, methods=["POST"]),
            Route("/legacy", upload.handle, methods=["POST"]),
            *api_routes(database, built.hosted, auth),
        ]
        opened = database

        async def check_database() -> None:
            await asyncio.to_thread(opened.ping)

        async def check_schema() -> None:
            await asyncio.to_thread(opened.check_schema)

        extra_checks["database"] = check_database
        on_startup.append(check_schema)
        if db is None:

            async def close() -> None:
                await asyncio.to_thread(opened.close)

            on_shutdown.append(close)
    for name, proxy in plan.proxies.items():
        page_max_age[name] = min(plan.settings.page_max_age, int(proxy.ttl))
    on_shutdown.append(built.aclose)
    for name, index in plan.indexes.items():
        page_max_age[name] = min(
            page_max_age.get(member, plan.settings.page_max_age) for member in index.sources
        )
    routes += health_routes(sources, metrics, extra_checks)
    return IndexApp(
        plan.settings,
        sources,
        default=plan.default,
        rest=Starlette(routes=routes),
        metrics=metrics,
        page_max_age=page_max_age,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        read_guards=read_guards,
    )


def _read_guard(auth: Authenticator, index: str) -> Callable[[Scope], Awaitable[bool]]:
    async def guard(scope: Scope) -> bool:
        token = await auth.token(scope, cached=True)
        return token is not None and token_allows(token, "read", index)

    return guard


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
