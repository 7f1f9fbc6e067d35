"""The words of a refusal: one line each for the message and the fix.

Both travel in an HTTP header parameter (and from there into what pip and uv print), so they are one
line with no double quotes; the fix is TOML the user can paste, written with single-quoted strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from headwater.policy.rules import Rules
from headwater.simple.names import NormalizedName

__all__ = ["detail", "join", "label", "labels", "one_line", "route_toml"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+\Z")
_SPACES = re.compile(r"\s+")
_MAX_DETAIL = 300


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` on one line without double quotes (they would end a header's quoted string)."""
    flat = _SPACES.sub(" ", text.replace('"', "'")).strip()
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    return flat


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
