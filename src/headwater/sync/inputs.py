"""The vocabulary of a closure mirror's inputs, shared by their parsers
(:mod:`headwater.sync.requirements_files`, :mod:`headwater.sync.lockfiles`).

==============  ==============================================================================
``Root``        a PEP 508 requirement to follow, where it came from (``requirements.txt line
                4``), and the sha256s pip's ``--hash`` allows for its files
``Locked``      one pinned release with its exact files and their sha256 (a lockfile's entry)
``Inputs``      the roots, the constraints (``-c``) and the locked packages
==============  ==============================================================================

Requirements that name a URL are refused here, for every parser: a mirror can only carry what
its upstream lists. Pure: files are read through the ``read`` callable the caller passes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from headwater.errors import InvalidInput
from headwater.simple.names import NormalizedName, normalize_name
from headwater.sync.candidates import marker_true

__all__ = [
    "Inputs",
    "InvalidLockfile",
    "Locked",
    "LockedFile",
    "Reader",
    "Root",
    "constraint_specifiers",
    "load_toml",
    "parse_requirement",
    "read_file",
]


class InvalidLockfile(InvalidInput):
    """An input file is malformed or asks for something a mirror cannot do; the message names the
    file (and line) and the fix. Nothing was synced."""


class Root(msgspec.Struct, frozen=True):
    """A requirement to follow, where it came from, and (pip's ``--hash``) the only sha256s its
    files may have."""

    requirement: str
    where: str
    hashes: frozenset[str] = frozenset()

    @property
    def parsed(self) -> Requirement:
        """The requirement, parsed (it was checked when read)."""
        return Requirement(self.requirement)


class LockedFile(msgspec.Struct, frozen=True):
    """One file a lockfile pins: its filename and the sha256 the lockfile promises."""

    filename: str
    sha256: str | None
    is_wheel: bool


class Locked(msgspec.Struct, frozen=True):
    """One release a lockfile pins, with its marker (None: every environment) and files."""

    name: NormalizedName
    version: str
    files: tuple[LockedFile, ...]
    where: str
    marker: str | None = None
    requires_python: str | None = None


class Inputs(msgspec.Struct, frozen=True):
    """Everything a closure mirror satisfies."""

    roots: tuple[Root, ...] = ()
    constraints: tuple[Root, ...] = ()
    locked: tuple[Locked, ...] = ()
    #: Roots ask for pre-releases (``--pre`` in a requirements file).
    prereleases: bool = False

    def __add__(self, other: Inputs) -> Inputs:
        return Inputs(
            self.roots + other.roots,
            self.constraints + other.constraints,
            self.locked + other.locked,
            self.prereleases or other.prereleases,
        )


Reader = Callable[[str], str]


def read_file(read: Reader, path: str) -> str:
    """``read(path)``, with failures as :class:`InvalidLockfile` naming the file."""
    try:
        return read(path)
    except OSError as exc:
        raise InvalidLockfile(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidLockfile(f"{path}: not UTF-8 text: {exc}") from exc


def parse_requirement(text: str, where: str) -> Requirement:
    """A PEP 508 requirement of an index release (a URL requirement is refused)."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidLockfile(f"{where}: {text!r} is not a PEP 508 requirement: {exc}") from exc
    if req.url:
        raise InvalidLockfile(
            f"{where}: {text!r} names a URL, not a release on the index; a mirror can only carry "
            "files its upstream lists (publish the project to an index, or drop the line)"
        )
    return req


def load_toml(text: str, path: str) -> dict[str, Any]:
    """Parsed TOML, with errors as :class:`InvalidLockfile` naming the file."""
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InvalidLockfile(f"{path}: not valid TOML: {exc}") from exc


def constraint_specifiers(
    inputs: Inputs, markers: Mapping[str, str] | None = None
) -> dict[NormalizedName, SpecifierSet]:
    """The ``-c`` constraints, one specifier set per project (all of a project's lines apply).

    With ``markers`` (an environment's marker values), a constraint whose marker is false there
    does not apply, as pip ignores it on such a machine (``base==1.0; sys_platform == "win32"``
    constrains only Windows).
    """
    out: dict[NormalizedName, SpecifierSet] = {}
    for constraint in inputs.constraints:
        req = constraint.parsed
        if markers is not None and not marker_true(req.marker, markers, ""):
            continue
        name = normalize_name(req.name)
        out[name] = out.get(name, SpecifierSet()) & req.specifier
    return out
