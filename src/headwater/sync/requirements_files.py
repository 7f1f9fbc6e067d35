"""pip requirements files and ``pyproject.toml`` as inputs of a closure mirror: requirements to
follow (:class:`~headwater.sync.inputs.Root`), each naming its file and line.

Requirements files: markers, extras, pins, ``--hash``, ``-r``/``-c`` includes and ``--pre`` are
understood; options that choose another source of files (``--index-url``, ``--find-links``,
``-e``, a path or URL) are refused with the line and the fix. ``pyproject.toml``: ``[project]
dependencies``, the chosen ``optional-dependencies`` and PEP 735 ``[dependency-groups]``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement

from headwater.simple.names import InvalidName, normalize_name
from headwater.sync.inputs import (
    Inputs,
    InvalidLockfile,
    Reader,
    Root,
    load_toml,
    parse_requirement,
    read_file,
)

__all__ = ["parse_pyproject", "parse_requirements_file"]


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
_IGNORED = {
    "--prefer-binary",
    "--only-binary",
    "--no-binary",
    "--use-feature",
    "--trusted-host",
    "--require-hashes",  # the mirror checks every --hash it is given anyway
}
# pip reads a line naming an archive (``pkg-1.0-py3-none-any.whl``) as a path to that file.
_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|tar\.bz2|tar\.xz|zip|tar)\Z", re.IGNORECASE)
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
        text = read_file(read, path)
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
                if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
                    raise InvalidLockfile(
                        f"{where}: {option} {value} names a URL; a closure mirror reads only "
                        "local files (download it next to this one and include it by name)"
                    )
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
        if any(len(value) != 64 for value in hashes):
            raise InvalidLockfile(
                f"{where}: a --hash=sha256:... is not 64 hex digits; the file is damaged "
                "(regenerate it)"
            )
        if "--hash" in line and not hashes:
            raise InvalidLockfile(
                f"{where}: only --hash=sha256:... can be checked against the upstream; "
                "regenerate the file with sha256 hashes"
            )
        requirement = re.split(r"\s+--?[A-Za-z]", line, maxsplit=1)[0].strip()
        if re.match(r"^(\.|/|~|[A-Za-z][A-Za-z0-9+.-]*://)", requirement) or (
            "@" not in requirement and _ARCHIVE.search(requirement.split(";", 1)[0].strip())
        ):
            raise InvalidLockfile(
                f"{where}: {requirement!r} is a path or URL, not a release on the index; a "
                "mirror can only carry what its upstream lists"
            )
        req = parse_requirement(requirement, where)
        roots.append(Root(str(req), where, hashes))
    if constraint:
        return total + Inputs(constraints=tuple(roots))
    return total + Inputs(roots=tuple(roots))


# --- pyproject.toml -------------------------------------------------------------------------------


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
    data = load_toml(text, path)
    project = data.get("project", {})
    if not isinstance(project, dict):
        raise InvalidLockfile(f"{path}: [project] must be a table")
    dynamic = project.get("dynamic", [])
    for field in ("dependencies", "optional-dependencies"):
        if isinstance(dynamic, list) and field in dynamic:
            raise InvalidLockfile(
                f"{path} [project] dynamic: {field} are computed by the build backend, so they "
                "cannot be read from the file; lock the project (`uv lock`, or `pip-compile` to a "
                "requirements file) and give the lockfile instead"
            )
    optional = project.get("optional-dependencies", {})
    if not isinstance(optional, dict):
        raise InvalidLockfile(f"{path}: [project.optional-dependencies] must be a table")
    own = _Own(_own_name(project.get("name"), path), optional, path)
    roots: list[Root] = []
    deps = _strings(project.get("dependencies", []), f"{path} [project] dependencies")
    for text_ in deps:
        roots.extend(own.roots(text_, f"{path} [project] dependencies"))
    for extra in _chosen(optional, extras):
        where = f"{path} [project.optional-dependencies] {extra}"
        for text_ in _strings(optional[extra], where):
            roots.extend(own.roots(text_, where, frozenset({extra})))
    dependency_groups = data.get("dependency-groups", {})
    if not isinstance(dependency_groups, dict):
        raise InvalidLockfile(f"{path}: [dependency-groups] must be a table")
    for group in _chosen(dependency_groups, groups):
        for text_, where in _group(dependency_groups, group, path, ()):
            roots.extend(own.roots(text_, where))
    return Inputs(roots=tuple(roots))


def _own_name(name: object, path: str) -> str | None:
    if name is None:
        return None  # PEP 735 groups need no [project]
    try:
        if not isinstance(name, str):
            raise InvalidName(f"{name!r} is not a string")
        return normalize_name(name)
    except InvalidName as exc:
        raise InvalidLockfile(f"{path} [project] name: {exc}") from exc


class _Own:
    """A requirement on the project itself (``all = ["me[fast,color]"]``, a dependency group
    ``["me[test]"]``) is not on any index: it stands for those extras' requirements, followed
    here, with its marker joined to theirs."""

    def __init__(self, name: str | None, optional: Mapping[str, Any], path: str) -> None:
        self.name, self.optional, self.path = name, optional, path
        self.by_normal = {normalize_name(k): k for k in optional}

    def roots(self, text: str, where: str, seen: frozenset[str] = frozenset()) -> list[Root]:
        req = parse_requirement(text, where)
        if self.name is None or normalize_name(req.name) != self.name:
            return [Root(str(req), where)]
        out: list[Root] = []
        for extra in sorted(req.extras):
            key = self.by_normal.get(normalize_name(extra))
            if key is None:
                raise InvalidLockfile(
                    f"{where}: {text!r} asks for extra {extra!r} of this project, which "
                    "[project.optional-dependencies] does not define"
                )
            if key in seen:
                continue  # an extra that includes itself, directly or not
            inner = f"{self.path} [project.optional-dependencies] {key}"
            for text_ in _strings(self.optional[key], inner):
                for root in self.roots(text_, inner, seen | {key}):
                    joined = Requirement(root.requirement)
                    if req.marker is not None:
                        both = f"({req.marker}) and ({joined.marker})" if joined.marker else ""
                        joined.marker = Marker(both or str(req.marker))
                    out.append(Root(str(joined), where))
        return out


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
