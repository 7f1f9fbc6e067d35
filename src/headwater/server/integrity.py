"""``GET /<index>/integrity/<project>/<version>/<filename>/provenance``: PyPI's integrity API.

PyPI serves a file's PEP 740 provenance document here (docs/user/api/integrity.md; warehouse
``api/integrity.py``), as ``application/vnd.pypi.integrity.v1+json`` (or ``application/json`` when
asked), 404 when the project, version, file or provenance is not there, 406 for another
``Accept``. headwater answers it for every index from what the index serves: the project's page
(so a composed index's policy decides which source's file it is, as for the file itself), then
the ``<file>.provenance`` kept beside the file by an upload, a mirror or a proxy. A private
index's route is as private as its pages (the read guard in :class:`~headwater.server.app.IndexApp`
runs first).
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from headwater.provenance import INTEGRITY_MEDIA_TYPE
from headwater.repository.base import FileRef, ServedSource, SourceUnavailable
from headwater.repository.index import Refusal
from headwater.server import params
from headwater.server.responses import NO_STORE, header, send_bytes, send_text, unavailable_text
from headwater.server.types import Headers, Scope, Send
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.json import parse_project_page_json
from headwater.simple.model import File
from headwater.simple.names import NormalizedName
from headwater.storage.base import StorageError
from headwater.storage.layout import WEB, provenance_key

__all__ = ["PROVENANCE_CACHE_CONTROL", "integrity", "listed_file", "send_page_failure"]

#: A provenance document may gain attestations over time (PEP 740: "mutable"): not immutable.
PROVENANCE_CACHE_CONTROL = b"max-age=600, public"


def _accepts(accept: bytes | None) -> bytes | None:
    """The media type to answer with, or None when the client accepts neither."""
    if not accept:
        return INTEGRITY_MEDIA_TYPE.encode()
    text = accept.decode("latin-1").lower()
    for item in text.split(","):
        kind = item.split(";", 1)[0].strip()
        if kind in (INTEGRITY_MEDIA_TYPE, "*/*", "application/*"):
            return INTEGRITY_MEDIA_TYPE.encode()
        if kind == "application/json":
            return b"application/json"
    return None


async def integrity(
    scope: Scope, send: Send, source: ServedSource, index: str, tail: list[str], head: bool
) -> int:
    """Answer the route for ``tail`` (``[project, version, filename, "provenance"]``); returns
    the status sent. ``source`` is the index's served source (its ``page`` and ``file``)."""
    sender = send
    if len(tail) != 4 or tail[3] != "provenance" or not all(tail[:3]):
        await send_text(sender, 404, f"no such URL: {scope['path'][:300]}", head=head)
        return 404
    media = _accepts(header(scope, b"accept"))
    if media is None:
        await send_text(
            sender,
            406,
            f"the integrity API answers {INTEGRITY_MEDIA_TYPE} or application/json",
            head=head,
        )
        return 406
    raw_project, raw_version, filename = tail[:3]
    try:
        project = params.project(raw_project)
        parsed = parse_filename(filename)
        wanted = Version(raw_version)
    except (params.BadParameter, InvalidFilename, InvalidVersion, ValueError):
        await send_text(sender, 404, f"no provenance at {scope['path'][:300]}", head=head)
        return 404
    if parsed.name != project or Version(str(parsed.version)) != wanted:
        await send_text(
            sender,
            404,
            f"{filename[:200]!r} is not a file of {project} {raw_version[:100]}",
            head=head,
        )
        return 404
    try:
        found = await listed_file(source, project, filename)
        sha256 = found.hashes.get("sha256") if found is not None else None
        ref: FileRef | None = None
        if sha256:
            key = provenance_key(sha256, filename).removeprefix(f"{WEB}/packages/")
            ref = await source.file(key)
        body = None
        if ref is not None:
            body = ref.body if ref.body is not None else await ref.storage.read_bytes(ref.key)
    except (Refusal, SourceUnavailable, StorageError) as exc:
        # A refused project: no file of it, nor its provenance, is served.
        return await send_page_failure(sender, index, exc, head=head)
    if body is None:
        await send_text(
            sender,
            404,
            f"index {index!r} has no provenance for {filename[:200]!r}",
            head=head,
        )
        return 404
    headers: Headers = [
        (b"content-type", media),
        (b"cache-control", PROVENANCE_CACHE_CONTROL),
        (b"access-control-allow-origin", b"*"),
        (b"vary", b"Accept"),
    ]
    await send_bytes(sender, 200, headers, body, head=head)
    return 200


async def listed_file(source: ServedSource, project: NormalizedName, filename: str) -> File | None:
    """The entry of ``filename`` on the page of ``project`` as ``source`` serves it (decided by
    its policy, as pip would read it), or None when the page does not list it.

    Raises:
        Refusal, SourceUnavailable, StorageError: as :meth:`ServedSource.page` does.
        InvalidPage: the page does not parse.
    """
    page = await source.page(project, "json")
    if page is None:
        return None
    model = parse_project_page_json(page.body)
    return next((f for f in model.files if f.filename == filename), None)


async def send_page_failure(
    send: Send, index: str, exc: Refusal | SourceUnavailable | StorageError, *, head: bool
) -> int:
    """Answer a route about one listed file whose project page could not be had: the policy's
    refusal with its fix, or 503 naming what is unavailable (never stored by a cache)."""
    if isinstance(exc, Refusal):
        refused = exc.refused
        text = f"{refused.message}\nTo resolve: {refused.fix}"
        await send_text(send, refused.status, text, head=head, extra=[NO_STORE])
        return refused.status
    await send_text(send, 503, unavailable_text(index, exc), head=head, extra=[NO_STORE])
    return 503
