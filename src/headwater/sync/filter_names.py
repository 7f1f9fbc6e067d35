"""Mirror filters on project names: the ``allow``/``block`` names and globs, and the requirement
lists that allow names. Pure, like :mod:`headwater.sync.filters` (which compiles a whole
``[mirror.filters]`` table and uses this module for its names): no I/O.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from headwater.errors import InvalidInput
from headwater.simple.names import InvalidName, NormalizedName, normalize_name

if TYPE_CHECKING:
    # Imported where used: most mirrors name no requirements, and packaging's requirement parser
    # is a tenth of the ``headwater`` command's import time.
    from packaging.requirements import Requirement

__all__ = [
    "SEPARATORS",
    "TABLE",
    "InvalidFilter",
    "Patterns",
    "names_wanted",
    "normalize_glob",
    "parse_requirement",
    "parse_requirements",
]

#: Where these options live in the configuration (messages name it).
TABLE = "[mirror.filters]"


class InvalidFilter(InvalidInput):
    """A ``[mirror.filters]`` option or a requirements file is malformed; the message names the key
    and the value. Nothing was synced with it."""


# --- project names --------------------------------------------------------------------------------

_GLOB = re.compile(r"[A-Za-z0-9._*?-]+\Z")
SEPARATORS = re.compile(r"[-_.]+")


def normalize_glob(pattern: str, *, key: str = "allow") -> str:
    """Normalize a project name or glob the way names are (``Foo_*`` means ``foo-*``).

    A pattern without ``*`` or ``?`` must be a valid project name. Character classes (``[...]``)
    are not supported: normalization would change what they mean.

    Raises:
        InvalidFilter: the pattern is empty, has characters no project name has, or is an invalid
            name (the message names ``key``).
    """
    if "*" not in pattern and "?" not in pattern:
        try:
            return normalize_name(pattern)
        except InvalidName as exc:
            raise InvalidFilter(f"{TABLE} {key}: {pattern!r} is not a project name: {exc}") from exc
    if not _GLOB.match(pattern):
        raise InvalidFilter(
            f"{TABLE} {key}: glob {pattern!r} may use only letters, digits, '.', '_', '-' and the "
            "wildcards '*' (any run of characters) and '?' (one character)"
        )
    # Name normalization spec: "lowercased with all runs of the characters ., -, or _ replaced with a
    # single - character" -- applied to the glob so it matches what the names become.
    return SEPARATORS.sub("-", pattern).lower()


class Patterns:
    """A list of names and globs sorted by shape, so matching is mostly string methods.

    Exact names go in a set. Globs of the common shapes ``prefix*``, ``*suffix`` and ``*part*``
    become ``str.startswith`` / ``str.endswith`` / one literal regex search: a regex that starts with
    ``.*`` backtracks at every position and costs several times more on 700,000 names. Any other
    glob joins one alternation, compiled once.
    """

    def __init__(self, patterns: Iterable[str], key: str) -> None:
        exact: set[str] = set()
        prefixes: set[str] = set()
        suffixes: set[str] = set()
        parts: set[str] = set()
        other: set[str] = set()
        for pattern in patterns:
            normalized = normalize_glob(pattern, key=key)
            inner = normalized.strip("*")
            if "*" not in normalized and "?" not in normalized:
                exact.add(normalized)
            elif "*" in inner or "?" in inner:
                other.add(normalized)
            elif normalized.startswith("*") and normalized.endswith("*"):
                parts.add(inner)  # "*" and "**" give "", which every name contains
            elif normalized.endswith("*"):
                prefixes.add(inner)
            else:
                suffixes.add(inner)
        self.empty = not (exact or prefixes or suffixes or parts or other)
        self.exact = frozenset(exact)
        self.prefixes = tuple(sorted(prefixes))
        self.suffixes = tuple(sorted(suffixes))
        self.search = (
            re.compile("|".join(re.escape(p) for p in sorted(parts))).search if parts else None
        )
        self.match = (
            re.compile("|".join(fnmatch.translate(g) for g in sorted(other))).match
            if other
            else None
        )


def names_wanted(allow: Patterns, block: Patterns) -> Callable[[NormalizedName], bool] | None:
    """The callable saying whether a project name is wanted by ``allow`` and not refused by
    ``block`` (``block`` wins; an empty ``allow`` allows every name), or ``None`` when both are
    empty."""
    if allow.empty and block.empty:
        return None
    # One closure, no nested calls: the plan calls it for every name on PyPI (700,000).
    a_exact, a_pre, a_suf, a_search, a_match = (
        allow.exact,
        allow.prefixes,
        allow.suffixes,
        allow.search,
        allow.match,
    )
    b_exact, b_pre, b_suf, b_search, b_match = (
        block.exact,
        block.prefixes,
        block.suffixes,
        block.search,
        block.match,
    )
    if block.empty and not (a_pre or a_suf or a_search or a_match):
        return a_exact.__contains__  # an allowlist of names: a set lookup, nothing else
    check_allow = not allow.empty

    def wanted(name: NormalizedName) -> bool:
        if check_allow and not (
            name in a_exact
            or name.startswith(a_pre)
            or name.endswith(a_suf)
            or (a_search is not None and a_search(name) is not None)
            or (a_match is not None and a_match(name) is not None)
        ):
            return False
        return not (
            name in b_exact
            or name.startswith(b_pre)
            or name.endswith(b_suf)
            or (b_search is not None and b_search(name) is not None)
            or (b_match is not None and b_match(name) is not None)
        )

    return wanted


# --- requirements ---------------------------------------------------------------------------------

# pip requirements-file options that may follow a requirement on its line (pip-compile's --hash).
_TRAILING_OPTION = re.compile(r"\s+--?[A-Za-z]")


def parse_requirement(line: str, *, where: str) -> Requirement:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(line)
    except InvalidRequirement as exc:
        raise InvalidFilter(
            f"{TABLE} {where}: {line!r} is not a PEP 508 requirement: {exc}"
        ) from exc


def parse_requirements(text: str, *, source: str = "<requirements>") -> tuple[str, ...]:
    """The requirement strings in a pip requirements file's ``text``, in order.

    Comments, blank lines, line continuations and per-requirement options (``--hash=...``) are
    understood; option lines (``--index-url``, ``--pre``, ...) and editable/local entries (``-e``)
    are skipped, since they name nothing on the upstream index. Markers and extras are kept in the
    strings but ignored by the filters: a mirror serves every environment.

    Raises:
        InvalidFilter: a line is not a PEP 508 requirement, or is a nested ``-r``/``-c`` include
            (this module reads no files; list the file in ``allow_requirements`` instead). The
            message names ``source`` and the line number.
    """
    out: list[str] = []
    logical: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not logical:
            start = number
        # pip: a comment starts at "#" at the line start or after whitespace.
        line = re.sub(r"(^|\s)#.*", "", raw).rstrip()
        if line.endswith("\\"):
            logical.append(line[:-1])
            continue
        logical.append(line)
        joined = " ".join(part.strip() for part in logical).strip()
        logical = []
        if not joined:
            continue
        where = f"{source} line {start}"
        if joined.startswith("-"):
            option = joined.split(maxsplit=1)[0].split("=", 1)[0]
            if option in ("-r", "--requirement", "-c", "--constraint"):
                raise InvalidFilter(
                    f"{TABLE} allow_requirements: {where}: {joined!r} includes another file, "
                    "which is not followed; list that file in allow_requirements too"
                )
            continue
        match = _TRAILING_OPTION.search(joined)
        requirement = joined[: match.start()] if match else joined
        out.append(str(parse_requirement(requirement, where=where)))
    return tuple(out)
