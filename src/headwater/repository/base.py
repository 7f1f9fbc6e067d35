"""What a served source gives the server: rendered pages and file locations.

The server never renders or parses on its hot path. A source hands it a :class:`RenderedPage` (the
exact bytes of one page in one format, with its validators) and a :class:`FileRef` (where a
distribution file's bytes are). Mirror trees already hold rendered pages on disk; hosted indexes
render theirs from the database once per change. Both keep them in memory, so a warm page costs a
dictionary lookup.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from headwater.errors import HeadwaterError
from headwater.simple.model import ProjectPage
from headwater.simple.names import NormalizedName
from headwater.storage.base import Storage

__all__ = [
    "FileRef",
    "FileStream",
    "PageFormat",
    "ProjectSource",
    "RenderedPage",
    "ServedSource",
    "SourceProject",
    "SourceUnavailable",
    "etag_of",
]

#: ``json`` is application/vnd.pypi.simple.v1+json; ``html`` serves both HTML media types.
PageFormat = Literal["json", "html"]

# Below this size gzip saves less than its header and the CPU is wasted.
_GZIP_MIN = 512


def etag_of(body: bytes) -> str:
    """A strong ETag (quoted) for ``body``: 128 bits of its BLAKE2b digest."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


class RenderedPage:
    """One page in one format, immutable once built. The gzip form is made on first request and
    kept (pages are requested far more often than they change)."""

    __slots__ = ("_gzipped", "body", "etag", "headers", "last_modified", "serial", "stale")

    def __init__(
        self,
        body: bytes,
        *,
        serial: int | None = None,
        last_modified: float | None = None,
        stale: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.body = body
        #: Extra response headers (lowercase names), e.g. which sources a composed page came from.
        self.headers = headers
        self.serial = serial
        self.last_modified = last_modified
        #: Why this is an old copy (a proxy's upstream failed); the server says so in a header.
        self.stale = stale
        self.etag = etag_of(body)
        self._gzipped: bytes | None = None

    def gzipped(self) -> bytes | None:
        """The body gzip-compressed, or None when the page is too small to be worth it."""
        if len(self.body) < _GZIP_MIN:
            return None
        if self._gzipped is None:
            # Level 6 is gzip's default: most of level 9's ratio for a fraction of its time; mtime=0
            # keeps the bytes identical across processes, so one ETag fits every worker.
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


class FileStream(Protocol):
    """The bytes of a file that is still arriving (a proxy's first download of it), to be sent
    as they come. Iterating yields exactly ``FileRef.size`` bytes in all, or raises part-way (the
    bytes failed their check, or the upstream failed): the sender must then abort the response,
    so a client never receives a complete but wrong file. The sender calls :meth:`aclose` when it
    is done or gives up, whether or not it read anything (a HEAD, a 304, a client that went away)."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class FileRef:
    """Where a distribution file (or its ``.metadata``) is: a storage key, its size and mtime, and
    the local path when the storage is a local directory (so the server can hand the file to the
    kernel instead of copying it through Python). ``stream`` is set instead when the file is not
    stored yet and its bytes arrive while it is sent (``size`` is then what the page promised)."""

    __slots__ = ("body", "key", "local_path", "mtime", "size", "storage", "stream")

    def __init__(
        self,
        storage: Storage,
        key: str,
        size: int,
        mtime: float,
        local_path: Path | None,
        body: bytes | None = None,
        *,
        stream: FileStream | None = None,
    ) -> None:
        self.storage = storage
        self.key = key
        self.size = size
        self.mtime = mtime
        self.local_path = local_path
        #: The whole content, when the source keeps this (small) file in memory.
        self.body = body
        #: The bytes as they arrive, when the file is not in storage yet (see FileStream).
        self.stream = stream


@runtime_checkable
class ServedSource(Protocol):
    """A source the server can serve as an index on its own: a mirror tree or a hosted index."""

    #: ``mirror`` or ``hosted`` (``proxy`` and ``directory`` arrive with the policy work).
    kind: str
    name: str

    async def page(self, project: NormalizedName | None, fmt: PageFormat) -> RenderedPage | None:
        """The root page (``project`` None) or a project's page, or None if there is no such
        project. Raises StorageError (or DatabaseError) when the source cannot be read."""
        ...

    async def file(self, path: str) -> FileRef | None:
        """The file at ``path`` below ``packages/`` (e.g. ``ab/cd/ef.../name.whl``), or None."""
        ...

    async def check(self) -> None:
        """Readiness: raise if the source cannot serve (storage or database unreachable)."""
        ...


class SourceUnavailable(HeadwaterError):
    """A source cannot say whether it has a project (its upstream or database is down and nothing
    usable is cached). An index never falls through to another source because of this (PEP 766):
    the project is refused with this message, which names the source and the failure."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source


class SourceProject:
    """What one source says about one project, for an index composed of several sources.

    ``page`` is the project page in served form (file URLs relative to the page, i.e.
    ``../../packages/<aa>/<bb>/<rest>/<filename>``, exactly as the source serves it), or None when
    the source does not have the project. ``claimed`` is True when the source holds the name even
    without a page (a hosted project that was deleted, or a name inside one of its PEP 752
    namespaces): the index then never takes the name from another source. ``version`` changes
    whenever the page changes (an ETag or serial), so an index can cache what it built from it.
    ``stale`` says why the page is an old copy (the upstream failed), None when it is fresh.
    ``url`` is the URL that identifies this page for PEP 708 (the upstream project URL of a proxy
    or mirror; None when the source is the origin, and the index fills in its own URL).
    """

    __slots__ = ("claimed", "page", "stale", "url", "version")

    def __init__(
        self,
        page: ProjectPage | None,
        *,
        version: str,
        claimed: bool = False,
        stale: str | None = None,
        url: str | None = None,
    ) -> None:
        self.page = page
        self.version = version
        self.claimed = claimed or page is not None
        self.stale = stale
        self.url = url


@runtime_checkable
class ProjectSource(ServedSource, Protocol):
    """A source an index can be composed of: it serves on its own (:class:`ServedSource`) and
    also answers with the model of a project page, for the policy to decide on."""

    #: PEP 708's "local" repository (a directory of files): always mergeable.
    local: bool

    async def project(self, name: NormalizedName) -> SourceProject:
        """What this source has for ``name``.

        Raises:
            SourceUnavailable: the source cannot tell (and has no usable cached copy).
        """
        ...

    async def project_names(self) -> list[NormalizedName]:
        """Every project this source has (for the root page of a composed index).

        Raises:
            SourceUnavailable: the source cannot tell.
        """
        ...
