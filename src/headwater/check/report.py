"""The check's report: JSON with a stable schema, a rich table on a terminal, plain aligned
text otherwise (CI logs).

JSON schema ``headwater-check/1`` (documented in docs/check.md; fields are only ever added)::

    {"schema": "headwater-check/1", "client": "pip"|"uv"|"none"|"headwater", "public": URL,
     "exit_status": 0|1,
     "summary": {"projects": N, "risks": N, "by_risk": {RISK: N, ...}},
     "indexes": [{"name", "url", "origin", "kind": "remote"|"local", "public", "used",
                  "explicit"}],
     "requirements": [{"name", "project", "required_by": [...], "risk", "risks": [...],
                       "message", "advice", "served_by": [{"index", "versions", "highest"}],
                       "unavailable": [{"index", "error"}], "pinned_to": [...],
                       "decision", "index",
                       "installs": {"client", "indexes", "version", "why"}|null,
                       "publishers": {"version", "publishers": [...], "established": [...],
                                      "changed", "message"}|null}],
     "warnings": [...]}

Index URLs are shown with passwords masked. ``index`` is the headwater index a finding is about
(``--config``; null otherwise); ``client`` is ``headwater`` then.
"""

from __future__ import annotations

from collections import Counter
from typing import IO, Any

import msgspec

from headwater.check.audit import Report
from headwater.check.findings import Finding, Risk

__all__ = ["SCHEMA", "render_json", "render_text", "report_dict", "write_table"]

#: The identifier of the JSON document's shape; the number changes only if a field changes meaning.
SCHEMA = "headwater-check/1"

_STYLE = {
    Risk.UNAVAILABLE: "bold red",
    Risk.CONFUSION: "bold red",
    Risk.EXPOSED: "bold red",
    Risk.SHADOWED: "yellow",
    Risk.UNCLAIMED: "yellow",
    Risk.MISSING: "red",
    Risk.REFUSED: "bold red",
    Risk.PUBLISHER: "bold red",
    Risk.GUARDED: "green",
    Risk.PROTECTED: "green",
    Risk.DIRECT: "cyan",
    Risk.OK: "green",
}


def _finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "name": finding.names[0] if finding.names else finding.project,
        "project": finding.project,
        "required_by": list(finding.required_by),
        "risk": str(finding.risk),
        "risks": [str(r) for r in finding.risks],
        "message": finding.message,
        "advice": finding.advice,
        "served_by": [msgspec.to_builtins(s) for s in finding.served_by],
        "unavailable": [msgspec.to_builtins(f) for f in finding.unavailable],
        "pinned_to": list(finding.pinned_to),
        "decision": finding.decision,
        "index": finding.index,
        "installs": msgspec.to_builtins(finding.installs) if finding.installs else None,
        "publishers": msgspec.to_builtins(finding.publishers) if finding.publishers else None,
    }


def report_dict(report: Report) -> dict[str, Any]:
    """The report as the JSON document's data (see the module docstring)."""
    counts = Counter(str(f.risk) for f in report.findings)
    return {
        "schema": SCHEMA,
        "client": str(report.client),
        "public": report.public,
        "exit_status": report.exit_status,
        "summary": {
            "projects": len(report.findings),
            "risks": len(report.risky),
            "by_risk": dict(sorted(counts.items())),
        },
        "indexes": [
            {
                "name": spec.name,
                "url": spec.display_url,
                "origin": spec.origin,
                "kind": "local" if spec.local else "remote",
                "public": spec.public,
                "used": spec.used,
                "explicit": spec.explicit,
            }
            for spec in report.indexes
        ],
        "requirements": [_finding_dict(f) for f in report.findings],
        "warnings": list(report.warnings),
    }


def render_json(report: Report) -> bytes:
    """The JSON document, indented, ending with a newline."""
    return msgspec.json.format(msgspec.json.encode(report_dict(report)), indent=2) + b"\n"


def _served(finding: Finding) -> str:
    parts = []
    for s in finding.served_by:
        plural = "" if s.versions == 1 else "s"
        top = f", highest {s.highest}" if s.highest else ""
        parts.append(f"{s.index} ({s.versions} version{plural}{top})")
    parts.extend(
        f"{f.index} ({'refused' if f.error.startswith('refused') else 'failed'})"
        for f in finding.unavailable
    )
    return ", ".join(parts) or "-"


