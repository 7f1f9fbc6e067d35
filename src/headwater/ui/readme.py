"""A project's README, rendered as PyPI renders it, and sanitised.

The text is the ``Description`` of the newest release's core metadata (METADATA / PKG-INFO: the
message body, or the older header form), rendered by ``Description-Content-Type`` exactly as PyPI
(warehouse) does, with the same library, PyPA's ``readme_renderer``:

- ``text/markdown``: GitHub-flavoured Markdown (comrak), raw HTML passed through the sanitiser;
- ``text/x-rst`` or no content type: reStructuredText through docutils with ``raw`` and
  ``include`` directives off; a README docutils cannot render is shown as plain text, as on PyPI;
- ``text/plain``, and any other content type (as on PyPI): the text, escaped, in a ``<pre>``.

A description in the ``Description`` header (core metadata 1.x, old sdists' PKG-INFO) is read
without the 8 spaces (or 7 and ``|``) that fold its lines.

Every rendering goes through ``readme_renderer``'s ``nh3`` sanitiser (an allow list of tags and
attributes; no script, no event handler attribute, no ``javascript:`` URL). What it returns is the
only markup of the interface that is not escaped by the templates. The content security policy
(:mod:`headwater.ui.security`) stands behind it: even a sanitiser bug would run no script.

Rendering is pure (no I/O): the caller fetches the metadata; :func:`render_metadata` is cached by
the caller on the metadata file's digest.
"""

from __future__ import annotations

import html
import re
import warnings
from dataclasses import dataclass

from packaging.metadata import parse_email

__all__ = ["MAX_DESCRIPTION", "Readme", "render_description", "render_metadata"]

#: Longer descriptions are shown as plain text (rendering them could take seconds).
MAX_DESCRIPTION = 512 * 1024
#: Headings carry an empty self-link (PyPI shows it on hover): a link with no text is noise to a
#: screen reader, so it goes.
_EMPTY_ANCHOR = re.compile(r'<a href="#user-content-[^"<>]*" rel="nofollow"></a>')
#: Code blocks say their programming language in ``lang``, which is for human languages (a
#: screen reader would switch voice): it becomes ``data-lang``.
_CODE_LANG = re.compile(r'<pre lang="([A-Za-z0-9_+.#-]*)">')
#: An image without alternative text: a README author's omission, which would fail the page's
#: accessibility (screen readers read out the file name). It is marked decorative (``alt=""``).
_NO_ALT = re.compile(r"<img(?![^>]*\balt=)")


def _accessible(rendered: str) -> str:
    """Sanitised HTML with the accessibility fixes above (applied after the sanitiser: they
    only remove an empty link, rename an attribute or add an empty one)."""
    rendered = _EMPTY_ANCHOR.sub("", rendered)
    rendered = _CODE_LANG.sub(r'<pre data-lang="\1">', rendered)
    return _NO_ALT.sub('<img alt=""', rendered)


@dataclass(frozen=True)
class Readme:
    #: Sanitised HTML (safe to put in a page as markup).
    html: str
    #: How it was rendered: ``markdown``, ``rst``, ``plain`` (and why, if it fell back).
    rendered_as: str
    note: str = ""


#: The content types rendered as reStructuredText (none given is reStructuredText, as on PyPI).
_RST = ("", "text/x-rst")
#: The ``Description`` header of core metadata 1.x (before the body held it), e.g. an old sdist's
#: PKG-INFO: its continuation lines are indented by 8 spaces, or by 7 and a ``|`` (the core
#: metadata specification's form, which keeps a line's own indentation).
_DESCRIPTION_HEADER = re.compile(rb"^description:", re.IGNORECASE | re.MULTILINE)
_FOLD = re.compile(r"^(?: {8}| {7}\|)")


def _unfolded(description: str) -> str:
    """A ``Description`` header's value without the prefix of its continuation lines (when every
    one has it, as pip's and PyPI's readers take it); else as it is."""
    first, _, rest = description.partition("\n")
    lines = rest.split("\n") if rest else []
    if not lines or not all(_FOLD.match(line) or not line.strip() for line in lines):
        return description
    return "\n".join([first, *(_FOLD.sub("", line) for line in lines)])


def _plain(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def render_description(text: str, content_type: str | None) -> Readme:
    """``text`` rendered for ``content_type`` (see the module docstring)."""
    media, _, params = (content_type or "text/x-rst").partition(";")
    media = media.strip().lower()
    if len(text) > MAX_DESCRIPTION:
        return Readme(
            _plain(text[:MAX_DESCRIPTION]), "plain", "the description is too long to render"
        )
    with warnings.catch_warnings():
        # readme_renderer warns when an optional renderer is missing; its answer says so too.
        warnings.simplefilter("ignore")
        if media == "text/markdown":
            from readme_renderer.markdown import render as markdown

            variant = "CommonMark" if "commonmark" in params.lower() else "GFM"
            rendered = markdown(text, variant=variant)
            if rendered is not None:
                return Readme(_accessible(rendered), "markdown")
            return Readme(_plain(text), "plain", "the Markdown renderer is not installed")
        if media == "text/plain":
            return Readme(_plain(text), "plain")
        if media not in _RST:
            # PyPI renders a content type it does not know as plain text (warehouse's
            # readme.render falls back to readme_renderer.txt), never as reStructuredText.
            return Readme(_plain(text), "plain", f"unknown content type {media[:60]!r}")
        from readme_renderer.rst import render as rst

        rendered = rst(text)
        if rendered is not None:
            return Readme(_accessible(rendered), "rst")
    return Readme(_plain(text), "plain", "the reStructuredText has errors")


def render_metadata(metadata: bytes) -> Readme | None:
    """The README of a core metadata file, None when it has no description."""
    raw, _ = parse_email(metadata)
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        return None
    head = metadata.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n")
    if _DESCRIPTION_HEADER.search(head):
        description = _unfolded(description)
    content_type = raw.get("description_content_type")
    return render_description(description, content_type if isinstance(content_type, str) else None)
