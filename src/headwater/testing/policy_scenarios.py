"""Dependency-confusion scenarios as data: ``tests/data/policy/*.toml``.

One file describes one index (its sources, what each holds, the policy and routes) and what must
happen when a user asks for some projects. The policy tests run every file through
:func:`headwater.policy.plan` / :func:`headwater.policy.decide`; the end-to-end tests run the same
files through a real server and real pip and uv. The format::

    description = "torchtriton: ..."
    now = 2024-06-01T00:00:00Z          # the clock for cooldowns

    [index]                            # name, plus the keys of a real [index.NAME] table
    name = "main"
    policy = "priority"
    [[index.routes]]
    projects = ["acme-*"]
    sources = ["internal"]

    [[sources]]                        # in priority order
    name = "internal"
    kind = "hosted"                    # hosted | mirror | proxy | directory
    url = "https://pypi.internal.example/simple/"   # required for mirror and proxy
    down = false                       # the source fails (unavailable)
    cooldown = 7                       # days (goes to the index's cooldown table)
    namespaces = ["acme"]              # PEP 752 grants (hosted only)

    [[sources.projects]]
    name = "torchtriton"               # as the source spells it
    tracks = []                        # PEP 708
    alternate-locations = []
    deleted = false                    # true: no files, but the source holds the name
    status = "active"                  # PEP 792 (quarantined: no files)
    [[sources.projects.files]]
    filename = "torchtriton-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    sha256 = "<64 hex>"
    upload-time = 2023-01-01T00:00:00Z # optional (PEP 700)

    [[expect]]
    project = "TorchTriton"            # as the user spells it
    outcome = "served"                 # served | refused | not-found
    sources = ["internal"]             # served from / involved in the refusal (exactly these)
    refusal = "conflict"               # for refused: conflict | claimed | unavailable
    filenames = ["..."]                # for served: exactly these files
    hashes = ["<64 hex>"]              # for served: files with these sha256 are served (pinned)

Pure: :func:`load_scenario` parses text; reading the file is the caller's business.
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from typing import Any, Literal

import msgspec

from headwater.errors import InvalidInput
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import File, ProjectPage, ProjectStatus
from headwater.simple.names import InvalidName, NormalizedName, normalize_name

__all__ = [
    "Expectation",
    "InvalidScenario",
    "Scenario",
    "ScenarioFile",
    "ScenarioProject",
    "ScenarioSource",
    "load_scenario",
]

_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
_KINDS = ("hosted", "mirror", "proxy", "directory")


class InvalidScenario(InvalidInput):
    """A policy scenario file is malformed; the message names the file and the entry."""


class ScenarioFile(msgspec.Struct, frozen=True, kw_only=True):
    """One distribution file a source holds."""

    filename: str
    sha256: str
    upload_time: datetime | None = None

    def model(self) -> File:
        """The file as it appears on a served page (URL relative to the page)."""
        h = self.sha256
        url = f"../../packages/{h[:2]}/{h[2:4]}/{h[4:]}/{self.filename}#sha256={h}"
        return File(
            filename=self.filename,
            url=url,
            hashes={"sha256": h},
            upload_time=self.upload_time,
        )


class ScenarioProject(msgspec.Struct, frozen=True, kw_only=True):
    """One project a source holds (or holds the name of, when ``deleted``)."""

    name: str
    normalized: NormalizedName
    files: tuple[ScenarioFile, ...] = ()
    tracks: tuple[str, ...] = ()
    alternate_locations: tuple[str, ...] = ()
    deleted: bool = False
    status: ProjectStatus = ProjectStatus.ACTIVE

    def page(self) -> ProjectPage | None:
        """The page the source serves, or None when the project was deleted."""
        if self.deleted:
            return None
        files = () if self.status is ProjectStatus.QUARANTINED else self.files
        return ProjectPage(
            name=self.normalized,
            files=tuple(f.model() for f in files),
            status=self.status,
            tracks=self.tracks,
            alternate_locations=self.alternate_locations,
        )


class ScenarioSource(msgspec.Struct, frozen=True, kw_only=True):
    """One source of the scenario's index."""

    name: str
    kind: Literal["hosted", "mirror", "proxy", "directory"]
    url: str = ""
    down: bool = False
    cooldown: float | None = None
    namespaces: tuple[str, ...] = ()
    projects: tuple[ScenarioProject, ...] = ()

    def project(self, name: NormalizedName) -> ScenarioProject | None:
        """The project called ``name`` (normalized) in this source, or None."""
        for project in self.projects:
            if project.normalized == name:
                return project
        return None

    def project_url(self, name: NormalizedName) -> str:
        """The PEP 708 URL of a project here (``<url><project>/``), "" without a URL."""
        return f"{self.url}{name}/" if self.url else ""


