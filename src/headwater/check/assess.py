"""The verdict for one project: pure, given what every index said about it.

The risks, most severe first (a finding lists all that apply; ``risk`` is the first):

- ``unavailable``: an index failed for the name; nothing is known to be safe.
- ``confusion``: more than one remote index serves it and PEP 708 ``tracks`` /
  ``alternate-locations`` do not agree, as :func:`headwater.policy.decide` decides under the
  ``pep708`` policy (remote indexes are ``proxy`` sources, find-links directories are
  ``directory`` sources and always mergeable).
- ``shadowed``: the public index has a higher version than the private copy: pip merges indexes
  (version priority) and would install the public one (torchtriton); uv's ``first-index`` takes
  the first index that has the name, so it is affected only if that is the public one.
- ``unclaimed``: a private index (or directory) serves it and the public index does not: anyone
  can register it there (the Birsan attack).
- ``missing``: no index serves it: the install fails today, and whoever registers the name on the
  public index is what gets installed tomorrow.
- ``refused`` (``--config`` only): the headwater index refuses the name (its sources conflict, or
  one holds the name another serves): installs through it fail until the configuration changes.

Not risks: ``ok`` (one remote index, plus any local ones, or agreement), ``guarded``
(``--config`` only: other sources have the name too, and the index's policy serves it from one
only), ``protected`` (its
``--hash`` values match files of one index only, so no other file can be installed: Birsan (d)),
``direct`` (a URL, path or editable requirement: not from an index).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from datetime import datetime

import msgspec
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from headwater.check.model import IndexSpec
from headwater.check.sources import Lookup
from headwater.policy import (
    NotServed,
    Observation,
    Refused,
    Rules,
    Served,
    SourceKind,
    SourceSpec,
    decide,
)
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import ProjectPage
from headwater.simple.names import NormalizedName

__all__ = [
    "RISKS",
    "Failure",
    "Finding",
    "Risk",
    "Serving",
    "Wanted",
    "assess",
    "finding_for",
    "hash_matches",
    "serving",
]


class Risk(enum.StrEnum):
    """The verdict on one project (see the module docstring)."""

    UNAVAILABLE = "unavailable"
    CONFUSION = "confusion"
    SHADOWED = "shadowed"
    UNCLAIMED = "unclaimed"
    MISSING = "missing"
    REFUSED = "refused"
    GUARDED = "guarded"
    PROTECTED = "protected"
    DIRECT = "direct"
    OK = "ok"


#: The verdicts that make ``headwater check`` exit with status 1.
RISKS = frozenset(
    {
        Risk.UNAVAILABLE,
        Risk.CONFUSION,
        Risk.SHADOWED,
        Risk.UNCLAIMED,
        Risk.MISSING,
        Risk.REFUSED,
    }
)
_ORDER = list(Risk)


class Wanted(msgspec.Struct, frozen=True, kw_only=True):
    """One project as the input files ask for it (several requirements of one name merged)."""

    project: NormalizedName
    names: tuple[str, ...]
    origins: tuple[str, ...]
    specifier: str = ""
    hashes: frozenset[str] = frozenset()
    #: Indexes (by name) the project is pinned to for the checked client; empty: not pinned.
    pinned_to: tuple[str, ...] = ()
    pin_origins: tuple[str, ...] = ()
    #: Why it is not from an index, when no requirement of the name is.
    direct: str | None = None


class Serving(msgspec.Struct, frozen=True, kw_only=True):
    """An index that serves the project: how many versions, and the highest one the
    requirement allows (non-yanked, final releases preferred)."""

    index: str
    versions: int
    highest: str | None


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """An index that could not answer for the project, and why."""

    index: str
    error: str


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict on one project, with the facts behind it and one line of what to do."""

    #: The normalized name; empty for a direct reference whose name is unknown.
    project: str
    names: tuple[str, ...]
    required_by: tuple[str, ...]
    risk: Risk
    risks: tuple[Risk, ...]
    message: str
    advice: str
    served_by: tuple[Serving, ...] = ()
    unavailable: tuple[Failure, ...] = ()
    pinned_to: tuple[str, ...] = ()
    #: The policy's one-line reason or refusal (for the JSON report).
    decision: str | None = None
    #: ``--config``: the headwater index the finding is about (None: the client's indexes).
    index: str | None = None

    @property
    def is_risk(self) -> bool:
        """Whether the finding makes the check fail."""
        return self.risk in RISKS


def _versions(page: ProjectPage) -> tuple[int, set[Version]]:
    """(count of versions, the versions that have at least one file not yanked)."""
    listed: set[str] = set(page.versions or ())
    live: set[Version] = set()
    for file in page.files:
        try:
            version = parse_filename(file.filename).version
        except InvalidFilename:
            continue
        listed.add(str(version))
        if not file.yanked:
            live.add(version)
    if not page.files:  # a page listing versions only (no files to judge yanking by)
        for text in listed:
            try:
                live.add(Version(text))
            except InvalidVersion:
                continue
    return len(listed), live


