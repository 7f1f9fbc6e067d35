"""What a closure mirror must satisfy: read every input file (:func:`read_inputs`), and the
lockfile formats, ``pylock.toml`` (PEP 751) and ``uv.lock``.

Two kinds of input come out, and :mod:`headwater.sync.closure` treats them differently:

==============  ==============================================================================
``Root``        a PEP 508 requirement to follow: every version its specifier admits, and their
                dependencies, recursively (requirements files, ``pyproject.toml``:
                :mod:`headwater.sync.requirements_files`)
``Locked``      one pinned release with its exact files and hashes (``pylock.toml``,
                ``uv.lock``): those files only, checked against the upstream's hashes, no
                recursion (a lockfile is already closed)
``Inputs``      the roots, the constraints (``-c``), and the locked packages, each naming where
                it came from (``requirements.txt line 4``) so every report can point at the line
==============  ==============================================================================

Parsers are the maintained ones (:mod:`packaging` for PEP 508, :mod:`tomllib`); these modules
only walk the formats. Files are read through the ``read`` callable the caller passes, so no
module here does I/O. What cannot apply to a mirror (a package from a VCS, a directory or an
archive URL; a file without sha256) is refused naming the file and the fix.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker

from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.names import InvalidName, NormalizedName, normalize_name
from headwater.sync.inputs import (
    Inputs,
    InvalidLockfile,
    Locked,
    LockedFile,
    Reader,
    Root,
    constraint_specifiers,
    load_toml,
    read_file,
)
from headwater.sync.requirements_files import parse_pyproject, parse_requirements_file

__all__ = [
    "Inputs",
    "InvalidLockfile",
    "Locked",
    "LockedFile",
    "Root",
    "constraint_specifiers",
    "input_kind",
    "parse_pylock",
    "parse_uv_lock",
    "read_inputs",
]


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
            text = read_file(read, path)
            if kind == "pyproject":
                total = total + parse_pyproject(text, path, extras=extras, groups=groups)
            elif kind == "pylock":
                total = total + parse_pylock(text, path)
            else:
                total = total + parse_uv_lock(text, path, extras=extras, groups=groups)
    return total


# --- pylock.toml (PEP 751) ------------------------------------------------------------------------


def _filename_of(url: str | None, name: object, where: str) -> str:
    if isinstance(name, str) and name:
        filename = name
    elif isinstance(url, str) and url:
        # PEP 751: "name" MAY be left out when the URL's last path segment is the filename.
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    else:
        raise InvalidLockfile(f"{where}: a file needs a name or a url")
    try:
        parse_filename(filename)  # a wheel or sdist name: nothing else can be on a page
    except InvalidFilename as exc:
        raise InvalidLockfile(
            f"{where}: {filename!r} is not a wheel or sdist filename: {exc}"
        ) from exc
    return filename


_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def _tables(value: object, where: str) -> list[dict[str, Any]]:
    """``value`` as a list of tables (missing: empty), or a refusal naming ``where``."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidLockfile(f"{where}: must be an array of tables")
    return value


def _sha256(value: str, where: str) -> str:
    digest = value.lower()
    if not _SHA256.match(digest):
        raise InvalidLockfile(
            f"{where}: sha256 {value!r} is not 64 hex digits; the lockfile is damaged "
            "(regenerate it)"
        )
    return digest


def _sha256_from_table(hashes: object, where: str) -> str:
    if not isinstance(hashes, dict) or not isinstance(hashes.get("sha256"), str):
        raise InvalidLockfile(
            f"{where}: no sha256 hash; headwater checks every locked file against the upstream's "
            "sha256, so regenerate the lockfile with sha256 hashes"
        )
    return _sha256(str(hashes["sha256"]), where)


def _wheel_name(filename: str, where: str) -> str:
    if not filename.endswith(".whl"):
        raise InvalidLockfile(f"{where}: {filename!r} is listed as a wheel but is not a .whl")
    return filename


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
    data = load_toml(text, path)
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
        for j, wheel in enumerate(_tables(package.get("wheels"), f"{where} wheels")):
            w_where = f"{where} wheels[{j}]"
            filename = _wheel_name(
                _filename_of(wheel.get("url"), wheel.get("name"), w_where), w_where
            )
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
        if requires_python is not None and not isinstance(requires_python, str):
            raise InvalidLockfile(f"{where}: requires-python must be a string such as '>=3.9'")
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
    return _sha256(value.removeprefix("sha256:"), where)


