"""Small builders for policy tests: pages, files, observations and rules in one line each."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from headwater.policy import Observation, Route, Rules, SourceKind, SourceSpec
from headwater.simple.model import File, ProjectPage, ProjectStatus
from headwater.simple.names import NormalizedName, normalize_name

NOW = datetime(2024, 6, 1, tzinfo=UTC)
OLD = datetime(2024, 1, 1, tzinfo=UTC)


def sha(label: str) -> str:
    """A realistic sha256 digest that differs per label."""
    return hashlib.sha256(label.encode()).hexdigest()


def dist(filename: str, *, content: str | None = None, uploaded: datetime | None = OLD) -> File:
    """A file whose sha256 is that of ``content`` (the filename by default)."""
    digest = sha(content if content is not None else filename)
    return File(
        filename=filename,
        url=f"../../packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/{filename}",
        hashes={"sha256": digest},
        upload_time=uploaded,
    )


def page(
    name: str,
    *files: File,
    tracks: tuple[str, ...] = (),
    alternates: tuple[str, ...] = (),
    status: ProjectStatus = ProjectStatus.ACTIVE,
) -> ProjectPage:
    return ProjectPage(
        name=normalize_name(name),
        files=files,
        tracks=tracks,
        alternate_locations=alternates,
        status=status,
    )


def found(
    source: str, the_page: ProjectPage, *, url: str = "", stale: str | None = None
) -> Observation:
    return Observation(source, "found", page=the_page, url=url, stale=stale)


def absent(source: str, *, claimed: bool = False) -> Observation:
    return Observation(source, "absent", claimed=claimed)


def down(source: str, error: str = "connection refused") -> Observation:
    return Observation(source, "unavailable", error=error)


KINDS = {
    "internal": SourceKind.HOSTED,
    "team": SourceKind.HOSTED,
    "pypi": SourceKind.PROXY,
    "piwheels": SourceKind.PROXY,
    "mirror": SourceKind.MIRROR,
    "wheelhouse": SourceKind.DIRECTORY,
}

URLS = {
    "pypi": "https://pypi.org/simple/",
    "piwheels": "https://www.piwheels.org/simple/",
    "mirror": "https://mirror.example.org/simple/",
}


def url_of(source: str, project: str) -> str:
    """The PEP 708 URL of ``project`` at a remote source (its upstream project URL)."""
    return f"{URLS[source]}{project}/" if source in URLS else ""


def rules(
    *sources: str,
    policy: str = "priority",
    routes: tuple[Route, ...] = (),
    namespaces: tuple[tuple[str, str], ...] = (),
    cooldown: dict[str, float] | None = None,
    index: str = "main",
) -> Rules:
    specs = tuple(SourceSpec(s, KINDS[s], (cooldown or {}).get(s)) for s in sources)
    return Rules(index, specs, policy, routes, namespaces)  # type: ignore[arg-type]


def name(value: str) -> NormalizedName:
    return normalize_name(value)