def _highest(page: ProjectPage, specifier: SpecifierSet) -> tuple[int, Version | None]:
    count, live = _versions(page)
    allowed = [v for v in live if specifier.contains(v, prereleases=True)]
    finals = [v for v in allowed if not v.is_prerelease]
    pool = finals or allowed
    return count, max(pool) if pool else None


def finding_for(
    wanted: Wanted,
    risks: Sequence[Risk],
    message: str,
    advice: str = "",
    *,
    served: Sequence[Serving] = (),
    failures: Sequence[Failure] = (),
    decision: str | None = None,
) -> Finding:
    """The finding on ``wanted``: ``risks`` most severe first (the first is its verdict)."""
    return Finding(
        project=wanted.project,
        names=wanted.names,
        required_by=wanted.origins,
        risk=risks[0],
        risks=tuple(risks),
        message=message,
        advice=advice,
        served_by=tuple(served),
        unavailable=tuple(failures),
        pinned_to=wanted.pinned_to,
        decision=decision,
    )


def serving(index: str, page: ProjectPage, specifier: str) -> Serving:
    """How ``index`` serves ``page``: its number of versions and the highest one ``specifier``
    allows (an invalid specifier allows everything)."""
    try:
        allowed = SpecifierSet(specifier)
    except InvalidSpecifier:
        allowed = SpecifierSet()
    count, top = _highest(page, allowed)
    return Serving(index=index, versions=count, highest=str(top) if top else None)


def hash_matches(page: ProjectPage, hashes: frozenset[str]) -> bool:
    """Whether a file of ``page`` has one of ``hashes`` (``algorithm:hexdigest``)."""
    return _hash_matches(page, hashes)


def _hash_matches(page: ProjectPage, hashes: frozenset[str]) -> bool:
    for file in page.files:
        for algorithm, digest in file.hashes.items():
            if f"{algorithm.lower()}:{digest.lower()}" in hashes:
                return True
    return False


def _rules(specs: Sequence[IndexSpec]) -> Rules:
    return Rules(
        index="check",
        sources=tuple(
            SourceSpec(spec.name, SourceKind.DIRECTORY if spec.local else SourceKind.PROXY)
            for spec in specs
        ),
        policy="pep708",
    )


