"""Which JSON api-version a page may claim: derived from what the page carries, never assumed.

A page's ``meta.api-version`` is a promise: a client that reads "1.1" or later may rely on every
file having a ``size`` (simple-repository refuses such pages otherwise), and a client that reads
"1.5" may rely on ``namespaces`` and ``/namespaces``. So headwater does not pick a version per
renderer; it asks :func:`page_api_version`, which names the highest version whose mandatory
fields the page actually has, up to what the index implements.

What each version makes mandatory, and what it adds (standards.md section 1.2-1.4, 1.8)::

    version  PEP   mandatory from here on                       new optional keys
    1.0      629   name, files[filename, url, hashes], meta     requires-python, yanked, ...
    1.1      700   versions; size on every file                 upload-time
    1.2      708   -                                            meta.tracks, alternate-locations
    1.3      740   -                                            files[].provenance
    1.4      792   -                                            project-status
    1.5      752   namespaces on every project page; /namespaces, /namespace/<ns>

**Per index, one decision about PEP 752.** "Repositories that do not support this PEP MUST NOT
implement these changes" and one that does implements all of it: every page of an index that
implements it (a hosted index; a composed index with a hosted source) says 1.5 (its project list
too, and it answers ``/namespaces``); every page of any other index says 1.4 and carries no
``namespaces`` key. The model spells the decision ``ProjectPage.namespaces is not None`` and
``ProjectList.namespaces``.

**The one page that says less.** A file whose size is not known (a caching proxy of an upstream
that gives no sizes, before the file was first downloaded) makes ``size`` missing, and the page
then claims 1.0, the last version without it, and carries none of the keys that later versions
define with a meaning (``tracks``, ``alternate-locations``, ``provenance``, ``project-status``,
``namespaces``): a page is a valid page of the version it claims. PEP 700's informational keys
(``versions``, ``size`` where known, ``upload-time``) stay, as keys a 1.0 client ignores. As soon
as every size is known the page claims the index's version again.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from headwater.simple.model import (
    JSON_API_VERSION,
    JSON_API_VERSION_NAMESPACES,
    File,
    ProjectPage,
)

__all__ = [
    "API_VERSIONS",
    "INTRODUCED",
    "PEP752_VERSION",
    "allows",
    "index_api_version",
    "page_api_version",
    "version_key",
]

#: Every JSON api-version headwater knows, oldest first.
API_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5")
#: The version PEP 752 (namespaces) brings.
PEP752_VERSION = JSON_API_VERSION_NAMESPACES
#: The version each meaning-bearing optional key first appears in; a page claiming less
#: carries none of them.
INTRODUCED = {
    "tracks": "1.2",
    "alternate-locations": "1.2",
    "provenance": "1.3",
    "project-status": "1.4",
    "namespaces": "1.5",
}


def version_key(version: str) -> tuple[int, int]:
    """``"1.10"`` -> ``(1, 10)``, for comparing versions as numbers, not strings."""
    major, _, minor = version.partition(".")
    return int(major), int(minor)


def index_api_version(*, namespaces: bool) -> str:
    """The version every page of an index claims when nothing is missing: 1.5 when the index
    implements PEP 752, 1.4 (PEP 792, the newest before it) otherwise."""
    return PEP752_VERSION if namespaces else JSON_API_VERSION


def _sizes_known(files: Iterable[File]) -> bool:
    return all(file.size is not None for file in files)


def page_api_version(page: ProjectPage) -> str:
    """The JSON api-version ``page`` may claim (see the module docstring).

    The index's version (1.5 when ``page.namespaces`` is not None, else 1.4), or 1.0 when a file
    has no known ``size``, the field PEP 700 made mandatory in 1.1.
    """
    if not _sizes_known(page.files):
        return "1.0"
    return index_api_version(namespaces=page.namespaces is not None)


def allows(claimed: str, key: str) -> bool:
    """Whether a page claiming ``claimed`` may carry the optional key ``key`` (see INTRODUCED)."""
    introduced = INTRODUCED.get(key)
    return introduced is None or version_key(claimed) >= version_key(introduced)
