"""The versions a project page offers, as installers count them (pure)."""

from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from headwater.policy.held import held_reason
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import ProjectPage

__all__ = ["count_and_highest", "held_refusals", "highest", "live_versions"]


def live_versions(page: ProjectPage, *, files_only: bool = False) -> tuple[int, set[Version]]:
    """(count of versions, the versions that have at least one file not yanked). A page that
    lists versions but no files counts them as live, unless ``files_only`` (what an installer
    can install: a file)."""
    listed: set[str] = set(page.versions or ())
    live: set[Version] = set()
    for file in page.files:
        try:
            version = parse_filename(file.filename).version
        except InvalidFilename:
            continue
        listed.add(str(version))
        if not file.yanked:
            live.add(version)
    if (
        not page.files and not files_only
    ):  # a page listing versions only (no files to judge yanking by)
        for text in listed:
            try:
                live.add(Version(text))
            except InvalidVersion:
                continue
    return len(listed), live


def count_and_highest(page: ProjectPage, specifier: SpecifierSet) -> tuple[int, Version | None]:
    """How many versions ``page`` lists, and the highest live one ``specifier`` allows (final
    releases preferred: pre-releases only when no final release matches, as pip and uv do)."""
    count, live = live_versions(page)
    return count, _top(live, specifier)


def _top(live: set[Version], specifier: SpecifierSet) -> Version | None:
    allowed = [v for v in live if specifier.contains(v, prereleases=True)]
    finals = [v for v in allowed if not v.is_prerelease]
    pool = finals or allowed
    return max(pool) if pool else None


def highest(page: ProjectPage, specifier: SpecifierSet) -> Version | None:
    """The version of ``page`` an installer would take under ``specifier``: the highest with a
    file not yanked (None: nothing to install)."""
    _, live = live_versions(page, files_only=True)
    return _top(live, specifier)


def held_refusals(page: ProjectPage, specifier: SpecifierSet) -> list[str]:
    """The refusals of the files ``page`` lists as held by a headwater publisher guard
    (:mod:`headwater.policy.held`) whose version ``specifier`` allows, one per release."""
    found: dict[Version, str] = {}
    for file in page.files:
        reason = held_reason(file)
        if reason is None:
            continue
        try:
            version = parse_filename(file.filename).version
        except InvalidFilename:
            continue
        if specifier.contains(version, prereleases=True):
            found.setdefault(version, reason)
    return [found[v] for v in sorted(found)]
