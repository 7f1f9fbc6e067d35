"""A project's releases and which of their files one environment installs. Pure.

The vocabulary the closure (:mod:`headwater.sync.closure`) reads candidates in:

=================  ===========================================================================
``Release``        one version's wheels (with their tags), sdists, and whether it is yanked
                   (every file yanked: PEP 592 is per file, a release counts as yanked when no
                   file is left)
``choose``         the wheels an environment installs (tags and ``Requires-Python``), and the
                   sdists by the policy: ``fallback`` (only where no wheel fits), ``always``,
                   ``never``; with ``--hash`` options, only files of those sha256s
``pinned``         ``==``/``===`` without a wildcard: the only way a yanked release is taken
``python_admits``  whether a ``Requires-Python`` admits an environment's Python (``"3.11"``
                   means any 3.11.z)
``marker_true``    a marker evaluated for an environment and extra; a marker that cannot be
                   decided there counts as true (a superset is safe)
=================  ===========================================================================
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Literal

import msgspec
from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import File, ProjectPage
from headwater.sync.environments import SERIES, Environment

__all__ = [
    "Release",
    "SdistPolicy",
    "choose",
    "marker",
    "marker_true",
    "pinned",
    "python_admits",
    "releases",
    "requirement",
]

SdistPolicy = Literal["fallback", "always", "never"]


@functools.lru_cache(maxsize=65536)
def requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


@functools.lru_cache(maxsize=65536)
def marker(text: str) -> Marker | None:
    try:
        return Marker(text)
    except InvalidMarker:
        return None


_PATCH = re.compile(r"""['"](\d+)\.(\d+)\.(\d+)['"]""")


def _full_versions(marker: Marker, env: Mapping[str, str]) -> list[str]:
    """The Python versions to evaluate ``marker`` at: the environment's own, or, for a series,
    3.12.0, a patch past any the marker names, and each patch it names and the next one. A
    marker's truth over 3.12.z changes only at the versions it names, so these decide it for
    every z."""
    full = env["python_full_version"]
    if env.get(SERIES) != "1":
        return [full]
    major, minor = full.split(".")[:2]
    patches = {0, 10_000}
    for found in _PATCH.finditer(str(marker)):
        if (found[1], found[2]) == (major, minor):
            patches |= {int(found[3]), int(found[3]) + 1}
    return [f"{major}.{minor}.{patch}" for patch in sorted(patches)]


def marker_true(marker: Marker | None, env: Mapping[str, str], extra: str) -> bool:
    """Whether ``marker`` can hold in ``env`` with ``extra``: for an environment of a Python
    series, whether it holds for some patch release of it."""
    if marker is None:
        return True
    cpython = env.get("implementation_name") == "cpython"
    try:
        return any(
            marker.evaluate(
                {
                    **env,
                    "python_full_version": v,
                    # CPython's implementation version is its Python version; PyPy's is its own.
                    "implementation_version": v if cpython else env["implementation_version"],
                    "extra": extra,
                }
            )
            for v in _full_versions(marker, env)
        )
    except (UndefinedComparison, UndefinedEnvironmentName):
        return True  # cannot tell for this environment: keep it (a superset is safe)


@functools.lru_cache(maxsize=16384)
def python_admits(spec: str | None, python: str) -> bool:
    if not spec:
        return True
    try:
        specifiers = SpecifierSet(spec)
    except InvalidSpecifier:
        return True  # installers ignore an unparsable Requires-Python too
    major, minor = python.split(".")[:2]
    # "3.11" stands for every 3.11.z: admitted if the series' start, end or a named patch fits.
    candidates = [Version(f"{major}.{minor}"), Version(f"{major}.{minor}.9999")]
    if python.count(".") == 2:
        candidates = [Version(python)]
    return any(specifiers.contains(c, prereleases=True) for c in candidates)


class Release(msgspec.Struct, frozen=True):
    version: Version
    wheels: tuple[tuple[File, frozenset[Tag]], ...]
    sdists: tuple[File, ...]
    yanked: bool


def releases(page: ProjectPage) -> dict[Version, Release]:
    grouped: dict[Version, tuple[list[tuple[File, frozenset[Tag]]], list[File]]] = {}
    for file in page.files:
        try:
            parsed = parse_filename(file.filename)
        except InvalidFilename:
            continue  # eggs, .exe installers: no installer the closure targets picks them
        if parsed.name != page.name:
            continue
        wheels, sdists = grouped.setdefault(parsed.version, ([], []))
        if parsed.kind == "sdist":
            sdists.append(file)
        else:
            wheels.append((file, parsed.tags))
    out: dict[Version, Release] = {}
    for version, (wheels, sdists) in grouped.items():
        files = [f for f, _ in wheels] + sdists
        out[version] = Release(version, tuple(wheels), tuple(sdists), all(f.yanked for f in files))
    return out


def pinned(specifier: SpecifierSet) -> bool:
    return any(s.operator in ("==", "===") and "*" not in s.version for s in specifier)


def choose(
    release: Release, env: Environment, sdists: SdistPolicy, hashes: frozenset[str]
) -> tuple[list[File], list[File]]:
    """The wheels and sdists of one release that ``env`` could install."""
    tags, python = env.tags, env.python

    def ok(file: File) -> bool:
        if hashes and file.hashes.get("sha256", "").lower() not in hashes:
            return False
        return python_admits(file.requires_python, python)

    wheels = [f for f, t in release.wheels if t & tags and ok(f)]
    chosen_sdists: list[File] = []
    if sdists == "always" or (sdists == "fallback" and not wheels):
        chosen_sdists = [f for f in release.sdists if ok(f)]
    return wheels, chosen_sdists
