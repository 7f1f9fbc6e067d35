"""What the project page shows, made from the project page pip gets (pure: no I/O).

See :mod:`headwater.ui.project` for the page. Links come from the page, which may come from an
upstream: only ``http``, ``https`` and relative URLs become links (:func:`safe_href`; a
``javascript:`` URL is shown as text, never as a link).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urljoin, urlsplit

from packaging.version import InvalidVersion, Version

from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import File, ProjectPage
from headwater.ui.tags import describe_tags

__all__ = ["FileRow", "ProjectView", "Release", "build_view", "safe_href"]


@dataclass(frozen=True)
class FileRow:
    filename: str
    href: str | None
    metadata_href: str | None
    size: int | None
    sha256: str | None
    upload_time: datetime | None
    requires_python: str | None
    yanked: bool
    yanked_reason: str | None
    kind: str
    tags: str
    #: PEP 740: the provenance URL the page gives (a link), when it gives one.
    provenance: str | None
    #: The publisher, when known (filled by the provenance work; None until then).
    publisher: str | None = None


@dataclass
class Release:
    version: str
    files: list[FileRow] = field(default_factory=list)
    prerelease: bool = False
    #: Not a PEP 440 version (sorted after every valid one).
    invalid: bool = False

    @property
    def yanked(self) -> bool:
        return bool(self.files) and all(f.yanked for f in self.files)


@dataclass(frozen=True)
class ProjectView:
    index: str
    name: str
    releases: list[Release]
    latest: Release | None
    status: str
    status_reason: str | None
    namespaces: list[tuple[str, bool]] | None
    tracks: tuple[str, ...]
    alternate_locations: tuple[str, ...]
    files: int
    stale: str | None


def safe_href(base: str, url: str) -> str | None:
    """``url`` resolved against ``base`` if it is safe to link (http, https or this server)."""
    try:
        joined = urljoin(base, url)
        scheme = urlsplit(joined).scheme.lower()
    except ValueError:
        return None
    if scheme not in ("", "http", "https"):
        return None
    return joined


def _row(file: File, base: str) -> tuple[str, FileRow, bool]:
    """(version, row, is a pre-release) of one file."""
    try:
        parsed = parse_filename(file.filename)
    except (InvalidFilename, ValueError):
        version, kind, tags, prerelease = "", "other", "unknown format", False
    else:
        version = str(parsed.version)
        kind = parsed.kind
        tags = describe_tags(parsed.tags) if parsed.kind == "wheel" else "source"
        prerelease = parsed.version.is_prerelease
    href = safe_href(base, file.url)
    row = FileRow(
        filename=file.filename,
        href=href,
        metadata_href=safe_href(base, file.metadata_url) if file.has_metadata else None,
        size=file.size,
        sha256=file.hashes.get("sha256"),
        upload_time=file.upload_time,
        requires_python=file.requires_python,
        yanked=file.yanked,
        yanked_reason=file.yanked_reason,
        kind=kind,
        tags=tags,
        provenance=safe_href(base, file.provenance) if file.provenance else None,
    )
    return version, row, prerelease


def _order(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def build_view(index: str, page: ProjectPage, *, stale: str | None = None) -> ProjectView:
    """The project page's content for people (pure: no I/O)."""
    base = f"/{index}/simple/{page.name}/"
    releases: dict[str, Release] = {}
    for version in page.versions or ():
        releases.setdefault(version, Release(version))
    for file in page.files:
        version, row, prerelease = _row(file, base)
        release = releases.setdefault(version, Release(version))
        release.files.append(row)
        release.prerelease = release.prerelease or prerelease
    for release in releases.values():
        order = _order(release.version)
        release.invalid = order[0] == 0
        if not release.invalid and isinstance(order[1], Version):
            release.prerelease = order[1].is_prerelease
    ordered = sorted(releases.values(), key=lambda r: _order(r.version), reverse=True)
    final = [r for r in ordered if r.files and not r.yanked and not r.prerelease and not r.invalid]
    usable = [r for r in ordered if r.files and not r.yanked]
    candidates = final or usable or ordered
    latest = candidates[0] if candidates else None
    return ProjectView(
        index=index,
        name=page.name,
        releases=ordered,
        latest=latest,
        status=str(page.status),
        status_reason=page.status_reason,
        namespaces=(
            None if page.namespaces is None else [(n.name, n.owned) for n in page.namespaces]
        ),
        tracks=page.tracks,
        alternate_locations=page.alternate_locations,
        files=len(page.files),
        stale=stale,
    )
