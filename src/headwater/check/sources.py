"""Where ``headwater check`` looks names up: one :class:`CheckSource` per index.

The audit only needs "what does this index say about this project": :class:`Lookup`. Three
implementations:

- :class:`HttpSource`: a remote index over HTTP (:class:`~headwater.repository.http.HttpRepository`
  on one keep-alive pool per index host; :func:`http_sources` creates and closes the pools);
- :class:`DirectorySource`: a ``--find-links`` directory of distribution files (PEP 708 "local");
- :class:`ProjectSourceLookup`: any :class:`~headwater.repository.base.ProjectSource` (a mirror
  tree, a hosted index, a proxy), so a headwater configuration's own sources can be checked in
  process without HTTP.

A failure is a :class:`Lookup` in state ``unavailable`` naming the index and what failed, never an
exception and never "absent": the audit must not call a name safe because an index was down.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import msgspec

from headwater.check.model import IndexSpec
from headwater.errors import InvalidInput
from headwater.repository._client import ClientError, HttpClient
from headwater.repository.base import SourceProject, SourceUnavailable
from headwater.repository.errors import UpstreamError, UpstreamNotFound
from headwater.repository.http import USER_AGENT, HttpRepository, RetryPolicy
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName, normalize_or_none
from headwater.simple.negotiation import CLIENT_ACCEPT

__all__ = [
    "CheckSource",
    "DirectorySource",
    "HttpSource",
    "KnowsProjects",
    "Lookup",
    "ProjectSourceLookup",
    "Refusal",
    "http_sources",
]


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """A headwater composed index's refusal of a project (``X-Headwater-Refused``): ``kind`` is
    ``conflict`` or ``claimed`` (409) or ``unavailable`` (503, a source of it failed)."""

    kind: str
    status: int
    message: str
    fix: str


class Lookup(msgspec.Struct, frozen=True, kw_only=True):
    """What one index said about one project. ``url`` is the project's page URL (PEP 708's
    "fetched URL"); ``error`` says what failed when ``state`` is ``unavailable``; ``refusal`` is
    a headwater index's refusal (state ``refused``: no file is served for the name)."""

    state: Literal["found", "absent", "unavailable", "refused"]
    url: str
    page: ProjectPage | None = None
    claimed: bool = False
    error: str | None = None
    refusal: Refusal | None = None
    #: When absent: the index's PEP 752 namespace that covers the name (the name is the
    #: index's, though it has no such project), if the index publishes its namespaces.
    namespace: str | None = None
    #: A headwater index's ``X-Headwater-Hidden`` (``cooldown; files=N; until=...``): files of
    #: the page hidden by a cooldown, so clients see fewer versions or none.
    hidden: str | None = None


@runtime_checkable
class CheckSource(Protocol):
    """An index the audit can ask about a project."""

    spec: IndexSpec

    async def lookup(self, project: NormalizedName) -> Lookup:
        """What the index has for ``project``; failures are a ``unavailable`` lookup, not raised."""
        ...


