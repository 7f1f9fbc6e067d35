"""Who may publish a project's next release: ``require-provenance`` and publisher continuity.

Hashes prove that a file is the one an index listed; they say nothing about who put it there. A
hijacked maintainer account can publish a new release from a laptop, with perfect hashes. PEP 740
attestations name the CI job that published each file, so an index can notice when that changes:
once a project's releases have been attested by a publisher, a new release that arrives
unattested, or attested by someone else, is *held* (not served) until an operator accepts it.

:func:`decide_publishers` is that decision for one project, pure, over what the caller knows of
its files (which publishers their verified provenance names) and the operator's rules and
acceptances. The caller (a proxy or mirror of PyPI, an index) serves the ``served`` files and
refuses the ``held`` ones with the message and fix given here.

Vocabulary:

=================  ==============================================================================
attested           a file whose provenance verified; its *publishers* are the identities it proved
unattested         a file without (verified) provenance
expected           publishers the operator names for the project (``require-provenance`` with a
                   publisher): every file must be attested by one of them
required           ``require-provenance`` without a publisher: every file must be attested
continuity         the default for mirrors and proxies of PyPI: the *established* publishers are
                   those of the releases already served; a later release must be attested by one
established        of them. Before any release is attested, nothing is established (an unattested
                   history stays servable; the first attested release establishes its publisher)
accepted           the operator accepted a release as it is (``headwater provenance accept``): it
                   is served, and its publishers become established too
held               not served; the reason is ``unattested``, ``unexpected-publisher`` or
                   ``publisher-changed``
=================  ==============================================================================

Why per release and in release order: a project's releases arrive one after another; each is
judged against what came before it, so accepting a new publisher (a project moving its CI) is one
operator action, after which its later releases flow again. Files of one release are judged on
their own (a release's wheels and sdist may be published by different jobs of one workflow).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from headwater.policy.messages import one_line
from headwater.policy.publishers import PublisherIdentity, describe_all, matches, matches_any

__all__ = [
    "Acceptance",
    "ContinuityRules",
    "FileProvenance",
    "Held",
    "PublisherDecision",
    "decide_publishers",
]

HoldReason = Literal["unattested", "unexpected-publisher", "publisher-changed"]


class FileProvenance(msgspec.Struct, frozen=True, kw_only=True):
    """One file of the project and the publishers its verified provenance names (none: unattested).

    ``order`` places its release among the others (upload time or serial; ties: the version).
    """

    filename: str
    version: str
    order: float = 0.0
    publishers: tuple[PublisherIdentity, ...] = ()


class ContinuityRules(msgspec.Struct, frozen=True, kw_only=True):
    """The operator's rules for one project (docs/provenance.md)."""

    #: Publisher continuity (the default for mirrors and proxies of PyPI).
    continuity: bool = False
    #: ``require-provenance``: every file must be attested.
    required: bool = False
    #: ``require-provenance`` with publishers: every file must be attested by one of these.
    expected: tuple[PublisherIdentity, ...] = ()


class Acceptance(msgspec.Struct, frozen=True, kw_only=True):
    """The operator accepted ``version`` of the project as it is (whoever published it)."""

    version: str


class Held(msgspec.Struct, frozen=True, kw_only=True):
    """A file that is not served, and the words of its refusal (one line each, no double quotes)."""

    filename: str
    version: str
    reason: HoldReason
    #: Who published it (empty: nobody attested it).
    seen: tuple[PublisherIdentity, ...]
    #: Who was expected (the established or configured publishers).
    expected: tuple[PublisherIdentity, ...]
    message: str
    fix: str


class PublisherDecision(msgspec.Struct, frozen=True, kw_only=True):
    """Which files to serve and which to hold. Every file is in exactly one of the two."""

    served: tuple[str, ...]
    held: tuple[Held, ...]
    #: The publishers established at the end (for reports: ``headwater check``).
    established: tuple[PublisherIdentity, ...]


