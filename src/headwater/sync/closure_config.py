"""``[mirror.NAME.closure]``: what a closure mirror satisfies, for which environments, and the
grace before files no longer needed leave the tree.

=====================  =========================================================================
``inputs``             requirements files, ``pyproject.toml``, ``pylock.toml``, ``uv.lock``
``requirements``       PEP 508 lines, inline
``environments``       ``{ python, platform, implementation }`` targets (at least one)
``extras``/``groups``  which optional-dependency / PEP 735 groups of a pyproject.toml count
``sdists``             ``fallback`` (where no wheel fits), ``always``, ``never``
``build_requirements`` follow an included sdist's ``build-system.requires`` too
``prereleases``        admit pre-releases for every requirement
``grace_hours``        keep files the closure stopped needing for this long (0: remove at once)
=====================  =========================================================================

:func:`apply_grace` is the pure rule for the grace; the record it keeps is ``state/closure.json``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from headwater.errors import InvalidInput
from headwater.simple.names import NormalizedName
from headwater.sync.environments import Environment
from headwater.sync.lockfiles import input_kind

__all__ = ["ClosureConfig", "GraceRecord", "InvalidClosureConfig", "apply_grace"]

_TABLE = "[mirror.NAME.closure]"


class InvalidClosureConfig(InvalidInput):
    """The closure table is incomplete or contradicts itself; the message names the key."""


class ClosureConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[mirror.NAME.closure]`` table (see docs/airgap.md and docs/mirror.md).

    Raises:
        InvalidClosureConfig: no inputs, no environments, or a file kind that is not read.
    """

    inputs: list[str] = msgspec.field(default_factory=list)
    requirements: list[str] = msgspec.field(default_factory=list)
    environments: list[Environment] = msgspec.field(default_factory=list)
    extras: list[str] = msgspec.field(default_factory=lambda: ["*"])
    groups: list[str] = msgspec.field(default_factory=lambda: ["*"])
    sdists: Literal["fallback", "always", "never"] = "fallback"
    build_requirements: bool = False
    prereleases: bool = False
    grace_hours: float = 0.0

    def __post_init__(self) -> None:
        if not self.inputs and not self.requirements:
            raise InvalidClosureConfig(
                f"{_TABLE}: give inputs (requirements files, pyproject.toml, pylock.toml, "
                "uv.lock) or requirements; a closure of nothing is an empty mirror"
            )
        if not self.environments:
            raise InvalidClosureConfig(
                f"{_TABLE}: give environments, e.g. environments = "
                '[{ python = "3.12", platform = "manylinux_2_28_x86_64" }]'
            )
        for path in self.inputs:
            try:
                input_kind(path)
            except InvalidInput as exc:
                raise InvalidClosureConfig(f"{_TABLE} inputs: {exc}") from exc
        if self.grace_hours < 0:
            raise InvalidClosureConfig(f"{_TABLE} grace_hours = {self.grace_hours}: 0 or more")
        labels = [e.label for e in self.environments]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise InvalidClosureConfig(f"{_TABLE} environments: {repeated[0]} is listed twice")


class GraceRecord(msgspec.Struct, frozen=True):
    """``state/closure.json``: files kept only for the grace, with when they stopped being
    needed (seconds since the epoch)."""

    format: int = 1
    unneeded_since: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    kept: dict[str, list[str]] = msgspec.field(default_factory=dict)


def apply_grace(
    previous: GraceRecord,
    needed: dict[NormalizedName, frozenset[str]],
    *,
    now: float,
    grace_seconds: float,
) -> tuple[dict[NormalizedName, frozenset[str]], GraceRecord]:
    """What the tree keeps: every file ``needed`` now, plus files the previous run kept that are
    no longer needed but stopped being needed less than ``grace_seconds`` ago. Returns that and
    the record for the next run. Pure."""
    kept: dict[NormalizedName, set[str]] = {name: set(files) for name, files in needed.items()}
    since: dict[str, dict[str, float]] = {}
    for name, files in previous.kept.items():
        for filename in files:
            if filename in needed.get(NormalizedName(name), frozenset()):
                continue
            started = previous.unneeded_since.get(name, {}).get(filename, now)
            if now - started < grace_seconds:
                kept.setdefault(NormalizedName(name), set()).add(filename)
                since.setdefault(name, {})[filename] = started
    final = {name: frozenset(files) for name, files in sorted(kept.items())}
    record = GraceRecord(
        unneeded_since=since, kept={name: sorted(files) for name, files in final.items()}
    )
    return final, record