def _summary(report: Report) -> str:
    counts = Counter(f.risk for f in report.risky)
    detail = ", ".join(f"{n} {risk}" for risk, n in sorted(counts.items(), key=lambda i: i[0]))
    risks = len(report.risky)
    text = f"{len(report.findings)} projects checked, {risks} at risk"
    return text + (f" ({detail})" if detail else "")


def _label(finding: Finding) -> str:
    name = finding.names[0] if finding.names else finding.project
    return f"{finding.index}: {name}" if finding.index else name


def _title(report: Report) -> str:
    if report.client == "headwater":
        return "Indexes of the configuration, and their sources"
    if report.client == "none":  # --from none: no configuration read, pip's rules followed
        return "Indexes (from the command line and the files only, as pip --isolated uses them)"
    return f"Indexes (as {report.client} would use them)"


def _index_lines(report: Report) -> list[tuple[str, str, str]]:
    rows = []
    for spec in report.indexes:
        tags = []
        if spec.local:
            tags.append("local")
        if spec.public:
            tags.append("public")
        if not spec.used:
            tags.append(
                "asked only whether it has a name"
                if report.client == "headwater"
                else "not used by the client"
            )
        if spec.explicit:
            tags.append("explicit")
        suffix = f" [{', '.join(tags)}]" if tags else ""
        rows.append((spec.name, spec.display_url, spec.origin + suffix))
    return rows


def render_text(report: Report) -> str:
    """Plain aligned text: the indexes with their origins, one block per project, a summary."""
    lines = [f"{_title(report)}:"]
    rows = _index_lines(report)
    width_name = max((len(r[0]) for r in rows), default=0)
    width_url = max((len(r[1]) for r in rows), default=0)
    lines.extend(
        f"  {name:<{width_name}}  {url:<{width_url}}  from {origin}" for name, url, origin in rows
    )
    lines.append("")
    width_risk = max((len(str(f.risk)) for f in report.findings), default=4)
    width_project = max((len(_label(f)) for f in report.findings), default=7)
    for finding in report.findings:
        name = _label(finding)
        lines.append(f"{finding.risk!s:<{width_risk}}  {name:<{width_project}}  {_served(finding)}")
        pad = " " * (width_risk + 2)
        lines.append(f"{pad}{finding.message}")
        if finding.publishers is not None and finding.risk is not Risk.PUBLISHER:
            lines.append(f"{pad}publisher: {finding.publishers.message}")
        if finding.advice:
            lines.append(f"{pad}what to do: {finding.advice}")
    for warning in report.warnings:
        lines.append(f"warning: {warning}")
    lines.append(_summary(report))
    return "\n".join(lines) + "\n"


def write_table(report: Report, stream: IO[str], *, color: bool) -> None:
    """The report as rich tables (with colour when ``color``) on ``stream``."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Everything shown is Text, never markup: messages contain "[tool.uv.sources]".
    console = Console(file=stream, no_color=not color, highlight=False, soft_wrap=False)
    indexes = Table(title=_title(report), title_justify="left")
    for column in ("index", "url", "from"):
        indexes.add_column(column, overflow="fold")
    for row in _index_lines(report):
        indexes.add_row(*(Text(cell) for cell in row))
    console.print(indexes)
    table = Table(show_lines=True)
    table.add_column("requirement", no_wrap=True)
    table.add_column("served by", overflow="fold")
    table.add_column("risk", no_wrap=True)
    table.add_column("why / what to do", overflow="fold", ratio=1)
    for finding in report.findings:
        why = Text(finding.message)
        if finding.publishers is not None and finding.risk is not Risk.PUBLISHER:
            why.append("\npublisher: ", style="bold")
            why.append(finding.publishers.message)
        if finding.advice:
            why.append("\nwhat to do: ", style="bold")
            why.append(finding.advice)
        table.add_row(
            Text(_label(finding)),
            Text(_served(finding)),
            Text(" ".join(str(r) for r in finding.risks), style=_STYLE.get(finding.risk, "")),
            why,
        )
    console.print(table)
    for warning in report.warnings:
        console.print(Text.assemble(("warning: ", "yellow"), warning))
    console.print(Text(_summary(report), style="bold red" if report.risky else "bold green"))
