"""Reading an uploaded wheel or sdist safely: what it is, and its core metadata.

:func:`inspect_distribution` opens a local file that a client uploaded and answers "which project,
which version, which kind of file, and what is its core metadata", refusing anything an installer,
a mirror or a person would be hurt by: unsafe or non-normalized filenames, archives that are not
what their suffix says, member paths that escape the archive, links and devices in sdists, zip and
gzip bombs, and metadata that does not parse or names another project or version.

It never extracts anything to disk and reads at most ``Limits.max_metadata_size`` bytes of metadata
into memory; the rest of the archive is only listed (zip) or streamed through (tar.gz). It is
synchronous on purpose: the server runs it in a worker thread.

This module is the whole answer: the filename rule and the core metadata. Opening the archive is
:mod:`headwater.repository._archive` (zip, and the checks every archive gets) and
:mod:`headwater.repository._tar` (tar.gz as a stream); :class:`Limits` and
:class:`InvalidDistribution` are defined there and belong to this module's interface.

Specs: binary-distribution-format (PEP 427), source-distribution-format (PEP 625, PEP 643),
core-metadata, PEP 658 (``.metadata`` files); PyPI's upload checks (standards.md U11, N2, N3).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import msgspec
from packaging.metadata import InvalidMetadata, Metadata, parse_email
from packaging.utils import canonicalize_version
from packaging.version import Version

from headwater.repository._archive import (
    InvalidDistribution,
    Limits,
    read_wheel_metadata,
    read_zip_sdist_metadata,
)
from headwater.repository._tar import read_tar_sdist_metadata
from headwater.simple.filenames import DistributionFilename, InvalidFilename, parse_filename
from headwater.simple.names import InvalidName, NormalizedName, normalize_name, wheel_escape

__all__ = [
    "Distribution",
    "InvalidDistribution",
    "Limits",
    "inspect_distribution",
    "metadata_for_pep658",
]

# Metadata-Version from which PEP 643 guarantees that every field not listed in ``Dynamic`` in an
# sdist's PKG-INFO is exactly what a wheel built from it will carry.
_PEP643_VERSION = Version("2.2")
# Fields that may appear once only: a second copy lands in packaging's "unparsed" dict, and an
# upload whose identity is ambiguous must be refused rather than guessed.
_SINGLE_FIELDS = frozenset({"metadata-version", "name", "version", "requires-python", "summary"})

_DEFAULT_LIMITS = Limits()


class Distribution(msgspec.Struct, frozen=True, kw_only=True):
    """What an uploaded wheel or sdist is, read from its filename and its own core metadata."""

    filename: str
    #: The project name, normalized (``Foo.Bar`` -> ``foo-bar``).
    name: NormalizedName
    #: The project name as written in the core metadata.
    display_name: str
    #: The version in PEP 440 normalized form (as it must appear in the filename).
    version: str
    #: Trailing zeros stripped (``1.0.0`` -> ``1``): equal for versions PEP 440 calls equal.
    canonical_version: str
    filetype: Literal["bdist_wheel", "sdist"]
    #: The wheel's Python tag (``py3``, ``cp312``, ``py2.py3``); ``source`` for an sdist.
    pyversion: str
    #: Size of the archive in bytes.
    size: int
    #: The core metadata verbatim (wheel ``*.dist-info/METADATA``, sdist ``*/PKG-INFO``).
    metadata: bytes
    metadata_sha256: str
    metadata_version: str
    requires_python: str | None = None
    summary: str | None = None
    requires_dist: tuple[str, ...] = ()
    provides_extra: tuple[str, ...] = ()
    #: PEP 643: fields an sdist's build may still change (always empty for wheels).
    dynamic: tuple[str, ...] = ()


def inspect_distribution(
    path: Path, filename: str, *, limits: Limits = _DEFAULT_LIMITS
) -> Distribution:
    """Read the wheel or sdist at ``path``, uploaded as ``filename``, and return what it is.

    Accepts wheels (``.whl``, PEP 427 normalized names), sdists (``.tar.gz``, PEP 625
    ``{name_with_underscores}-{version}.tar.gz``) and legacy ``.zip`` sdists with the same name
    rule. Nothing is extracted to disk.

    Raises:
        InvalidDistribution: the filename is unsafe, not normalized, or not a wheel/sdist name;
            the file is not the archive its suffix says; a member path is absolute or contains
            ``..``; an sdist holds a link or device; a limit in ``limits`` is exceeded; the
            wheel lacks exactly one ``.dist-info`` with ``METADATA``, ``WHEEL`` and ``RECORD``;
            the core metadata does not parse or names another project or version. The message
            names the file and says what to fix.
    """
    parsed = _check_filename(filename)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidDistribution(f"{filename}: cannot read the uploaded file: {exc}") from exc
    if parsed.kind == "wheel":
        metadata = read_wheel_metadata(path, filename, parsed, size, limits)
    elif filename.endswith(".zip"):
        metadata = read_zip_sdist_metadata(path, filename, parsed, size, limits)
    else:
        metadata = read_tar_sdist_metadata(path, filename, parsed, size, limits)
    return _build(parsed, metadata, size)


def metadata_for_pep658(distribution: Distribution) -> bytes | None:
    """The exact bytes to serve as ``<filename>.metadata`` (PEP 658), or ``None`` to serve none.

    For a wheel this is its ``METADATA`` verbatim: installers compare it byte for byte with the
    hash on the page and then trust it instead of downloading the wheel.

    For an sdist, ``PKG-INFO`` is served only when it is a promise: Metadata-Version 2.2 or later
    (PEP 643: fields not marked ``Dynamic`` MUST be the same in every wheel built from it) *and* no
    field is ``Dynamic``. An installer that resolves from a ``.metadata`` file never builds the
    sdist, so any dynamic field (most often ``Requires-Dist``) could make it resolve against
    dependencies the real build would not have; then no file is better than a wrong one. PyPI
    itself serves ``.metadata`` for wheels only.
    """
    if distribution.filetype == "bdist_wheel":
        return distribution.metadata
    if Version(distribution.metadata_version) >= _PEP643_VERSION and not distribution.dynamic:
        return distribution.metadata
    return None


# --- filename ---------------------------------------------------------------------------------


def _check_filename(filename: str) -> DistributionFilename:
    try:
        parsed = parse_filename(filename)
    except InvalidFilename as exc:
        raise InvalidDistribution(f"{exc}; upload a wheel (.whl) or an sdist (.tar.gz)") from exc
    escaped = wheel_escape(parsed.name)
    version = str(parsed.version)
    if parsed.kind == "wheel":
        # PEP 427 / binary-distribution-format: the name is normalized then "-" becomes "_", and
        # the version is normalized; PyPI refuses other spellings since 2025-10 (U11).
        name_part, version_part = filename.split("-", 2)[:2]
        expected = f"{escaped}-{version}"
    else:
        # PEP 625: "{name}-{version}.tar.gz" with the name escaped as for wheels; legacy .zip sdists
        # are held to the same rule so a name can never be spelled two ways.
        stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
        name_part, _, version_part = stem.rpartition("-")
        expected = f"{escaped}-{version}"
    if f"{name_part}-{version_part}" != expected:
        suffix = filename[len(name_part) + 1 + len(version_part) :]
        raise InvalidDistribution(
            f"{filename}: the filename is not normalized; it must start with {expected!r} "
            f"(name lowercased with runs of '-_.' as one '_', version in PEP 440 normal form), "
            f"e.g. {expected + suffix!r}; rebuild it with a current build backend"
        )
    return parsed


# --- core metadata --------------------------------------------------------------------------------

#: Metadata versions before PEP 639 brought License-File (2.4).
_BEFORE_LICENSE_FILE = frozenset({"1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3"})


def _build(parsed: DistributionFilename, data: bytes, size: int) -> Distribution:
    filename = parsed.filename
    raw, unparsed = parse_email(data)
    duplicated = sorted(_SINGLE_FIELDS.intersection(unparsed))
    if duplicated:
        raise InvalidDistribution(
            f"{filename}: the core metadata has {', '.join(duplicated)} more than once or "
            "unreadable; each may appear once; rebuild the distribution"
        )
    if "license_files" in raw and raw.get("metadata_version", "") in _BEFORE_LICENSE_FILE:
        # setuptools and hatchling wrote License-File under Metadata-Version 2.1-2.3 for years
        # before PEP 639 (2.4) standardised it, and PyPI accepts those files (the real
        # pypi_attestations-0.0.19.tar.gz on PyPI is one). headwater does not use the field, so
        # it is left out of validation rather than refusing such a distribution.
        raw = {key: value for key, value in raw.items() if key != "license_files"}  # type: ignore[assignment]
    try:
        metadata = Metadata.from_raw(raw, validate=True)
    except ExceptionGroup as group:
        problems = "; ".join(str(exc) for exc in group.exceptions)
        raise InvalidDistribution(
            f"{filename}: invalid core metadata: {problems}; fix the project's metadata and rebuild"
        ) from group
    except InvalidMetadata as exc:
        raise InvalidDistribution(f"{filename}: invalid core metadata: {exc}") from exc
    try:
        name = normalize_name(metadata.name)
    except InvalidName as exc:
        raise InvalidDistribution(f"{filename}: {exc}") from exc
    if name != parsed.name:
        raise InvalidDistribution(
            f"{filename}: the core metadata says Name: {metadata.name}, but the filename is for "
            f"project {parsed.name!r}; the two must name the same project"
        )
    if metadata.version != parsed.version:
        raise InvalidDistribution(
            f"{filename}: the core metadata says Version: {metadata.version}, but the filename "
            f"says {parsed.version}; the two must be the same version"
        )
    # PEP 427: "{python tag}-{abi tag}-{platform tag}" end the name and hold no "-"; twine sends
    # the python tag as written (e.g. "py2.py3").
    is_wheel = parsed.kind == "wheel"
    pyversion = filename.removesuffix(".whl").split("-")[-3] if is_wheel else "source"
    return Distribution(
        filename=filename,
        name=name,
        display_name=metadata.name,
        version=str(metadata.version),
        canonical_version=_canonical(metadata.version),
        filetype="bdist_wheel" if parsed.kind == "wheel" else "sdist",
        pyversion=pyversion,
        size=size,
        metadata=data,
        metadata_sha256=hashlib.sha256(data).hexdigest(),
        metadata_version=metadata.metadata_version,
        requires_python=str(metadata.requires_python) if metadata.requires_python else None,
        summary=metadata.summary,
        requires_dist=tuple(str(r) for r in metadata.requires_dist or ()),
        provides_extra=tuple(str(e) for e in metadata.provides_extra or ()),
        dynamic=tuple(metadata.dynamic or ()),
    )


def _canonical(version: Version) -> str:
    return canonicalize_version(version, strip_trailing_zero=True)
