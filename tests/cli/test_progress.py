"""Progress reporting: the rich bar (terminals) and the key=value lines (logs)."""

from __future__ import annotations

import io
import re

from rich.console import Console

from headwater.cli.progress import LogReporter, RichReporter
from headwater.simple.names import normalize_name
from headwater.sync.engine import Summary
from headwater.sync.plan import Plan, ProjectTask


def _plan() -> Plan:
    tasks = tuple(ProjectTask(normalize_name(f"p{i}"), i, "new") for i in range(3))
    return Plan(sync=tasks, delete=(normalize_name("gone"),), unchanged=5, upstream_serial=9)


def test_rich_bar_counts_projects_files_and_bytes() -> None:
    out = io.StringIO()
    reporter = RichReporter("mirror x", Console(file=out, force_terminal=True, width=120))
    reporter.planned(_plan())
    reporter.file_done(1500)
    reporter.project_done("p0", None)
    reporter.project_done("p1", "HTTP 502 from upstream")
    reporter.finished(Summary(synced=1))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # drop the terminal's colours
    assert "mirror x: 3 to sync, 1 to delete, 5 unchanged" in text
    assert "failed" in text and "p1: HTTP 502 from upstream" in text
    assert "2/4" in text and "1 files, 1.5 kB" in text


def test_log_lines_are_structured() -> None:
    out = io.StringIO()
    reporter = LogReporter("mirror x", stream=out, interval=0.0)
    reporter.planned(_plan())
    reporter.file_done(10)
    reporter.project_done("p0", None)
    reporter.project_done("p1", "boom")
    reporter.finished(Summary(synced=1, failed={"p1": "boom"}, seconds=1.5))
    lines = out.getvalue().splitlines()
    assert lines[0] == "headwater mirror x: event=planned sync=3 delete=1 unchanged=5"
    assert "event=project-failed project=p1 error='boom'" in out.getvalue()
    assert "projects=2/4 files=1 bytes=10" in out.getvalue()
    assert lines[-1].startswith(
        "headwater mirror x: event=finished synced=1 unchanged=0 deleted=0 failed=1 refused=0"
    )