class Expectation(msgspec.Struct, frozen=True, kw_only=True):
    """What must happen when a user asks the index for ``project``."""

    project: str
    outcome: Literal["served", "refused", "not-found"]
    sources: tuple[str, ...] = ()
    refusal: Literal["conflict", "claimed", "unavailable"] | None = None
    filenames: tuple[str, ...] | None = None
    hashes: tuple[str, ...] = ()


class Scenario(msgspec.Struct, frozen=True, kw_only=True):
    """One scenario file."""

    name: str
    description: str
    now: datetime
    index: str
    policy: str
    #: The ``[[index.NAME.routes]]`` entries, as tables.
    routes: tuple[dict[str, Any], ...]
    sources: tuple[ScenarioSource, ...]
    expect: tuple[Expectation, ...]

    def source(self, name: str) -> ScenarioSource:
        """The source called ``name`` (KeyError if none)."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def index_table(self) -> dict[str, Any]:
        """The ``[index.NAME]`` table a headwater config would carry for this scenario."""
        table: dict[str, Any] = {
            "sources": [s.name for s in self.sources],
            "policy": self.policy,
            "routes": [dict(r) for r in self.routes],
        }
        cooldown = {s.name: s.cooldown for s in self.sources if s.cooldown is not None}
        if cooldown:
            table["cooldown"] = cooldown
        return table

    def namespaces(self) -> tuple[tuple[str, str], ...]:
        """The PEP 752 grants: (namespace, hosted source)."""
        return tuple((ns, s.name) for s in self.sources for ns in s.namespaces)

    def source_urls(self) -> dict[str, str]:
        """Index URL -> source name, for sources with a URL."""
        return {s.url: s.name for s in self.sources if s.url}

    def file_by_sha256(self, sha256: str) -> tuple[str, ScenarioFile]:
        """The (source, file) with this sha256 (KeyError if none): maps an expected hash to the
        file an end-to-end test built for it."""
        for source in self.sources:
            for project in source.projects:
                for file in project.files:
                    if file.sha256 == sha256:
                        return source.name, file
        raise KeyError(sha256)


class _Reader:
    """Typed access to a TOML table with errors that name the file and the entry."""

    def __init__(self, name: str, table: dict[str, Any], where: str) -> None:
        self.file = name
        self.table = table
        self.where = where

    def fail(self, message: str) -> InvalidScenario:
        return InvalidScenario(f"policy scenario {self.file}: {self.where}: {message}")

    def check_keys(self, known: tuple[str, ...]) -> None:
        extra = sorted(set(self.table) - set(known))
        if extra:
            raise self.fail(f"unknown key(s) {extra}; known: {', '.join(known)}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.fail(f"missing {key!r}")
            return default
        value = self.table[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            raise self.fail(f"{key!r} has the wrong type: {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) for v in values):
            raise self.fail(f"{key!r} must be a list of strings")
        return tuple(values)

    def tables(self, key: str) -> list[_Reader]:
        values = self.get(key, list, [])
        if not all(isinstance(v, dict) for v in values):
            raise self.fail(f"{key!r} must be an array of tables")
        return [_Reader(self.file, v, f"{self.where}{key}[{i}] ") for i, v in enumerate(values)]

    def aware(self, key: str, default: Any = ...) -> datetime | None:
        value = self.get(key, datetime, default)
        if value is not None and value.utcoffset() is None:
            raise self.fail(f"{key!r} needs a timezone (write it as 2024-01-01T00:00:00Z)")
        return value  # type: ignore[no-any-return]


def _file(reader: _Reader, project: NormalizedName) -> ScenarioFile:
    reader.check_keys(("filename", "sha256", "upload-time"))
    filename = reader.get("filename", str)
    try:
        parsed = parse_filename(filename)
    except InvalidFilename as exc:
        raise reader.fail(str(exc)) from None
    if parsed.name != project:
        raise reader.fail(f"file {filename!r} is not a file of project {project!r}")
    sha256 = reader.get("sha256", str)
    if _SHA256.match(sha256) is None:
        raise reader.fail(f"sha256 {sha256!r} is not 64 lowercase hex digits")
    return ScenarioFile(
        filename=filename, sha256=sha256, upload_time=reader.aware("upload-time", None)
    )


def _project(reader: _Reader) -> ScenarioProject:
    reader.check_keys(("name", "files", "tracks", "alternate-locations", "deleted", "status"))
    name = reader.get("name", str)
    try:
        normalized = normalize_name(name)
    except InvalidName as exc:
        raise reader.fail(str(exc)) from None
    try:
        status = ProjectStatus(reader.get("status", str, "active"))
    except ValueError:
        raise reader.fail("'status' must be active, archived, quarantined or deprecated") from None
    deleted = reader.get("deleted", bool, False)
    files = tuple(_file(r, normalized) for r in reader.tables("files"))
    if deleted and files:
        raise reader.fail("a deleted project has no files")
    return ScenarioProject(
        name=name,
        normalized=normalized,
        files=files,
        tracks=reader.strings("tracks"),
        alternate_locations=reader.strings("alternate-locations"),
        deleted=deleted,
        status=status,
    )


def _source(reader: _Reader) -> ScenarioSource:
    reader.check_keys(("name", "kind", "url", "down", "cooldown", "namespaces", "projects"))
    kind = reader.get("kind", str)
    if kind not in _KINDS:
        raise reader.fail(f"'kind' must be one of {', '.join(_KINDS)}, got {kind!r}")
    url = reader.get("url", str, "")
    if kind in ("mirror", "proxy") and not url:
        raise reader.fail(f"a {kind} source needs 'url' (its upstream's simple URL)")
    if url and not (url.startswith(("http://", "https://")) and url.endswith("/")):
        raise reader.fail(f"'url' must be an http(s) URL ending in '/', got {url!r}")
    namespaces = reader.strings("namespaces")
    if namespaces and kind != "hosted":
        raise reader.fail("only hosted sources hold namespaces")
    cooldown = reader.get("cooldown", (int, float), None)
    projects = tuple(_project(r) for r in reader.tables("projects"))
    names = [p.normalized for p in projects]
    if len(set(names)) != len(names):
        raise reader.fail("a project is listed twice (names compare normalized)")
    return ScenarioSource(
        name=reader.get("name", str),
        kind=kind,
        url=url,
        down=reader.get("down", bool, False),
        cooldown=float(cooldown) if cooldown is not None else None,
        namespaces=namespaces,
        projects=projects,
    )


def _expectation(reader: _Reader, sources: set[str]) -> Expectation:
    reader.check_keys(("project", "outcome", "sources", "refusal", "filenames", "hashes"))
    outcome = reader.get("outcome", str)
    if outcome not in ("served", "refused", "not-found"):
        raise reader.fail(f"'outcome' must be served, refused or not-found, got {outcome!r}")
    refusal = reader.get("refusal", str, None)
    if (outcome == "refused") != (refusal is not None):
        raise reader.fail("'refusal' (conflict, claimed, unavailable) goes with outcome 'refused'")
    if refusal not in (None, "conflict", "claimed", "unavailable"):
        raise reader.fail(f"'refusal' must be conflict, claimed or unavailable, got {refusal!r}")
    named = reader.strings("sources")
    unknown = set(named) - sources
    if unknown:
        raise reader.fail(f"'sources' names unknown source(s) {sorted(unknown)}")
    hashes = reader.strings("hashes")
    if any(_SHA256.match(h) is None for h in hashes):
        raise reader.fail("'hashes' must be sha256 digests (64 lowercase hex)")
    filenames = reader.strings("filenames") if "filenames" in reader.table else None
    if outcome != "served" and (filenames is not None or hashes):
        raise reader.fail("'filenames' and 'hashes' go with outcome 'served'")
    return Expectation(
        project=reader.get("project", str),
        outcome=outcome,
        sources=named,
        refusal=refusal,
        filenames=filenames,
        hashes=hashes,
    )


def load_scenario(text: str, *, name: str) -> Scenario:
    """Parse one scenario file (``name`` is for messages, e.g. the file's stem).

    Raises:
        InvalidScenario: the TOML is invalid or does not have the scenario shape.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidScenario(f"policy scenario {name}: not valid TOML ({exc})") from None
    top = _Reader(name, doc, "top level")
    top.check_keys(("description", "now", "index", "sources", "expect"))
    index = _Reader(name, top.get("index", dict), "[index]")
    index.check_keys(("name", "policy", "routes"))
    sources = tuple(_source(r) for r in top.tables("sources"))
    if not sources:
        raise top.fail("a scenario needs at least one [[sources]]")
    names = {s.name for s in sources}
    if len(names) != len(sources):
        raise top.fail("a source name is used twice")
    expect = tuple(_expectation(r, names) for r in top.tables("expect"))
    if not expect:
        raise top.fail("a scenario needs at least one [[expect]]")
    routes = index.tables("routes")
    now = top.aware("now")
    assert now is not None
    return Scenario(
        name=name,
        description=top.get("description", str),
        now=now,
        index=index.get("name", str, "main"),
        policy=index.get("policy", str, "priority"),
        routes=tuple(r.table for r in routes),
        sources=sources,
        expect=expect,
    )
