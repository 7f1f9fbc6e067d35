"""What pip and uv would install for one project, given what every index said: the one model of
the installers that every claim of the report about them comes from.

Measured with the real tools on loopback (tests/check/test_claims.py runs ``headwater check``,
``pip download`` and ``uv pip compile`` on the same indexes and compares):

- **pip** merges every index and ``--find-links`` directory and takes the highest version the
  requirement allows (final releases unless only pre-releases match). An index that fails for the
  name (a connection error, a 5xx after its retries, a 409 refusal) is skipped with a warning: pip
  carries on with the other indexes.
- **uv** (its default ``first-index`` strategy) asks the indexes in its order (``--index`` and
  ``--extra-index-url`` before the default ``--index-url``) and takes the first that has the name,
  even when another index has a higher version; a name the first index has but no version of
  which the requirement allows fails, it never falls back. A 404 lets it go on to the next index;
  any other failure stops the resolution with an error. ``--find-links`` directories are searched
  alongside.

``--from none`` follows pip's rules (only the command line and the files are read).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from headwater.check.model import Client, IndexSpec
from headwater.check.sources import Lookup
from headwater.check.versions import highest

__all__ = ["Install", "predict"]


class Install(msgspec.Struct, frozen=True, kw_only=True):
    """What ``client`` would install: ``version`` from ``indexes`` (several when they offer the
    same highest version, and either file may be taken), or nothing (``indexes`` empty: the
    install fails), and ``why`` in one line."""

    client: str
    indexes: tuple[str, ...]
    version: str | None
    why: str

    @property
    def fails(self) -> bool:
        """The install finds nothing to install."""
        return not self.indexes


def _allowed(specifier: str) -> SpecifierSet:
    try:
        return SpecifierSet(specifier)
    except InvalidSpecifier:
        return SpecifierSet()


def _failed(lookup: Lookup) -> bool:
    return lookup.state in ("unavailable", "refused")


def predict(
    client: Client, observed: Sequence[tuple[IndexSpec, Lookup]], specifier: str
) -> Install:
    """What ``client`` installs for a requirement ``specifier`` given ``observed`` (the indexes
    the client consults for the name, in the client's order, and what each said). Pure."""
    allowed = _allowed(specifier)
    if client is Client.UV:
        return _uv(observed, allowed)
    return _pip(str(Client.PIP if client is Client.NONE else client), observed, allowed)


def _pip(name: str, observed: Sequence[tuple[IndexSpec, Lookup]], allowed: SpecifierSet) -> Install:
    skipped = [spec.name for spec, lookup in observed if _failed(lookup)]
    note = f"; it skips {_names(skipped)}, which failed" if skipped else ""
    return _best(name, observed, allowed, "pip takes the highest version of all indexes" + note)


def _uv(observed: Sequence[tuple[IndexSpec, Lookup]], allowed: SpecifierSet) -> Install:
    local = [(s, lookup) for s, lookup in observed if s.local]
    for spec, lookup in observed:
        if spec.local:
            continue
        if _failed(lookup):
            return Install(
                client="uv",
                indexes=(),
                version=None,
                why=f"uv stops at {spec.name!r}, which failed (only a 404 lets it go on)",
            )
        if lookup.state == "found" and lookup.page is not None:
            # uv's first-index: the first index that has the name, plus find-links directories.
            candidates = [(spec, lookup), *local]
            why = (
                f"uv takes the first index that has the name ({spec.name!r}, in uv's order "
                f"{_names([s.name for s, _ in observed if not s.local])})"
            )
            return _best("uv", candidates, allowed, why)
    if local:
        return _best("uv", local, allowed, "only a --find-links directory has it")
    return Install(client="uv", indexes=(), version=None, why="no index has the name")


def _best(
    client: str,
    candidates: Sequence[tuple[IndexSpec, Lookup]],
    allowed: SpecifierSet,
    why: str,
) -> Install:
    tops: dict[str, Version] = {}
    for spec, lookup in candidates:
        if lookup.state == "found" and lookup.page is not None:
            top = highest(lookup.page, allowed)
            if top is not None:
                tops[spec.name] = top
    if not tops:
        return Install(
            client=client,
            indexes=(),
            version=None,
            why=why + ", and it offers no version the requirement allows",
        )
    best = max(tops.values())
    winners = tuple(index for index, top in tops.items() if top == best)
    return Install(client=client, indexes=winners, version=str(best), why=why)


def _names(names: Sequence[str]) -> str:
    shown = [repr(n) for n in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
