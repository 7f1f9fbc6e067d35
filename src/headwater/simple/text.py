"""Free text on its way into a page: what HTML5 cannot carry, refused on input, neutralised on output.

Free text reaches pages from two places: people (a yank reason, a project status reason, typed
into the management API or ``headwater admin``) and upstream indexes (whatever a mirror or proxy
reads). HTML5 makes some characters parse errors wherever they appear, escaped or not
(HTML Living Standard, "Preprocessing the input stream" and "Numeric character reference end
state"):

- "controls other than ASCII whitespace and U+0000 NULL characters are
  control-character-in-input-stream parse errors"; NULL itself is an unexpected-null-character
  error; and a character reference to a control (or to U+000D) is a control-character-reference
  error, so ``&#1;`` is no way out;
- "noncharacters are noncharacter-in-input-stream parse errors"; surrogates cannot be encoded in
  UTF-8 at all;
- a literal CR is not an error but is turned into LF by every parser, so it cannot round-trip.

So the rule is one set, :data:`UNSAFE`: C0 controls except TAB, LF and FF; CR; DEL and the C1
controls; surrogates; noncharacters. Text typed by a person is refused when it holds any of them
(:func:`unsafe_character`, used by the database's checks, so every route to it - API, CLI - says
the same); text from an upstream is neutralised (:func:`neutralise`: each becomes U+FFFD, the
replacement character, so a reader sees that something was there; CR becomes LF, as a parser would
make it) by the renderers, so no page
headwater writes is invalid HTML whatever its sources held. URLs are percent-encoded instead
(:func:`neutralise_url`), which keeps them meaning what a browser would make of them.

Pure: no I/O.
"""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["UNSAFE", "neutralise", "neutralise_url", "secure_url", "unsafe_character"]


def _noncharacters() -> str:
    # U+FDD0..U+FDEF, and the last two code points of every plane (U+FFFE, U+FFFF, U+1FFFE, ...).
    ends = "".join(
        re.escape(chr(plane << 16 | 0xFFFE)) + re.escape(chr(plane << 16 | 0xFFFF))
        for plane in range(17)
    )
    return "\ufdd0-\ufdef" + ends


#: Characters no HTML5 page may carry as they are (see the module docstring).
UNSAFE = re.compile("[\x00-\x08\x0b\x0d-\x1f\x7f-\x9f\ud800-\udfff" + _noncharacters() + "]")

#: For text people type: one line, so TAB, LF and FF are refused too.
_UNSAFE_LINE = re.compile("[\t\n\x0c]|" + UNSAFE.pattern)

# UNSAFE's astral noncharacters make its scan ~10x slower than a class of ranges; the renderers
# scan every value of every page, so they ask _clean first: printable ASCII (nearly every
# value) in two C calls, other text with the BMP part of UNSAFE plus a range test for astral
# characters (which are then checked one by one: rare, emoji and the like).
_UNSAFE_BMP = re.compile("[\x00-\x08\x0b\x0d-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _clean(text: str) -> bool:
    """Whether ``text`` holds no :data:`UNSAFE` character (the same answer, faster)."""
    if text.isascii():
        return text.isprintable() or _UNSAFE_BMP.search(text) is None
    if _UNSAFE_BMP.search(text) is not None:
        return False
    return _ASTRAL.search(text) is None or all(
        ord(char) & 0xFFFE != 0xFFFE for char in text if char > "\uffff"
    )


def unsafe_character(text: str, *, one_line: bool = True) -> str | None:
    """The first character of ``text`` that a page cannot carry, as ``U+XXXX``, or None.

    ``one_line`` (the default, for reasons and short descriptions) refuses TAB, LF and FF too.
    """
    found = (_UNSAFE_LINE if one_line else UNSAFE).search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def neutralise(text: str) -> str:
    """``text`` with CRLF and CR made LF (what every HTML parser makes of them) and every other
    :data:`UNSAFE` character replaced by U+FFFD (the same object when there is none, so the
    common case costs a check in C)."""
    if _clean(text):
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return UNSAFE.sub("\ufffd", text)


def _percent(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        char = "\ufffd"  # a lone surrogate has no UTF-8 form; WHATWG URL encodes U+FFFD for it
    return quote(char, safe="")


def neutralise_url(url: str) -> str:
    """``url`` with every :data:`UNSAFE` character percent-encoded (as UTF-8), as the WHATWG URL
    parser would encode it; the same object when there is none."""
    if _clean(url):
        return url
    return UNSAFE.sub(_percent, url)


def secure_url(url: str | None) -> str | None:
    """``url`` if it is an absolute ``https://`` URL, else None.

    PEP 740 (and the spec's ``data-provenance``/``provenance``): the URL "MUST be a secure
    origin". A page headwater renders never carries another (a mirror of an upstream that gave an
    ``http://`` provenance URL serves the file without one).
    """
    if url is None or url[:8].lower() != "https://" or len(url) == 8:
        return None
    return url
