"""Mirror filters: which projects a mirror wants, and which files of a project it keeps.

Pure, like :mod:`headwater.simple`: no I/O. The ``[mirror.filters]`` TOML table becomes a
:class:`FilterConfig`; :func:`project_filter` turns it into the ``wanted`` callable of
:func:`headwater.sync.plan.plan_sync`, and :func:`filter_page` trims each upstream
:class:`~headwater.simple.model.ProjectPage` before the engine downloads anything. Both are
deterministic functions of the config, so changing a filter and re-running converges the tree on what
the new config keeps (the plan deletes projects no longer wanted; the engine deletes files no longer
kept).

Requirement files named in ``allow_requirements`` are read by the caller, which passes their text to
:meth:`FilterConfig.with_requirements`; this module never opens a file.

Which names are wanted is :mod:`headwater.sync.filter_names`; which files run on the configured
Python versions and platforms is :mod:`headwater.sync.filter_platforms`.

The options, their defaults and the decisions behind them are documented in ``docs/filters.md``.
"""

from __future__ import annotations

import difflib
import enum
import fnmatch
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from packaging.tags import Tag
from packaging.version import InvalidVersion, Version

from headwater.simple.filenames import LEGACY_SUFFIXES, InvalidFilename, parse_filename
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName, normalize_name
from headwater.sync.filter_names import (
    SEPARATORS,
    TABLE,
    InvalidFilter,
    Patterns,
    names_wanted,
    normalize_glob,
    parse_requirement,
    parse_requirements,
)
from headwater.sync.filter_platforms import (
    check_platform_glob,
    parse_python_version,
    requires_python_admits,
    tag_runs_on,
)

if TYPE_CHECKING:
    # Imported where used: a mirror without requirement files or Python-version filters never
    # needs them, and they are a tenth of the ``headwater`` command's import time.
    from packaging.specifiers import SpecifierSet

__all__ = [
    "DropReason",
    "DroppedFile",
    "FilterConfig",
    "FilteredPage",
    "InvalidFilter",
    "filter_page",
    "normalize_glob",
    "parse_requirements",
    "project_filter",
]


class FilterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[mirror.filters]`` table. Every option is optional; the defaults keep everything.

    Construction validates every field (from TOML via :meth:`from_table`, or directly).

    Raises:
        InvalidFilter: a value is malformed (the message names the key and the value).
    """

    #: Project names or globs (``*``, ``?``) to mirror; empty means every project (unless
    #: requirements are given). Names and globs are normalized before matching.
    allow: tuple[str, ...] = ()
    #: Project names or globs never mirrored; wins over ``allow`` and requirements.
    block: tuple[str, ...] = ()
    #: Paths of requirements files; the caller reads them and calls :meth:`with_requirements`.
    allow_requirements: tuple[str, ...] = ()
    #: PEP 508 requirement strings: their projects are allowed, their specifiers limit releases.
    requirements: tuple[str, ...] = ()
    #: Globs on wheel platform tags to keep; empty means every platform. ``any`` is always kept.
    platforms: tuple[str, ...] = ()
    #: Globs on wheel platform tags to drop.
    exclude_platforms: tuple[str, ...] = ()
    #: Keep source distributions (and legacy source archives).
    sdists: bool = True
    #: ``"X.Y"`` Python versions; keep only files that can install on at least one of them.
    python_versions: tuple[str, ...] = ()
    #: Keep pre-releases and dev releases (a requirement that names one keeps it regardless).
    prereleases: bool = True
    #: Keep only the newest N releases that are not yanked (plus yanked releases among them).
    latest: int | None = None
    #: Smallest file kept, in bytes (files of unknown size are kept).
    min_size: int | None = None
    #: Largest file kept, in bytes (files of unknown size are kept).
    max_size: int | None = None
    #: Keep files uploaded at or after this time (timezone required).
    uploaded_after: datetime | None = None
    #: Keep files uploaded strictly before this time (timezone required).
    uploaded_before: datetime | None = None
    #: ``"keep"`` mirrors yanked files with their yanked flag; ``"drop"`` leaves them out.
    yanked: Literal["keep", "drop"] = "keep"

    def __post_init__(self) -> None:
        for key in ("allow", "block"):
            for pattern in getattr(self, key):
                normalize_glob(pattern, key=key)
        for path in self.allow_requirements:
            if not path.strip():
                raise InvalidFilter(f"{TABLE} allow_requirements: an empty path is not a file")
        for i, line in enumerate(self.requirements):
            parse_requirement(line, where=f"requirements[{i}]")
        for key in ("platforms", "exclude_platforms"):
            for pattern in getattr(self, key):
                check_platform_glob(pattern, key=key)
        for value in self.python_versions:
            parse_python_version(value)
        if self.latest is not None and self.latest < 1:
            raise InvalidFilter(
                f"{TABLE} latest = {self.latest}: keep at least 1 release, or remove the key to "
                "keep every release"
            )
        for key in ("min_size", "max_size"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise InvalidFilter(f"{TABLE} {key} = {value}: a size in bytes is 0 or more")
        if (
            self.min_size is not None
            and self.max_size is not None
            and self.min_size > self.max_size
        ):
            raise InvalidFilter(
                f"{TABLE} min_size = {self.min_size} is larger than max_size = {self.max_size}: "
                "no file could be kept"
            )
        for key in ("uploaded_after", "uploaded_before"):
            value = getattr(self, key)
            if value is not None and value.utcoffset() is None:
                raise InvalidFilter(
                    f"{TABLE} {key} = {value.isoformat()}: give a timezone (e.g. "
                    f"{value.isoformat()}Z) so the window does not depend on the machine's clock"
                )
        if (
            self.uploaded_after is not None
            and self.uploaded_before is not None
            and self.uploaded_after >= self.uploaded_before
        ):
            raise InvalidFilter(
                f"{TABLE} uploaded_after = {self.uploaded_after.isoformat()} is not before "
                f"uploaded_before = {self.uploaded_before.isoformat()}: no file could be kept"
            )

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> FilterConfig:
        """Build a config from a parsed TOML table (``tomllib`` output).

        Raises:
            InvalidFilter: an unknown key, a value of the wrong type, or an invalid value.
        """
        try:
            return msgspec.convert(table, cls)
        except msgspec.ValidationError as exc:
            hint = ""
            unknown = re.search(r"unknown field `([^`]*)`", str(exc))
            if unknown:
                close = difflib.get_close_matches(unknown[1], cls.__struct_fields__, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidFilter(f"{TABLE}: {exc}{hint}") from exc

    def with_requirements(self, texts: Mapping[str, str]) -> FilterConfig:
        """Return this config with the requirements files' contents merged into ``requirements``.

        ``texts`` maps every path in ``allow_requirements`` to that file's text. The result has
        ``allow_requirements`` emptied: its files are loaded, and :func:`project_filter` and
        :func:`filter_page` refuse a config whose files were not.

        Raises:
            InvalidFilter: a listed path has no text, a text was given for a path not listed, or a
                line is not a requirement (the message names the file and line).
        """
        listed = set(self.allow_requirements)
        missing = [p for p in self.allow_requirements if p not in texts]
        extra = sorted(set(texts) - listed)
        if missing or extra:
            raise InvalidFilter(
                f"{TABLE} allow_requirements: texts do not match the listed files "
                f"(missing: {missing}, not listed: {extra})"
            )
        lines = list(self.requirements)
        for path in self.allow_requirements:
            lines.extend(parse_requirements(texts[path], source=path))
        return msgspec.structs.replace(self, allow_requirements=(), requirements=tuple(lines))


def project_filter(config: FilterConfig) -> Callable[[NormalizedName], bool] | None:
    """The plan's ``wanted`` callable, or ``None`` when no project filter is configured.

    A project is wanted when it is not blocked and, if ``allow`` or requirements are given, it is
    allowed by one of them. ``block`` wins.

    Raises:
        InvalidFilter: ``allow_requirements`` lists files that were not loaded with
            :meth:`FilterConfig.with_requirements`.
    """
    compiled = _compile(config)
    return names_wanted(compiled.allow, compiled.block)


# --- compiled config ------------------------------------------------------------------------------


class _Compiled:
    """A config turned into sets, regexes and parsed values, once per config."""

    def __init__(self, config: FilterConfig) -> None:
        if config.allow_requirements:
            raise InvalidFilter(
                f"{TABLE} allow_requirements = {list(config.allow_requirements)} were not loaded: "
                "the caller must read them and pass their text to FilterConfig.with_requirements"
            )
        self.config = config
        self.requirements: dict[str, list[SpecifierSet]] = {}
        for i, line in enumerate(config.requirements):
            req = parse_requirement(line, where=f"requirements[{i}]")
            self.requirements.setdefault(normalize_name(req.name), []).append(req.specifier)
        self.allow = Patterns([*config.allow, *self.requirements], "allow")
        self.block = Patterns(config.block, "block")
        self.platforms = (
            re.compile("|".join(fnmatch.translate(p) for p in (*config.platforms, "any")))
            if config.platforms
            else None
        )
        self.exclude_platforms = (
            re.compile("|".join(fnmatch.translate(p) for p in config.exclude_platforms))
            if config.exclude_platforms
            else None
        )
        self.targets = tuple(parse_python_version(v) for v in config.python_versions)
        # Legacy files cannot be judged by tags; they go when a filter needs tags to keep a file.
        self.needs_tags = bool(self.platforms or self.exclude_platforms or self.targets)
        self.release_rules = bool(
            self.requirements or not config.prereleases or config.latest is not None
        )
        self.active = self.release_rules or bool(
            self.needs_tags
            or not config.sdists
            or config.yanked == "drop"
            or config.min_size is not None
            or config.max_size is not None
            or config.uploaded_after is not None
            or config.uploaded_before is not None
        )

    def platform_kept(self, tags: frozenset[Tag]) -> bool:
        # A wheel is kept if at least one of its platform tags is wanted and not excluded
        # (a compressed tag set like manylinux_2_17_x86_64.manylinux2014_x86_64 is one wheel).
        for platform in {t.platform for t in tags}:
            if self.platforms is not None and not self.platforms.match(platform):
                continue
            if self.exclude_platforms is not None and self.exclude_platforms.match(platform):
                continue
            return True
        return False


_CACHE: dict[bytes, _Compiled] = {}


def _compile(config: FilterConfig) -> _Compiled:
    # Compiled once per config, not once per page. Keyed by the encoded config: a config built in
    # code may hold lists, which are not hashable.
    key = msgspec.msgpack.encode(config)
    compiled = _CACHE.get(key)
    if compiled is None:
        if len(_CACHE) >= 16:
            _CACHE.clear()
        compiled = _CACHE[key] = _Compiled(config)
    return compiled


# --- files ----------------------------------------------------------------------------------------


class DropReason(enum.StrEnum):
    """Why :func:`filter_page` dropped a file (the first rule that refused it)."""

    YANKED = "yanked"
    LEGACY = "legacy format"
    SDIST = "sdist"
    PLATFORM = "platform"
    PYTHON = "python version"
    REQUIRES_PYTHON = "requires-python"
    SIZE = "size"
    UPLOAD_TIME = "upload time"
    REQUIREMENTS = "requirements"
    PRERELEASE = "prerelease"
    LATEST = "latest"


class DroppedFile(msgspec.Struct, frozen=True):
    """A file :func:`filter_page` left out, the rule that did it, and a sentence for people."""

    file: File
    reason: DropReason
    detail: str


class FilteredPage(msgspec.Struct, frozen=True):
    """The page with only the kept files (and their versions), and what was dropped and why."""

    page: ProjectPage
    dropped: tuple[DroppedFile, ...] = ()


_LEGACY_SOURCE = (".tar.bz2", ".tbz", ".tgz", ".tar.xz", ".tar.gz", ".zip")
_ALL_LEGACY = tuple(sorted({*LEGACY_SUFFIXES, ".tar.gz"}, key=len, reverse=True))


def _legacy_version(
    filename: str, name: NormalizedName, listed: list[tuple[str, Version]]
) -> Version | None:
    """Best-effort version of a file whose name the wheel/sdist parsers refuse (``.egg``,
    ``.exe``, ``foo-1.0.linux-x86_64.tar.gz``); ``None`` when it cannot be told."""
    lower = filename.lower()
    suffix = next((s for s in _ALL_LEGACY if lower.endswith(s)), None)
    if suffix is None:
        return None
    stem = filename[: -len(suffix)]
    rest = None
    for i, char in enumerate(stem):
        if char == "-" and SEPARATORS.sub("-", stem[:i]).lower() == name:
            rest = stem[i + 1 :]
            break
    if not rest:
        return None
    # Prefer a version the page lists (item 30: every file belongs to a listed version), longest
    # first, ending at a boundary: "1.3.0.win32" is 1.3.0, not 1.3.
    for text, version in listed:
        if rest.startswith(text):
            after = rest[len(text) : len(text) + 2]
            if not after or after[0] == "-" or (after[0] == "." and not after[1:].isdigit()):
                return version
    head = rest.split("-", 1)[0]
    while head:
        try:
            return Version(head)
        except InvalidVersion:
            head = head.rpartition(".")[0]
    return None


def _listed_versions(page: ProjectPage) -> list[tuple[str, Version]]:
    out: list[tuple[str, Version]] = []
    for text in page.versions or ():
        try:
            out.append((text, Version(text)))
        except InvalidVersion:
            continue
    out.sort(key=lambda item: len(item[0]), reverse=True)
    return out


def _file_rule(
    c: _Compiled, page: ProjectPage, file: File, listed: list[tuple[str, Version]]
) -> tuple[Version | None, tuple[DropReason, str] | None]:
    """The file's version (if known) and the first file rule that drops it (if any)."""
    config = c.config
    try:
        parsed = parse_filename(file.filename)
    except InvalidFilename:
        parsed = None
    if parsed is not None and parsed.name != page.name:
        parsed = None  # a file for another project: judge it like any unparsable name
    if parsed is None:
        version = _legacy_version(file.filename, page.name, listed)
    else:
        version = parsed.version
    # The version is known before any rule drops the file, so ``versions`` can be pruned.
    if config.yanked == "drop" and file.yanked:
        return version, (DropReason.YANKED, 'yanked files are not mirrored (yanked = "drop")')
    if parsed is None:
        if c.needs_tags:
            return version, (
                DropReason.LEGACY,
                "filename is not a wheel or sdist, so its platform and Python cannot be checked",
            )
        if not config.sdists and file.filename.lower().endswith(_LEGACY_SOURCE):
            return version, (DropReason.SDIST, "source archives are not mirrored (sdists = false)")
    elif parsed.kind == "sdist":
        if not config.sdists:
            return version, (DropReason.SDIST, "sdists are not mirrored (sdists = false)")
    else:
        if (c.platforms or c.exclude_platforms) and not c.platform_kept(parsed.tags):
            shown = ", ".join(sorted({t.platform for t in parsed.tags}))
            return version, (DropReason.PLATFORM, f"platform {shown} is not wanted")
        if c.targets and not any(tag_runs_on(t, p) for t in parsed.tags for p in c.targets):
            shown = ", ".join(sorted({f"{t.interpreter}-{t.abi}" for t in parsed.tags}))
            return version, (
                DropReason.PYTHON,
                f"tags {shown} run on none of Python {', '.join(config.python_versions)}",
            )
    if (
        c.targets
        and file.requires_python is not None
        and requires_python_admits(file.requires_python, c.targets) is False
    ):
        return version, (
            DropReason.REQUIRES_PYTHON,
            f"requires-python {file.requires_python!r} admits none of Python "
            f"{', '.join(config.python_versions)}",
        )
    if file.size is not None:
        if config.min_size is not None and file.size < config.min_size:
            return version, (DropReason.SIZE, f"{file.size} bytes < min_size {config.min_size}")
        if config.max_size is not None and file.size > config.max_size:
            return version, (DropReason.SIZE, f"{file.size} bytes > max_size {config.max_size}")
    if config.uploaded_after is not None or config.uploaded_before is not None:
        uploaded = file.upload_time
        if uploaded is None:
            # A window is a promise (often "nothing newer than"): a file that cannot show it keeps
            # the promise is left out rather than trusted.
            return version, (DropReason.UPLOAD_TIME, "upload time unknown (the page did not say)")
        if config.uploaded_after is not None and uploaded < config.uploaded_after:
            return version, (
                DropReason.UPLOAD_TIME,
                f"uploaded {uploaded.isoformat()}, before {config.uploaded_after.isoformat()}",
            )
        if config.uploaded_before is not None and uploaded >= config.uploaded_before:
            return version, (
                DropReason.UPLOAD_TIME,
                f"uploaded {uploaded.isoformat()}, not before {config.uploaded_before.isoformat()}",
            )
    return version, None


