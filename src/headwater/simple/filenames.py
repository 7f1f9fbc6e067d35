"""Distribution filenames: safety checks and wheel / sdist parsing.

Specs: binary-distribution-format (PEP 427) "File name convention", source-distribution-format
(PEP 625) "Source distribution file name". The parsing itself is :mod:`packaging.utils`, which pip
vendors; this module adds the checks a mirror needs before a filename becomes a path on disk, and
one error type that names the input.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from headwater.errors import InvalidInput
from headwater.simple.names import NormalizedName, normalize_or_none
from headwater.simple.text import UNSAFE

__all__ = [
    "LEGACY_SUFFIXES",
    "MAX_FILENAME_LENGTH",
    "DistributionFilename",
    "InvalidFilename",
    "check_safe_filename",
    "parse_filename",
    "project_candidates",
]

# PyPI still lists files in formats no installer builds any more; a mirror must store them without
# understanding them (standards.md N5).
LEGACY_SUFFIXES = (
    ".egg",
    ".exe",
    ".msi",
    ".rpm",
    ".tar.bz2",
    ".tbz",
    ".tgz",
    ".tar.xz",
    ".zip",
    ".dmg",
)
# A filename is one path component on every file system we write to: 255 bytes is the common cap.
MAX_FILENAME_LENGTH = 255
# Control characters (C0, DEL, C1) are refused everywhere (warehouse does the same for uploads).
# Separators, controls, and what no HTML5 page can carry (noncharacters, surrogates: see
# headwater.simple.text), since the filename is the anchor text of its link.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]|" + UNSAFE.pattern)
# The shape of nearly every real filename: printable ASCII without separators, not starting with
# ".", at most 255 characters (= bytes). Accepting it in one match keeps the per-file cost of a
# 10,000-file page low; anything else takes the detailed path that says what is wrong.
_PLAIN = re.compile(r"[A-Za-z0-9_+!~-][\x20-\x2e\x30-\x5b\x5d-\x7e]{0,254}\Z")


class InvalidFilename(InvalidInput):
    """A distribution filename is unsafe or cannot be parsed."""


class DistributionFilename(msgspec.Struct, frozen=True, kw_only=True):
    """What a wheel or sdist filename says about the file."""

    filename: str
    kind: Literal["wheel", "sdist"]
    name: NormalizedName
    version: Version
    build: tuple[int, str] | tuple[()] = ()
    tags: frozenset[Tag] = frozenset()


def check_safe_filename(filename: str) -> str:
    """Return ``filename`` if it can safely be one path component; raise otherwise.

    Refuses empty names, ``.`` and ``..``, separators (``/``, ``\\``), NUL and other control
    characters, noncharacters and surrogates (no HTML page can carry them as its anchor text),
    leading dots (hidden files, ``..foo``), and names over 255 UTF-8 bytes.

    Raises:
        InvalidFilename: with the reason and the offending name (shown with repr, so control
            characters are visible).
    """
    if _PLAIN.match(filename):
        return filename
    if not filename:
        raise InvalidFilename("empty distribution filename")
    if _UNSAFE.search(filename):
        raise InvalidFilename(
            f"unsafe distribution filename {filename[:120]!r}: path separators and control "
            "characters are not allowed in a filename"
        )
    if filename.startswith("."):
        raise InvalidFilename(
            f"unsafe distribution filename {filename[:120]!r}: a filename may not start with '.'"
        )
    if len(filename.encode("utf-8", "surrogatepass")) > MAX_FILENAME_LENGTH:
        raise InvalidFilename(
            f"distribution filename too long ({len(filename)} characters, at most "
            f"{MAX_FILENAME_LENGTH} bytes): {filename[:60]!r}..."
        )
    return filename


def parse_filename(filename: str) -> DistributionFilename:
    """Parse a wheel (``.whl``) or sdist (``.tar.gz``, legacy ``.zip``) filename.

    Accepts the older forms the wheel spec says consumers MUST accept (uppercase, ``.`` in the
    name); use :func:`headwater.simple.names.wheel_escape` to check that a filename is in the
    normalized form PyPI now requires for uploads.

    Raises:
        InvalidFilename: the name is unsafe, or is not a wheel or sdist filename, or its version is
            not PEP 440.
    """
    check_safe_filename(filename)
    try:
        if filename.endswith(".whl"):
            name, version, build, tags = parse_wheel_filename(filename)
            return DistributionFilename(
                filename=filename,
                kind="wheel",
                name=NormalizedName(name),
                version=version,
                build=build,
                tags=tags,
            )
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return DistributionFilename(
                filename=filename, kind="sdist", name=NormalizedName(name), version=version
            )
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise InvalidFilename(f"cannot parse distribution filename {filename!r}: {exc}") from exc
    raise InvalidFilename(
        f"{filename!r} is neither a wheel (.whl) nor an sdist (.tar.gz, .zip); legacy formats "
        f"({', '.join(LEGACY_SUFFIXES)}) are stored but not parsed"
    )


#: A legacy file's project: the text before the first ``-`` that starts a version.
_LEGACY_NAME = re.compile(r"(.+?)-\d")


def project_candidates(filename: str) -> list[NormalizedName]:
    """The projects a distribution file may belong to, most likely first: the name a wheel or
    sdist states (:func:`parse_filename`); for names it refuses (legacy ``.egg``, ``.exe``,
    ``.tar.bz2``, a ``-`` inside a version), the text before the version, then the first field.
    A caller that finds the file on one of these projects' pages has its owner; at most two
    guesses, so a made-up name costs little."""
    try:
        return [parse_filename(filename).name]
    except InvalidFilename:
        pass
    guesses: list[NormalizedName] = []
    found = _LEGACY_NAME.match(filename)
    for text in (found.group(1) if found else None, filename.partition("-")[0]):
        name = normalize_or_none(text) if text else None
        if name is not None and name not in guesses:
            guesses.append(name)
    return guesses
