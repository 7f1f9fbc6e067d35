"""``headwater check``: a dependency-confusion audit of requirements against indexes.

Read the inputs (:func:`read_requirements`), work out the indexes the client would use
(:func:`resolve_indexes`), look every name up in every index (:func:`audit` over any
:class:`CheckSource`; :func:`check_over_http` for indexes over HTTP) and judge each project
(:func:`assess`, which asks :func:`headwater.policy.decide` whether the indexes agree, and
:func:`predict` what pip or uv would install). See docs/check.md.
"""

from headwater.check.assess import assess
from headwater.check.audit import Report, audit, check_over_http, plan_pins, wanted_projects
from headwater.check.errors import CheckError, InvalidRequirements
from headwater.check.findings import RISKS, Failure, Finding, Risk, Serving, Wanted
from headwater.check.indexes import (
    DEFAULT_PUBLIC,
    CommandLineIndexes,
    ConfigPaths,
    IndexPlan,
    normalize_index_url,
    resolve_indexes,
)
from headwater.check.installers import Install, predict
from headwater.check.model import (
    Client,
    IndexDirective,
    IndexSpec,
    Pin,
    Requirement,
    RequirementSet,
    mask_credentials,
)
from headwater.check.projectfiles import read_pylock, read_pyproject, read_requirements
from headwater.check.report import SCHEMA, render_json, render_text, report_dict, write_table
from headwater.check.requirements import read_requirements_txt
from headwater.check.sources import (
    CheckSource,
    DirectorySource,
    HttpSource,
    Lookup,
    ProjectSourceLookup,
    Refusal,
    http_sources,
)

__all__ = [
    "DEFAULT_PUBLIC",
    "RISKS",
    "SCHEMA",
    "CheckError",
    "CheckSource",
    "Client",
    "CommandLineIndexes",
    "ConfigPaths",
    "DirectorySource",
    "Failure",
    "Finding",
    "HttpSource",
    "IndexDirective",
    "IndexPlan",
    "IndexSpec",
    "Install",
    "InvalidRequirements",
    "Lookup",
    "Pin",
    "ProjectSourceLookup",
    "Refusal",
    "Report",
    "Requirement",
    "RequirementSet",
    "Risk",
    "Serving",
    "Wanted",
    "assess",
    "audit",
    "check_over_http",
    "http_sources",
    "mask_credentials",
    "normalize_index_url",
    "plan_pins",
    "predict",
    "read_pylock",
    "read_pyproject",
    "read_requirements",
    "read_requirements_txt",
    "render_json",
    "render_text",
    "report_dict",
    "resolve_indexes",
    "wanted_projects",
    "write_table",
]