def _same_publisher(a: PublisherIdentity, b: PublisherIdentity) -> bool:
    # Continuity compares who published, not the deployment environment the index reports.
    plain = msgspec.structs.replace
    return matches(plain(a, environment=None), plain(b, environment=None))


def _releases(files: Sequence[FileProvenance]) -> list[list[FileProvenance]]:
    by_version: dict[str, list[FileProvenance]] = {}
    for file in files:
        by_version.setdefault(file.version, []).append(file)
    return sorted(
        by_version.values(),
        key=lambda group: (min(f.order for f in group), group[0].version),
    )


def _fix(project: str, version: str, index: str) -> str:
    return one_line(
        f"if this publisher is legitimate, accept the release: headwater provenance accept "
        f"{index} {project} {version}; otherwise pin the previous version and report it to the "
        "project's maintainers"
    )


def decide_publishers(
    project: str,
    files: Sequence[FileProvenance],
    rules: ContinuityRules,
    accepted: Iterable[Acceptance] = (),
    *,
    index: str = "INDEX",
) -> PublisherDecision:
    """Serve or hold each file of ``project`` (see the module docstring for the rules).

    ``index`` names the index in the fix (the command that accepts a held release).
    """
    accepted_versions = {a.version for a in accepted}
    established: list[PublisherIdentity] = []
    served: list[str] = []
    held: list[Held] = []
    for release in _releases(files):
        version = release[0].version
        is_accepted = version in accepted_versions
        release_held: list[Held] = []
        for file in sorted(release, key=lambda f: f.filename):
            hold = None if is_accepted else _judge(project, file, rules, established, index)
            if hold is None:
                served.append(file.filename)
            else:
                release_held.append(hold)
        held.extend(release_held)
        # A release's publishers are established once it is served (files held are not).
        held_names = {h.filename for h in release_held}
        for file in release:
            if file.filename in held_names:
                continue
            for identity in file.publishers:
                if not any(_same_publisher(identity, known) for known in established):
                    established.append(identity)
    return PublisherDecision(served=tuple(served), held=tuple(held), established=tuple(established))


def _judge(
    project: str,
    file: FileProvenance,
    rules: ContinuityRules,
    established: Sequence[PublisherIdentity],
    index: str,
) -> Held | None:
    seen = file.publishers
    what = f"{project} {file.version} ({file.filename})"
    if rules.expected:
        if not seen:
            return _held(project, file, "unattested", (), rules.expected, index,
                         f"{what} has no verified provenance, and this index requires it to be "
                         f"published by {describe_all(rules.expected)}")  # fmt: skip
        if not any(matches_any(identity, rules.expected) for identity in seen):
            return _held(project, file, "unexpected-publisher", seen, rules.expected, index,
                         f"{what} was published by {describe_all(seen)}, but this index "
                         f"requires {describe_all(rules.expected)}")  # fmt: skip
        return None
    if rules.required and not seen:
        return _held(project, file, "unattested", (), (), index,
                     f"{what} has no verified provenance, and this index requires "
                     "attested files for this project")  # fmt: skip
    if rules.continuity and established:
        if not seen:
            return _held(project, file, "unattested", (), tuple(established), index,
                         f"{what} arrived without provenance, but its earlier releases were "
                         f"published by {describe_all(established)}")  # fmt: skip
        if not any(_same_publisher(s, e) for s in seen for e in established):
            return _held(project, file, "publisher-changed", seen, tuple(established), index,
                         f"{what} was published by {describe_all(seen)}, but its earlier "
                         f"releases were published by {describe_all(established)}")  # fmt: skip
    return None


def _held(
    project: str,
    file: FileProvenance,
    reason: HoldReason,
    seen: tuple[PublisherIdentity, ...],
    expected: tuple[PublisherIdentity, ...],
    index: str,
    message: str,
) -> Held:
    return Held(
        filename=file.filename,
        version=file.version,
        reason=reason,
        seen=seen,
        expected=expected,
        message=one_line(f"held: {message}"),
        fix=_fix(project, file.version, index),
    )