class HttpSource:
    """A remote Simple API index (JSON preferred, HTML accepted)."""

    def __init__(self, spec: IndexSpec, repository: HttpRepository) -> None:
        self.spec = spec
        self.repository = repository
        self._namespaces: tuple[str, ...] | None = None
        self._namespaces_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"HttpSource({self.spec.name!r}, {self.spec.display_url!r})"

    async def namespaces(self) -> tuple[str, ...]:
        """The PEP 752 namespaces the index grants (``GET <root>/namespaces`` beside
        ``<root>/simple/``, as headwater serves them), asked once; () when it publishes none."""
        async with self._namespaces_lock:
            if self._namespaces is None:
                self._namespaces = await self._fetch_namespaces()
            return self._namespaces

    async def _fetch_namespaces(self) -> tuple[str, ...]:
        base = self.repository.base_url
        if not base.endswith("/simple/"):
            return ()
        url = base.removesuffix("simple/") + "namespaces"
        try:
            async with await self.repository.session.get(url, _JSON_HEADERS) as resp:
                if resp.status != 200:
                    return ()
                body = bytearray()
                async for chunk in resp.iter_chunks():
                    body += chunk
                    if len(body) > _NAMESPACES_LIMIT:
                        return ()
        except (ClientError, OSError):
            return ()
        try:
            grants = msgspec.json.decode(bytes(body), type=list[_Grant])
        except msgspec.ValidationError:
            return ()
        return tuple(n for g in grants if (n := normalize_or_none(g.name)) is not None)

    async def lookup(self, project: NormalizedName) -> Lookup:
        url = self.repository.project_url(project)
        try:
            fetched = await self.repository.project_page(project)
        except UpstreamNotFound:
            if self.spec.public:
                return Lookup(state="absent", url=url)
            covering = next(
                (
                    ns
                    for ns in await self.namespaces()
                    if project == ns or project.startswith(ns + "-")
                ),
                None,
            )
            return Lookup(state="absent", url=url, namespace=covering)
        except UpstreamError as exc:
            refusal = await self._refusal(url) if exc.status in (409, 503) else None
            if refusal is not None:
                return Lookup(state="refused", url=url, refusal=refusal, error=str(exc))
            return Lookup(state="unavailable", url=url, error=_explain(exc))
        except InvalidInput as exc:  # a malformed page: the index cannot be read for this name
            return Lookup(state="unavailable", url=url, error=f"unreadable page: {exc}")
        page = fetched.page
        if page is not None and not page.files:
            # No file at all: ask whether a cooldown hid them (pip and uv say only "no
            # versions"). Asked only then, so a check costs one request per name and index.
            return Lookup(state="found", url=url, page=page, hidden=await self._hidden(url))
        return Lookup(state="found", url=url, page=page)

    async def _hidden(self, url: str) -> str | None:
        """The ``X-Headwater-Hidden`` header of ``url``'s answer, if any."""
        try:
            async with await self.repository.session.get(url, _HEADERS) as resp:
                value = resp.headers.get(HIDDEN_HEADER)
        except (ClientError, OSError):
            return None
        return _printable(value)[:200] if value else None

    async def _refusal(self, url: str) -> Refusal | None:
        """The refusal a headwater index answered for ``url`` (its ``X-Headwater-Refused`` kind,
        and the message and fix of its body), asked once more since the page request keeps
        neither; None when the answer is not a headwater refusal."""
        try:
            async with await self.repository.session.get(url, _HEADERS) as resp:
                kind = resp.headers.get(REFUSED_HEADER)
                if not kind or resp.status not in (409, 503):
                    return None
                body = bytearray()
                async for chunk in resp.iter_chunks():
                    body += chunk
                    if len(body) > _REFUSAL_LIMIT:
                        break
                status = resp.status
        except (ClientError, OSError, UpstreamError):
            return None
        text = bytes(body[:_REFUSAL_LIMIT]).decode("utf-8", "replace")
        message, _, fix = text.partition("\nTo resolve:")
        return Refusal(
            kind=_printable(str(kind))[:40],
            status=status,
            message=_printable(message),
            fix=_printable(fix),
        )


#: The header a headwater index names its refusals with (headwater.server.refusals).
REFUSED_HEADER = "x-headwater-refused"
#: The header a headwater index says a cooldown hid files with (headwater.repository.index).
HIDDEN_HEADER = "x-headwater-hidden"
_HEADERS = {"Accept": CLIENT_ACCEPT, "User-Agent": USER_AGENT}
_JSON_HEADERS = {"Accept": "application/json", "User-Agent": USER_AGENT}
_NAMESPACES_LIMIT = 4 << 20


class _Grant(msgspec.Struct):
    """One entry of a PEP 752 ``/namespaces`` answer (other keys ignored)."""

    name: str


_REFUSAL_LIMIT = 16 << 10


