"""READMEs of projects: the newest release's ``.metadata`` fetched from the index that serves
it, rendered by :mod:`headwater.ui.readme` once per metadata file, and kept (by bytes)."""

from __future__ import annotations

import asyncio

from headwater.repository.base import ServedSource
from headwater.server.lru import ByteBudgetLRU
from headwater.ui.project_view import ProjectView
from headwater.ui.readme import Readme, render_metadata

__all__ = ["MAX_METADATA", "README_CACHE_BYTES", "Readmes"]

#: README renderings kept per process, by the metadata file they came from.
README_CACHE_BYTES = 16 * 1024 * 1024
#: Metadata files larger than this are not read for a README.
MAX_METADATA = 4 * 1024 * 1024


class Readmes:
    """READMEs of projects, fetched from the newest release's ``.metadata`` and rendered once
    per metadata file (see :mod:`headwater.ui.readme`)."""

    def __init__(self) -> None:
        self._cache: ByteBudgetLRU[tuple[str, str], Readme] = ByteBudgetLRU(README_CACHE_BYTES)
        self._none = Readme("", "none")

    async def get(self, source: ServedSource, view: ProjectView) -> Readme | None:
        release = view.latest
        if release is None:
            return None
        chosen = next((f for f in release.files if f.metadata_href and f.kind == "wheel"), None)
        chosen = chosen or next((f for f in release.files if f.metadata_href), None)
        if chosen is None or chosen.metadata_href is None:
            return None
        path = chosen.metadata_href.partition("/packages/")[2]
        if not path:
            return None
        key = (view.index, path)
        cached = self._cache.get(key)
        if cached is not None:
            return None if cached is self._none else cached
        try:
            data = await _read(source, path)
        except Exception:  # an unreadable README is left out, never an error page
            return None
        if data is None:
            return None
        readme = await asyncio.to_thread(render_metadata, data)
        self._cache.put(key, readme or self._none, len(readme.html) if readme else 1)
        return readme


async def _read(source: ServedSource, path: str) -> bytes | None:
    ref = await source.file(path)
    if ref is None or ref.size > MAX_METADATA:
        return None
    if ref.body is not None:
        return ref.body
    if ref.stream is not None:
        chunks: list[bytes] = []
        try:
            async for chunk in ref.stream:
                chunks.append(chunk)
        finally:
            await ref.stream.aclose()
        return b"".join(chunks)
    return await ref.storage.read_bytes(ref.key)
