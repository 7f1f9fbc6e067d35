"""PEP 691 content negotiation: which representation of a page a client gets.

Spec: simple-repository-api "Version + Format Selection" and "Recommendations" (items 43-53 of
``standards.md``). The server side is :func:`select_content_type`; :data:`CLIENT_ACCEPT` is what
headwater sends when it is the client.
"""

from __future__ import annotations

from typing import Final

from headwater.errors import InvalidInput

__all__ = [
    "CLIENT_ACCEPT",
    "HTML_V1",
    "JSON_V1",
    "LATEST_HTML",
    "LATEST_JSON",
    "SUPPORTED",
    "TEXT_HTML",
    "VARY",
    "NotAcceptable",
    "is_json",
    "select_content_type",
]

JSON_V1: Final = "application/vnd.pypi.simple.v1+json"
HTML_V1: Final = "application/vnd.pypi.simple.v1+html"
#: Spec: "text/html is an alias for application/vnd.pypi.simple.v1+html".
TEXT_HTML: Final = "text/html"
#: Spec: the "latest" meta-version; the server MUST answer with the concrete type (item 44).
LATEST_JSON: Final = "application/vnd.pypi.simple.latest+json"
LATEST_HTML: Final = "application/vnd.pypi.simple.latest+html"
SUPPORTED: Final = (JSON_V1, HTML_V1, TEXT_HTML)
#: Negotiated responses vary on Accept, so a cache keyed on the URL must key on Accept too (item 53).
VARY: Final = "Accept"
#: What headwater sends as a client: every type it reads, text/html as the last resort (item 50).
CLIENT_ACCEPT: Final = f"{JSON_V1}, {HTML_V1};q=0.1, {TEXT_HTML};q=0.01"

_ALIASES = {LATEST_JSON: JSON_V1, LATEST_HTML: HTML_V1}
# Server preference when the client gives several types the same q (item 49: the most expressive
# format first, text/html as the last resort).
_PREFERENCE = {JSON_V1: 0, HTML_V1: 1, TEXT_HTML: 2}
# Clients that predate PEP 691 send "*/*" (curl, old tools) and parse HTML, so a match that comes
# only from "*/*" gets text/html, as PyPI does; a client that names JSON (or application/*) gets JSON.
_WILDCARD_PREFERENCE = {TEXT_HTML: 0, HTML_V1: 1, JSON_V1: 2}
_MAX_ACCEPT = 4096  # longer headers are not from a real client; read only this much


class NotAcceptable(InvalidInput):
    """Nothing the client accepts can be served (the server answers 406)."""


def is_json(content_type: str) -> bool:
    """Whether a content type chosen by :func:`select_content_type` is the JSON representation."""
    return content_type == JSON_V1


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    """Media ranges and their q-values; malformed ranges are ignored, as RFC 9110 allows."""
    ranges: list[tuple[str, float]] = []
    for part in accept[:_MAX_ACCEPT].split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        if media.count("/") != 1:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
                break
        if 0.0 <= q <= 1.0:  # spec: q-values are between 0 and 1
            ranges.append((_ALIASES.get(media, media), q))
    return ranges


def _match(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int] | None:
    """The q-value of the most specific range matching ``media_type`` (RFC 9110 12.5.1), and
    how specific it was (2 exact, 1 ``type/*``, 0 ``*/*``); None when no range matches."""
    kind = media_type.split("/", 1)[0]
    best: tuple[float, int] | None = None
    for media, q in ranges:
        if media == media_type:
            specificity = 2
        elif media == f"{kind}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[1]:
            best = (q, specificity)
    return best


def select_content_type(
    accept: str | None,
    format_param: str | None = None,
    *,
    supported: tuple[str, ...] = SUPPORTED,
) -> str:
    """Choose the concrete Content-Type to answer with.

    ``accept`` is the request's Accept header (``None`` when absent: spec step 2 treats that as
    ``*/*``). ``format_param`` is the optional ``?format=`` URL parameter, which overrides Accept when
    present (item 51). ``latest`` types are answered with the concrete ``v1`` type (item 44). The
    highest q wins; at equal q a type the client names beats ``type/*``, which beats ``*/*``; among
    equals JSON is preferred (item 49), except that ``*/*`` alone gets ``text/html`` as on PyPI.

    Raises:
        NotAcceptable: ``format_param`` names an unsupported type, or no supported type is acceptable
            (the recommended answer is 406, never 300: item 46).
    """
    if format_param is not None:
        wanted = _ALIASES.get(format_param.strip().lower(), format_param.strip().lower())
        if wanted in supported:
            return wanted
        raise NotAcceptable(
            f"?format={format_param[:100]!r} is not a format this index serves; use one of "
            + ", ".join(supported)
        )
    ranges = _parse_accept(accept) if accept and accept.strip() else [("*/*", 1.0)]
    best: tuple[tuple[float, int, int], str] | None = None
    for media_type in supported:
        found = _match(media_type, ranges)
        if found is None or found[0] <= 0.0:  # q=0 means "not acceptable"
            continue
        q, specificity = found
        order = _WILDCARD_PREFERENCE if specificity == 0 else _PREFERENCE
        key = (q, specificity, -order[media_type])
        if best is None or key > best[0]:
            best = (key, media_type)
    if best is None:
        shown = accept if accept is None or len(accept) <= 200 else accept[:200] + "..."
        raise NotAcceptable(
            f"none of the types in Accept: {shown!r} can be served; this index serves "
            + ", ".join(supported)
        )
    return best[1]
