"""The file filters' view of Python versions and platforms: which wheels and sdists run where.

:mod:`headwater.sync.filters` keeps a file when it can install on one of the configured
``python_versions`` and ``platforms``. This module answers the two questions that takes, as
``packaging.tags`` and ``packaging.specifiers`` would for a real interpreter: can a wheel tag
install on Python X.Y (:func:`tag_runs_on`), and does a ``Requires-Python`` admit some X.Y.z
(:func:`requires_python_admits`); and it checks the options' values (:func:`check_platform_glob`,
:func:`parse_python_version`), naming the option and the fix. Pure, like the rest of the filters.
"""

from __future__ import annotations

import functools
import re

from packaging.tags import Tag
from packaging.version import InvalidVersion, Version

from headwater.sync.filter_names import TABLE, InvalidFilter

__all__ = [
    "check_platform_glob",
    "parse_python_version",
    "requires_python_admits",
    "tag_runs_on",
]


_PLATFORM_GLOB = re.compile(r"[a-z0-9_*?]+\Z")
# bandersnatch's platform words are not tags; say which glob was meant instead of matching nothing.
_PLATFORM_WORDS = {
    "windows": "win*",
    "win": "win*",
    "macos": "macosx*",
    "osx": "macosx*",
    "linux": "*linux*",
    "freebsd": "freebsd*",
}


def check_platform_glob(pattern: str, *, key: str) -> None:
    if not _PLATFORM_GLOB.match(pattern):
        raise InvalidFilter(
            f"{TABLE} {key}: {pattern!r} is not a platform tag glob: use lowercase letters, "
            "digits, '_' and the wildcards '*' and '?' (e.g. 'manylinux*_x86_64', 'win_amd64')"
        )
    if pattern in _PLATFORM_WORDS:
        raise InvalidFilter(
            f"{TABLE} {key}: {pattern!r} is not a wheel platform tag; did you mean "
            f"{_PLATFORM_WORDS[pattern]!r}?"
        )


_PYTHON_VERSION = re.compile(r"(\d{1,2})\.(\d{1,3})\Z")


def parse_python_version(value: str) -> tuple[int, int]:
    match = _PYTHON_VERSION.match(value)
    if not match:
        raise InvalidFilter(
            f"{TABLE} python_versions: {value!r} is not a MAJOR.MINOR Python version "
            '(write it as a string, e.g. "3.12")'
        )
    return int(match[1]), int(match[2])


_INTERPRETER = re.compile(r"([a-z]+)(\d)(\d*)\Z")


def tag_runs_on(tag: Tag, target: tuple[int, int]) -> bool:
    """Whether a wheel tag can install on CPython (or another implementation) ``target``.

    Mirrors what ``packaging.tags`` generates for an interpreter: ``pyX``/``pyXY`` with Y <= minor,
    ``cpXY-abi3`` with Y <= minor (the stable ABI is forward compatible), any other ``xxXY`` only
    for exactly X.Y. The implementation itself is not filtered (``pp310`` counts as 3.10).
    """
    match = _INTERPRETER.match(tag.interpreter)
    if match is None:
        return False
    impl, major, minor = match[1], int(match[2]), match[3]
    if major != target[0]:
        return False
    if not minor:
        return True
    if impl == "py" or tag.abi == "abi3":
        return int(minor) <= target[1]
    return int(minor) == target[1]


@functools.lru_cache(maxsize=4096)
def requires_python_admits(spec: str, targets: tuple[tuple[int, int], ...]) -> bool | None:
    """Whether ``Requires-Python: spec`` admits some X.Y.z of a target; ``None`` if unparsable."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        specifiers = SpecifierSet(spec)
    except InvalidSpecifier:
        return None
    for major, minor in targets:
        # "3.11" stands for every 3.11.z: test the series' ends and any patch the spec names.
        candidates = {Version(f"{major}.{minor}"), Version(f"{major}.{minor}.9999")}
        for specifier in specifiers:
            try:
                named = Version(specifier.version)
            except InvalidVersion:  # "3.11.*"
                continue
            if named.release[:2] == (major, minor):
                candidates.add(named)
        if any(specifiers.contains(c, prereleases=True) for c in candidates):
            return True
    return False
