"""The shapes of PEP 691 JSON as msgspec structs: what indexes send, and what headwater emits.

:mod:`headwater.simple.json` decodes pages into the lenient ``Wire*`` structs and builds the model
from them, and renders the model through the ``Out*`` structs. ``Wire*`` mirror what real indexes
serve (hyphenated keys, PyPI's private ``_last-serial``, deprecated and stale spellings); unknown
keys are ignored by msgspec, as the spec requires ("Clients MUST ignore keys that they don't
understand", item 26). ``Out*`` carry only the keys the spec defines plus ``_last-serial``, and
leave out what is unset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from headwater.simple.model import ProjectListEntry

__all__ = [
    "OutFile",
    "OutList",
    "OutMeta",
    "OutNameOnly",
    "OutNamespace",
    "OutPage",
    "OutStatus",
    "WireFile",
    "WireList",
    "WireListEntryLenient",
    "WireListLenient",
    "WireMeta",
    "WirePage",
    "WireStatus",
]

# --------------------------------------------------------------------------------------------------
# What indexes send.


_Serial = int | str | None


class WireStatus(msgspec.Struct):
    # PEP 792's text says ``state``; its example, the living spec and PyPI say ``status``.
    status: str | None = None
    state: str | None = None
    reason: str | None = None


class WireMeta(msgspec.Struct):
    api_version: str | None = msgspec.field(default=None, name="api-version")
    last_serial: _Serial = msgspec.field(default=None, name="_last-serial")
    # PEP 708: ``tracks`` lives under meta.
    tracks: list[str] | None = None
    # The spec's JSON example still shows these stale forms under meta (section 1.9).
    project_status: str | WireStatus | None = msgspec.field(default=None, name="project-status")
    project_status_reason: str | None = msgspec.field(default=None, name="project-status-reason")


class WireFile(msgspec.Struct):
    # Spec: "filename", "url" and "hashes" are mandatory ("hashes" even when empty).
    filename: str
    url: str
    hashes: dict[str, str]
    requires_python: str | None = msgspec.field(default=None, name="requires-python")
    yanked: bool | str | None = None
    core_metadata: bool | dict[str, str] | None = msgspec.field(default=None, name="core-metadata")
    # PEP 714: clients MAY fall back to the deprecated name; PyPI also sends this misspelling.
    data_dist_info_metadata: bool | dict[str, str] | None = msgspec.field(
        default=None, name="data-dist-info-metadata"
    )
    dist_info_metadata: bool | dict[str, str] | None = msgspec.field(
        default=None, name="dist-info-metadata"
    )
    gpg_sig: bool | None = msgspec.field(default=None, name="gpg-sig")
    # A byte count a client can hold: uv reads it as a u64 and refuses the whole page when it
    # does not fit, and a negative size is no size. Outside that range the page is invalid
    # input (served stale or refused by the proxy, reported by the mirror), never re-served.
    size: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    upload_time: datetime | None = msgspec.field(default=None, name="upload-time")
    provenance: str | None = None


class WireNamespace(msgspec.Struct):
    name: str
    owned: bool


class WirePage(msgspec.Struct):
    name: str
    files: list[WireFile]
    meta: WireMeta | None = None
    versions: list[str] | None = None
    project_status: WireStatus | None = msgspec.field(default=None, name="project-status")
    # PEP 708: ``alternate-locations`` is top level.
    alternate_locations: list[str] | None = msgspec.field(default=None, name="alternate-locations")
    # PEP 752. UNSET tells "absent" (no PEP 752 support) from "null".
    namespaces: list[WireNamespace] | msgspec.UnsetType | None = msgspec.UNSET


class WireList(msgspec.Struct):
    # Fast path: entries decode straight into the model struct (PyPI's serials are integers).
    projects: list[ProjectListEntry]
    meta: WireMeta | None = None


class WireListEntryLenient(msgspec.Struct):
    name: Any = None
    last_serial: Any = msgspec.field(default=None, name="_last-serial")


class WireListLenient(msgspec.Struct):
    # Slow path when one entry does not fit the fast path: each entry is checked by hand so one
    # hostile entry is rejected instead of refusing the whole list.
    projects: list[Any]
    meta: WireMeta | None = None


# --------------------------------------------------------------------------------------------------
# What headwater emits.


class OutMeta(msgspec.Struct, omit_defaults=True):
    api_version: str = msgspec.field(name="api-version")
    last_serial: int | None = msgspec.field(default=None, name="_last-serial")
    tracks: list[str] | None = None


class OutNameOnly(msgspec.Struct):
    name: str


class OutList(msgspec.Struct):
    meta: OutMeta
    projects: list[ProjectListEntry | OutNameOnly]


class OutFile(msgspec.Struct, omit_defaults=True):
    filename: str
    url: str
    hashes: dict[str, str]
    requires_python: str | None = msgspec.field(default=None, name="requires-python")
    core_metadata: dict[str, str] | bool | None = msgspec.field(default=None, name="core-metadata")
    gpg_sig: bool | None = msgspec.field(default=None, name="gpg-sig")
    yanked: bool | str = False
    size: int | None = None
    upload_time: str | None = msgspec.field(default=None, name="upload-time")
    provenance: str | None = None


class OutStatus(msgspec.Struct, omit_defaults=True):
    status: str
    reason: str | None = None


class OutNamespace(msgspec.Struct):
    name: str
    owned: bool


class OutPage(msgspec.Struct, omit_defaults=True):
    meta: OutMeta
    name: str
    versions: list[str]
    files: list[OutFile]
    project_status: OutStatus | None = msgspec.field(default=None, name="project-status")
    alternate_locations: list[str] | None = msgspec.field(default=None, name="alternate-locations")
    # UNSET: the index does not support namespaces (the key is left out, as PEP 752 requires);
    # None: it does, and this project is in none (``"namespaces": null``).
    namespaces: list[OutNamespace] | msgspec.UnsetType | None = msgspec.UNSET
