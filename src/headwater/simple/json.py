"""PEP 691 JSON: parse Simple API pages into the model, render the model as conformant JSON.

Pure: bytes in, model out; model in, bytes out. Parsing decodes with msgspec into lenient *wire*
structs that mirror what real indexes serve (hyphenated keys, PyPI's private ``_last-serial``,
deprecated and stale spellings), then builds the frozen :mod:`headwater.simple.model`.
Rendering emits the newest JSON the page satisfies (:mod:`headwater.simple.versions`: 1.5 on
indexes that implement PEP 752, 1.4 on others, 1.0 while a size is unknown), compact, with only the
keys the spec defines plus ``_last-serial``. The structs of both directions are
:mod:`headwater.simple._json_schema`; this module is the logic.

Spec: https://packaging.python.org/en/latest/specifications/simple-repository-api/ (JSON
serialization; PEP 691, 700, 714, 740, 792; PEP 708 ``tracks``/``alternate-locations``; PEP 752).

Choices a caller may need to know:

* ``"core-metadata": {}`` (a dict with no digests) parses as ``True``: the spec says a dict means
  the metadata file exists, and the model spells "exists, digest unknown" as ``True``.
* ``"yanked": ""`` parses as not yanked: the JSON spec says a *truthy* value means yanked and a
  reason must be non-empty (HTML's empty ``data-yanked`` is a different rule).
* ``"namespaces": null`` parses as ``()`` (the index speaks PEP 752 and names no namespace); an
  absent key parses as ``None`` (the index said nothing about namespaces).
* ``_last-serial`` is accepted as an integer or a string of digits (bandersnatch-built trees write
  strings).
* A file whose ``size`` is unknown (``None``, e.g. a page first read from HTML) is rendered
  *without* the ``size`` key, and the page then claims API 1.0: ``size`` is mandatory since 1.1,
  inventing ``0`` would make clients that check sizes reject a good file, and claiming 1.1 or
  later without it is a promise the page breaks (:mod:`headwater.simple.versions`). Callers that
  have the file fill it in (a proxy does once the file is cached).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import msgspec
from packaging.version import Version

from headwater.simple._json_schema import (
    OutFile,
    OutList,
    OutMeta,
    OutNameOnly,
    OutNamespace,
    OutPage,
    OutStatus,
    WireFile,
    WireList,
    WireListEntryLenient,
    WireListLenient,
    WirePage,
    WireStatus,
)
from headwater.simple.filenames import InvalidFilename, check_safe_filename, parse_filename
from headwater.simple.model import (
    File,
    InvalidPage,
    Namespace,
    ProjectList,
    ProjectListEntry,
    ProjectPage,
    ProjectStatus,
    RejectedEntry,
    check_api_version,
)
from headwater.simple.names import (
    InvalidName,
    normalize_many,
    normalize_name,
)
from headwater.simple.text import neutralise, neutralise_url, secure_url
from headwater.simple.versions import allows, index_api_version, page_api_version

__all__ = [
    "parse_project_list_json",
    "parse_project_page_json",
    "render_project_list_json",
    "render_project_page_json",
]


_page_decoder = msgspec.json.Decoder(WirePage)
_list_decoder = msgspec.json.Decoder(WireList)
_list_decoder_lenient = msgspec.json.Decoder(WireListLenient)
_any_decoder = msgspec.json.Decoder()

# msgspec names the failing location like "$.files[12].url"; we use the index to name the file.
_FILE_PATH = re.compile(r"\$\.files\[(\d+)\]")


def _decode_error(exc: msgspec.MsgspecError, data: bytes, what: str) -> InvalidPage:
    """Turn a msgspec error into an InvalidPage that says what is wrong and where."""
    message = str(exc)
    if message.startswith("Expected `object`, got") and "$." not in message:
        kind = message.removeprefix("Expected `object`, got ").strip("`")
        # Spec (item 25): "All JSON responses will be an object rather than including an array
        # as the top level".
        return InvalidPage(f"{what}: a Simple API JSON response must be an object, got {kind}")
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidPage(f"{what} is not valid JSON: {message}")
    match = _FILE_PATH.search(message)
    if match:
        index = int(match.group(1))
        filename = _filename_at(data, index)
        named = f"file entry #{index}" + (f" ({filename!r})" if filename else "")
        return InvalidPage(f"{what}: {named} is malformed: {message}")
    return InvalidPage(f"{what} is malformed: {message}")


def _too_deep(what: str) -> InvalidPage:
    # msgspec raises RecursionError (not a DecodeError) for nesting past the interpreter's limit,
    # even where typed decoding skips an unknown key's value; no Simple API page nests that deep.
    return InvalidPage(f"{what} is nested too deeply to be a Simple API page")


def _filename_at(data: bytes, index: int) -> str | None:
    """Best effort: the filename of ``files[index]`` in a page that failed typed decoding."""
    try:
        raw = _any_decoder.decode(data)
        name = raw["files"][index]["filename"]
    except (msgspec.MsgspecError, LookupError, TypeError, RecursionError):
        return None
    return name if isinstance(name, str) else None


#: The largest serial kept: one a client can hold in 64 bits (PyPI's are far below).
_MAX_SERIAL = 2**63 - 1


def _serial(value: Any, what: str) -> int | None:
    """PyPI sends integers; bandersnatch-built trees send strings of digits. Either must be a
    serial a client can hold (0 to 2**63-1): a longer string of digits would also make ``int()``
    raise ValueError past Python's digit limit, and the parsers promise InvalidPage only."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_SERIAL:
        return value
    shown = f"{value[:40]!r}" if isinstance(value, str) else type(value).__name__
    if isinstance(value, int) and not isinstance(value, bool):
        shown = "an integer below 0" if value < 0 else "an integer of 2**63 or more"
    raise InvalidPage(f"{what}: _last-serial must be an integer from 0 to 2**63-1, got {shown}")