def _names(specs: Sequence[IndexSpec]) -> str:
    shown = [repr(spec.name) for spec in specs]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def assess(
    wanted: Wanted,
    observed: Sequence[tuple[IndexSpec, Lookup]],
    *,
    reference: tuple[IndexSpec, Lookup] | None = None,
    now: datetime,
) -> Finding:
    """The verdict on ``wanted`` given what each index the client consults for it said
    (``observed``, in the client's priority order) and, when the public index is not among
    them, what the public index said (``reference``; needed only to tell ``unclaimed``).

    Pure: calls :func:`headwater.policy.decide`, no I/O.
    """
    p = wanted.project
    served: list[Serving] = []
    failures: list[Failure] = []
    decision_text: str | None = None

    def finding(risks: Sequence[Risk], message: str, advice: str = "") -> Finding:
        return finding_for(
            wanted,
            risks,
            message,
            advice,
            served=served,
            failures=failures,
            decision=decision_text,
        )

    if wanted.direct is not None:
        return finding([Risk.DIRECT], f"not from an index: {wanted.direct}")
    try:
        specifier = SpecifierSet(wanted.specifier)
    except InvalidSpecifier:
        specifier = SpecifierSet()
    highest: dict[str, Version | None] = {}
    found: list[IndexSpec] = []
    failures.extend(
        Failure(index=spec.name, error=lookup.error or "no answer")
        for spec, lookup in (*observed, *((reference,) if reference else ()))
        if lookup.state == "unavailable"
    )
    for spec, lookup in observed:
        if lookup.state == "found" and lookup.page is not None:
            count, top = _highest(lookup.page, specifier)
            served.append(
                Serving(index=spec.name, versions=count, highest=str(top) if top else None)
            )
            highest[spec.name] = top
            found.append(spec)
    notes: dict[Risk, str] = {}  # why each risk applies
    advice: dict[Risk, str] = {}  # what to do about it
    if failures:
        notes[Risk.UNAVAILABLE] = "; ".join(f"{f.index!r} failed: {f.error}" for f in failures)
        advice[Risk.UNAVAILABLE] = (
            f"make {', '.join(repr(f.index) for f in failures)} answer and run the check again; "
            "a failing index is never taken as safe"
        )

    remote = [spec for spec in found if not spec.local]
    private = [spec for spec in found if not spec.public]
    public_found = next((spec for spec in found if spec.public), None)
    owner = (private or remote or found)[0].name if found else ""

    if not failures and observed:
        observations = [
            Observation(
                source=spec.name,
                state=lookup.state,
                page=lookup.page,
                claimed=lookup.claimed,
                url=lookup.url,
            )
            for spec, lookup in observed
        ]
        decision = decide(p, observations, _rules([s for s, _ in observed]), now=now)
        if isinstance(decision, Refused):
            decision_text = decision.message
        if isinstance(decision, Refused) and found:
            if decision.kind == "conflict":
                why = (
                    f"served by {_names(remote or found)}, and PEP 708 does not let them merge "
                    f"({_why(decision.message)})"
                )
            else:  # a source holds the name (a deleted hosted project) that another serves
                why = _why(decision.message)
            notes[Risk.CONFUSION] = why
            advice[Risk.CONFUSION] = (
                f"take it from one index only: in headwater route it ([[index.NAME.routes]] "
                f"projects = ['{p}'] sources = ['{owner}']); in uv mark the other indexes "
                f"explicit = true and pin {p} = {{ index = '{owner}' }} in [tool.uv.sources]; "
                "pip cannot pin, so serve its indexes through one headwater index"
            )
        elif isinstance(decision, Served | NotServed):
            decision_text = decision.reason

    # Shadowing: the public copy is newer than every private one and pip would prefer it.
    if public_found is not None and private and not failures:
        public_top = highest.get(public_found.name)
        private_tops = [v for s in private if (v := highest.get(s.name)) is not None]
        if public_top is not None and (not private_tops or public_top > max(private_tops)):
            best_private = max(private_tops) if private_tops else None
            first_index = next((s for s in found if not s.local), None)
            uv_hit = first_index is not None and first_index.public
            notes[Risk.SHADOWED] = (
                f"{public_found.name!r} has {public_top}, higher than "
                f"{best_private or 'anything'} on {_names(private)}: "
                + (
                    "pip and uv would install the public one (pip takes the highest version "
                    "of all indexes; uv's first-index reaches the public index first)"
                    if uv_hit
                    else "pip would install the public one (it takes the highest version of all "
                    "indexes); uv's first-index would not"
                )
            )
            advice[Risk.SHADOWED] = (
                f"pin {p} to {owner!r} (a headwater route, or uv [tool.uv.sources]) or hash-pin "
                "it; never let pip merge the public index for it"
            )

    # Unclaimed: a private name the public index does not have.
    public_lookup = reference[1] if reference else None
    public_absent = public_found is None and (
        public_lookup is None or public_lookup.state == "absent"
    )
    if private and public_absent and not failures:
        notes[Risk.UNCLAIMED] = (
            f"{_names(private)} serves it but the public index does not: anyone can register "
            f"{p} there (the Birsan attack)"
        )
        advice[Risk.UNCLAIMED] = (
            f"register {p} on the public index (a placeholder) or a PEP 752 namespace covering "
            f"it, and route it to {owner!r} in headwater"
        )

    if not found and not failures:
        where = (
            f"the index it is pinned to ({', '.join(wanted.pinned_to)})"
            if wanted.pinned_to
            else "no index"
        )
        notes[Risk.MISSING] = f"{where} serves it"
        advice[Risk.MISSING] = (
            "fix the name or the index configuration; until then, whoever registers it on the "
            "public index is what gets installed"
        )

    facts: list[str] = []
    if wanted.pinned_to:
        pinned = ", ".join(repr(n) for n in wanted.pinned_to)
        facts.append(f"pinned to {pinned} ({'; '.join(wanted.pin_origins)})")
        # The client never consults another index for a pinned name: public copies and an
        # unclaimed public name cannot reach it.
        for risk in (Risk.UNCLAIMED, Risk.SHADOWED, Risk.CONFUSION):
            notes.pop(risk, None)

    if wanted.hashes and found and not failures:
        holders = [
            spec
            for spec, lookup in observed
            if lookup.page is not None and _hash_matches(lookup.page, wanted.hashes)
        ]
        if len(holders) == 1:
            text = (
                f"hash-pinned: its hashes match files of {holders[0].name!r} only, so no other "
                "file can be installed"
            )
            if notes:
                text += f" (without the hashes: {', '.join(notes)})"
            return finding([Risk.PROTECTED], "; ".join([*facts, text]))
        if not holders:
            facts.append("no file on any index matches its --hash values: the install would fail")

    if not notes:
        if len(remote) > 1:
            message = f"served by {_names(found)}, which agree ({decision_text})"
        elif found:
            message = f"served by {_names(found)} only"
            if public_lookup is not None and public_lookup.state == "found":
                message += " (the public index has the name too, but the client does not use it)"
        else:
            message = "not served"
        return finding([Risk.OK], "; ".join([*facts, message]))
    ordered = sorted(notes, key=_ORDER.index)
    told = [advice[r] for r in ordered if r in advice]
    if Risk.CONFUSION in notes:  # its advice (one index only) covers shadowing too
        told = [advice[r] for r in ordered if r in advice and r is not Risk.SHADOWED]
    return finding(ordered, "; ".join([*facts, *(notes[r] for r in ordered)]), "; ".join(told))


_REASON = re.compile(r"do not agree \((.+)\); headwater")


def _why(message: str) -> str:
    """The reason inside a policy refusal (``... do not agree (REASON); headwater ...``), or the
    refusal without the name of the check's own index."""
    match = _REASON.search(message)
    return match.group(1) if match else message.removeprefix("index 'check': ")
