"""The verdict for one project as a client sees it: pure, given what every index it asks said.

:func:`assess` decides which of the risks of :class:`headwater.check.findings.Risk` (described
there, most severe first) apply to one wanted project, and says why and what to do. Whether the
indexes agree is :func:`headwater.policy.decide`'s answer under the ``pep708`` policy (remote
indexes are ``proxy`` sources, find-links directories are ``directory`` sources and always
mergeable).

What pip or uv would install (the finding's ``installs``) is
:func:`headwater.check.installers.predict`'s; the messages' claims about the installers are
made from it and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from headwater.check.findings import (
    COOLDOWN_ADVICE,
    Failure,
    Finding,
    Risk,
    Serving,
    Wanted,
    finding_for,
    hash_matches,
    most_severe_first,
)
from headwater.check.installers import Install, predict
from headwater.check.model import Client, IndexSpec
from headwater.check.sources import Lookup
from headwater.check.versions import count_and_highest, held_refusals
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

__all__ = ["assess"]


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
    return _quoted([spec.name for spec in specs])


def _quoted(names: Sequence[str]) -> str:
    shown = [repr(name) for name in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def assess(
    wanted: Wanted,
    observed: Sequence[tuple[IndexSpec, Lookup]],
    *,
    reference: tuple[IndexSpec, Lookup] | None = None,
    client: Client = Client.PIP,
    now: datetime,
) -> Finding:
    """The verdict on ``wanted`` given what each index ``client`` consults for it said
    (``observed``, in the client's priority order) and, when the public index is not among
    them, what the public index said (``reference``; needed only to tell ``unclaimed``).

    What the client would install comes from :func:`headwater.check.installers.predict`, and
    every claim about pip or uv in the finding is that prediction's.

    Pure: calls :func:`headwater.policy.decide`, no I/O.
    """
    p = wanted.project
    served: list[Serving] = []
    failures: list[Failure] = []
    decision_text: str | None = None
    install: Install | None = None

    def finding(risks: Sequence[Risk], message: str, advice: str = "") -> Finding:
        return finding_for(
            wanted,
            risks,
            message,
            advice,
            served=served,
            failures=failures,
            decision=decision_text,
            installs=install,
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
        Failure(index=spec.name, error=_failure(lookup))
        for spec, lookup in (*observed, *((reference,) if reference else ()))
        if lookup.state in ("unavailable", "refused")
    )
    refusals = [(spec, lookup.refusal) for spec, lookup in observed if lookup.refusal is not None]
    for spec, lookup in observed:
        if lookup.state == "found" and lookup.page is not None:
            count, top = count_and_highest(lookup.page, specifier)
            served.append(
                Serving(index=spec.name, versions=count, highest=str(top) if top else None)
            )
            highest[spec.name] = top
            found.append(spec)
    if observed:
        install = predict(client, observed, wanted.specifier)
    notes: dict[Risk, str] = {}  # why each risk applies
    advice: dict[Risk, str] = {}  # what to do about it
    down = [f for f in failures if f.index not in {s.name for s, _ in refusals}]
    if down:
        notes[Risk.UNAVAILABLE] = "; ".join(f"{f.index!r} failed: {f.error}" for f in down)
        advice[Risk.UNAVAILABLE] = (
            f"make {', '.join(repr(f.index) for f in down)} answer and run the check again; "
            "a failing index is never taken as safe"
        )
    for spec, refusal in refusals:
        # A headwater index's refusal: its own message and fix (the index answers; the
        # refusal is its decision). 503: one of its sources failed.
        risk = Risk.UNAVAILABLE if refusal.kind == "unavailable" else Risk.REFUSED
        told_by = (
            f"{spec.name!r} refuses it (HTTP {refusal.status} {refusal.kind}): {refusal.message}"
        )
        notes[risk] = f"{notes[risk]}; {told_by}" if risk in notes else told_by
        advice[risk] = f"{advice[risk]}; {refusal.fix}" if risk in advice else refusal.fix

    remote = [spec for spec in found if not spec.local]
    private = [spec for spec in found if not spec.public]
    public_found = next((spec for spec in found if spec.public), None)
    owner = (private or remote or found)[0].name if found else ""
    by_name = {spec.name: spec for spec, _ in observed}
    from_public = (
        [by_name[name] for name in install.indexes if by_name[name].public] if install else []
    )

    agreed = False
    if not failures and observed:
        observations = [
            Observation(
                source=spec.name,
                state=lookup.state if lookup.state != "refused" else "unavailable",
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
            # PEP 708 agreement (tracks / alternate-locations): one project on several remote
            # indexes, so a copy from the public one is the project meant. (A local directory
            # merges with anything: that says nothing about whose project it is.)
            agreed = (
                isinstance(decision, Served)
                and sum(not by_name[name].local for name in decision.sources) > 1
            )

    # Shadowed: a private index serves it, and the client would install the public copy.
    private_tops = [v for s in private if (v := highest.get(s.name)) is not None]
    best_private = max(private_tops) if private_tops else None
    # PEP 708 agreement makes the public copy the project meant, but not a release the private
    # index does not serve (one its cooldown hides, one its copy lacks): that one bypasses it.
    bypass = (
        install is not None
        and install.version is not None
        and (best_private is None or best_private < Version(install.version))
    )
    if install is not None and from_public and private and (not agreed or bypass):
        notes[Risk.SHADOWED] = f"{_installs(install)}, not " + (
            f"{best_private} from {_names(private)}" if best_private else _names(private)
        )
        advice[Risk.SHADOWED] = (
            f"pin {p} to {owner!r} (a headwater route, or uv [tool.uv.sources]) or hash-pin "
            "it; never let pip merge the public index for it"
        )

    # Exposed: a private index the client asks does not serve it, and the client would
    # install the public copy. Whether the name is meant to be private (a deleted project, a
    # name in a PEP 752 namespace of the private index) cannot be seen from outside, so it is
    # never called ok.
    lacking = [
        (spec, lookup)
        for spec, lookup in observed
        if not spec.public and not spec.local and lookup.state != "found"
    ]
    if install is not None and from_public and lacking and not private:
        held = [spec.name for spec, lookup in lacking if lookup.refusal is not None]
        spaces = [(spec.name, lookup.namespace) for spec, lookup in lacking if lookup.namespace]
        because = [
            f"{spec.name!r} "
            + (
                "refuses it (see above)"
                if lookup.refusal is not None
                else f"does not serve it (404), though it is in its PEP 752 namespace "
                f"{lookup.namespace!r}"
                if lookup.namespace
                else "does not serve it (404)"
                if lookup.state == "absent"
                else "failed for it"
            )
            for spec, lookup in lacking
        ]
        text = f"{_installs(install)}; {'; '.join(because)}"
        if held or spaces:
            owners = _quoted(list(dict.fromkeys([*held, *(name for name, _ in spaces)])))
            text += (
                f": the name is {owners}'s, and {install.client} takes it from the public "
                "index regardless (the Birsan attack)"
            )
        else:
            text += (
                f"; if {p} is meant to come from {_quoted([s.name for s, _ in lacking])} (a "
                "project deleted there, a name in a PEP 752 namespace it does not publish), "
                "anyone can publish it on the public index (the Birsan attack): the check cannot "
                "tell which from outside"
            )
        notes[Risk.EXPOSED] = text
        mine = next(iter([*held, *(name for name, _ in spaces)]), None)
        advice[Risk.EXPOSED] = (
            (
                f"publish {p} on {mine!r} again (or drop the requirement), and serve the "
                "indexes through one headwater index, whose policy never takes a name a private "
                f"source holds from the public one; in uv pin {p} = {{ index = '{mine}' }} in "
                "[tool.uv.sources]; pip cannot pin"
            )
            if mine is not None
            else (
                f"if {p} is yours, publish it on {lacking[0][0].name!r} and serve the indexes "
                "through one headwater index (its policy never takes a name a private source "
                "holds from the public one); if it is a public project, install it through one "
                f"index (a headwater index proxying the public one), or in uv mark "
                f"{lacking[0][0].name!r} explicit = true and pin your own names to it"
            )
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

    # Cooldown: a headwater index hid every file the requirement could take (pip and uv say only
    # "no versions").
    hiding = [(spec, lookup.hidden) for spec, lookup in observed if lookup.hidden]
    if install is not None and install.fails and hiding:
        notes[Risk.COOLDOWN] = (
            "; ".join(
                f"{spec.name!r} hides files by its cooldown ({note})" for spec, note in hiding
            )
            + f": {install.client} finds no version of {p} it can install until then, and says "
            "only that there are no versions"
        )
        advice[Risk.COOLDOWN] = COOLDOWN_ADVICE

    # Served, but the client installs nothing: no version the requirement allows where the
    # client looks (uv looks only at the first index that has the name).
    explained = {Risk.UNAVAILABLE, Risk.REFUSED, Risk.COOLDOWN, Risk.MISSING}
    if install is not None and install.fails and found and not explained & set(notes):
        notes[Risk.MISSING] = f"{_installs(install)}: the install fails today" + (
            f" (the requirement asks for {wanted.specifier})" if wanted.specifier else ""
        )
        advice[Risk.MISSING] = (
            "require a version the index offers, or publish one the requirement allows"
        )
        # A release the requirement allows is held by a headwater publisher guard: say whose.
        held = [
            r
            for _, lookup in observed
            if lookup.page
            for r in held_refusals(lookup.page, specifier)
        ]
        if held:
            notes[Risk.MISSING] += f"; {held[0]}"
            advice[Risk.MISSING] = (
                "have the index's operator accept the held release (above), or require an accepted version"
            )

    facts: list[str] = []
    if wanted.pinned_to:
        pinned = ", ".join(repr(n) for n in wanted.pinned_to)
        facts.append(f"pinned to {pinned} ({'; '.join(wanted.pin_origins)})")
        # The client never consults another index for a pinned name: public copies and an
        # unclaimed public name cannot reach it.
        for risk in (Risk.UNCLAIMED, Risk.SHADOWED, Risk.CONFUSION, Risk.EXPOSED):
            notes.pop(risk, None)

    if wanted.hashes and found and not failures:
        holders = [
            spec
            for spec, lookup in observed
            if lookup.page is not None and hash_matches(lookup.page, wanted.hashes)
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
    ordered = most_severe_first(notes)
    said = [notes[r] for r in ordered]
    if install is not None and not ({Risk.SHADOWED, Risk.EXPOSED} & set(notes)):
        said.append(f"today {_installs(install)}")
    told = [advice[r] for r in ordered if r in advice]
    if Risk.CONFUSION in notes:  # its advice (one index only) covers shadowing too
        told = [advice[r] for r in ordered if r in advice and r is not Risk.SHADOWED]
    return finding(ordered, "; ".join([*facts, *said]), "; ".join(told))


def _failure(lookup: Lookup) -> str:
    if lookup.refusal is not None:
        refusal = lookup.refusal
        return f"refused (HTTP {refusal.status} {refusal.kind}): {refusal.message}"
    return lookup.error or "no answer"


def _installs(install: Install) -> str:
    """``pip would install 3.0.0 from 'public' (pip takes ...)``: the prediction as a clause."""
    if install.fails:
        return f"{install.client} would install nothing ({install.why})"
    return (
        f"{install.client} would install {install.version} from {_quoted(install.indexes)} "
        f"({install.why})"
    )


_REASON = re.compile(r"do not agree \((.+)\); headwater")


def _why(message: str) -> str:
    """The reason inside a policy refusal (``... do not agree (REASON); headwater ...``), or the
    refusal without the name of the check's own index."""
    match = _REASON.search(message)
    return match.group(1) if match else message.removeprefix("index 'check': ")
