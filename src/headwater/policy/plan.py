"""Which sources an index consults for a project, in which order, and why.

Precedence, most specific first:

1. A terminating route that matches the project: only its sources (the operator's explicit word; it
   also overrides a namespace, PEP 708 D6 step 3: "explicitly told the installer to fetch the
   project from specific repositories").
2. A PEP 752 namespace that covers the project: only the hosted source holding it.
3. A non-terminating route: its sources first, then the others in index order.
4. Otherwise every source in index order.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from headwater.policy.rules import Route, Rules
from headwater.simple.names import NormalizedName

__all__ = ["Plan", "plan"]


class Plan(msgspec.Struct, frozen=True):
    """The sources to consult for one project, in order, and how."""

    sources: tuple[str, ...]
    #: ``first``: stop at the first source that has the project or holds its name (``priority``).
    #: ``all``: consult every one (``pep708``, ``union-unsafe``).
    mode: Literal["first", "all"]
    #: Why these sources, e.g. ``route 'acme-*' -> internal``, ``namespace 'acme' of internal``.
    why: str
    #: The route that chose the sources, if one did.
    route: Route | None = None
    #: The namespace that chose the source, if one did.
    namespace: str | None = None

    @property
    def claims(self) -> bool:
        """Whether the name is claimed: it never comes from a source outside :attr:`sources`."""
        return self.namespace is not None or (self.route is not None and self.route.terminating)


def plan(project: NormalizedName, rules: Rules) -> Plan:
    """Which sources to consult for ``project`` under ``rules``, in order, and why.

    ``project`` must be a normalized name (:func:`headwater.simple.normalize_name` makes one), so
    ``Foo_Bar`` and ``foo.bar`` get the same plan.
    """
    mode: Literal["first", "all"] = "first" if rules.policy == "priority" else "all"
    everything = tuple(s.name for s in rules.sources)
    routed = rules.route_for(project)
    held = rules.namespace_of(project)
    if routed is not None:
        route, pattern = routed
        arrow = f"route {pattern!r} -> {', '.join(route.sources)}"
        if route.terminating:
            why = arrow
            if held is not None and held[1] not in route.sources:
                why += f" (overrides namespace {held[0]!r} of {held[1]})"
            return Plan(route.sources, mode, why, route=route)
        if held is None:
            rest = tuple(name for name in everything if name not in route.sources)
            return Plan(route.sources + rest, mode, f"{arrow} first", route=route)
    if held is not None:
        namespace, owner = held
        return Plan((owner,), mode, f"namespace {namespace!r} of {owner}", namespace=namespace)
    return Plan(everything, mode, rules.policy)
