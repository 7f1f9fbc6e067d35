"""One frozen model of the Simple Repository API at its newest version.

The model is what headwater means by a page, whatever format it travelled in: parsers
(:mod:`headwater.simple.json`, :mod:`headwater.simple.html`) accept older and quirky forms and produce
this model; renderers take this model and emit conformant bytes. Fields follow the newest spec
(JSON API 1.4, plus PEP 752's 1.5 ``namespaces``); a field a page did not carry is ``None``.

Spec: https://packaging.python.org/en/latest/specifications/simple-repository-api/
"""

from __future__ import annotations

import enum
import warnings
from datetime import datetime
from typing import Annotated

import msgspec

from headwater.errors import InvalidInput
from headwater.simple.names import NormalizedName, is_normalized, normalize_name

__all__ = [
    "HTML_API_VERSION",
    "JSON_API_VERSION",
    "JSON_API_VERSION_NAMESPACES",
    "SUPPORTED_MAJOR",
    "File",
    "InvalidPage",
    "Namespace",
    "NewerAPIVersionWarning",
    "ProjectList",
    "ProjectListEntry",
    "ProjectPage",
    "ProjectStatus",
    "RejectedEntry",
    "UnsupportedAPIVersion",
    "check_api_version",
]

#: The major API version headwater speaks. A page declaring a higher major MUST be refused
#: (spec: "Clients MUST hard-fail if the major version is greater than the one they expect").
SUPPORTED_MAJOR = 1
#: PEP 833: the HTML representation is frozen at 1.4.
HTML_API_VERSION = "1.4"
#: The JSON version every page of an index that does not implement PEP 752 claims (when nothing
#: mandatory is missing: headwater.simple.versions decides).
JSON_API_VERSION = "1.4"
#: PEP 752 bumps JSON to 1.5: every page of an index that implements it claims 1.5, and no page of
#: another index does ("repositories that do not support namespaces MUST NOT" emit the keys).
JSON_API_VERSION_NAMESPACES = "1.5"


class InvalidPage(InvalidInput):
    """A Simple API page (JSON or HTML) is malformed or unsafe to use."""


class UnsupportedAPIVersion(InvalidPage):
    """A page declares a major API version headwater does not speak."""


class NewerAPIVersionWarning(UserWarning):
    """A page declares a newer minor API version than headwater knows; it is read as far as
    headwater understands it (the spec's "SHOULD warn")."""


def check_api_version(version: str | None, *, what: str) -> tuple[str, bool]:
    """Check a page's declared api-version; return it (``"1.0"`` if absent) and whether it is newer.

    Spec (Versioning): clients "MUST assume 1.0" when the version is absent, "MUST hard-fail" on a
    greater major, and "SHOULD warn" on a greater minor: a newer minor emits
    :class:`NewerAPIVersionWarning` (and the second element is True).

    Raises:
        UnsupportedAPIVersion: the major version is greater than :data:`SUPPORTED_MAJOR`.
        InvalidPage: the version is not ``MAJOR.MINOR``.
    """
    if version is None:
        return "1.0", False
    major_s, dot, minor_s = version.partition(".")
    if not (dot and major_s.isdigit() and minor_s.isdigit()):
        raise InvalidPage(f"{what}: api-version {version!r} is not of the form MAJOR.MINOR")
    major, minor = int(major_s), int(minor_s)
    if major > SUPPORTED_MAJOR:
        raise UnsupportedAPIVersion(
            f"{what} declares Simple API version {version}; headwater speaks {SUPPORTED_MAJOR}.x "
            "and refuses a newer major version rather than misread it. Upgrade headwater, or "
            "point it at an index that serves version 1."
        )
    newest_minor = int(JSON_API_VERSION_NAMESPACES.partition(".")[2])
    newer = major == SUPPORTED_MAJOR and minor > newest_minor
    if newer:
        warnings.warn(
            NewerAPIVersionWarning(
                f"{what} declares Simple API version {version}, newer than the "
                f"{JSON_API_VERSION_NAMESPACES} headwater knows; reading what it understands"
            ),
            stacklevel=3,
        )
    return version, newer


class ProjectStatus(enum.StrEnum):
    """PEP 792 project status markers (project-status-markers spec)."""

    #: Default: uploads allowed, files offered.
    ACTIVE = "active"
    #: MUST NOT accept uploads; MUST offer files.
    ARCHIVED = "archived"
    #: MUST NOT accept uploads; MUST NOT offer any files.
    QUARANTINED = "quarantined"
    #: Same semantics as active; tells users to move on.
    DEPRECATED = "deprecated"


