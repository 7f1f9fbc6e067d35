"""The composition root: the sources and indexes a configuration describes, built.

``headwater serve`` (through :mod:`headwater.server.factory`) and ``headwater check --config``
both build what a :class:`~headwater.config.settings.ServePlan` names here, so the check asks
exactly the objects the server serves. Nothing here answers HTTP.
"""

from __future__ import annotations

from pathlib import Path

from headwater.config.settings import ServePlan
from headwater.db import Database
from headwater.errors import HeadwaterError
from headwater.policy import Rules, SourceKind, SourceSpec, rules_from_config
from headwater.repository.base import ProjectSource, ServedSource
from headwater.repository.directory import DirectorySource
from headwater.repository.hosted import HostedSource
from headwater.repository.index import ComposedIndex
from headwater.repository.proxy import ProxySource
from headwater.repository.publishers import rules_for
from headwater.repository.tree import TreeSource
from headwater.simple.names import NormalizedName
from headwater.storage.base import Storage
from headwater.storage.filesystem import PRIVATE, FileStorage
from headwater.storage.open import aclose_storage, open_storage

__all__ = [
    "Sources",
    "base_url",
    "build_sources",
    "database_url",
    "hosted_storage",
    "index_rules",
    "proxy_storage",
    "run_dir",
]


def run_dir(plan: ServePlan) -> Path:
    """Where server processes keep run-time state (metrics snapshots): ``<data_dir>/run``."""
    return Path(plan.settings.data_dir) / "run"


def database_url(plan: ServePlan) -> str:
    """The configured database, or SQLite in the data directory."""
    if plan.settings.database:
        return plan.settings.database
    return f"sqlite:///{Path(plan.settings.data_dir) / 'headwater.sqlite3'}"


def hosted_storage(plan: ServePlan, index: str) -> Storage:
    """Where a hosted index keeps its files: its ``storage`` (a directory or an S3 bucket), by
    default ``<data_dir>/hosted/<index>`` (a tree layout); directories are readable by the
    server's user only (private uploads)."""
    settings = plan.hosted.get(index)
    if settings is not None and settings.storage:
        return open_storage(settings.storage, s3=settings.s3, mode=PRIVATE)
    return FileStorage(Path(plan.settings.data_dir) / "hosted" / index, mode=PRIVATE)


def proxy_storage(plan: ServePlan, name: str) -> Storage:
    """Where a proxy keeps what it fetched: its ``storage`` (a directory or an S3 bucket), by
    default ``<data_dir>/proxy/<name>``; directories are readable by the server's user only
    (what was fetched, with whose credentials, is not for other users)."""
    settings = plan.proxies.get(name)
    if settings is not None and settings.storage:
        return open_storage(settings.storage, s3=settings.s3, mode=PRIVATE)
    return FileStorage(Path(plan.settings.data_dir) / "proxy" / name, mode=PRIVATE)


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
        #: Every storage built for the sources (closed last: an S3 client's connections).
        self.storages: list[Storage] = []

    async def aclose(self) -> None:
        """Stop work in progress and close what the sources hold open: composed indexes'
        decisions first, then hosted renderings, then the proxies' upstream connections, then
        the storages' clients."""
        for index in self.indexes.values():
            await index.aclose()
        for hosted in self.hosted.values():
            await hosted.aclose()
        for proxy in self.proxies.values():
            await proxy.aclose()
        for storage in self.storages:
            await aclose_storage(storage)


def build_sources(plan: ServePlan, database: Database | None) -> Sources:
    """The sources of ``plan``; ``database`` is required when the plan has hosted indexes.

    Raises:
        HeadwaterError: an ``[index.NAME]`` table is invalid, or a proxy's credentials or
            certificates cannot be read (``InvalidEgress``).
    """
    built = Sources()
    sources = built.all
    for name, target in plan.mirrors.items():
        tree = open_storage(target, s3=plan.mirror_s3.get(name))
        built.storages.append(tree)
        sources[name] = TreeSource(name, tree, revalidate=plan.settings.revalidate)
    if plan.hosted:
        if database is None:
            raise HeadwaterError("hosted indexes need a database")
        for name, settings in plan.hosted.items():
            storage = hosted_storage(plan, name)
            built.storages.append(storage)
            built.hosted[name] = sources[name] = HostedSource(
                name,
                database,
                storage,
                revalidate=plan.settings.revalidate,
                private=settings.read == "token",
                public_url=f"{plan.settings.base_url.rstrip('/')}/{name}"
                if plan.settings.base_url
                else None,
            )
    for name, proxy in plan.proxies.items():
        storage = proxy_storage(plan, name)
        built.storages.append(storage)
        built.proxies[name] = sources[name] = ProxySource(
            name,
            proxy.url,
            storage,
            ttl=proxy.ttl,
            max_size=proxy.max_size,
            offline=proxy.offline,
            timeout=proxy.timeout,
            egress=proxy.egress(proxy.url, where=f"[proxy.{name}]"),
            deadline=proxy.deadline,
            allowed_hosts=proxy.allowed_hosts,
            allowed_networks=proxy.allowed_networks,
            max_file_size=proxy.max_file_size,
            max_page_size=proxy.max_page_size,
            max_page_files=proxy.max_page_files,
            trusted_root=proxy.trusted_root or plan.settings.trusted_root,
            publisher_rules=rules_for(
                proxy.continuity, proxy.require_provenance, proxy.trusted_publishers
            )
            if proxy.guarded
            else None,
            public_url=f"{plan.settings.base_url.rstrip('/')}/{name}"
            if plan.settings.base_url
            else None,
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
