"""The I/O of a closure: fetch the pages and core metadata :func:`compute_closure` asks for.

The pure fixpoint (:mod:`headwater.sync.closure`) answers "what else do I need"; this driver
fetches exactly that, ``workers`` requests at a time, and asks again, until the answer is
complete. Each round fetches what the previous one discovered, so the number of rounds is the
depth of the dependency graph, and the requests in a round run concurrently.

Core metadata comes from the PEP 658 ``.metadata`` file when the page offers it (a few KiB,
checked against the sha256 the page gives); otherwise from the file itself, downloaded and
checked against the page's sha256: the wheel's ``METADATA``, or an sdist's ``PKG-INFO`` and
``pyproject.toml`` ``build-system.requires``. A project the upstream does not have is an answer
(``None``), not an error; any other failure stops the run (a mirror must not carry a closure
it could not compute).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import tomllib
import zipfile
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from headwater.errors import HeadwaterError, InvalidInput
from headwater.repository.errors import UpstreamNotFound
from headwater.repository.http import HttpRepository
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.storage.base import Storage, StorageError
from headwater.storage.layout import metadata_key
from headwater.storage.memory import MemoryStorage
from headwater.sync.candidates import SdistPolicy
from headwater.sync.closure import (
    Closure,
    CoreMetadata,
    Memo,
    MetadataKey,
    compute_closure,
    parse_core_metadata,
)
from headwater.sync.environments import Environment
from headwater.sync.lockfiles import Inputs
from headwater.sync.wheels import wheel_metadata

__all__ = ["ClosureFetchError", "FetchedClosure", "fetch_closure"]

# The most bytes of one sdist member read (PKG-INFO, pyproject.toml): a few KiB in practice.
_MAX_MEMBER = 4 << 20


class ClosureFetchError(HeadwaterError):
    """The closure could not be computed: a page or a file could not be fetched or verified.
    Nothing was synced; run again when the upstream answers."""


class FetchedClosure:
    """The complete closure, the pages it was computed from, and what fetching it cost."""

    def __init__(
        self, closure: Closure, pages: dict[NormalizedName, ProjectPage | None], rounds: int
    ) -> None:
        self.closure = closure
        self.pages = pages
        self.rounds = rounds


async def fetch_closure(
    upstream: HttpRepository,
    inputs: Inputs,
    environments: Iterable[Environment],
    *,
    sdists: SdistPolicy = "fallback",
    build_requirements: bool = False,
    prereleases: bool = False,
    workers: int = 16,
    progress: Callable[[str], None] | None = None,
    tree: Storage | None = None,
) -> FetchedClosure:
    """Compute the closure of ``inputs`` for ``environments`` from ``upstream``.

    ``tree``: the mirror's own tree; a ``.metadata`` file it already holds for a file (written
    after it was verified against the upstream's digest) is read there instead of fetched, so a
    run after a small change fetches pages and only the new files' metadata.

    Raises:
        ClosureFetchError: a page or file failed after retries, or did not verify.
    """
    targets = tuple(environments)
    pages: dict[NormalizedName, ProjectPage | None] = {}
    metadata: dict[MetadataKey, CoreMetadata | None] = {}
    limit = asyncio.Semaphore(workers)
    rounds = 0
    memo: Memo = {}
    while True:
        closure = compute_closure(
            inputs,
            targets,
            pages,
            metadata,
            sdists=sdists,
            build_requirements=build_requirements,
            prereleases=prereleases,
            memo=memo,
        )
        if closure.complete:
            return FetchedClosure(closure, pages, rounds)
        rounds += 1
        if progress is not None:
            progress(
                f"closure round {rounds}: {len(closure.missing_pages)} pages, "
                f"{len(closure.missing_metadata)} metadata files"
            )

        async def page(name: NormalizedName) -> None:
            async with limit:
                try:
                    pages[name] = (await upstream.project_page(name)).page
                except UpstreamNotFound:
                    pages[name] = None
                except HeadwaterError as exc:
                    raise ClosureFetchError(
                        f"the closure needs the page of {name}, which could not be fetched: {exc}"
                    ) from exc

        async def meta(key: MetadataKey) -> None:
            name, filename = key
            found = pages.get(name)
            file = (
                None
                if found is None
                else next((f for f in found.files if f.filename == filename), None)
            )
            if file is None:  # the pure step only asks for files it saw on a page
                metadata[key] = None
                return
            async with limit:
                metadata[key] = await _metadata(upstream, file, build_requirements, tree)

        await _all(page(name) for name in sorted(closure.missing_pages))
        # Pages first: a metadata request names a file of a page fetched in an earlier round.
        await _all(meta(key) for key in sorted(closure.missing_metadata))


async def _all(jobs: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run ``jobs`` concurrently; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(job)
    except BaseExceptionGroup as failures:
        first = failures.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def _download(
    upstream: HttpRepository, url: str, sha256: str | None, size: int | None
) -> bytes:
    storage = MemoryStorage()
    try:
        await upstream.fetch_verified(url, sha256=sha256, size=size, storage=storage, key="f")
    except HeadwaterError as exc:
        raise ClosureFetchError(
            f"the closure needs {url} to read dependencies, which could not be fetched: {exc}"
        ) from exc
    return await storage.read_bytes("f")


async def _metadata(
    upstream: HttpRepository, file: File, build_requirements: bool, tree: Storage | None
) -> CoreMetadata | None:
    """The core metadata of ``file``: from the tree's ``.metadata``, the upstream's, or the file."""
    sha256 = file.hashes.get("sha256")
    is_sdist = not file.filename.endswith(".whl")
    if tree is not None and sha256 and not is_sdist and file.has_metadata:
        local = await _from_tree(tree, sha256, file)
        if local is not None:
            return parse_core_metadata(local)
    if file.has_metadata and not (is_sdist and build_requirements):
        promised = file.core_metadata if isinstance(file.core_metadata, dict) else {}
        digest = promised.get("sha256") or None
        return parse_core_metadata(await _download(upstream, file.metadata_url, digest, None))
    body = await _download(upstream, file.url, sha256, file.size)
    if not is_sdist:
        inside = wheel_metadata(file.filename, body)
        return None if inside is None else parse_core_metadata(inside)
    return await asyncio.to_thread(_sdist_metadata, file.filename, body)


async def _from_tree(tree: Storage, sha256: str, file: File) -> bytes | None:
    """The tree's ``.metadata`` of ``file`` when it holds one that matches the digest the page
    promises now (a page that changed its promise is asked again)."""
    try:
        data = await tree.read_bytes(metadata_key(sha256, file.filename))
    except (StorageError, InvalidInput):
        return None  # not in the tree (or a name the layout refuses): fetch it
    promised = file.core_metadata.get("sha256") if isinstance(file.core_metadata, dict) else None
    if promised and hashlib.sha256(data).hexdigest() != promised.lower():
        return None
    return data


def _sdist_metadata(filename: str, body: bytes) -> CoreMetadata | None:
    """PKG-INFO and ``build-system.requires`` of an sdist (top-level directory members only)."""
    members: dict[str, bytes] = {}
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                for info in archive.infolist():
                    parts = info.filename.split("/")
                    wanted = len(parts) == 2 and parts[1] in ("PKG-INFO", "pyproject.toml")
                    if wanted and info.file_size <= _MAX_MEMBER:
                        members[parts[1]] = archive.read(info)
        else:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as archive:
                for member in archive:
                    parts = member.name.split("/")
                    if (
                        len(parts) == 2
                        and parts[1] in ("PKG-INFO", "pyproject.toml")
                        and member.isfile()
                        and member.size <= _MAX_MEMBER
                    ):
                        handle = archive.extractfile(member)
                        if handle is not None:
                            members[parts[1]] = handle.read()
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError):
        return None
    if "PKG-INFO" not in members:
        return None
    build: tuple[str, ...] | None = None
    if "pyproject.toml" in members:
        try:
            system = tomllib.loads(members["pyproject.toml"].decode()).get("build-system", {})
            requires = system.get("requires") if isinstance(system, dict) else None
            if isinstance(requires, list):
                build = tuple(r for r in requires if isinstance(r, str))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
            build = None
    if build is None:
        # PEP 518: a project without [build-system] builds with setuptools.
        build = ("setuptools>=40.8.0",)
    return parse_core_metadata(members["PKG-INFO"], build)
