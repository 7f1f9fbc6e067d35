"""Read pyproject.toml (PEP 621, PEP 735, ``[tool.uv]``) and pylock.toml (PEP 751) for
``headwater check``, and pick the reader for a file by its name.

pyproject.toml: ``[project] dependencies`` and ``optional-dependencies``, ``[build-system]
requires`` (installed from the index too, in an isolated build), PEP 735 ``[dependency-groups]``
(every group is checked, so an ``include-group`` adds nothing new; it is validated, cycles
included), uv's ``dev-dependencies`` / ``constraint-dependencies`` / ``override-dependencies``; the
project's own name (a self-reference such as ``me[test]``) is skipped. ``[tool.uv]``
``index-url``, ``extra-index-url``, ``find-links``, ``no-index`` and ``[[tool.uv.index]]`` become
index directives; ``[tool.uv.sources]`` entries become per-project pins (``{ index = "..." }``) or
mark the project as not from an index (``git``, ``path``, ``url``, ``workspace``).

pylock.toml: every ``[[packages]]`` entry by ``name``; ``index`` pins it to that index for every
installer (PEP 751: installers "MUST NOT change which file to install based on availability");
``vcs`` / ``directory`` / ``archive`` entries are not from an index; the hashes of ``sdist`` and
``wheels`` are kept, so a locked package can be reported as protected.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from headwater.check.errors import InvalidRequirements
from headwater.check.model import Client, IndexDirective, Pin, Requirement, RequirementSet
from headwater.check.requirements import read_requirements_txt, requirement_from_string
from headwater.simple.names import normalize_or_none

__all__ = ["read_pylock", "read_pyproject", "read_requirements"]

_PYLOCK = re.compile(r"^pylock\.([^.]+\.)?toml$")
_HASHES = ("sha256", "sha384", "sha512")
_DIRECT_SOURCES = ("git", "path", "url", "workspace")


def read_requirements(
    path: Path | str, *, environ: Mapping[str, str] | None = None
) -> RequirementSet:
    """Read ``path`` with the reader its name calls for: ``pyproject.toml``, ``pylock.toml`` /
    ``pylock.<name>.toml``, or else a pip requirements file.

    Raises:
        InvalidRequirements: the file is missing, unreadable or malformed (the message names it).
    """
    path = Path(path)
    if path.name == "pyproject.toml":
        return read_pyproject(path)
    if _PYLOCK.match(path.name):
        return read_pylock(path)
    return read_requirements_txt(path, environ=environ)


def _load(path: Path, what: str) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidRequirements(f"{what} {path} does not exist; check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequirements(f"cannot read {what} {path}: {exc}") from exc
    try:
        return text, tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:  # tomllib recurses on nesting
        raise InvalidRequirements(f"{path}: not valid TOML: {exc}") from exc


class Where:
    """Origins that name the file, the line a string is on (when it can be found) and the key."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def __call__(self, key: str, value: str | None = None) -> str:
        if value is not None:
            for quote in ('"', "'"):
                needle = f"{quote}{value}{quote}"
                for number, line in enumerate(self.lines, start=1):
                    if needle in line:
                        return f"{self.path}:{number} ({key})"
        return f"{self.path} ({key})"