def _release_rule(
    c: _Compiled, specifiers: list[SpecifierSet] | None, version: Version
) -> tuple[DropReason, str] | None:
    """The requirements and prerelease rules for one release (``latest`` comes after)."""
    pinned = False
    if specifiers is not None:
        admitting = [s for s in specifiers if s.contains(version, prereleases=True)]
        if not admitting:
            shown = " or ".join(str(s) or "any" for s in specifiers)
            return DropReason.REQUIREMENTS, f"version {version} is outside the requirements {shown}"
        # Specifier rules: a specifier that names a pre-release opts in to pre-releases.
        pinned = any(s.prereleases for s in admitting)
    if version.is_prerelease and not c.config.prereleases and not pinned:
        return DropReason.PRERELEASE, f"{version} is a pre-release (prereleases = false)"
    return None


def filter_page(page: ProjectPage, config: FilterConfig) -> FilteredPage:
    """Keep the files of ``page`` that ``config`` wants; say why each other file was dropped.

    File rules (yanked, format, sdists, platforms, Python versions, requires-python, size, upload
    time) run first, then the release rules (requirements, prereleases), then ``latest`` over the
    releases that still have files. ``versions`` keeps, in page order, the versions that still have
    files plus file-less versions the release rules keep (item 30: files MUST belong to a listed
    version; file-less versions MAY be listed). Every other field of the page is unchanged, and kept
    files are the upstream ``File`` values untouched (item 56: a yanked file keeps its flag).

    Raises:
        InvalidFilter: ``allow_requirements`` lists files that were not loaded.
    """
    c = _compile(config)
    if not c.active:
        return FilteredPage(page)
    listed = _listed_versions(page)
    specifiers = c.requirements.get(page.name)
    decisions: list[tuple[DropReason, str] | None] = []
    versions: list[Version | None] = []
    for file in page.files:
        version, decision = _file_rule(c, page, file, listed)
        if decision is None and version is not None and c.release_rules:
            decision = _release_rule(c, specifiers, version)
        decisions.append(decision)
        versions.append(version)

    floor: Version | None = None
    if config.latest is not None:
        # Yanked releases do not count toward N ("the newest N you can install"); those between
        # the N kept releases stay, so the mirror shows upstream's recent history as it is.
        installable = sorted(
            {
                v
                for f, v, d in zip(page.files, versions, decisions, strict=True)
                if d is None and v is not None and not f.yanked
            },
            reverse=True,
        )
        if len(installable) > config.latest:
            floor = installable[config.latest - 1]
            for i, v in enumerate(versions):
                if decisions[i] is None and v is not None and v < floor:
                    decisions[i] = (
                        DropReason.LATEST,
                        f"{v} is older than the {config.latest} newest releases (latest)",
                    )

    kept = tuple(f for f, d in zip(page.files, decisions, strict=True) if d is None)
    dropped = tuple(
        DroppedFile(f, d[0], d[1]) for f, d in zip(page.files, decisions, strict=True) if d
    )
    new_versions = page.versions
    if page.versions is not None:
        with_files = {v for v in versions if v is not None}
        kept_with_files = {v for v, d in zip(versions, decisions, strict=True) if d is None}
        out: list[str] = []
        for text in page.versions:
            try:
                parsed = Version(text)
            except InvalidVersion:
                if not c.release_rules:  # no rule can judge it
                    out.append(text)
                continue
            if parsed in with_files:
                if parsed in kept_with_files:
                    out.append(text)
            elif (c.release_rules and _release_rule(c, specifiers, parsed) is not None) or (
                floor is not None and parsed < floor
            ):
                continue
            else:
                out.append(text)
        new_versions = tuple(out)
    if not dropped and new_versions == page.versions:
        return FilteredPage(page)
    return FilteredPage(msgspec.structs.replace(page, files=kept, versions=new_versions), dropped)
