"""Argument checks and small queries shared by the database modules (private)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from headwater.db import schema as t
from headwater.db.errors import InvalidArgument, NotFound
from headwater.simple.names import NormalizedName, normalize_name
from headwater.simple.text import unsafe_character

__all__ = [
    "check_index",
    "check_line",
    "check_sha256",
    "check_text",
    "check_urls",
    "check_user_name",
    "journal",
    "name_of",
    "now",
    "project_row",
    "require_project",
    "require_user",
]

# Index and user names end up in URLs, paths and log lines: the same alphabet as project names.
_SIMPLE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?\Z")
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
_MAX_URL = 2000


def now() -> datetime:
    return datetime.now(UTC)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_index(index: str) -> str:
    """``index`` if it is a valid index name (1-100 of ``A-Za-z0-9._-``, alnum at both ends)."""
    if not isinstance(index, str) or _SIMPLE_NAME.match(index) is None:
        raise InvalidArgument(
            f"invalid index name {_shown(index)}: use 1-100 ASCII letters, digits, '.', '_' or "
            "'-', starting and ending with a letter or digit"
        )
    return index


def check_user_name(user: str) -> str:
    """``user`` if it is a valid user name (same alphabet as index names)."""
    if not isinstance(user, str) or _SIMPLE_NAME.match(user) is None:
        raise InvalidArgument(
            f"invalid user name {_shown(user)}: use 1-100 ASCII letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return user


def check_sha256(value: str, what: str) -> str:
    if not isinstance(value, str) or _HEX64.match(value) is None:
        raise InvalidArgument(f"{what} must be 64 lowercase hex digits, not {_shown(value)}")
    return value


def check_text(value: str | None, what: str, *, limit: int = 10_000) -> None:
    """Refuse free text no database can store alike: NUL (PostgreSQL text cannot hold it) and
    text over ``limit`` characters."""
    if value is None:
        return
    if not isinstance(value, str) or "\x00" in value or len(value) > limit:
        raise InvalidArgument(
            f"invalid {what}: text of at most {limit} characters without NUL, not {_shown(value)}"
        )


def check_line(value: str | None, what: str, *, limit: int = 10_000) -> None:
    """Refuse what :func:`check_text` refuses, and any character a page cannot carry: these
    texts (yank and status reasons) are written into HTML attributes and JSON for every client,
    so they are one line of printable text (headwater.simple.text: no control characters, no
    TAB or line breaks, no noncharacters). Checked here, below every route to the database (the
    management API, ``headwater admin``), so each says the same."""
    found = unsafe_character(value) if isinstance(value, str) else None
    if value is not None and found is not None:
        raise InvalidArgument(
            f"invalid {what}: character {found} at position {_position(value, found)} cannot "
            "appear in a page (control characters, tabs, line breaks and noncharacters are "
            "refused); write it as one line of printable text. Nothing was changed."
        )
    check_text(value, what, limit=limit)


def _position(value: str, found: str) -> int:
    return value.index(chr(int(found[2:], 16)))


def check_urls(urls: Iterable[str], what: str) -> list[str]:
    """``urls`` without duplicates (first one kept); each an absolute ``http``/``https`` URL with
    a host (PEP 708: tracks and alternate-locations name other indexes' project pages), no
    whitespace or control characters, at most 2000 characters."""
    if isinstance(urls, str):
        raise InvalidArgument(f"{what} must be a list of URLs, not one string")
    seen: list[str] = []
    for url in urls:
        if (
            not isinstance(url, str)
            or not url
            or len(url) > _MAX_URL
            or not url.isprintable()
            or any(c.isspace() for c in url)
            or not _is_http_url(url)
        ):
            raise InvalidArgument(
                f"invalid URL in {what}: {_shown(url)} (give the absolute http(s) URL of a "
                "project page, e.g. https://pypi.org/simple/NAME/, without spaces or control "
                "characters)"
            )
        if url not in seen:
            seen.append(url)
    return seen


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def name_of(name: str) -> NormalizedName:
    """The normalized project name (raises headwater.simple.InvalidName if invalid)."""
    return normalize_name(name)


def project_row(
    conn: Connection, index: str, name: NormalizedName
) -> Row[tuple[object, ...]] | None:
    return conn.execute(
        sa.select(t.projects).where(t.projects.c.index == index, t.projects.c.name == name)
    ).first()


def require_project(conn: Connection, index: str, name: NormalizedName) -> Row[tuple[object, ...]]:
    row = project_row(conn, index, name)
    if row is None:
        raise NotFound(f"no project {name!r} in index {index!r}")
    return row


def require_user(conn: Connection, user: str) -> None:
    found = conn.execute(sa.select(t.users.c.name).where(t.users.c.name == user)).first()
    if found is None:
        raise NotFound(f"no user {user!r}: create it first (`headwater user create {user}`)")


def journal(
    conn: Connection,
    index: str,
    project: NormalizedName,
    action: str,
    *,
    version: str | None = None,
    filename: str | None = None,
    actor: str | None = None,
) -> int:
    """Record a change; return its new serial and make it the project's ``last_serial``."""
    result = conn.execute(
        sa.insert(t.journal).values(
            index=index,
            project=project,
            action=action,
            version=version,
            filename=filename,
            actor=actor,
            time=now(),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    serial = int(key[0])
    conn.execute(
        sa.update(t.projects)
        .where(t.projects.c.index == index, t.projects.c.name == project)
        .values(last_serial=serial)
    )
    return serial
