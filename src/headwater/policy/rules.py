"""The rules of one index: its sources in priority order, its policy, routes and namespaces.

Everything here is validated on construction, so :func:`headwater.policy.plan` and
:func:`headwater.policy.decide` never meet a route to a source that does not exist or a namespace on
a source that cannot hold one. Names and patterns are normalized once, here.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Literal

import msgspec
from msgspec.structs import force_setattr

from headwater.errors import HeadwaterError
from headwater.simple.names import NormalizedName, normalize_or_none

__all__ = [
    "POLICIES",
    "PolicyError",
    "PolicyKind",
    "Route",
    "Rules",
    "SourceKind",
    "SourceSpec",
    "namespace_covers",
    "normalize_pattern",
]

#: ``priority``: the first source that has a project (or holds its name) is the only one.
#: ``pep708``: PEP 708's discovery algorithm. ``union-unsafe``: every source merged (unsafe).
PolicyKind = Literal["priority", "pep708", "union-unsafe"]
POLICIES: tuple[PolicyKind, ...] = ("priority", "pep708", "union-unsafe")

# Source and index names travel in messages that end up in HTTP header parameters and TOML the user
# pastes: letters, digits and ``._-`` only, so they never need quoting or escaping.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_SEPARATOR_RUNS = re.compile(r"[-_.]+")
# A normalized pattern: normalized-name characters plus fnmatch's ``*``, ``?`` and ``[...]``.
_PATTERN = re.compile(r"^[a-z0-9*?\[\]!-]{1,200}\Z")
_GLOB_CHARS = frozenset("*?[")


class PolicyError(HeadwaterError):
    """An index's rules are invalid (a route to an unknown source, a namespace on a source that is
    not hosted, ...), or :func:`headwater.policy.decide` was given observations that do not fit the
    plan. The message names the index and what to change."""


class SourceKind(StrEnum):
    """What a source is (see docs/policy.md)."""

    #: Uploads to this headwater (a private index): the origin of its projects.
    HOSTED = "hosted"
    #: A static tree synced from an upstream by ``headwater mirror``.
    MIRROR = "mirror"
    #: A remote index fetched on demand and cached.
    PROXY = "proxy"
    #: A local folder of distribution files; PEP 708's "local" repository.
    DIRECTORY = "directory"


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or _NAME.match(value) is None:
        raise PolicyError(
            f"{what} {value!r} is not a valid name: use 1-100 ASCII letters, digits, '.', '_' or "
            "'-', starting with a letter or digit"
        )


class SourceSpec(msgspec.Struct, frozen=True):
    """One source of an index, as the policy sees it (its place in the order is its priority)."""

    name: str
    kind: SourceKind
    #: Hide files uploaded less than this many days ago (PEP 700 ``upload-time``); None: no cooldown.
    cooldown_days: float | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "source name")
        try:
            force_setattr(self, "kind", SourceKind(self.kind))
        except ValueError:
            kinds = ", ".join(repr(k.value) for k in SourceKind)
            raise PolicyError(
                f"source {self.name!r} has unknown kind {self.kind!r}; use one of {kinds}"
            ) from None
        days = self.cooldown_days
        if days is not None and (
            isinstance(days, bool) or not math.isfinite(days) or not 0 <= days <= 3650
        ):
            raise PolicyError(
                f"source {self.name!r}: cooldown must be a number of days between 0 and 3650, "
                f"got {days!r}"
            )

    @property
    def local(self) -> bool:
        """PEP 708 "local" repository: always mergeable with remote ones. Only directories."""
        return self.kind is SourceKind.DIRECTORY

    @property
    def remote(self) -> bool:
        """Not local: hosted, mirror and proxy sources each define their own namespace of names."""
        return not self.local


def normalize_pattern(pattern: str) -> str:
    """Normalize a project name or fnmatch glob the way project names are (``Foo_Bar*`` becomes
    ``foo-bar*``).

    Raises:
        PolicyError: the pattern has characters no name or glob over names can have.
    """
    if not isinstance(pattern, str):
        raise PolicyError(f"route pattern {pattern!r} is not a string")
    normalized = _SEPARATOR_RUNS.sub("-", pattern.strip().lower())
    if _PATTERN.match(normalized) is None:
        raise PolicyError(
            f"route pattern {pattern!r} is not a project name or glob: use letters, digits, "
            "'-', '_', '.' and the wildcards '*', '?', '[...]'"
        )
    return normalized


class Route(msgspec.Struct, frozen=True):
    """Projects matching ``patterns`` come only (``terminating``) or first (not terminating) from
    ``sources``, in that order.

    Patterns are normalized names or fnmatch globs over normalized names; they are normalized on
    construction (``Foo_Bar*`` is stored as ``foo-bar*``).
    """

    patterns: tuple[str, ...]
    sources: tuple[str, ...]
    #: True: never from any other source. False: these sources first, then the rest under the policy.
    terminating: bool = True

    def __post_init__(self) -> None:
        if not self.patterns:
            raise PolicyError("a route needs at least one project name or glob in 'projects'")
        if not self.sources:
            raise PolicyError(f"route {self.patterns[0]!r} needs at least one source in 'sources'")
        force_setattr(self, "patterns", tuple(normalize_pattern(p) for p in self.patterns))
        for source in self.sources:
            _check_name(source, f"route {self.patterns[0]!r}: source")
        if len(set(self.sources)) != len(self.sources):
            raise PolicyError(f"route {self.patterns[0]!r} lists a source twice: {self.sources}")
        if not isinstance(self.terminating, bool):
            raise PolicyError(f"route {self.patterns[0]!r}: 'terminating' must be true or false")

    def match(self, project: NormalizedName) -> str | None:
        """The first pattern that matches ``project``, or None."""
        for pattern in self.patterns:
            if pattern == project or (
                not _GLOB_CHARS.isdisjoint(pattern) and fnmatchcase(project, pattern)
            ):
                return pattern
        return None


def namespace_covers(namespace: str, project: str) -> bool:
    """PEP 752: a namespace covers its own name and every ``<namespace>-*`` name (not ``acmefoo``)."""
    return project == namespace or (
        project.startswith(namespace) and project[len(namespace) : len(namespace) + 1] == "-"
    )


class Rules(msgspec.Struct, frozen=True):
    """Everything the policy needs to know about one index; validated on construction.

    Raises:
        PolicyError: no sources, a source listed twice, a route to an unknown source, a namespace
            that is not a normalized name, on a source that is not hosted, or overlapping another.
    """

    #: The index's name, for messages.
    index: str
    #: In priority order.
    sources: tuple[SourceSpec, ...]
    policy: PolicyKind = "priority"
    #: The first route matching a project applies.
    routes: tuple[Route, ...] = ()
    #: (PEP 752 namespace, hosted source name): the source holds the name and every ``ns-*`` name.
    namespaces: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.index, "index name")
        where = f"index {self.index!r}"
        if not self.sources:
            raise PolicyError(f"{where} has no sources: list at least one in 'sources'")
        names = [s.name for s in self.sources]
        for name in names:
            if names.count(name) > 1:
                raise PolicyError(f"{where} lists source {name!r} twice in 'sources'")
        if self.policy not in POLICIES:
            raise PolicyError(
                f"{where}: unknown policy {self.policy!r}; use one of "
                + ", ".join(repr(p) for p in POLICIES)
            )
        for route in self.routes:
            for source in route.sources:
                if source not in names:
                    raise PolicyError(
                        f"{where}: route {', '.join(route.patterns)!r} names source {source!r}, "
                        f"which is not one of the index's sources ({', '.join(names)})"
                    )
        self._check_namespaces(where)

    def _check_namespaces(self, where: str) -> None:
        seen: list[tuple[str, str]] = []
        for entry in self.namespaces:
            if not (isinstance(entry, tuple | list) and len(entry) == 2):
                raise PolicyError(f"{where}: namespace entry {entry!r} is not (namespace, source)")
            given, owner = entry
            namespace = normalize_or_none(given) if isinstance(given, str) else None
            if namespace is None:
                raise PolicyError(
                    f"{where}: namespace {given!r} is not a valid project name "
                    "(ASCII letters, digits, '.', '_' or '-')"
                )
            spec = self.source(owner)
            if spec is None:
                raise PolicyError(
                    f"{where}: namespace {namespace!r} is granted to {owner!r}, which is not one "
                    "of the index's sources"
                )
            if spec.kind is not SourceKind.HOSTED:
                raise PolicyError(
                    f"{where}: namespace {namespace!r} is on source {owner!r} ({spec.kind}); only "
                    "hosted sources hold PEP 752 namespaces"
                )
            for other, other_owner in seen:
                if namespace_covers(other, namespace) or namespace_covers(namespace, other):
                    raise PolicyError(
                        f"{where}: namespace {namespace!r} of {owner!r} overlaps namespace "
                        f"{other!r} of {other_owner!r} (PEP 752: grants must not overlap)"
                    )
            seen.append((namespace, owner))
        force_setattr(self, "namespaces", tuple(seen))
        for route in self.routes:
            if route.terminating:
                continue  # a terminating route is the operator's explicit word: it wins.
            for pattern in route.patterns:
                held = self.namespace_of(NormalizedName(pattern))
                if _GLOB_CHARS.isdisjoint(pattern) and held and held[1] not in route.sources:
                    raise PolicyError(
                        f"{where}: route {pattern!r} is not terminating, so it cannot take a name "
                        f"of namespace {held[0]!r} of {held[1]!r} from {', '.join(route.sources)}; "
                        "add 'terminating = true' to override the namespace, or drop the route"
                    )

    def source(self, name: str) -> SourceSpec | None:
        """The source called ``name``, or None."""
        for spec in self.sources:
            if spec.name == name:
                return spec
        return None

    def namespace_of(self, project: NormalizedName) -> tuple[str, str] | None:
        """The (namespace, hosted source) that covers ``project``, or None."""
        for namespace, owner in self.namespaces:
            if namespace_covers(namespace, project):
                return namespace, owner
        return None

    def route_for(self, project: NormalizedName) -> tuple[Route, str] | None:
        """The first route that matches ``project``, with the pattern that matched; or None."""
        for route in self.routes:
            pattern = route.match(project)
            if pattern is not None:
                return route, pattern
        return None
