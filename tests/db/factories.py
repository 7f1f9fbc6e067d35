"""Small builders for the database tests."""

from __future__ import annotations

from datetime import UTC, datetime

from headwater.db import NewFile


def sha(char: str) -> str:
    """A valid sha256 hex digest made of one repeated character."""
    return char * 64


def new_file(
    filename: str = "acme_tools-1.0-py3-none-any.whl",
    *,
    version: str = "1.0",
    digest: str = "a",
    **extra: object,
) -> NewFile:
    """A NewFile with plausible values; ``digest`` is the repeated hex character of its sha256."""
    fields: dict[str, object] = {
        "filename": filename,
        "version": version,
        "sha256": sha(digest),
        "size": 1234,
        "upload_time": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "storage_key": f"{digest * 2}/{digest * 2}/{digest * 60}/{filename}",
    }
    fields.update(extra)
    return NewFile(**fields)  # type: ignore[arg-type]
