"""What a closure mirror must satisfy, read from requirements files, pyproject.toml, pylock.toml
and uv.lock.

Two kinds of input come out, and :mod:`headwater.sync.closure` treats them differently:

==============  ==============================================================================
``Root``        a PEP 508 requirement to follow: every version its specifier admits, and their
                dependencies, recursively (requirements files, ``pyproject.toml``)
``Locked``      one pinned release with its exact files and hashes (``pylock.toml``,
                ``uv.lock``): those files only, checked against the upstream's hashes, no
                recursion (a lockfile is already closed)
``Inputs``      the roots, the constraints (``-c``), and the locked packages, each naming where
                it came from (``requirements.txt line 4``) so every report can point at the line
==============  ==============================================================================

Parsers are the maintained ones (:mod:`packaging.requirements` for PEP 508, :mod:`tomllib`);
this module only walks the formats. Files are read through the ``read`` callable the caller
passes (paths relative to the file that names them), so the module itself does no I/O. Options
that cannot apply to a mirror (another index, an editable or local project, a URL) are refused
with the line and the fix, never skipped: a mirror that silently ignored ``--index-url`` would
carry the wrong files across an air gap.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from headwater.errors import InvalidInput
from headwater.simple.names import InvalidName, NormalizedName, normalize_name

__all__ = [
    "Inputs",
    "InvalidLockfile",
    "Locked",
    "LockedFile",
    "Root",
    "input_kind",
    "read_inputs",
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


def input_kind(path: str) -> str:
    """``requirements``, ``pyproject``, ``pylock`` or ``uv-lock``, from the file's name.

    Raises:
        InvalidLockfile: the name fits none of them.
    """
    base = posixpath.basename(path.replace("\\", "/"))
    if base == "pyproject.toml":
        return "pyproject"
    if base == "uv.lock":
        return "uv-lock"
    # PEP 751: "pylock.toml" or "pylock.<name>.toml".
    if re.fullmatch(r"pylock\.([^.]+\.)?toml", base):
        return "pylock"
    if base.endswith((".txt", ".in")):
        return "requirements"
    raise InvalidLockfile(
        f"{path}: not a file kind a closure mirror reads; name it *.txt or *.in (requirements), "
        "pyproject.toml, pylock.toml (or pylock.NAME.toml) or uv.lock"
    )


def read_inputs(
    paths: Iterable[str],
    read: Reader,
    *,
    extras: tuple[str, ...] = ("*",),
    groups: tuple[str, ...] = ("*",),
) -> Inputs:
    """Read every input file. ``extras`` and ``groups`` choose which optional-dependency groups
    and PEP 735 dependency groups of a ``pyproject.toml`` (and a uv.lock's root packages) are
    included; ``"*"`` means all.

    Raises:
        InvalidLockfile: a file cannot be read, is malformed, or asks for what a mirror cannot do.
    """
    total = Inputs()
    for path in paths:
        kind = input_kind(path)
        if kind == "requirements":
            total = total + parse_requirements_file(path, read)
        else:
            text = _read(read, path)
            if kind == "pyproject":
                total = total + parse_pyproject(text, path, extras=extras, groups=groups)
            elif kind == "pylock":
                total = total + parse_pylock(text, path)
            else:
                total = total + parse_uv_lock(text, path)
    return total


def _read(read: Reader, path: str) -> str:
    try:
        return read(path)
    except OSError as exc:
        raise InvalidLockfile(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidLockfile(f"{path}: not UTF-8 text: {exc}") from exc


def _requirement(text: str, where: str) -> Requirement:
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


# --- requirements files ---------------------------------------------------------------------------

# Options that choose another source of files: a mirror of one upstream cannot honour them.
_FOREIGN = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--no-index": "--no-index",
    "-e": "--editable",
    "--editable": "--editable",
}
_IGNORED = {"--prefer-binary", "--only-binary", "--no-binary", "--use-feature", "--trusted-host"}
_HASH = re.compile(r"--hash[= ]([A-Za-z0-9_]+):([0-9a-fA-F]+)")


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """pip's logical lines: comments removed, ``\\`` continuations joined; with line numbers."""
    logical: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not logical:
            start = number
        line = re.sub(r"(^|\s)#.*", "", raw).rstrip()  # pip: "#" at the start or after space
        if line.endswith("\\"):
            logical.append(line[:-1])
            continue
        logical.append(line)
        joined = " ".join(part.strip() for part in logical).strip()
        logical = []
        if joined:
            yield start, joined
    if logical:
        joined = " ".join(part.strip() for part in logical).strip()
        if joined:
            yield start, joined


def parse_requirements_file(
    path: str,
    read: Reader,
    *,
    _seen: tuple[str, ...] = (),
    constraint: bool = False,
    included_at: str = "",
) -> Inputs:
    """A pip requirements file: requirements with markers, extras, pins and ``--hash``; ``-r``
    and ``-c`` includes (relative to the including file); ``--pre``.

    Raises:
        InvalidLockfile: an unreadable or circular include, a line that is not a requirement, or
            an option a mirror cannot honour (``--index-url``, ``-e``, ``--find-links``, a URL).
    """
    if path in _seen:
        chain = " -> ".join((*_seen, path))
        raise InvalidLockfile(f"{included_at}: {path} includes itself ({chain}); remove the loop")
    try:
        text = _read(read, path)
    except InvalidLockfile as exc:
        if included_at:
            raise InvalidLockfile(f"{included_at}: the included {exc}") from exc
        raise
    roots: list[Root] = []
    total = Inputs()
    directory = posixpath.dirname(path)
    for number, line in _logical_lines(text):
        where = f"{path} line {number}"
        if line.startswith("-"):
            option, _, value = line.replace("=", " ", 1).partition(" ")
            value = value.strip()
            if option in ("-r", "--requirement", "-c", "--constraint"):
                if not value:
                    raise InvalidLockfile(f"{where}: {option} needs a file name")
                included = posixpath.normpath(posixpath.join(directory, value))
                nested = parse_requirements_file(
                    included,
                    read,
                    _seen=(*_seen, path),
                    constraint=constraint or option in ("-c", "--constraint"),
                    included_at=where,
                )
                total = total + nested
                continue
            if option == "--pre":
                total = total + Inputs(prereleases=True)
                continue
            if option in _FOREIGN:
                raise InvalidLockfile(
                    f"{where}: {_FOREIGN[option]} cannot apply to a mirror: it takes every file "
                    "from its configured upstream, and an editable or local project is not on "
                    "any index; remove the line (point the mirror's upstream at that index "
                    "instead, or publish the project)"
                )
            if option in _IGNORED:
                continue  # how pip picks among files; the mirror keeps every candidate anyway
            raise InvalidLockfile(
                f"{where}: option {option} is not understood by a closure mirror; remove it"
            )
        hashes = frozenset(
            value.lower() for algorithm, value in _HASH.findall(line) if algorithm == "sha256"
        )
        if "--hash" in line and not hashes:
            raise InvalidLockfile(
                f"{where}: only --hash=sha256:... can be checked against the upstream; "
                "regenerate the file with sha256 hashes"
            )
        requirement = re.split(r"\s+--?[A-Za-z]", line, maxsplit=1)[0].strip()
        if re.match(r"^(\.|/|[A-Za-z]+://)", requirement):
            raise InvalidLockfile(
                f"{where}: {requirement!r} is a path or URL, not a release on the index; a "
                "mirror can only carry what its upstream lists"
            )
        req = _requirement(requirement, where)
        roots.append(Root(str(req), where, hashes))
    if constraint:
        return total + Inputs(constraints=tuple(roots))
    return total + Inputs(roots=tuple(roots))


# --- pyproject.toml -------------------------------------------------------------------------------


def _toml(text: str, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InvalidLockfile(f"{path}: not valid TOML: {exc}") from exc


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidLockfile(f"{where}: must be a list of requirement strings")
    return list(value)


def _chosen(names: Iterable[str], wanted: tuple[str, ...]) -> list[str]:
    if "*" in wanted:
        return sorted(names)
    normalized = {normalize_name(w) for w in wanted}
    return sorted(n for n in names if normalize_name(n) in normalized)


def parse_pyproject(
    text: str, path: str, *, extras: tuple[str, ...] = ("*",), groups: tuple[str, ...] = ("*",)
) -> Inputs:
    """``[project] dependencies``, the chosen ``optional-dependencies`` groups and PEP 735
    ``[dependency-groups]`` (with ``include-group``).

    Raises:
        InvalidLockfile: not TOML, a field of the wrong type, a requirement that does not parse,
            or an ``include-group`` that names no group or loops.
    """
    data = _toml(text, path)
    project = data.get("project", {})
    if not isinstance(project, dict):
        raise InvalidLockfile(f"{path}: [project] must be a table")
    roots: list[Root] = []
    deps = _strings(project.get("dependencies", []), f"{path} [project] dependencies")
    for text_ in deps:
        where = f"{path} [project] dependencies"
        roots.append(Root(str(_requirement(text_, where)), where))
    optional = project.get("optional-dependencies", {})
    if not isinstance(optional, dict):
        raise InvalidLockfile(f"{path}: [project.optional-dependencies] must be a table")
    for extra in _chosen(optional, extras):
        where = f"{path} [project.optional-dependencies] {extra}"
        for text_ in _strings(optional[extra], where):
            roots.append(Root(str(_requirement(text_, where)), where))
    dependency_groups = data.get("dependency-groups", {})
    if not isinstance(dependency_groups, dict):
        raise InvalidLockfile(f"{path}: [dependency-groups] must be a table")
    for group in _chosen(dependency_groups, groups):
        for text_, where in _group(dependency_groups, group, path, ()):
            roots.append(Root(str(_requirement(text_, where)), where))
    return Inputs(roots=tuple(roots))


def _group(
    groups: Mapping[str, Any], name: str, path: str, seen: tuple[str, ...]
) -> list[tuple[str, str]]:
    # PEP 735: group names are compared normalized; an include-group must not loop.
    by_normal = {normalize_name(k): k for k in groups}
    key = by_normal.get(normalize_name(name))
    where = f"{path} [dependency-groups] {name}"
    if key is None:
        raise InvalidLockfile(f"{where}: include-group names no group (have: {sorted(groups)})")
    if normalize_name(key) in seen:
        raise InvalidLockfile(f"{where}: include-group loops ({' -> '.join((*seen, key))})")
    entries = groups[key]
    if not isinstance(entries, list):
        raise InvalidLockfile(f"{where}: must be a list")
    out: list[tuple[str, str]] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append((entry, where))
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            out.extend(_group(groups, entry["include-group"], path, (*seen, normalize_name(key))))
        else:
            raise InvalidLockfile(f"{where}: {entry!r} is neither a requirement nor an include")
    return out


# --- pylock.toml (PEP 751) ------------------------------------------------------------------------


def _filename_of(url: str | None, name: object, where: str) -> str:
    if isinstance(name, str) and name:
        return name
    if isinstance(url, str) and url:
        # PEP 751: "name" MAY be left out when the URL's last path segment is the filename.
        return unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    raise InvalidLockfile(f"{where}: a file needs a name or a url")


def _sha256_from_table(hashes: object, where: str) -> str:
    if not isinstance(hashes, dict) or not isinstance(hashes.get("sha256"), str):
        raise InvalidLockfile(
            f"{where}: no sha256 hash; headwater checks every locked file against the upstream's "
            "sha256, so regenerate the lockfile with sha256 hashes"
        )
    return str(hashes["sha256"]).lower()


def _check_marker(marker: object, where: str) -> str | None:
    if marker is None:
        return None
    if not isinstance(marker, str):
        raise InvalidLockfile(f"{where}: marker must be a string")
    try:
        Marker(marker)
    except InvalidMarker as exc:
        raise InvalidLockfile(f"{where}: marker {marker!r} does not parse: {exc}") from exc
    return marker


def _name(value: object, where: str) -> NormalizedName:
    if not isinstance(value, str):
        raise InvalidLockfile(f"{where}: a package needs a name")
    try:
        return normalize_name(value)
    except InvalidName as exc:
        raise InvalidLockfile(f"{where}: {value!r} is not a project name: {exc}") from exc


def parse_pylock(text: str, path: str) -> Inputs:
    """A PEP 751 ``pylock.toml``: each ``[[packages]]`` entry's wheels and sdist with their sha256,
    its marker and requires-python.

    Raises:
        InvalidLockfile: not TOML, an unknown ``lock-version`` major, a package without version or
            files from an index (``vcs``, ``directory``, ``archive``), or a file without sha256.
    """
    data = _toml(text, path)
    version = data.get("lock-version")
    if not isinstance(version, str) or not version.startswith("1."):
        raise InvalidLockfile(
            f"{path}: lock-version = {version!r}; headwater reads PEP 751 lock-version 1.x"
        )
    packages = data.get("packages", [])
    if not isinstance(packages, list):
        raise InvalidLockfile(f"{path}: [[packages]] must be an array of tables")
    locked: list[Locked] = []
    for i, package in enumerate(packages):
        where = f"{path} packages[{i}]"
        if not isinstance(package, dict):
            raise InvalidLockfile(f"{where}: must be a table")
        name = _name(package.get("name"), where)
        where = f"{path} package {name}"
        for foreign in ("vcs", "directory", "archive"):
            if foreign in package:
                raise InvalidLockfile(
                    f"{where}: comes from a {foreign}, not an index; a mirror can only carry "
                    "files its upstream lists (publish it, or lock it from an index)"
                )
        pinned = package.get("version")
        if not isinstance(pinned, str):
            raise InvalidLockfile(f"{where}: no version (a mirror needs the pinned release)")
        files: list[LockedFile] = []
        for j, wheel in enumerate(package.get("wheels", []) or []):
            w_where = f"{where} wheels[{j}]"
            if not isinstance(wheel, dict):
                raise InvalidLockfile(f"{w_where}: must be a table")
            filename = _filename_of(wheel.get("url"), wheel.get("name"), w_where)
            sha = _sha256_from_table(wheel.get("hashes"), f"{where} {filename}")
            files.append(LockedFile(filename, sha, True))
        sdist = package.get("sdist")
        if sdist is not None:
            if not isinstance(sdist, dict):
                raise InvalidLockfile(f"{where} sdist: must be a table")
            filename = _filename_of(sdist.get("url"), sdist.get("name"), f"{where} sdist")
            sha = _sha256_from_table(sdist.get("hashes"), f"{where} {filename}")
            files.append(LockedFile(filename, sha, False))
        if not files:
            raise InvalidLockfile(f"{where}: lists no wheels and no sdist")
        requires_python = package.get("requires-python")
        locked.append(
            Locked(
                name,
                pinned,
                tuple(files),
                where,
                _check_marker(package.get("marker"), where),
                requires_python if isinstance(requires_python, str) else None,
            )
        )
    return Inputs(locked=tuple(locked))


# --- uv.lock --------------------------------------------------------------------------------------


def _uv_hash(entry: Mapping[str, Any], where: str) -> str:
    value = entry.get("hash")
    if not isinstance(value, str) or not value.startswith("sha256:"):
        raise InvalidLockfile(
            f"{where}: no sha256 hash; headwater checks every locked file against the upstream's "
            "sha256 (regenerate uv.lock)"
        )
    return value.removeprefix("sha256:").lower()


def parse_uv_lock(text: str, path: str) -> Inputs:
    """A ``uv.lock``: every package from a registry, with its wheels and sdist and their sha256.

    uv.lock is universal (one lock for every platform), so each package carries the marker under
    which something depends on it: the union of the markers of the edges that reach it from the
    workspace's own packages (``source = { editable/virtual/directory }``), computed here by a
    walk of the dependency graph. A package no edge reaches is left out.

    Raises:
        InvalidLockfile: not TOML, an unknown ``version``, or a registry file without sha256.
    """
    data = _toml(text, path)
    if data.get("version") != 1:
        raise InvalidLockfile(f"{path}: version = {data.get('version')!r}; headwater reads 1")
    packages = data.get("package", [])
    if not isinstance(packages, list):
        raise InvalidLockfile(f"{path}: [[package]] must be an array of tables")
    by_name: dict[NormalizedName, list[dict[str, Any]]] = {}
    for i, package in enumerate(packages):
        if not isinstance(package, dict):
            raise InvalidLockfile(f"{path} package[{i}]: must be a table")
        by_name.setdefault(_name(package.get("name"), f"{path} package[{i}]"), []).append(package)

    def find(name: NormalizedName, version: object) -> list[dict[str, Any]]:
        found = by_name.get(name, [])
        if isinstance(version, str):
            found = [p for p in found if p.get("version") == version]
        return found

    # The walk: (package id) -> markers under which it is reached ("" = always).
    reached: dict[tuple[NormalizedName, str], set[str]] = {}
    stack: list[tuple[dict[str, Any], str]] = []
    for candidates in by_name.values():
        for package in candidates:
            source = package.get("source", {})
            if isinstance(source, dict) and set(source) & {"editable", "virtual", "directory"}:
                stack.append((package, ""))
    while stack:
        package, marker = stack.pop()
        key = (normalize_name(str(package["name"])), str(package.get("version", "")))
        markers = reached.setdefault(key, set())
        if marker in markers or "" in markers:
            continue
        markers.add(marker)
        edges: list[Any] = list(package.get("dependencies", []) or [])
        for table in ("optional-dependencies", "dev-dependencies"):
            groups = package.get(table, {}) or {}
            if isinstance(groups, dict):
                for group in groups.values():
                    edges.extend(group or [])
        for edge in edges:
            if not isinstance(edge, dict):
                continue
            dep = _name(edge.get("name"), f"{path} {key[0]} dependency")
            edge_marker = _check_marker(edge.get("marker"), f"{path} {key[0]} -> {dep}") or ""
            combined = _and(marker, edge_marker)
            for target in find(dep, edge.get("version")):
                stack.append((target, combined))
                extra_deps = (target.get("optional-dependencies") or {}).get
                for extra in edge.get("extra", []) or []:
                    for sub in extra_deps(extra, []) or []:
                        if isinstance(sub, dict):
                            sub_dep = _name(sub.get("name"), f"{path} {dep}[{extra}]")
                            sub_marker = _and(combined, str(sub.get("marker") or ""))
                            for sub_target in find(sub_dep, sub.get("version")):
                                stack.append((sub_target, sub_marker))

    locked: list[Locked] = []
    for (name, version), markers in sorted(reached.items()):
        for package in find(name, version):
            source = package.get("source", {})
            if not (isinstance(source, dict) and "registry" in source):
                continue  # the workspace's own packages, git and path sources: not on the index
            where = f"{path} package {name} {version}"
            files: list[LockedFile] = []
            for wheel in package.get("wheels", []) or []:
                filename = _filename_of(wheel.get("url"), wheel.get("filename"), where)
                files.append(LockedFile(filename, _uv_hash(wheel, f"{where} {filename}"), True))
            sdist = package.get("sdist")
            if isinstance(sdist, dict):
                filename = _filename_of(sdist.get("url"), sdist.get("filename"), where)
                files.append(LockedFile(filename, _uv_hash(sdist, f"{where} {filename}"), False))
            if not files:
                raise InvalidLockfile(f"{where}: lists no wheels and no sdist")
            joined = None if "" in markers else " or ".join(f"({m})" for m in sorted(markers))
            locked.append(Locked(name, version, tuple(files), where, joined))
    return Inputs(locked=tuple(locked))


def _and(left: str, right: str) -> str:
    if not left:
        return right
    if not right:
        return left
    return f"({left}) and ({right})"


def constraint_specifiers(inputs: Inputs) -> dict[NormalizedName, SpecifierSet]:
    """The ``-c`` constraints, one specifier set per project (all of a project's lines apply)."""
    out: dict[NormalizedName, SpecifierSet] = {}
    for constraint in inputs.constraints:
        req = constraint.parsed
        name = normalize_name(req.name)
        out[name] = out.get(name, SpecifierSet()) & req.specifier
    return out
