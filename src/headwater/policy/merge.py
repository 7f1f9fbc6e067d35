"""Building the served page: cooldown, merging files of several sources, provenance, and PEP 708's
test of whether remote sources may be merged at all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import msgspec

from headwater.policy.rules import SourceKind, SourceSpec
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName, normalize_or_none

__all__ = [
    "FileClash",
    "Part",
    "apply_cooldown",
    "merge_parts",
    "merge_refusal",
    "normalize_url",
]


class Part(msgspec.Struct, frozen=True):
    """One source's contribution to a served page: its page (cooldown applied) and its PEP 708 URL."""

    spec: SourceSpec
    page: ProjectPage
    url: str = ""
    stale: str | None = None


class FileClash(msgspec.Struct, frozen=True):
    """The same filename with different content in two sources."""

    filename: str
    first: str
    second: str
    detail: str


def normalize_url(url: str) -> str:
    """A URL in the form PEP 708 URLs are compared in: scheme and host lowercased, no fragment,
    path ending in ``/`` (``https://PyPI.org/simple/foo`` equals ``https://pypi.org/simple/foo/``)."""
    parts = urlsplit(url.strip())
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def _dedupe(urls: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    kept: list[str] = []
    for url in urls:
        key = normalize_url(url)
        if url and key not in seen:
            seen.add(key)
            kept.append(url)
    return tuple(kept)


def apply_cooldown(
    page: ProjectPage, spec: SourceSpec, now: datetime
) -> tuple[ProjectPage, int, datetime | None]:
    """``page`` without the files uploaded less than ``spec.cooldown_days`` before ``now``, how
    many were hidden, and when the first hidden file with an upload-time comes out of the
    cooldown (None: nothing hidden has one). A file without an upload-time is hidden too: it
    cannot be shown to be old enough (HTML pages carry none; PEP 700 puts it in JSON only)."""
    if spec.cooldown_days is None or not page.files:
        return page, 0, None
    cooldown = timedelta(days=spec.cooldown_days)
    cutoff = now - cooldown
    kept = tuple(f for f in page.files if f.upload_time is not None and f.upload_time <= cutoff)
    hidden = len(page.files) - len(kept)
    if not hidden:
        return page, 0, None
    dated = [
        f.upload_time for f in page.files if f.upload_time is not None and f.upload_time > cutoff
    ]
    until = min(dated) + cooldown if dated else None
    return msgspec.structs.replace(page, files=kept, versions=None), hidden, until


def _same_content(a: File, b: File) -> str | None:
    """None when two files of the same name are provably the same bytes, else why not."""
    shared = sorted(set(a.hashes) & set(b.hashes))
    if not shared:
        return "no hash in common to compare"
    for algorithm in shared:
        if a.hashes[algorithm].lower() != b.hashes[algorithm].lower():
            return f"{algorithm} {a.hashes[algorithm][:12]} vs {b.hashes[algorithm][:12]}"
    if a.size is not None and b.size is not None and a.size != b.size:
        return f"size {a.size} vs {b.size}"
    return None


def merge_parts(
    project: NormalizedName, parts: Sequence[Part], *, first_wins: bool = False
) -> ProjectPage | FileClash:
    """One page from the parts, in order: files deduplicated by filename, provenance set.

    The same filename with different hashes in two parts is a :class:`FileClash`, unless
    ``first_wins`` (union-unsafe), where the earlier part's file is kept.
    """
    files: dict[str, tuple[File, str]] = {}
    for part in parts:
        for file in part.page.files:
            held = files.get(file.filename)
            if held is None:
                files[file.filename] = (file, part.spec.name)
                continue
            detail = _same_content(held[0], file)
            if detail is not None and not first_wins:
                return FileClash(file.filename, held[1], part.spec.name, detail)
    first = parts[0].page
    tracks: list[str] = []
    alternates: list[str] = []
    for part in parts:
        # Provenance: a mirror or proxy serves someone else's project, which its tracks say.
        if part.spec.kind in (SourceKind.MIRROR, SourceKind.PROXY) and part.url:
            tracks.append(part.url)
        tracks.extend(part.page.tracks)
        alternates.extend(part.page.alternate_locations)
    hosted = next((p.page for p in parts if p.spec.kind is SourceKind.HOSTED), None)
    single = len(parts) == 1
    return msgspec.structs.replace(
        first,
        name=project,
        files=tuple(file for file, _ in files.values()),
        versions=first.versions if single else _versions(parts),
        tracks=_dedupe(tracks),
        alternate_locations=_dedupe(alternates),
        namespaces=hosted.namespaces if hosted is not None else None,
        last_serial=first.last_serial if single else None,
    )


def _versions(parts: Sequence[Part]) -> tuple[str, ...] | None:
    if any(p.page.versions is None for p in parts):
        return None  # the renderer derives them from the filenames
    seen: dict[str, None] = {}
    for part in parts:
        seen.update(dict.fromkeys(part.page.versions or ()))
    return tuple(seen)


def _tracked(project: NormalizedName, part: Part) -> frozenset[str] | None:
    """The project URLs ``part``'s page validly tracks, or None when it tracks nothing.

    PEP 708: tracked URLs "MUST have the exact same normalized name" and be the project URL; an
    entry naming another project does not count (an empty set means it tracks nothing valid)."""
    # A page that tracks the URL it was fetched from says nothing about another project: a proxy
    # or mirror states its own upstream that way (provenance), and that must not make it a tracker.
    own = _location(part)
    tracks = [url for url in part.page.tracks if normalize_url(url) != own]
    if not tracks:
        return None
    valid = set()
    for url in tracks:
        key = normalize_url(url)
        segment = key.rstrip("/").rpartition("/")[2]
        if normalize_or_none(segment) == project:
            valid.add(key)
    return frozenset(valid)


def _location(part: Part) -> str:
    # A page without a URL (should not happen) gets one no other page can agree with.
    return normalize_url(part.url) if part.url else f"headwater-source:{part.spec.name}/"


def merge_refusal(project: NormalizedName, remote: Sequence[Part]) -> str | None:
    """None when PEP 708 metadata allows merging ALL of the remote parts, else why not.

    PEP 708 (D5, D6 step 4): a page that tracks another extends that project's namespace; pages
    that track nothing are the namespace's owners and must all agree on their alternate-locations,
    each implicitly including the URL it was fetched from. Trackers must track one of them (or,
    with no owner among the parts, all track a common project).
    """
    if len(remote) <= 1:
        return None
    owners = [p for p in remote if _tracked(project, p) is None]
    trackers = [(p, _tracked(project, p) or frozenset()) for p in remote if p not in owners]
    if owners:
        sets = [
            frozenset({_location(p)} | {normalize_url(u) for u in p.page.alternate_locations})
            for p in owners
        ]
        if len(owners) > 1 and any(s != sets[0] for s in sets):
            if not any(p.page.alternate_locations for p in owners):
                return "no tracks or alternate-locations linking them"
            return "their alternate-locations disagree"
        namespace = sets[0]
    else:
        namespace = frozenset.intersection(*(targets for _, targets in trackers))
        if not namespace:
            return "they track different projects"
    for part, targets in trackers:
        if not targets:
            return f"the tracks of {part.spec.name!r} do not name the project URL of {project!r}"
        if not targets & namespace:
            return (
                f"{part.spec.name!r} tracks {', '.join(sorted(targets))}, "
                "where the others do not serve it"
            )
    return None
