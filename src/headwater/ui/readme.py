"""A project's README, rendered as PyPI renders it, and sanitised.

The text is the ``Description`` of the newest release's core metadata (METADATA / PKG-INFO: the
message body, or the older header form), rendered by ``Description-Content-Type`` exactly as PyPI
(warehouse) does, with the same library, PyPA's ``readme_renderer``:

- ``text/markdown``: GitHub-flavoured Markdown (comrak), raw HTML passed through the sanitiser;
- ``text/x-rst`` or no content type: reStructuredText through docutils with ``raw`` and
  ``include`` directives off; a README docutils cannot render is shown as plain text, as on PyPI;
- ``text/plain``: the text, escaped, in a ``<pre>``.

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
        from readme_renderer.rst import render as rst

        rendered = rst(text)
        if rendered is not None:
            return Readme(_accessible(rendered), "rst")
    note = "" if media == "text/x-rst" else f"unknown content type {media[:60]!r}"
    return Readme(_plain(text), "plain", note or "the reStructuredText has errors")


def render_metadata(metadata: bytes) -> Readme | None:
    """The README of a core metadata file, None when it has no description."""
    raw, _ = parse_email(metadata)
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        return None
    content_type = raw.get("description_content_type")
    return render_description(description, content_type if isinstance(content_type, str) else None)
