"""The words of a refusal: one line each for the message and the fix.

Both travel in an HTTP header parameter (and from there into what pip and uv print), so they are one
line with no double quotes; the fix is TOML the user can paste, written with single-quoted strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote_plus

from headwater.errors import printable
from headwater.policy.rules import Rules
from headwater.simple.names import NormalizedName

__all__ = [
    "detail",
    "header_safe",
    "join",
    "label",
    "labels",
    "one_line",
    "query_safe",
    "route_toml",
]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+\Z")
_SPACES = re.compile(r"\s+")
_MAX_DETAIL = 300


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` on one line without double quotes (they would end a header's quoted string)."""
    flat = _SPACES.sub(" ", text.replace('"', "'")).strip()
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    return flat


def header_safe(text: str) -> str:
    """``text`` as one printable line of latin-1 without double quotes or backslashes (it goes
    in a quoted header parameter)."""
    flat = printable(" ".join(text.split()), 1000).replace('"', "'").replace("\\", "/")
    return flat.encode("latin-1", "replace").decode("latin-1")


def query_safe(text: str) -> str:
    """``text`` as a URL query value that stays readable where an installer prints the URL:
    spaces as ``+``, the punctuation a query keeps as it is, quotes dropped (not ``%27``)."""
    return quote_plus(
        " ".join(text.split()).replace("'", "").replace('"', ""), safe="[]=,:;/()*@!$"
    )


def detail(text: str | None) -> str:
    """An error text from a source, made safe to quote inside a message."""
    return one_line(text or "no reason given", _MAX_DETAIL)


def label(rules: Rules, source: str) -> str:
    """``'pypi' (proxy)``: a source with its kind."""
    spec = rules.source(source)
    return f"{source!r} ({spec.kind})" if spec is not None else repr(source)


def join(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def labels(rules: Rules, sources: Sequence[str]) -> str:
    """Several sources with their kinds, joined for a sentence."""
    return join([label(rules, s) for s in sources])


def route_toml(rules: Rules, project: NormalizedName, sources: Sequence[str]) -> str:
    """The route that sends ``project`` to ``sources``, as one line of pasteable TOML."""
    index = rules.index if _BARE_KEY.match(rules.index) else f"'{rules.index}'"
    listed = ", ".join(f"'{s}'" for s in sources)
    return f"[[index.{index}.routes]] projects = ['{project}'] sources = [{listed}]"