def parse_uv_lock(
    text: str, path: str, *, extras: tuple[str, ...] = ("*",), groups: tuple[str, ...] = ("*",)
) -> Inputs:
    """A ``uv.lock``: every package from a registry, with its wheels and sdist and their sha256.

    uv.lock is universal (one lock for every platform), so each package carries the marker under
    which something depends on it: the union of the markers of the edges that reach it from the
    workspace's own packages (``source = { editable/virtual/directory }``), computed here by a
    walk of the dependency graph. A package no edge reaches is left out. Of the workspace's own
    packages, only the optional-dependencies named in ``extras`` and the dependency groups named
    in ``groups`` are followed (``"*"``: all), as for a ``pyproject.toml``.

    Raises:
        InvalidLockfile: not TOML, an unknown ``version``, or a registry file without sha256.
    """
    data = load_toml(text, path)
    if data.get("version") != 1:
        raise InvalidLockfile(f"{path}: version = {data.get('version')!r}; headwater reads 1")
    packages = _tables(data.get("package"), f"{path}: [[package]]")
    by_name: dict[NormalizedName, list[dict[str, Any]]] = {}
    for i, package in enumerate(packages):
        name = _name(package.get("name"), f"{path} package[{i}]")
        _uv_shape(package, f"{path} package {name} {package.get('version', '')}".rstrip())
        by_name.setdefault(name, []).append(package)

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
            if set(source) & {"editable", "virtual", "directory"}:
                stack.append((package, ""))
    if not stack:
        raise InvalidLockfile(
            f"{path}: no package of the workspace (source = {{ virtual, editable or directory }}); "
            "there is nothing to follow from (regenerate it with `uv lock`)"
        )
    while stack:
        package, marker = stack.pop()
        key = (normalize_name(str(package["name"])), str(package.get("version", "")))
        markers = reached.setdefault(key, set())
        if marker in markers or "" in markers:
            continue
        markers.add(marker)
        edges: list[Any] = list(package.get("dependencies", []) or [])
        own = bool(set(package.get("source", {})) & {"editable", "virtual", "directory"})
        for table, chosen in (("optional-dependencies", extras), ("dev-dependencies", groups)):
            tables = package.get(table) or {}
            every = not own or "*" in chosen
            wanted = set() if every else {normalize_name(w) for w in chosen}
            for group, group_edges in tables.items():
                if every or normalize_name(group) in wanted:
                    edges.extend(group_edges)
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
            where = f"{path} package {name} {version}"
            if set(source) & {"editable", "virtual", "directory"}:
                continue  # the workspace's own packages: not on any index
            if "registry" not in source:
                kind = next(iter(source), "an unknown source")
                raise InvalidLockfile(
                    f"{where}: comes from a {kind} source, not an index; a mirror can only carry "
                    "files its upstream lists (publish it to an index, or lock it from one)"
                )
            files: list[LockedFile] = []
            for wheel in package.get("wheels", []):
                filename = _wheel_name(
                    _filename_of(wheel.get("url"), wheel.get("filename"), where), where
                )
                files.append(LockedFile(filename, _uv_hash(wheel, f"{where} {filename}"), True))
            sdist = package.get("sdist")
            if sdist is not None:
                filename = _filename_of(sdist.get("url"), sdist.get("filename"), where)
                files.append(LockedFile(filename, _uv_hash(sdist, f"{where} {filename}"), False))
            if not files:
                raise InvalidLockfile(f"{where}: lists no wheels and no sdist")
            joined = None if "" in markers else " or ".join(f"({m})" for m in sorted(markers))
            locked.append(Locked(name, version, tuple(files), where, joined))
    return Inputs(locked=tuple(locked))


def _uv_shape(package: dict[str, Any], where: str) -> None:
    """Refuse a ``[[package]]`` whose tables have the wrong shape, naming it (a damaged or
    hand-edited uv.lock), so that nothing later meets a string where a table belongs."""
    if not isinstance(package.get("source", {}), dict):
        raise InvalidLockfile(f"{where}: source must be a table such as {{ registry = URL }}")
    for key in ("dependencies", "wheels"):
        _tables(package.get(key), f"{where} {key}")
    sdist = package.get("sdist")
    if sdist is not None and not isinstance(sdist, dict):
        raise InvalidLockfile(f"{where} sdist: must be a table")
    for table in ("optional-dependencies", "dev-dependencies"):
        groups = package.get(table)
        if groups is None:
            continue
        if not isinstance(groups, dict):
            raise InvalidLockfile(f"{where} [{table}]: must be a table")
        for group, edges in groups.items():
            _tables(edges, f"{where} [{table}] {group}")
    for edge in package.get("dependencies") or []:
        extra = edge.get("extra", [])
        if not isinstance(extra, list) or not all(isinstance(e, str) for e in extra):
            raise InvalidLockfile(f"{where} dependencies: extra must be a list of names")


def _and(left: str, right: str) -> str:
    if not left:
        return right
    if not right:
        return left
    return f"({left}) and ({right})"
