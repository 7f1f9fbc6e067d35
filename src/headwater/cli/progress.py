"""Progress for long jobs: a live rich bar on a terminal, structured log lines otherwise."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from headwater.sync.engine import Summary
from headwater.sync.plan import Plan

if TYPE_CHECKING:  # rich is imported by RichReporter: log lines (cron, CI, --quiet) never need it
    from rich.console import Console
    from rich.progress import TaskID

__all__ = ["LogReporter", "RichReporter", "make_reporter", "run_async"]

T = TypeVar("T")


class LogReporter:
    """One ``key=value`` line every ``interval`` seconds and at the end (for logs and CI)."""

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 5.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self.total = 0
        self.done = 0
        self.failed = 0
        self.files = 0
        self.bytes = 0
        self._start = time.monotonic()
        self._last = 0.0

    def _line(self, event: str, **fields: object) -> None:
        parts = " ".join(f"{k}={v}" for k, v in fields.items())
        print(f"headwater {self.label}: event={event} {parts}", file=self.stream, flush=True)

    def planned(self, plan: Plan) -> None:
        self.total = len(plan.sync) + len(plan.delete)
        self._line(
            "planned", sync=len(plan.sync), delete=len(plan.delete), unchanged=plan.unchanged
        )

    def project_done(self, name: str, error: str | None) -> None:
        self.done += 1
        if error is not None:
            self.failed += 1
            self._line("project-failed", project=name, error=repr(error))
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            elapsed = now - self._start
            rate = self.done / elapsed if elapsed else 0.0
            eta = (self.total - self.done) / rate if rate else 0.0
            self._line(
                "progress",
                projects=f"{self.done}/{self.total}",
                files=self.files,
                bytes=self.bytes,
                rate=f"{rate:.1f}/s",
                eta=f"{eta:.0f}s",
            )

    def file_done(self, size: int) -> None:
        self.files += 1
        self.bytes += size

    def finished(self, summary: Summary) -> None:
        self._line(
            "finished",
            synced=summary.synced,
            unchanged=summary.unchanged,
            deleted=summary.deleted,
            failed=len(summary.failed),
            refused=len(summary.refused),
            files=summary.files_downloaded,
            bytes=summary.bytes_downloaded,
            seconds=f"{summary.seconds:.2f}",
            serial=summary.serial,
        )


class RichReporter:
    """A live progress bar: projects done of total, files and bytes downloaded, rate, ETA."""

    def __init__(self, label: str, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[files]} files, {task.fields[size]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.label = label
        self._task: TaskID | None = None
        self._files = 0
        self._bytes = 0
        self._start = time.monotonic()

    def planned(self, plan: Plan) -> None:
        self.console.print(
            f"{self.label}: {len(plan.sync)} to sync, {len(plan.delete)} to delete, "
            f"{plan.unchanged} unchanged"
        )
        self.progress.start()
        self._task = self.progress.add_task(
            self.label, total=len(plan.sync) + len(plan.delete), files=0, size="0 B", rate=""
        )

    def _refresh(self, advance: int = 0) -> None:
        from rich.filesize import decimal

        if self._task is None:
            return
        elapsed = max(time.monotonic() - self._start, 1e-6)
        self.progress.update(
            self._task,
            advance=advance,
            files=self._files,
            size=decimal(self._bytes),
            rate=f"{decimal(int(self._bytes / elapsed))}/s",
        )

    def project_done(self, name: str, error: str | None) -> None:
        if error is not None:
            self.console.print(f"[red]failed[/red] {name}: {error}")
        self._refresh(advance=1)

    def file_done(self, size: int) -> None:
        self._files += 1
        self._bytes += size
        self._refresh()

    def finished(self, summary: Summary) -> None:
        self.progress.stop()


def make_reporter(label: str, *, quiet: bool = False) -> LogReporter | RichReporter:
    """A rich bar on a terminal, log lines otherwise."""
    if not quiet and sys.stderr.isatty():
        return RichReporter(label)
    return LogReporter(label)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on uvloop when it is installed (the ``fast`` extra), else
    on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
