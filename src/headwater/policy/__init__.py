"""Policy: the pure decision of where a project comes from, and why.

An index is an ordered list of sources under a policy (:class:`Rules`). For each project the index
asks :func:`plan` which sources to consult, consults them (that is I/O, done by
:mod:`headwater.repository`), and hands what it learned (:class:`Observation`) to :func:`decide`,
which returns a :data:`Decision`: :class:`Served` (the page, its sources and why),
:class:`Refused` (a conflict, a claimed name, or an unavailable source, with a one-line message
and fix) or :class:`NotServed` (a plain 404). See docs/policy.md.

Pure like :mod:`headwater.simple`: no I/O and no event loop (the import-layer contract in
``pyproject.toml`` enforces this).
"""

from headwater.policy.config import routes_from_mapping_file, rules_from_config
from headwater.policy.decide import Decision, NotServed, Observation, Refused, Served, decide
from headwater.policy.merge import normalize_url
from headwater.policy.plan import Plan, plan
from headwater.policy.rules import (
    POLICIES,
    PolicyError,
    PolicyKind,
    Route,
    Rules,
    SourceKind,
    SourceSpec,
    namespace_covers,
    normalize_pattern,
)

__all__ = [
    "POLICIES",
    "Decision",
    "NotServed",
    "Observation",
    "Plan",
    "PolicyError",
    "PolicyKind",
    "Refused",
    "Route",
    "Rules",
    "Served",
    "SourceKind",
    "SourceSpec",
    "decide",
    "namespace_covers",
    "normalize_pattern",
    "normalize_url",
    "plan",
    "routes_from_mapping_file",
    "rules_from_config",
]
