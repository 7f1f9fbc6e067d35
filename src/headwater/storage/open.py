"""Open the storage a configured URL names: a directory, or an S3 bucket under a prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from headwater.storage.base import Storage
from headwater.storage.filesystem import FileStorage
from headwater.storage.location import S3Options, is_s3_url, parse_s3_url

__all__ = ["aclose_storage", "describe", "exclusive_access", "open_storage"]


def open_storage(url: str, *, s3: S3Options | None = None, mode: int | None = None) -> Storage:
    """The storage at ``url``: ``s3://bucket/prefix`` (with ``s3`` options) or a directory.

    ``mode`` is the file system's permission mode for new files (an S3 bucket's access is its
    policy's business). Opening does no I/O; the first operation connects.

    Raises:
        InvalidStorageURL: the S3 URL or its options are malformed.
    """
    if is_s3_url(url):
        # Imported here: the S3 client takes a while to import and only S3 users need it.
        from headwater.storage.s3 import S3Storage

        return S3Storage(parse_s3_url(url, s3))
    if mode is None:
        return FileStorage(Path(url))
    return FileStorage(Path(url), mode=mode)


async def aclose_storage(storage: object) -> None:
    """Close what ``storage`` holds open (an S3 client's connections); nothing for the others."""
    aclose = getattr(storage, "aclose", None)
    if aclose is not None:
        await aclose()


def describe(storage: Storage) -> str:
    """How messages name a storage: its directory or ``s3://bucket/prefix`` (never a secret)."""
    if isinstance(storage, FileStorage):
        return str(storage.root)
    location = getattr(storage, "location", None)
    return location.url() if location is not None else repr(storage)


@asynccontextmanager
async def exclusive_access(storage: Storage) -> AsyncIterator[None]:
    """Hold ``storage`` for this process alone while a mirror or a repair writes it: a file lock
    for a directory (then its temp files from a killed run are removed), a lease object for an S3
    prefix. Storages with neither (memory) are not shared.

    Raises:
        StorageError: another process holds it (nothing was changed).
    """
    if isinstance(storage, FileStorage):
        with storage.exclusive():
            storage.clean_temp()  # leftovers of a killed run; safe only while we hold the lock
            yield
        return
    lease = getattr(storage, "exclusive", None)
    if lease is None:
        yield
        return
    async with lease():
        yield