def _table(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InvalidRequirements(f"{where}: [{key}] must be a table")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequirements(f"{where}: must be an array of strings")
    return value


def read_pyproject(path: Path | str) -> RequirementSet:
    """Read a pyproject.toml (see the module docstring for what is taken from it).

    Raises:
        InvalidRequirements: the file is missing or not TOML, a key has the wrong type, a
            requirement string is invalid, or a dependency group is unknown or includes itself.
    """
    path = Path(path)
    text, data = _load(path, "pyproject file")
    where = Where(path, text)
    project = _table(data, "project", str(path))
    own = (
        normalize_or_none(project.get("name", "")) if isinstance(project.get("name"), str) else None
    )
    strings: list[tuple[str, str]] = []  # (requirement string, key)

    def add(key: str, value: Any) -> None:
        strings.extend((item, key) for item in _strings(value, where(key)))

    if "dependencies" in project:
        add("[project] dependencies", project["dependencies"])
    for extra, deps in _table(project, "optional-dependencies", str(path)).items():
        add(f"[project.optional-dependencies] {extra}", deps)
    build = _table(data, "build-system", str(path))
    if "requires" in build:
        add("[build-system] requires", build["requires"])
    for group, items in _dependency_groups(data, where).items():
        strings.extend((item, f"[dependency-groups] {group}") for item in items)
    tool = _table(data, "tool", str(path))
    uv = _table(tool, "uv", str(path))
    for key in ("dev-dependencies", "constraint-dependencies", "override-dependencies"):
        if key in uv:
            add(f"[tool.uv] {key}", uv[key])

    sources = _uv_sources(uv, where)
    requirements: list[Requirement] = []
    for item, key in strings:
        requirement = requirement_from_string(item, origin=where(key, item))
        if own is not None and requirement.project == own:
            continue  # a self-reference (me[test]) installs this project, not one from an index
        source = sources.get(requirement.project) if requirement.project else None
        if source is not None:
            pins, direct = source
            requirement = msgspec.structs.replace(
                requirement, pins=pins, direct=requirement.direct or direct
            )
        requirements.append(requirement)
    return RequirementSet(
        requirements=tuple(requirements),
        directives=tuple(uv_directives(uv, where, "[tool.uv]")),
        uv_project="uv" in tool,
    )


def _dependency_groups(data: Mapping[str, Any], where: Where) -> dict[str, list[str]]:
    """PEP 735 groups: name -> its own requirement strings; includes validated, cycles refused."""
    groups = _table(data, "dependency-groups", str(where.path))
    # PEP 735: group names are compared normalized, like project names.
    by_name: dict[str, str] = {}
    for group in groups:
        normal = normalize_or_none(group)
        if normal is None:
            raise InvalidRequirements(
                f"{where('[dependency-groups]')}: {group!r} is not a valid group name"
            )
        if normal in by_name:
            raise InvalidRequirements(
                f"{where('[dependency-groups]')}: groups {by_name[normal]!r} and {group!r} have "
                "the same normalized name; merge them"
            )
        by_name[normal] = group
    own: dict[str, list[str]] = {}
    includes: dict[str, list[str]] = {}
    for group, items in groups.items():
        key = f"[dependency-groups] {group}"
        if not isinstance(items, list):
            raise InvalidRequirements(f"{where(key)}: must be an array")
        own[group], includes[group] = [], []
        for item in items:
            if isinstance(item, str):
                own[group].append(item)
            elif isinstance(item, dict) and set(item) == {"include-group"}:
                target = item["include-group"]
                normal = normalize_or_none(target) if isinstance(target, str) else None
                if normal is None or normal not in by_name:
                    raise InvalidRequirements(
                        f"{where(key)}: include-group {target!r} names no group in "
                        "[dependency-groups]"
                    )
                includes[group].append(by_name[normal])
            else:
                raise InvalidRequirements(
                    f"{where(key)}: {item!r} is neither a requirement string nor "
                    '{ include-group = "name" }'
                )

    def visit(group: str, path: tuple[str, ...]) -> None:
        if group in path:
            cycle = " -> ".join((*path[path.index(group) :], group))
            raise InvalidRequirements(
                f"{where('[dependency-groups]')}: include-group cycle {cycle}; PEP 735 forbids it"
            )
        for target in includes[group]:
            visit(target, (*path, group))

    for group in groups:
        visit(group, ())
    return own


def _uv_sources(
    uv: Mapping[str, Any], where: Where
) -> dict[str, tuple[tuple[Pin, ...], str | None]]:
    """``[tool.uv.sources]``: project -> (index pins, why it is not from an index)."""
    table = uv.get("sources", {})
    if not isinstance(table, dict):
        raise InvalidRequirements(f"{where('[tool.uv.sources]')}: must be a table")
    out: dict[str, tuple[tuple[Pin, ...], str | None]] = {}
    for name, value in table.items():
        project = normalize_or_none(name)
        key = f"[tool.uv.sources] {name}"
        if project is None:
            raise InvalidRequirements(f"{where(key)}: {name!r} is not a valid project name")
        entries = value if isinstance(value, list) else [value]
        pins: list[Pin] = []
        direct: str | None = None
        for entry in entries:
            if not isinstance(entry, dict):
                raise InvalidRequirements(f"{where(key)}: a source must be a table")
            if "index" in entry:
                if not isinstance(entry["index"], str):
                    raise InvalidRequirements(f"{where(key)}: index must be a string")
                pins.append(Pin(index=entry["index"], origin=where(key), clients=(Client.UV,)))
            else:
                kinds = [k for k in _DIRECT_SOURCES if k in entry]
                if not kinds:
                    raise InvalidRequirements(
                        f"{where(key)}: a source needs one of index, {', '.join(_DIRECT_SOURCES)}"
                    )
                direct = f"a uv {kinds[0]} source ({where(key)})"
        out[project] = (tuple(pins), direct if not pins else None)
    return out


def uv_directives(uv: Mapping[str, Any], where: Where, prefix: str) -> list[IndexDirective]:
    """Index settings of a ``[tool.uv]`` table or a uv.toml (``prefix`` names the table)."""
    out: list[IndexDirective] = []
    for entry_number, entry in enumerate(_index_tables(uv, where, prefix)):
        key = f"{prefix} index[{entry_number}]"
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidRequirements(f"{where(key)}: an index needs a url")
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidRequirements(f"{where(key)}: name must be a string")
        if entry.get("format", "simple") == "flat":
            out.append(IndexDirective(action="find-links", value=url, origin=where(key, url)))
            continue
        out.append(
            IndexDirective(
                action="index",
                value=url,
                origin=where(key, url),
                name=name,
                default=bool(entry.get("default", False)),
                explicit=bool(entry.get("explicit", False)),
            )
        )
    if "extra-index-url" in uv:
        key = f"{prefix} extra-index-url"
        for url in _strings(uv["extra-index-url"], where(key)):
            out.append(IndexDirective(action="extra-index-url", value=url, origin=where(key, url)))
    if "index-url" in uv:
        url = uv["index-url"]
        if not isinstance(url, str):
            raise InvalidRequirements(f"{where(prefix + ' index-url')}: must be a string")
        out.append(
            IndexDirective(action="index-url", value=url, origin=where(f"{prefix} index-url", url))
        )
    if "find-links" in uv:
        key = f"{prefix} find-links"
        for value in _strings(uv["find-links"], where(key)):
            out.append(IndexDirective(action="find-links", value=value, origin=where(key, value)))
    if uv.get("no-index") is True:
        out.append(IndexDirective(action="no-index", value="", origin=where(f"{prefix} no-index")))
    return out


def _index_tables(uv: Mapping[str, Any], where: Where, prefix: str) -> list[dict[str, Any]]:
    tables = uv.get("index", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise InvalidRequirements(f"{where(prefix + ' index')}: must be an array of tables")
    return tables


def read_pylock(path: Path | str) -> RequirementSet:
    """Read a PEP 751 lock file (see the module docstring).

    Raises:
        InvalidRequirements: the file is missing or not TOML, its ``lock-version`` is missing or
            of a major version other than 1, or a package entry is malformed.
    """
    path = Path(path)
    text, data = _load(path, "lock file")
    where = Where(path, text)
    version = data.get("lock-version")
    if not isinstance(version, str) or version.split(".", 1)[0] != "1":
        raise InvalidRequirements(
            f"{where('lock-version')}: lock-version {version!r} is not a PEP 751 version 1.x; "
            "is this a pylock.toml?"
        )
    packages = data.get("packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, dict) for p in packages):
        raise InvalidRequirements(f"{where('packages')}: must be an array of tables")
    requirements: list[Requirement] = []
    for number, package in enumerate(packages):
        key = f"packages[{number}]"
        name = package.get("name")
        project = normalize_or_none(name) if isinstance(name, str) else None
        if project is None:
            raise InvalidRequirements(
                f"{where(key)}: name {name!r} is missing or not a valid project name"
            )
        origin = where(f"{key} {name}", name)
        direct = next((k for k in ("vcs", "directory", "archive") if k in package), None)
        index = package.get("index")
        if index is not None and not isinstance(index, str):
            raise InvalidRequirements(f"{origin}: index must be a URL string")
        pins = (Pin(index=index, origin=origin, clients=(Client.PIP, Client.UV)),) if index else ()
        version = package.get("version")
        requirements.append(
            Requirement(
                name=name,
                project=project,
                origin=origin,
                specifier=f"=={version}" if isinstance(version, str) else "",
                marker=package.get("marker") if isinstance(package.get("marker"), str) else None,
                hashes=_lock_hashes(package, origin),
                direct=f"a locked {direct} ({origin})" if direct else None,
                pins=pins,
            )
        )
    return RequirementSet(requirements=tuple(requirements))


def _lock_hashes(package: Mapping[str, Any], origin: str) -> tuple[str, ...]:
    files: list[Any] = []
    if isinstance(package.get("sdist"), dict):
        files.append(package["sdist"])
    wheels = package.get("wheels", [])
    if not isinstance(wheels, list):
        raise InvalidRequirements(f"{origin}: wheels must be an array of tables")
    files.extend(wheels)
    out: list[str] = []
    for file in files:
        hashes = file.get("hashes", {}) if isinstance(file, dict) else None
        if not isinstance(hashes, dict):
            raise InvalidRequirements(f"{origin}: a file's hashes must be a table")
        out.extend(
            f"{algorithm}:{str(digest).lower()}"
            for algorithm, digest in hashes.items()
            if algorithm in _HASHES
        )
    return tuple(out)
