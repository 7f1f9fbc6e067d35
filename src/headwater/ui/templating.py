"""The Jinja2 environment of the interface: autoescaping everywhere, and the helpers templates use.

Autoescape is on for every template (not only ``.html``): text from uploads and upstreams is
escaped wherever it lands. ``StrictUndefined`` turns a misspelt variable into an error in the
tests instead of an empty string on a page. The only markup that is not escaped is a README
rendered and sanitised by :mod:`headwater.ui.readme` (marked safe there, nowhere else).

Filters (``{{ value|name }}``):

============= ================================================================================
``size``      bytes as a person reads them: ``1.2 MB`` (decimal units, as PyPI shows sizes)
``when``      a datetime or ISO 8601 text as ``2026-12-02 16:40 UTC``; "unknown" for None
``number``    an integer with thousands separators: ``700,000``
``printable`` text with control characters shown as escapes (``\\x1b``), at most N characters
============= ================================================================================
"""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2

from headwater.errors import printable

__all__ = ["format_size", "format_when", "make_environment"]


def format_size(size: int | None) -> str:
    """``size`` bytes in decimal units with three significant digits."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.3g} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def format_when(value: datetime | str | None) -> str:
    """A point in time as ``YYYY-MM-DD HH:MM UTC``; "unknown" when there is none."""
    if value is None or value == "":
        return "unknown"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return printable(str(value), 40)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _number(value: int | None) -> str:
    return "unknown" if value is None else f"{value:,}"


def _printable(value: object, limit: int = 300) -> str:
    return printable(str(value), limit)


def make_environment() -> jinja2.Environment:
    """The interface's template environment (templates from this package)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("headwater.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = format_size
    env.filters["when"] = format_when
    env.filters["number"] = _number
    env.filters["printable"] = _printable
    return env