# --------------------------------------------------------------------------------------------------
# Project list


def parse_project_list_json(data: bytes) -> ProjectList:
    """Parse a PEP 691 root page (``/simple/``) into a :class:`ProjectList`.

    Entries whose name fails the name-format spec, whose name is not a string, or whose
    normalized name repeats an earlier entry are left out and recorded in ``rejected``; one hostile
    entry does not cost the whole list. ``api_version`` is what the page declared (``"1.0"`` when it
    declared nothing).

    Raises:
        InvalidPage: ``data`` is not JSON, not an object, nested past the interpreter's recursion
            limit anywhere, or has no ``projects`` list.
        UnsupportedAPIVersion: the page declares a major version other than 1.
    """
    what = "JSON project list"
    # 700,000 entries are 700,000 GC-tracked structs; pausing the cyclic collector while they are
    # made avoids repeated full traversals of them (they hold only str and int, so no cycles).
    with _gc_paused():
        try:
            wire: WireList | WireListLenient = _list_decoder.decode(data)
        except msgspec.ValidationError:
            try:
                wire = _list_decoder_lenient.decode(data)
            except msgspec.MsgspecError as exc:
                raise _decode_error(exc, data, what) from exc
            except RecursionError as exc:
                raise _too_deep(what) from exc
        except msgspec.MsgspecError as exc:
            raise _decode_error(exc, data, what) from exc
        except RecursionError as exc:
            raise _too_deep(what) from exc

        meta = wire.meta
        api_version, _ = check_api_version(meta.api_version if meta else None, what=what)
        last_serial = _serial(meta.last_serial, what) if meta else None
        if isinstance(wire, WireList):
            projects, rejected = _checked_entries(wire.projects, [])
        else:
            projects, rejected = _checked_entries(*_lenient_entries(wire.projects))
    return ProjectList(
        projects=projects,
        last_serial=last_serial,
        api_version=api_version,
        rejected=rejected,
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _checked_entries(
    entries: list[ProjectListEntry], rejected: list[RejectedEntry]
) -> tuple[tuple[ProjectListEntry, ...], tuple[RejectedEntry, ...]]:
    """Keep entries with valid, not yet seen names; reject the rest with a reason."""
    normalized = normalize_many([entry.name for entry in entries])
    if not rejected and None not in normalized and len(set(normalized)) == len(normalized):
        return tuple(entries), ()  # the normal case: nothing to reject
    kept: list[ProjectListEntry] = []
    seen: dict[str, str] = {}
    for entry, normal in zip(entries, normalized, strict=True):
        if normal is None:
            rejected.append(
                RejectedEntry(entry.name, "not a valid project name (name-format spec)")
            )
            continue
        first = seen.get(normal)
        if first is not None:
            rejected.append(
                RejectedEntry(
                    entry.name,
                    f"duplicate: {first!r} on the same page also normalizes to {normal!r}",
                )
            )
            continue
        seen[normal] = entry.name
        kept.append(entry)
    return tuple(kept), tuple(rejected)


def _lenient_entries(raw: list[Any]) -> tuple[list[ProjectListEntry], list[RejectedEntry]]:
    """Check entries one by one: well-formed ones, and the malformed ones as RejectedEntry."""
    entries: list[ProjectListEntry] = []
    rejected: list[RejectedEntry] = []
    for index, item in enumerate(raw):
        try:
            entry = msgspec.convert(item, WireListEntryLenient)
        except msgspec.ValidationError:
            rejected.append(RejectedEntry(repr(item)[:200], f"projects[{index}] is not an object"))
            continue
        if not isinstance(entry.name, str):
            rejected.append(
                RejectedEntry(repr(item)[:200], f"projects[{index}] has no string 'name'")
            )
            continue
        try:
            serial = _serial(entry.last_serial, "")
        except InvalidPage:
            rejected.append(
                RejectedEntry(entry.name, f"projects[{index}] has a non-integer _last-serial")
            )
            continue
        entries.append(ProjectListEntry(entry.name, serial))
    return entries, rejected


_encoder = msgspec.json.Encoder()


def render_project_list_json(project_list: ProjectList) -> bytes:
    """Render a root page as compact PEP 691 JSON: API 1.5 when the index implements PEP 752
    (``project_list.namespaces``), else 1.4, as its project pages (headwater.simple.versions).

    Each entry is ``{"name": ..., "_last-serial": ...}``, the serial omitted when unknown; names are
    rendered as given (the spec leaves display versus normalized to the index).
    """
    entries: list[ProjectListEntry | OutNameOnly] = [
        entry if entry.last_serial is not None else OutNameOnly(entry.name)
        for entry in project_list.projects
    ]
    out = OutList(
        meta=OutMeta(
            api_version=index_api_version(namespaces=project_list.namespaces),
            last_serial=project_list.last_serial,
        ),
        projects=entries,
    )
    return _encoder.encode(out)


# --------------------------------------------------------------------------------------------------
# Project page

_ABSOLUTE = ("https://", "http://")


def _lower_keys(hashes: dict[str, str]) -> dict[str, str]:
    # Spec: hash names "SHOULD always be normalized to be lowercase"; we normalize what we read.
    for key in hashes:
        if not key.islower():
            return {k.lower(): v for k, v in hashes.items()}
    return hashes


def _core_metadata(wire: WireFile) -> dict[str, str] | bool | None:
    # PEP 714: "Clients MUST" read core-metadata when present and "MAY" fall back to the old name.
    value = wire.core_metadata
    if value is None:
        value = wire.data_dist_info_metadata
        if value is None:
            value = wire.dist_info_metadata
    if isinstance(value, dict):
        # A dict means the file exists; an empty one carries no digest, which the model spells True.
        return _lower_keys(value) if value else True
    return value


def _upload_time(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        # Spec: upload-time is UTC; a page that forgot the "Z" still means UTC.
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _build_file(wire: WireFile, index: int, base_url: str | None, what: str) -> File:
    try:
        check_safe_filename(wire.filename)
    except InvalidFilename as exc:
        raise InvalidPage(f"{what}: file entry #{index}: {exc}") from exc
    url = wire.url
    if base_url is not None and not url.startswith(_ABSOLUTE):
        # Spec (item 5): URLs may be relative; they are relative to the page's URL.
        url = urljoin(base_url, url)
    yanked = wire.yanked
    return File(
        filename=wire.filename,
        url=url,
        hashes=_lower_keys(wire.hashes),
        requires_python=wire.requires_python,
        # Spec: "either a boolean ... or a non-empty string"; "a truthy value" means yanked.
        yanked=bool(yanked),
        yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
        core_metadata=_core_metadata(wire),
        gpg_sig=wire.gpg_sig,
        size=wire.size,
        upload_time=_upload_time(wire.upload_time),
        provenance=wire.provenance,
    )


def _marker(wire: WireStatus) -> str | None:
    # PEP 792's text spells the key "state"; everything else spells it "status".
    return wire.status if wire.status is not None else wire.state


def _status(wire: WirePage, what: str) -> tuple[ProjectStatus, str | None]:
    marker: str | None = None
    reason: str | None = None
    if wire.project_status is not None:
        marker = _marker(wire.project_status)
        reason = wire.project_status.reason
    elif wire.meta is not None and (
        wire.meta.project_status is not None or wire.meta.project_status_reason is not None
    ):
        stale = wire.meta.project_status
        if isinstance(stale, WireStatus):
            marker, reason = _marker(stale), stale.reason
        else:
            marker = stale
        reason = wire.meta.project_status_reason or reason
    if marker is None:
        return ProjectStatus.ACTIVE, reason
    try:
        return ProjectStatus(marker), reason
    except ValueError:
        # Spec: "status MUST be a valid project status marker"; a guess could offer the files of a
        # quarantined project.
        known = ", ".join(s.value for s in ProjectStatus)
        raise InvalidPage(
            f"{what}: unknown project-status marker {marker!r} (known: {known}); refusing the page "
            "rather than guess whether its files may be offered"
        ) from None


def parse_project_page_json(data: bytes, *, base_url: str | None = None) -> ProjectPage:
    """Parse a PEP 691 project detail page into a :class:`ProjectPage`.

    ``base_url`` is the page's own URL; when given, relative file URLs are resolved against it.
    ``api_version`` is what the page declared (``"1.0"`` if nothing) and ``versions`` is the list as
    the page gave it (``None`` when absent).

    Raises:
        InvalidPage: not JSON, not an object, nested past the interpreter's recursion limit
            anywhere, missing ``name`` or ``files``, a name that fails the
            name-format spec, a file entry without ``filename``/``url``/``hashes`` or with an unsafe
            filename (the message names the entry), an unknown project-status marker.
        UnsupportedAPIVersion: the page declares a major version other than 1.
    """
    what = "JSON project page" + (f" {base_url}" if base_url else "")
    try:
        wire = _page_decoder.decode(data)
    except msgspec.MsgspecError as exc:
        raise _decode_error(exc, data, what) from exc
    except RecursionError as exc:
        raise _too_deep(what) from exc
    meta = wire.meta
    api_version, _ = check_api_version(meta.api_version if meta else None, what=what)
    try:
        name = normalize_name(wire.name)
    except InvalidName as exc:
        raise InvalidPage(f"{what}: {exc}") from exc
    what = f"JSON project page for {name!r}"
    files = tuple(
        _build_file(wire_file, index, base_url, what) for index, wire_file in enumerate(wire.files)
    )
    status, reason = _status(wire, what)
    namespaces: tuple[Namespace, ...] | None
    if wire.namespaces is msgspec.UNSET:
        namespaces = None
    elif wire.namespaces is None:
        namespaces = ()
    else:
        namespaces = tuple(Namespace(name=ns.name, owned=ns.owned) for ns in wire.namespaces)
    return ProjectPage(
        name=name,
        files=files,
        versions=tuple(wire.versions) if wire.versions is not None else None,
        status=status,
        status_reason=reason,
        tracks=tuple(meta.tracks) if meta and meta.tracks else (),
        alternate_locations=tuple(wire.alternate_locations or ()),
        namespaces=namespaces,
        last_serial=_serial(meta.last_serial, what) if meta else None,
        api_version=api_version,
    )


def _format_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    # PEP 700: "yyyy-mm-ddThh:mm:ss.ffffffZ".
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
        f"{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


def _provenance(url: str | None) -> str | None:
    secure = secure_url(url)
    return None if secure is None else neutralise_url(secure)


def _out_file(file: File, with_provenance: bool) -> OutFile:
    core = file.core_metadata
    reason = neutralise(file.yanked_reason) if file.yanked_reason else None
    return OutFile(
        filename=file.filename,
        url=neutralise_url(file.url),
        hashes=file.hashes,
        requires_python=None if file.requires_python is None else neutralise(file.requires_python),
        # The model's empty dict means "exists, no digest"; spell it as the spec's boolean.
        core_metadata=core if core != {} else True,
        gpg_sig=file.gpg_sig,
        # Spec: "either a boolean ... or a non-empty string"; not yanked is omitted.
        yanked=(reason or True) if file.yanked else False,
        size=file.size,
        upload_time=_format_time(file.upload_time),
        # PEP 740: a secure origin, and only on pages of 1.3 or later.
        provenance=_provenance(file.provenance) if with_provenance else None,
    )


def _version_key(filename: str) -> str | None:
    """The substring packaging reads as the version, or None when it cannot be a wheel/sdist."""
    if filename.endswith(".whl"):
        dashes = filename.count("-")
        if dashes not in (4, 5):
            return None
        return "w" + filename.split("-", dashes - 2)[1]
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            return "s" + filename[: -len(suffix)].rpartition("-")[2]
    return None


def _derive_versions(files: tuple[File, ...]) -> list[str]:
    """Versions of the wheels and sdists among ``files``, sorted; legacy files are skipped.

    Spec (item 30): "every file MUST belong to a listed version". Parses each distinct version once:
    two files whose version substrings match have the same version if both parse.
    """
    found: dict[str, Version] = {}
    done: set[str] = set()
    for file in files:
        key = _version_key(file.filename)
        if key is None or key in done:
            continue
        try:
            parsed = parse_filename(file.filename)
        except InvalidFilename:
            continue  # legacy formats (.egg, .exe, ...) and unparseable names carry no version
        done.add(key)
        found[str(parsed.version)] = parsed.version
    return [text for text, _ in sorted(found.items(), key=lambda item: item[1])]


def render_project_page_json(page: ProjectPage) -> bytes:
    """Render a project page as compact PEP 691 JSON.

    Declares what :func:`headwater.simple.versions.page_api_version` says the page satisfies:
    1.5 when ``page.namespaces`` is not None (PEP 752: only indexes that support namespaces emit
    the key; an empty tuple is rendered as ``"namespaces": null``), else 1.4, and 1.0 when a file
    has no known size (keys of later versions are then left out). ``versions`` is always present
    (derived from the filenames when the page has none). Never emits ``dist-info-metadata``
    (PEP 714: pip 22.3 crashed on it). Free text is neutralised (headwater.simple.text) and a
    provenance URL that is not https is left out (PEP 740: a secure origin).

    Raises:
        InvalidName: ``page.name`` is not a valid project name (a model built by hand, wrongly).
    """
    claimed = page_api_version(page)
    status = None
    if allows(claimed, "project-status") and (
        page.status is not ProjectStatus.ACTIVE or page.status_reason is not None
    ):
        reason = None if page.status_reason is None else neutralise(page.status_reason)
        status = OutStatus(status=page.status.value, reason=reason)
    namespaces: list[OutNamespace] | msgspec.UnsetType | None = msgspec.UNSET
    if page.namespaces is not None and allows(claimed, "namespaces"):
        namespaces = [OutNamespace(name=ns.name, owned=ns.owned) for ns in page.namespaces] or None
    pep708 = allows(claimed, "tracks")
    with_provenance = allows(claimed, "provenance")
    out = OutPage(
        meta=OutMeta(
            api_version=claimed,
            last_serial=page.last_serial,
            tracks=([neutralise_url(u) for u in page.tracks] or None) if pep708 else None,
        ),
        # Spec: "name: The normalized name of the project" (a no-op for a well-made model).
        name=normalize_name(page.name),
        versions=list(page.versions) if page.versions is not None else _derive_versions(page.files),
        files=[_out_file(file, with_provenance) for file in page.files],
        project_status=status,
        alternate_locations=(
            ([neutralise_url(u) for u in page.alternate_locations] or None) if pep708 else None
        ),
        namespaces=namespaces,
    )
    return _encoder.encode(out)
