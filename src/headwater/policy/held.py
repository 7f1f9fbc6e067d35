"""A held file on the page an index serves: listed, yanked with its refusal, at a URL that refuses.

The publisher guard (:mod:`headwater.policy.continuity`) holds a release; this module decides how
the hold looks to pip and uv, for every source that writes or serves pages (a mirror's sync, a
caching proxy) and for the server route that answers a held file's URL. A held file stays on
the page, changed as follows:

=================  ==============================================================================
held entry         the upstream's file entry with ``yanked`` set, its reason the refusal (the
                   guard's message, then ``To resolve:`` and the fix), its URL the *held URL*,
                   no ``.metadata`` and no provenance (neither is kept for a held file)
held URL           ``../../held/<project>/<filename>?headwater-refused=<message>&fix=<fix>``:
                   relative to the project page, like ``../../packages/...``, so it resolves
                   inside whichever index serves the page; ``headwater serve`` answers it with
                   the refusal (409) and never with the file; the query carries the text so an
                   installer prints it even where a plain web server answers the URL with a 404
refusal text       one line, printable (control characters shown as ``\\xNN``), at most
                   :data:`MAX_TEXT` characters per part (:data:`MAX_URL_TEXT` once quoted in the
                   URL, short enough for any server's request line), so hostile
                   identities or versions cannot move a terminal's cursor or end a header
=================  ==============================================================================

Why yanked (PEP 592) and not absent or plainly listed, measured with pip 23.2 and 26.3 and uv
0.13 (docs/policy.md, "Held releases in pip and uv"): an installer skips a yanked release unless
the request pins it (``==2.0``), so the requests an older accepted release satisfies keep
working as they did before the release was published, while a request for the held release
reaches the held URL (pip and uv print it, with the refusal in its query) or, for uv, fails
resolution quoting the yank reason. An absent release gives only "no matching distribution"; a
plainly listed one would fail every unpinned install of the project, handing whoever publishes
an unattested release the power to stop every build that uses the project.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

import msgspec

from headwater.errors import printable
from headwater.policy.messages import one_line, query_safe
from headwater.simple.model import File, ProjectPage

__all__ = [
    "FIX_PARAM",
    "HELD_PREFIX",
    "HELD_SECTION",
    "MAX_TEXT",
    "MAX_URL_TEXT",
    "REFUSED_PARAM",
    "HeldFile",
    "held_entry",
    "held_reason",
    "held_url",
    "hold_files",
    "refusal_text",
    "upstream_hold",
]

#: The URL section of held files (``/<index>/held/<project>/<filename>``).
HELD_SECTION = "held"
#: How a held URL starts, relative to its project page.
HELD_PREFIX = f"../../{HELD_SECTION}/"
#: The query parameters of a held URL (the first is the one server/refusals.py redirects with).
REFUSED_PARAM = "headwater-refused"
FIX_PARAM = "fix"
#: The longest message or fix a held entry carries (characters, before quoting).
MAX_TEXT = 600
#: The longest message or fix in a held URL, once quoted (the rest is in the yank reason and the
#: server's answer): servers refuse long request lines (nginx: 8 KiB by default), and one
#: character may take 12 once percent-encoded.
MAX_URL_TEXT = 2000
_SEPARATOR = " To resolve: "


class _Hold(msgspec.Struct, frozen=True, kw_only=True):
    filename: str
    message: str
    fix: str


class HeldFile(Protocol):
    """What a hold says about one file (:class:`headwater.policy.continuity.Held` and the
    mirror's stored records both are one)."""

    @property
    def filename(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def fix(self) -> str: ...


def _clean(text: str) -> str:
    return printable(one_line(text), MAX_TEXT)


def refusal_text(message: str, fix: str) -> str:
    """The one-line refusal of a held file: ``<message> To resolve: <fix>``."""
    return f"{_clean(message)}{_SEPARATOR}{_clean(fix)}"


def held_url(project: str, filename: str, message: str, fix: str) -> str:
    """The held URL of ``filename`` of ``project`` (relative to the project's page)."""
    path = f"{HELD_PREFIX}{quote(project, safe='')}/{quote(filename, safe='')}"
    return f"{path}?{REFUSED_PARAM}={_url_text(message)}&{FIX_PARAM}={_url_text(fix)}"


def _url_text(text: str) -> str:
    clean = _clean(text)
    quoted = query_safe(clean)
    while len(quoted) > MAX_URL_TEXT:  # shrinks every time; "..." alone fits
        clean = clean[: max(0, len(clean) * MAX_URL_TEXT // len(quoted) - 3)]
        quoted = query_safe(clean + "...")
    return quoted


def held_entry(project: str, file: File, hold: HeldFile) -> File:
    """``file`` as a page lists it while it is held."""
    return msgspec.structs.replace(
        file,
        url=held_url(project, file.filename, hold.message, hold.fix),
        yanked=True,
        yanked_reason=refusal_text(hold.message, hold.fix),
        core_metadata=False,
        gpg_sig=None,
        provenance=None,
    )


def hold_files(page: ProjectPage, held: Iterable[HeldFile]) -> ProjectPage:
    """``page`` with each held file replaced by its held entry (files not on the page are
    ignored; the others are unchanged, in their order)."""
    holds = {h.filename: h for h in held}
    if not holds:
        return page
    files = tuple(
        held_entry(page.name, f, holds[f.filename]) if f.filename in holds else f
        for f in page.files
    )
    return msgspec.structs.replace(page, files=files)


def held_reason(file: File) -> str | None:
    """The refusal of ``file`` when the page lists it as held (its URL is a held URL and it is
    yanked), else None."""
    if not file.yanked or not file.url.startswith(HELD_PREFIX):
        return None
    path = unquote(file.url[len(HELD_PREFIX) :].partition("?")[0].partition("#")[0])
    if path.rpartition("/")[2] != file.filename:
        return None
    return file.yanked_reason or "held by the publisher guard"


def upstream_hold(project: str, file: File) -> HeldFile | None:
    """The hold of ``file`` when an upstream page (another headwater, parsed with its URL made
    absolute) lists it as held: yanked, at ``.../held/<project>/<filename>``; else None.

    A mirror of that upstream keeps the entry as held (with the upstream's words: the release
    must be accepted there) instead of fetching a URL that only ever refuses. Trusting the
    upstream here grants it nothing: it could leave the file off its page just as well.
    """
    if not file.yanked:
        return None
    segments = urlsplit(file.url).path.split("/")
    if len(segments) < 3 or segments[-3] != HELD_SECTION or unquote(segments[-2]) != project:
        return None
    if unquote(segments[-1]) != file.filename:
        return None
    reason = file.yanked_reason or "held by the upstream's publisher guard"
    message, _, fix = reason.partition(_SEPARATOR)
    return _Hold(
        filename=file.filename,
        message=message,
        fix=fix or "ask the upstream's operator (the release is held there)",
    )
