"""Reading machine-written HTML fast: the tokenizer under :mod:`headwater.simple.html`.

Simple API pages need only anchors, ``<meta>``, ``<base>`` and comments, so instead of
:mod:`html.parser` a handful of compiled regexes (:data:`TOKEN`) find them, 2-3 times faster on a
10,000-file page (``bench/bench_html.py`` measures). The tokenizer still honours the parts of HTML
that change what counts as a link: comments, raw-text elements (``<script>``, ``<style>``,
``<title>``, ...), quoted and unquoted attributes, any letter case, character references, and
``<base href>``. :class:`Head` collects what a page's ``<meta>`` tags, ``<base>`` and ``SERIAL``
comment say; the other helpers read attributes, anchor text and URLs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import unescape
from urllib.parse import unquote, urljoin

from headwater.simple.model import InvalidPage

__all__ = [
    "TOKEN",
    "Head",
    "anchor_text",
    "attribute_value",
    "attributes",
    "decode",
    "last_segment",
    "resolve",
    "resolved_urls",
    "unescape_cached",
]


# The inside of a start tag, up to (not including) its ">". HTML5: a quote only opens a value right
# after "="; elsewhere it is an ordinary character. Possessive/atomic groups keep a hostile page
# (unclosed quotes, no ">") from making the regex backtrack; "<" outside a quoted value ends the
# attempt so one broken tag cannot swallow the rest of the page.
_ATTRS = r"""(?:[^>"'=<]++|=\s*+(?>"[^"]*+"|'[^']*+'|[^\s>]*+)|["'])*+"""

# One token per match; everything between matches is text we do not need.
TOKEN = re.compile(
    # HTML5 comments: "<!-->" and "<!--->" are complete (empty) comments; "--!>" also closes one;
    # an unclosed comment runs to the end of the document.
    r"<!--(?:-?>|(.*?)(?:--!?>|\Z))"
    # Raw text / RCDATA elements: nothing inside them is markup, so "<a" there is not a link.
    r"|<((?i:script|style|title|textarea|xmp|iframe|noembed|noframes))(?=[\s/>])"
    + _ATTRS
    + r">.*?(?:</(?i:\2)\s*>|\Z)"
    # An anchor: its attributes and its text, up to </a>, the next <a> (unclosed anchors) or EOF;
    # the <br> after each anchor on most pages is swallowed too, halving the number of tokens.
    r"|<([aA])(?=[\s/>])("
    + _ATTRS
    + r")>((?:[^<]++|<(?!/?[aA][\s/>]))*+)(?:</[aA]\s*>(?:\s*+<br\s*/?>)?)?"
    # <meta> and <base>: attributes only.
    r"|<((?i:meta|base))(?=[\s/>])(" + _ATTRS + r")>"
    # Any other tag, end tag, doctype or bogus comment: consumed whole, so an "<a" inside one of
    # its attribute values is not mistaken for a link.
    r"|</?[a-zA-Z!?]" + _ATTRS + r">",
    # Not IGNORECASE as a whole: it makes the scan twice as slow; only tag names need it. ASCII:
    # HTML's whitespace is ASCII whitespace (a no-break space does not separate attributes).
    re.DOTALL | re.ASCII,
)
# Its groups, as findall returns them: (comment, raw-text tag, "a", anchor attributes, anchor
# text, "meta"/"base", their attributes).
# One attribute: its name, then its value without quotes (or none). The opening quote is consumed
# first; a lookbehind then tells which quote (if any) the value is in, so findall returns
# (name, value) pairs ready for dict() with no per-value work in Python.
_ATTR = re.compile(
    r"""([^\s"'>/=][^\s"'>/=]*)"""
    r"""(?:\s*=\s*["']?+((?<=")[^"]*|(?<=')[^']*|(?<!["'])[^\s>]*)["']?)?""",
    re.ASCII,
)
_TAG = re.compile(r"<[^>]*>?")
_SERIAL = re.compile(r"\s*SERIAL\s+([0-9]{1,20})\s*\Z")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")

# Meta names, lowercased. PEP 708's text spells the alternate-locations meta with a hyphen, its
# example (and PyPI's old implementation) with a colon: read both (standards.md section 1.9).
_META_VERSION = "pypi:repository-version"
_META_STATUS = "pypi:project-status"
_META_STATUS_REASON = "pypi:project-status-reason"
_META_TRACKS = "pypi:tracks"
_META_ALTERNATES = ("pypi:alternate-locations", "pypi-alternate-locations")


def decode(data: bytes | str, what: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPage(
            f"{what} is not UTF-8 (bad byte at offset {exc.start}); headwater reads Simple API "
            "pages as UTF-8, the encoding every index serves - check the upstream's response"
        ) from exc


# The attribute names a file anchor carries on PyPI and conformant indexes.
_FILE_ATTRIBUTES = frozenset(
    {
        "href", "data-requires-python", "data-yanked", "data-core-metadata",
        "data-dist-info-metadata", "data-gpg-sig", "data-provenance",
    }
)  # fmt: skip


def attributes(raw: str) -> dict[str, str]:
    """Attribute names (lowercased) to values (still escaped: read them with :func:`value`).

    HTML5: the first of duplicate attributes wins, hence the reversed pairs.
    """
    attrs = dict(reversed(_ATTR.findall(raw)))
    # Names are lowercase on every real page; fold them only when one is not. The subset test
    # settles the usual case in C, before building a string of all the names.
    if not attrs.keys() <= _FILE_ATTRIBUTES and not "".join(attrs).islower():
        attrs = {key.lower(): value for key, value in reversed(_ATTR.findall(raw))}
    return attrs


# Values repeat across a page (">=3.9", a yank reason for every file of a release), and
# html.unescape costs microseconds: remember recent ones.
unescape_cached = lru_cache(maxsize=4096)(unescape)


def attribute_value(attrs: dict[str, str], key: str) -> str | None:
    """The unescaped value of attribute ``key``, or None when absent."""
    value = attrs.get(key)
    if value is not None and "&" in value:
        return unescape_cached(value)
    return value


def anchor_text(raw: str) -> str:
    if "<" in raw:
        raw = _TAG.sub("", raw)
    if "&" in raw:
        raw = unescape(raw)
    return raw.strip()


def last_segment(href: str) -> str:
    """The last non-empty path segment of a URL, unquoted ("/simple/Foo/" -> "Foo")."""
    path = href.partition("#")[0].partition("?")[0].rstrip("/")
    return unquote(path.rpartition("/")[2])


def resolve(url: str, base: str | None) -> str:
    if base is None or _ABSOLUTE.match(url):
        return url
    return urljoin(base, url)


class Head:
    """What the <meta> tags, <base> and the SERIAL comment of a page said."""

    __slots__ = (
        "_base_seen", "alternates", "base", "serial",
        "status", "status_reason", "tracks", "version",
    )  # fmt: skip

    def __init__(self, base: str | None) -> None:
        self.base = base
        self.version: str | None = None
        self.status: str | None = None
        self.status_reason: str | None = None
        self.tracks: list[str] = []
        self.alternates: list[str] = []
        self.serial: int | None = None
        self._base_seen = False

    def tag(self, tag: str, raw_attrs: str) -> None:
        attrs = attributes(raw_attrs)
        if tag.lower() == "base":
            # HTML5: only the first <base> with an href counts.
            href = attribute_value(attrs, "href")
            if href is not None and not self._base_seen:
                self._base_seen = True
                self.base = urljoin(self.base, href.strip()) if self.base else href.strip()
            return
        name = (attribute_value(attrs, "name") or "").strip().lower()
        content = attribute_value(attrs, "content")
        if not name.startswith("pypi") or content is None:
            return
        # The first of a repeated single-valued meta wins, as the first duplicate attribute does.
        if name == _META_VERSION:
            if self.version is None:
                self.version = content.strip()
        elif name == _META_STATUS:
            if self.status is None:
                self.status = content.strip()
        elif name == _META_STATUS_REASON:
            if self.status_reason is None:
                self.status_reason = content
        elif name == _META_TRACKS:
            self.tracks.append(content.strip())
        elif name in _META_ALTERNATES:
            self.alternates.append(content.strip())

    def comment(self, text: str) -> None:
        # PyPI ends every simple page with "<!--SERIAL 12345-->" (its last_serial).
        m = _SERIAL.match(text)
        if m is not None and self.serial is None:
            self.serial = int(m[1])


def resolved_urls(values: list[str], base: str | None) -> tuple[str, ...]:
    """Resolve and deduplicate (order kept) the URLs of repeated metas."""
    return tuple(dict.fromkeys(resolve(v, base) for v in values if v))
