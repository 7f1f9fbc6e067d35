"""The HTML form of the Simple Repository API: parse into, and render from, :mod:`.model`.

Specs: simple-repository-api (PEP 503 pages, PEP 592 yanking, PEP 629 versioning, PEP 658/714
core metadata, PEP 740 provenance, PEP 792 project status), PEP 708 (tracks, alternate locations),
PEP 833 (the HTML form is frozen at 1.4).

Parsing is a small tokenizer over the raw text rather than :mod:`html.parser`
(:mod:`headwater.simple._html_tokens`: the pages are machine-written and need only anchors,
``<meta>`` and comments, read 2-3 times faster that way); this module turns its tokens into the
model.

Rendering emits one conformant HTML5 document, escaping every value that came from an upstream or
a publisher.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from typing import cast

from headwater.simple._html_tokens import (
    TOKEN,
    Head,
    anchor_text,
    attribute_value,
    attributes,
    decode,
    last_segment,
    resolve,
    resolved_urls,
    unescape_cached,
)
from headwater.simple.filenames import InvalidFilename, check_safe_filename
from headwater.simple.model import (
    HTML_API_VERSION,
    File,
    InvalidPage,
    ProjectList,
    ProjectListEntry,
    ProjectPage,
    ProjectStatus,
    RejectedEntry,
    check_api_version,
)
from headwater.simple.names import (
    normalize_many,
    normalize_name,
)
from headwater.simple.text import neutralise, neutralise_url, secure_url

__all__ = [
    "parse_project_list_html",
    "parse_project_page_html",
    "render_project_list_html",
    "render_project_page_html",
]

# PEP 503: "#<hashname>=<hashvalue>"; hash names are hashlib names (letters, digits, "_").
_HASH = re.compile(r"([A-Za-z0-9_]{1,32})=([0-9A-Fa-f]{1,256})\Z")


def _lines(names: list[str]) -> str:
    """The names one per line, each line ending in "\n" (so "" for no names); ``names`` is left
    as it was (the "" appended for the final newline is popped again)."""
    names.append("")
    try:
        return "\n".join(names)
    finally:
        names.pop()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a parser builds many small acyclic objects.

    A 10,000-file page allocates ~60,000 containers (File structs, dicts), a 700,000-project list
    700,000 entries; none form cycles, so the collector's repeated passes over them are pure cost
    (~20% of a page parse). Reference counting still frees everything as usual.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --------------------------------------------------------------------------------------------
# Parsing


def parse_project_list_html(data: bytes | str, *, base_url: str | None = None) -> ProjectList:
    """Parse a root (project list) page.

    Spec (Project List): one anchor per project whose text is the project name. An anchor with
    empty text falls back to the last path segment of its href. Entries with invalid names, and
    later entries whose normalized name repeats an earlier one, are left out and listed in
    ``ProjectList.rejected`` with the reason, so one hostile entry cannot cost the whole list.
    ``<!--SERIAL n-->`` becomes ``last_serial``. ``base_url`` is accepted for symmetry with
    :func:`parse_project_page_html`; the list model keeps names, not URLs.

    Raises:
        UnsupportedAPIVersion: the page declares a major API version other than 1.
        InvalidPage: the page is not UTF-8, or its declared version is not ``MAJOR.MINOR``.
    """
    text = decode(data, "project list page")
    head = Head(base_url)
    names: list[str] = []
    with _gc_paused():
        for comment, _raw, anchor, raw_attrs, raw_text, tag, tag_attrs in TOKEN.findall(text):
            if anchor:
                names.append(
                    (
                        anchor_text(raw_text)
                        if "<" in raw_text or "&" in raw_text
                        else raw_text.strip()
                    )
                    or last_segment(attribute_value(attributes(raw_attrs), "href") or "")
                )
            elif tag:
                head.tag(tag, tag_attrs)
            elif comment:
                head.comment(comment)
        version, _newer = check_api_version(head.version, what="HTML project list")
        projects, rejected = _list_entries(names)
    return ProjectList(
        projects=tuple(projects),
        last_serial=head.serial,
        api_version=version,
        rejected=tuple(rejected),
    )


def _list_entries(names: list[str]) -> tuple[list[ProjectListEntry], list[RejectedEntry]]:
    """Validate, normalize and deduplicate the names of a root page (first occurrence wins)."""
    keys = normalize_many(names)
    projects: list[ProjectListEntry] = []
    rejected: list[RejectedEntry] = []
    seen: dict[str, str] = {}
    for name, key in zip(names, keys, strict=True):
        if key is None:
            rejected.append(RejectedEntry(name, "not a valid project name"))
            continue
        first = seen.get(key)
        if first is not None:
            rejected.append(
                RejectedEntry(name, f"duplicate of {first!r} (both normalize to {key!r})")
            )
            continue
        seen[key] = name
        projects.append(ProjectListEntry(name))
    return projects, rejected


# Fast path for a file anchor written the way PyPI and headwater write them: double-quoted
# attributes, one space apart, in the usual order (the PEP 714 pair either way round). One
# fullmatch replaces the general attribute scan and the dict; anything else takes the general path.
_FILE_ANCHOR = re.compile(
    r' href="([^"]*+)"'
    r'(?: data-requires-python="([^"]*+)")?+'
    r'(?: data-yanked="([^"]*+)")?+'
    r'(?: data-core-metadata="([^"]*+)"(?: data-dist-info-metadata="[^"]*+")?+'
    r'| data-dist-info-metadata="([^"]*+)"(?: data-core-metadata="([^"]*+)")?+)?+'
    r'(?: data-gpg-sig="([^"]*+)")?+'
    r'(?: data-provenance="([^"]*+)")?+'
    r"[ \t\n\r\f]*+/?",
)


def _core_metadata(value: str) -> dict[str, str] | bool:
    # PEP 658/714: "true", or "<hashname>=<hexdigest>" of the .metadata file.
    m = _HASH.match(value)
    if m is None:
        value = (unescape_cached(value) if "&" in value else value).strip()
        m = _HASH.match(value)
        if m is None:
            # Spec: the attribute's presence means the .metadata file is served; an unreadable
            # digest (or "true") still says that much. "false" is no spec value, but means what
            # it says.
            return value.lower() != "false"
    return {m[1].lower(): m[2].lower()}


def _file(raw_attrs: str, raw_text: str, base: str | None, project: str) -> File | None:
    # The hot loop of a project page (10,000 anchors on big projects).
    fast = _FILE_ANCHOR.fullmatch(raw_attrs)
    if fast is not None:
        href, requires_python, yanked, core, legacy, core_after, gpg, provenance = fast.groups()
        if core is None:
            core = core_after
    else:
        attrs = attributes(raw_attrs)
        href = attrs.get("href")
        requires_python = attrs.get("data-requires-python")
        yanked = attrs.get("data-yanked")
        core = attrs.get("data-core-metadata")
        legacy = attrs.get("data-dist-info-metadata")
        gpg = attrs.get("data-gpg-sig")
        provenance = attrs.get("data-provenance")
    if href is None:
        return None  # <a name=...>: not a link to a file
    if "&" in href:
        href = unescape_cached(href)
    url, _, fragment = href.strip().partition("#")
    if base is not None:
        url = resolve(url, base)
    hashes: dict[str, str] = {}
    if fragment:
        # PEP 503: "#<hashname>=<hashvalue>", hashname "the lowercase name of the hash function".
        m = _HASH.match(fragment)
        if m is not None:
            hashes[m[1].lower()] = m[2].lower()
    # Spec: the anchor text "MUST match the final path component (the filename) of the URL".
    filename = (
        anchor_text(raw_text) if "<" in raw_text or "&" in raw_text else raw_text.strip()
    ) or last_segment(url)
    try:
        check_safe_filename(filename)
    except InvalidFilename as exc:
        raise InvalidPage(
            f"project page for {project!r} lists an unsafe file: {exc}; nothing from this page "
            "was used - fix or drop the file upstream"
        ) from exc
    if requires_python is not None and "&" in requires_python:
        requires_python = unescape_cached(requires_python)
    # PEP 592: the attribute may have no value (yanked, no reason) or a reason.
    if yanked and "&" in yanked:
        yanked = unescape_cached(yanked)
    # PEP 714: read data-core-metadata; fall back to the older data-dist-info-metadata.
    metadata = core if core is not None else legacy
    if provenance is not None:
        provenance = (
            unescape_cached(provenance) if "&" in provenance else provenance
        ).strip() or None
    return File(
        filename=filename,
        url=url,
        hashes=hashes,
        requires_python=requires_python,
        yanked=yanked is not None,
        yanked_reason=yanked or None,
        core_metadata=None if metadata is None else _core_metadata(metadata),
        gpg_sig=None if gpg is None else gpg.strip().lower() == "true",
        provenance=provenance,
    )


def parse_project_page_html(
    data: bytes | str, *, name: str, base_url: str | None = None
) -> ProjectPage:
    """Parse a project detail page for the project ``name`` (the page itself does not say).

    Reads every ``<a href>`` as a file: anchor text is the filename (falling back to the URL's last
    path component), ``#<hash>=<hex>`` becomes ``hashes`` (names and digests lowercased),
    ``data-requires-python``, ``data-yanked``, ``data-core-metadata`` (falling back to
    ``data-dist-info-metadata``), ``data-gpg-sig`` and ``data-provenance`` their fields; the
    PyPI metas give api-version ("1.0" when absent), project status, tracks and alternate
    locations; ``<!--SERIAL n-->`` gives ``last_serial``. Relative URLs are resolved against
    ``base_url`` (and a ``<base href>``) when given, and left relative otherwise. The declared
    version is kept in ``api_version``: a newer minor is accepted, and the caller may warn.

    Raises:
        InvalidName: ``name`` is not a valid project name.
        UnsupportedAPIVersion: the page declares a major API version other than 1.
        InvalidPage: the page is not UTF-8, declares a malformed version or an unknown project
            status, or lists a filename that is unsafe as a path component.
    """
    project = normalize_name(name)
    text = decode(data, f"project page for {project!r}")
    head = Head(base_url)
    files: list[File] = []
    with _gc_paused():
        for comment, _raw, anchor, raw_attrs, raw_text, tag, tag_attrs in TOKEN.findall(text):
            if anchor:
                file = _file(raw_attrs, raw_text, head.base, project)
                if file is not None:
                    files.append(file)
            elif tag:
                head.tag(tag, tag_attrs)
            elif comment:
                head.comment(comment)
    version, _newer = check_api_version(head.version, what=f"HTML project page for {project!r}")
    status = ProjectStatus.ACTIVE
    if head.status is not None:
        try:
            status = ProjectStatus(head.status.lower())
        except ValueError:
            raise InvalidPage(
                f"project page for {project!r} declares an unknown project status "
                f"{head.status[:80]!r}; PEP 792 allows only "
                f"{', '.join(s.value for s in ProjectStatus)} - refusing rather than guessing "
                "whether its files may be offered"
            ) from None
    return ProjectPage(
        name=project,
        files=tuple(files),
        status=status,
        status_reason=head.status_reason,
        tracks=resolved_urls(head.tracks, head.base),
        alternate_locations=resolved_urls(head.alternates, head.base),
        last_serial=head.serial,
        api_version=version,
    )


# --------------------------------------------------------------------------------------------
# Rendering

# Spec: the hash SHOULD be one hashlib guarantees; sha256 is recommended. Secure ones first; shake_*
# (variable length) cannot be named by a bare "<name>=<hex>".
_HASH_PREFERENCE = (
    "sha256", "sha512", "sha384", "sha224",
    "sha3_256", "sha3_512", "sha3_384", "sha3_224",
    "blake2b", "blake2s", "sha1", "md5",
)  # fmt: skip
_HEX = re.compile(r"[0-9A-Fa-f]+\Z")


def _esc(value: str) -> str:
    # Quote-safe escaping for attribute values and text, after neutralising what no HTML5 page
    # may carry (controls, CR, noncharacters: see headwater.simple.text; "&#13;" or "&#1;" would
    # be parse errors too).
    return escape(neutralise(value), quote=True)


def _esc_url(value: str) -> str:
    # A URL keeps its meaning: unsafe characters are percent-encoded rather than replaced.
    return escape(neutralise_url(value), quote=True)


def _pick_hash(hashes: dict[str, str]) -> tuple[str, str] | None:
    """The digest to put in an HTML page: sha256 if present, else the best guaranteed one."""
    digest = hashes.get("sha256")
    if digest is not None and _HEX.match(digest):
        return "sha256", digest
    for algo in _HASH_PREFERENCE[1:]:
        digest = hashes.get(algo)
        if digest is not None and _HEX.match(digest):
            return algo, digest
    return None


def _render_file(file: File) -> str:
    url = file.url
    picked = _pick_hash(file.hashes) if file.hashes else None
    if picked is not None:
        # A model URL normally has no fragment; if it has one, the hash replaces it.
        url = f"{url.partition('#')[0]}#{picked[0]}={picked[1]}"
    parts = [f'<a href="{_esc_url(url)}"']
    if file.requires_python is not None:
        # Spec: "<" and ">" MUST be HTML-encoded; _esc does that, and "&" and quotes too.
        parts.append(f' data-requires-python="{_esc(file.requires_python)}"')
    if file.yanked:
        # PEP 592: an empty value means yanked without a reason.
        parts.append(f' data-yanked="{_esc(file.yanked_reason or "")}"')
    metadata = file.core_metadata
    if metadata is not None and metadata is not False:
        value = "true"
        if isinstance(metadata, dict):
            picked_md = _pick_hash(metadata)
            if picked_md is not None:
                value = _esc(f"{picked_md[0]}={picked_md[1]}")
        # PEP 714: HTML MUST use data-core-metadata and MAY also emit data-dist-info-metadata,
        # which MUST then be equal; pip < 23.2 reads only the old name.
        parts.append(f' data-core-metadata="{value}" data-dist-info-metadata="{value}"')
    if file.gpg_sig is not None:
        parts.append(' data-gpg-sig="true"' if file.gpg_sig else ' data-gpg-sig="false"')
    provenance = secure_url(file.provenance)
    if provenance is not None:
        # PEP 740: the URL "MUST be a secure origin"; another is left out.
        parts.append(f' data-provenance="{_esc_url(provenance)}"')
    parts.append(f">{_esc(file.filename)}</a><br>\n")
    return "".join(parts)


def render_project_page_html(page: ProjectPage) -> bytes:
    """Render a project detail page as a UTF-8 HTML5 document.

    Declares ``pypi:repository-version`` 1.4 whatever ``page.api_version`` says (PEP 833 froze the
    HTML form at 1.4). Each file is one anchor: href is the URL plus ``#sha256=<hex>`` (or the best
    other hashlib-guaranteed digest present), text is the filename, and the optional fields become
    their ``data-*`` attributes; ``core_metadata`` ``False`` and ``None`` both render as no
    attribute (HTML has no "no metadata" value). Status metas appear when the status is not
    active (and the reason whenever set); ``tracks``/``alternate_locations`` as repeated metas;
    ``<!--SERIAL n-->`` only when ``last_serial`` is set. Fields HTML cannot carry (size,
    upload time, versions, namespaces, extra hashes) are dropped. Every value is escaped.
    """
    name = _esc(page.name)
    out = [
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="pypi:repository-version" content="{HTML_API_VERSION}">\n'
    ]
    if page.status is not ProjectStatus.ACTIVE:
        # PEP 792: the status SHOULD be present when it is not active.
        out.append(f'<meta name="pypi:project-status" content="{_esc(page.status.value)}">\n')
    if page.status_reason is not None:
        out.append(
            f'<meta name="pypi:project-status-reason" content="{_esc(page.status_reason)}">\n'
        )
    out.extend(f'<meta name="pypi:tracks" content="{_esc_url(url)}">\n' for url in page.tracks)
    out.extend(
        f'<meta name="pypi:alternate-locations" content="{_esc_url(url)}">\n'
        for url in page.alternate_locations
    )
    out.append(f"<title>Links for {name}</title>\n</head>\n<body>\n<h1>Links for {name}</h1>\n")
    out.extend(_render_file(file) for file in page.files)
    out.append("</body>\n</html>\n")
    if page.last_serial is not None:
        out.append(f"<!--SERIAL {int(page.last_serial)}-->\n")
    return "".join(out).encode("utf-8")


def render_project_list_html(project_list: ProjectList) -> bytes:
    """Render the root page: one ``<a href="{normalized}/">{name}</a>`` per project.

    The href is relative, so the page works under any prefix; the text is the name as given.
    ``<!--SERIAL n-->`` is emitted only when ``last_serial`` is set.

    Raises:
        InvalidPage: an entry's name is not a valid (ASCII) project name, or two entries share a
            normalized name; the message names the entry.
    """
    names = [entry.name for entry in project_list.projects]
    count = len(names)
    # All names at once (names.normalize_many: a few passes in C for 700,000 names), then one
    # escape over all of them joined, instead of the same work per entry.
    checked = normalize_many(names)
    if None in checked:
        bad = names[checked.index(None)]
        raise InvalidPage(
            f"cannot render project list: entry {bad[:80]!r} is not a valid project name; drop "
            "it (parsers put such entries in ProjectList.rejected)"
        )
    normalized = cast("list[str]", checked)
    if len(set(normalized)) != count:
        first: dict[str, str] = {}
        for entry_name, key in zip(names, normalized, strict=True):
            if key in first:
                raise InvalidPage(
                    f"cannot render project list: {entry_name!r} and {first[key]!r} both "
                    f"normalize to {key!r}; keep one entry per project"
                )
            first[key] = entry_name
    joined = _lines(names)
    # Valid names hold no character HTML gives meaning to, so escaping changes nothing today
    # (str.replace then returns the same object and the names are used as they are); it stays so
    # the page is safe even if the name rules ever widen.
    escaped = escape(joined, quote=True)
    shown = names if escaped is joined else escaped.split("\n")[:-1]
    # Per entry: <a href="{normalized}/">{name}</a><br>. Built by slice assignment into one flat
    # list and a single join, which keeps the loop in C (an f-string per entry costs twice as much)
    # and copies the text once.
    pieces = [""] * (4 * count + 2)
    pieces[0] = (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="pypi:repository-version" content="{HTML_API_VERSION}">\n'
        "<title>Simple index</title>\n</head>\n<body>\n"
    )
    pieces[1:-1:4] = normalized
    pieces[2:-1:4] = ['/">'] * count
    pieces[3:-1:4] = shown
    # Each closer also opens the next anchor, so the loop needs four pieces per entry, not five.
    pieces[4:-1:4] = ['</a><br>\n<a href="'] * count
    if count:
        pieces[0] += '<a href="'
        pieces[-2] = "</a><br>\n"
    tail = "</body>\n</html>\n"
    if project_list.last_serial is not None:
        tail += f"<!--SERIAL {int(project_list.last_serial)}-->\n"
    pieces[-1] = tail
    return "".join(pieces).encode("utf-8")
