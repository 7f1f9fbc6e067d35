"""Open the storage a configured URL names: a directory, or an S3 bucket under a prefix."""

from __future__ import annotations

from pathlib import Path

from headwater.storage.base import Storage
from headwater.storage.filesystem import FileStorage
from headwater.storage.location import S3Options, is_s3_url, parse_s3_url

__all__ = ["aclose_storage", "open_storage"]


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