def _printable(text: str) -> str:
    """``text`` from another server as one line of printable characters (no control bytes reach
    a terminal or a CI log), at most 2,000 of them."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat[:2000]


def _explain(exc: UpstreamError) -> str:
    text = str(exc)
    if exc.status in (401, 403):
        text += (
            " (the index wants credentials; headwater check sends none yet: check through a "
            "headwater index that proxies it, or an index URL that needs no login)"
        )
    return text


class DirectorySource:
    """A ``--find-links`` directory: the distribution files directly in it, grouped by project
    (PEP 708 "local": always mergeable). Read once, off the event loop; hashes are computed only
    for the projects asked about."""

    def __init__(self, spec: IndexSpec) -> None:
        self.spec = spec
        self._files: dict[NormalizedName, list[Path]] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"DirectorySource({self.spec.name!r}, {self.spec.url!r})"

    def _scan(self) -> dict[NormalizedName, list[Path]]:
        found: dict[NormalizedName, list[Path]] = {}
        for path in sorted(Path(self.spec.url).iterdir()):
            if not path.is_file():
                continue
            try:
                name = parse_filename(path.name).name
            except InvalidFilename:
                continue  # not a wheel or sdist: pip ignores it too
            found.setdefault(name, []).append(path)
        return found

    async def lookup(self, project: NormalizedName) -> Lookup:
        url = Path(self.spec.url).as_uri() + "/"
        try:
            async with self._lock:
                if self._files is None:
                    self._files = await asyncio.to_thread(self._scan)
            paths = self._files.get(project)
            if not paths:
                return Lookup(state="absent", url=url)
            page = await asyncio.to_thread(_directory_page, project, paths)
        except OSError as exc:
            return Lookup(state="unavailable", url=url, error=f"cannot read {self.spec.url}: {exc}")
        return Lookup(state="found", url=url, page=page)


def _directory_page(project: NormalizedName, paths: Sequence[Path]) -> ProjectPage:
    files = []
    versions: dict[str, None] = {}
    for path in paths:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        files.append(
            File(
                filename=path.name,
                url=path.as_uri(),
                hashes={"sha256": digest.hexdigest()},
                size=path.stat().st_size,
            )
        )
        versions[str(parse_filename(path.name).version)] = None
    return ProjectPage(name=project, files=tuple(files), versions=tuple(versions))


class KnowsProjects(Protocol):
    """The part of :class:`~headwater.repository.base.ProjectSource` the check needs."""

    async def project(self, name: NormalizedName) -> SourceProject:
        """What the source has for ``name`` (raises SourceUnavailable when it cannot tell)."""
        ...


class ProjectSourceLookup:
    """Any composed-index source (a :class:`~headwater.repository.base.ProjectSource`: mirror
    tree, hosted index, proxy) as an index to check: its page model, whether it holds the name,
    and its PEP 708 URL."""

    def __init__(self, spec: IndexSpec, source: KnowsProjects) -> None:
        self.spec = spec
        self.source = source

    def __repr__(self) -> str:
        return f"ProjectSourceLookup({self.spec.name!r})"

    async def lookup(self, project: NormalizedName) -> Lookup:
        url = f"{self.spec.url}{project}/"
        try:
            answer = await self.source.project(project)
        except SourceUnavailable as exc:
            return Lookup(state="unavailable", url=url, error=str(exc))
        if answer.page is None:
            return Lookup(state="absent", url=answer.url or url, claimed=answer.claimed)
        return Lookup(state="found", url=answer.url or url, page=answer.page, claimed=True)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


@asynccontextmanager
async def http_sources(
    specs: Sequence[IndexSpec],
    *,
    read_timeout: float = 30.0,
    connections: int = 32,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[list[CheckSource]]:
    """A source for each spec: HTTP for remote indexes (one pool of at most ``connections``
    per host, so two indexes on one host share it), a directory source for local ones. Pools are
    closed on exit.

    ``read_timeout`` bounds connecting and each wait for an answer's next bytes; ``retry`` defaults
    to three attempts with short backoff (a check should fail fast, not wait out an outage).
    """
    retry = retry or RetryPolicy(attempts=3, backoff=0.2, max_backoff=2.0)
    async with AsyncExitStack() as stack:
        pools: dict[tuple[str, str, int | None], HttpClient] = {}
        sources: list[CheckSource] = []
        for spec in specs:
            if spec.local:
                sources.append(DirectorySource(spec))
                continue
            key = _origin(spec.url)
            pool = pools.get(key)
            if pool is None:
                pool = HttpClient(
                    connections=connections, connect_timeout=read_timeout, read_timeout=read_timeout
                )
                stack.push_async_callback(pool.close)
                pools[key] = pool
            sources.append(HttpSource(spec, HttpRepository(spec.url, pool, retry=retry)))
        yield sources
