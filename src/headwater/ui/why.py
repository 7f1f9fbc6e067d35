"""``/ui/<index>/project/<project>/why``: why a composed index serves a project from the source it
does, or refuses it, in words.

Nothing here decides: the page shows the decision the index serves right now
(:meth:`headwater.repository.index.ComposedIndex.explain`: the same cached entry the Simple API
page is rendered from, made by :func:`headwater.policy.decide`) and the plan it followed
(:func:`headwater.policy.plan`). The page says which sources were asked and in what order, what
each answered (has it, with how many files; does not have it; holds the name without files; could
not be reached, and why), which sources were not asked and why not, and the outcome: served from
which sources and why, or the refusal with its fix, or not found.

The outcome is also in ``data-`` attributes of ``#decision`` (``data-outcome``, ``data-sources``,
``data-refusal``, ``data-status``) so tests hold the page to what the server answers pip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from headwater.policy import NotServed, Observation, Plan, Refused, Served
from headwater.repository.index import ComposedIndex, Resolution
from headwater.ui.interface import Interface
from headwater.ui.project import readable_project

__all__ = ["Answer", "Outcome", "explain_decision", "why_page"]


@dataclass(frozen=True)
class Answer:
    """What one source answered, in words."""

    source: str
    kind: str
    state: str
    said: str
    #: The source's own page of the project on this server, when it is served on its own.
    link: str | None = None


@dataclass(frozen=True)
class Outcome:
    outcome: str  # served | refused | not-found
    sources: tuple[str, ...]
    reason: str
    fix: str = ""
    refusal: str = ""
    status: int = 200
    hidden: int = 0
    stale: tuple[str, ...] = ()


def _said(observation: Observation) -> tuple[str, str]:
    if observation.state == "found" and observation.page is not None:
        page = observation.page
        versions = {f.filename for f in page.files}
        text = f"has it: {len(versions)} file(s)"
        if page.status.value != "active":
            text += f", project status {page.status.value}"
        if observation.stale:
            text += f" (an old copy: {observation.stale})"
        return "found", text
    if observation.state == "absent":
        if observation.claimed:
            return "claimed", "holds the name without files (a deleted project, or a namespace)"
        return "absent", "does not have it"
    return "unavailable", f"could not answer: {observation.error or 'no reason given'}"


def explain_decision(
    the_plan: Plan, resolution: Resolution, kinds: Mapping[str, str], all_sources: list[str]
) -> tuple[list[Answer], list[str], Outcome]:
    """(the answers of the sources asked, in order; the sources not asked; the outcome)."""
    answers = []
    for observation in resolution.observations:
        state, said = _said(observation)
        answers.append(Answer(observation.source, kinds.get(observation.source, "?"), state, said))
    asked = {a.source for a in answers}
    not_asked = [name for name in all_sources if name not in asked]
    decision = resolution.decision
    if isinstance(decision, Served):
        outcome = Outcome(
            "served",
            decision.sources,
            decision.reason,
            hidden=decision.hidden,
            stale=decision.stale,
        )
    elif isinstance(decision, Refused):
        outcome = Outcome(
            "refused",
            decision.sources,
            decision.message,
            fix=decision.fix,
            refusal=decision.kind,
            status=decision.status,
        )
    else:
        assert isinstance(decision, NotServed)
        outcome = Outcome("not-found", (), decision.reason, status=404)
    return answers, not_asked, outcome


async def why_page(request: Request, ui: Interface) -> Response:
    found = await readable_project(request, ui, tail="/why")
    if isinstance(found, Response):
        return found
    index, name = found
    source = ui.sources[index]
    if not isinstance(source, ComposedIndex):
        return await ui.render(request, "why-single.html", index=index, name=name, kind=source.kind)
    the_plan, resolution = await source.explain(name)
    kinds = {spec.name: spec.kind for spec in source.rules.sources}
    answers, not_asked, outcome = explain_decision(
        the_plan, resolution, kinds, list(source.sources)
    )
    return await ui.render(
        request,
        "why.html",
        index=index,
        name=name,
        plan=the_plan,
        policy=source.rules.policy,
        answers=answers,
        not_asked=not_asked,
        outcome=outcome,
        kinds=kinds,
    )