class File(msgspec.Struct, frozen=True, kw_only=True):
    """One distribution file on a project page.

    ``hashes`` maps lowercase hashlib names to hex digests (it may be empty: the spec requires the key,
    not a digest). ``core_metadata`` is ``None`` when the page did not say (unknown), ``False`` when it
    said there is no ``.metadata`` file, ``True`` when there is one without a known digest, or a dict
    of digests of the ``.metadata`` file. ``yanked`` with ``yanked_reason`` encodes the spec's
    "bool or non-empty reason string". ``size`` and ``upload_time`` are PEP 700 fields (HTML carries
    neither). ``upload_time`` is timezone-aware UTC.
    """

    filename: str
    url: str
    hashes: dict[str, str] = msgspec.field(default_factory=dict)
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    core_metadata: dict[str, str] | bool | None = None
    gpg_sig: bool | None = None
    size: int | None = None
    upload_time: datetime | None = None
    provenance: str | None = None

    @property
    def metadata_url(self) -> str:
        """Where PEP 658 says the core metadata lives: the file URL plus ``.metadata``."""
        base, _, _ = self.url.partition("#")
        return base + ".metadata"

    @property
    def has_metadata(self) -> bool:
        """Whether the page promises a ``.metadata`` file (a dict of hashes or ``True``)."""
        return self.core_metadata is not None and self.core_metadata is not False


class Namespace(msgspec.Struct, frozen=True, kw_only=True):
    """PEP 752: a namespace that covers a project, and whether the project's owner owns it."""

    name: str
    owned: bool


class ProjectPage(msgspec.Struct, frozen=True, kw_only=True):
    """A project detail page.

    ``versions`` is ``None`` when the page did not list them (HTML, or JSON before 1.1); renderers
    then derive it from the filenames. ``tracks`` (PEP 708, set by the operator only) and
    ``alternate_locations`` (PEP 708) are URLs. ``namespaces`` is ``None`` unless the index supports
    PEP 752. ``api_version`` is what the page declared when parsed ("1.0" when it declared nothing);
    renderers emit their own version, not this one. ``last_serial`` is PyPI's private
    ``_last-serial`` / ``<!--SERIAL n-->``.
    """

    name: NormalizedName
    files: tuple[File, ...] = ()
    versions: tuple[str, ...] | None = None
    status: ProjectStatus = ProjectStatus.ACTIVE
    status_reason: str | None = None
    tracks: tuple[str, ...] = ()
    alternate_locations: tuple[str, ...] = ()
    namespaces: tuple[Namespace, ...] | None = None
    last_serial: int | None = None
    api_version: str = JSON_API_VERSION


class ProjectListEntry(msgspec.Struct, frozen=True, gc=False):
    """One project on the root page: its name as the index gave it, and PyPI's ``_last-serial``."""

    name: str
    # Decoded from an upstream: a serial a client can hold (0 to 2**63-1); the JSON parser puts
    # an entry with anything else aside as rejected.
    last_serial: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = msgspec.field(
        default=None, name="_last-serial"
    )

    @property
    def normalized(self) -> NormalizedName:
        """The normalized name (the entry was validated when parsed or built)."""
        return NormalizedName(self.name) if is_normalized(self.name) else normalize_name(self.name)


class RejectedEntry(msgspec.Struct, frozen=True):
    """An entry a parser refused to put in the model, and why (for the caller to report)."""

    value: str
    reason: str


class ProjectList(msgspec.Struct, frozen=True, kw_only=True):
    """The root page: every project, PyPI's global ``_last-serial``, whether the index implements
    PEP 752.

    Parsers skip entries whose names fail validation rather than refusing a 700,000-project page for
    one hostile name; what they skipped is in ``rejected`` so the caller can report it.
    """

    projects: tuple[ProjectListEntry, ...] = ()
    last_serial: int | None = None
    api_version: str = JSON_API_VERSION
    rejected: tuple[RejectedEntry, ...] = ()
    #: The index implements PEP 752 (its project pages carry ``namespaces`` and it answers
    #: ``/namespaces``): the list claims 1.5 like its pages (see headwater.simple.versions).
    namespaces: bool = False
