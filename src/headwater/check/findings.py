"""What ``headwater check`` finds about one project: the verdicts, and the finding that holds them.

Two judges make findings: :func:`headwater.check.assess.assess` (the indexes a client asks) and
:mod:`headwater.check.configured` (``--config``: a headwater configuration's own indexes). This
module is what they share: the vocabulary (:class:`Risk`, :class:`Finding` and its parts) and
the few builders both use (:func:`finding_for`, :func:`serving`, :func:`with_publishers`,
:func:`hash_matches`).

The risks, most severe first (a finding lists all that apply; ``risk`` is the first):

- ``unavailable``: an index failed for the name (or a headwater index refused it with 503
  because one of its sources failed); nothing is known to be safe.
- ``confusion``: more than one remote index serves it and PEP 708 ``tracks`` /
  ``alternate-locations`` do not agree, as :func:`headwater.policy.decide` decides under the
  ``pep708`` policy (remote indexes are ``proxy`` sources, find-links directories are
  ``directory`` sources and always mergeable).
- ``exposed``: a private index the client asks does not serve it (404, a refusal, a failure)
  and the client would install the public index's copy. A deleted private project or a name in
  a PEP 752 namespace of the private index looks like any public project from outside, so a
  check that cannot see the difference never calls it ``ok``.
- ``shadowed``: a private index serves it and the client would install the public copy anyway:
  pip because the public version is higher (torchtriton), uv because it asks the public index
  first.
- ``unclaimed``: a private index (or directory) serves it and the public index does not: anyone
  can register it there (the Birsan attack).
- ``missing``: no index serves it: the install fails today, and whoever registers the name on the
  public index is what gets installed tomorrow.
- ``cooldown``: a headwater index's cooldown hides every file the requirement could take (its
  ``X-Headwater-Hidden`` header, or ``--config``): pip and uv say only "no versions".
- ``refused``: a headwater index refuses the name (409: its sources conflict, or one holds the
  name another serves): installs through it fail until the configuration changes. The finding
  carries the refusal's own message and fix.
- ``publisher``: the release the client would install is unattested, or attested by another
  publisher, while earlier releases were attested (PEP 740 publisher continuity, as a headwater
  mirror judges it: :mod:`headwater.check.publishers`), or its listed provenance does not verify.

Not risks: ``ok`` (one remote index, plus any local ones, or agreement), ``guarded``
(``--config`` only: other sources have the name too, and the index's policy serves it from one
only), ``protected`` (its ``--hash`` values match files of one index only, so no other file can
be installed: Birsan (d)), ``direct`` (a URL, path or editable requirement: not from an index).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

import msgspec
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from headwater.check.installers import Install
from headwater.check.publishers import Publishers
from headwater.check.versions import count_and_highest
from headwater.simple.model import ProjectPage
from headwater.simple.names import NormalizedName

__all__ = [
    "COOLDOWN_ADVICE",
    "RISKS",
    "Failure",
    "Finding",
    "Risk",
    "Serving",
    "Wanted",
    "finding_for",
    "hash_matches",
    "most_severe_first",
    "serving",
    "with_publishers",
]


class Risk(enum.StrEnum):
    """The verdict on one project (see the module docstring)."""

    UNAVAILABLE = "unavailable"
    CONFUSION = "confusion"
    EXPOSED = "exposed"
    SHADOWED = "shadowed"
    UNCLAIMED = "unclaimed"
    MISSING = "missing"
    COOLDOWN = "cooldown"
    REFUSED = "refused"
    PUBLISHER = "publisher"
    GUARDED = "guarded"
    PROTECTED = "protected"
    DIRECT = "direct"
    OK = "ok"


#: The verdicts that make ``headwater check`` exit with status 1.
RISKS = frozenset(
    {
        Risk.UNAVAILABLE,
        Risk.CONFUSION,
        Risk.EXPOSED,
        Risk.SHADOWED,
        Risk.UNCLAIMED,
        Risk.MISSING,
        Risk.COOLDOWN,
        Risk.REFUSED,
        Risk.PUBLISHER,
    }
)
_ORDER = list(Risk)


def most_severe_first(risks: Iterable[Risk]) -> list[Risk]:
    """``risks`` in the order of :class:`Risk`, the most severe first."""
    return sorted(risks, key=_ORDER.index)


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
    #: What the client (pip, uv; pip's rules for ``--from none``) would install, when known.
    installs: Install | None = None
    #: Who published what ``installs`` takes (PEP 740; over HTTP only), when known.
    publishers: Publishers | None = None

    @property
    def is_risk(self) -> bool:
        """Whether the finding makes the check fail."""
        return self.risk in RISKS


def finding_for(
    wanted: Wanted,
    risks: Sequence[Risk],
    message: str,
    advice: str = "",
    *,
    served: Sequence[Serving] = (),
    failures: Sequence[Failure] = (),
    decision: str | None = None,
    installs: Install | None = None,
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
        installs=installs,
    )


def serving(index: str, page: ProjectPage, specifier: str) -> Serving:
    """How ``index`` serves ``page``: its number of versions and the highest one ``specifier``
    allows (an invalid specifier allows everything)."""
    try:
        allowed = SpecifierSet(specifier)
    except InvalidSpecifier:
        allowed = SpecifierSet()
    count, top = count_and_highest(page, allowed)
    return Serving(index=index, versions=count, highest=str(top) if top else None)


def with_publishers(finding: Finding, publishers: Publishers | None) -> Finding:
    """``finding`` with who published what it installs; ``publisher`` is added to its risks
    when the publisher changed (its message and advice become the publisher's when it is the
    most severe)."""
    if publishers is None:
        return finding
    if not publishers.changed:
        return msgspec.structs.replace(finding, publishers=publishers)
    # ``ok`` says there is nothing to worry about: no longer true.
    risks = most_severe_first({*finding.risks, Risk.PUBLISHER} - {Risk.OK})
    message, advice = finding.message, finding.advice
    if risks[0] is Risk.PUBLISHER:
        message = publishers.message
        advice = (
            f"make sure the new publisher is the project's (ask its maintainers); until then "
            f"pin the last release published as before, or hash-pin it. A headwater mirror or "
            f"proxy of the index with publisher continuity holds {finding.project} "
            f"{publishers.version} until an operator accepts it (docs/provenance.md)"
        )
    return msgspec.structs.replace(
        finding,
        risk=risks[0],
        risks=tuple(risks),
        message=message,
        advice=advice,
        publishers=publishers,
    )


def hash_matches(page: ProjectPage, hashes: frozenset[str]) -> bool:
    """Whether a file of ``page`` has one of ``hashes`` (``algorithm:hexdigest``)."""
    for file in page.files:
        for algorithm, digest in file.hashes.items():
            if f"{algorithm.lower()}:{digest.lower()}" in hashes:
                return True
    return False


#: What to do when a cooldown hides every file a requirement could take.
COOLDOWN_ADVICE = (
    "wait until the cooldown has passed, or require a version old enough to be out of it; only "
    "if this release must be installed now, lower the source's cooldown in [index.NAME] "
    "cooldown (docs/policy.md)"
)
