"""What a sync reports: its :class:`Summary`, and the progress hooks a front end implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import msgspec

if TYPE_CHECKING:
    from headwater.sync.plan import Plan

__all__ = ["NullReporter", "Reporter", "Summary"]


class Summary(msgspec.Struct, kw_only=True):
    """What a sync did. ``failed`` maps projects that could not be synced to the reason;
    ``refused`` maps entries of the upstream's project list that were not even tried (invalid or
    hostile names) to the reason; ``not_synced`` maps projects asked for by name that were not
    synced (the upstream does not list them, or the filters do not want them) to the reason. Any
    of them non-empty means exit status 1."""

    synced: int = 0
    unchanged: int = 0
    deleted: int = 0
    files_downloaded: int = 0
    files_present: int = 0
    files_removed: int = 0
    bytes_downloaded: int = 0
    #: PEP 740 provenance documents fetched, verified and kept beside their files.
    provenance_verified: int = 0
    #: Files the publisher guard held back (filename -> why); not a failure.
    held: dict[str, str] = msgspec.field(default_factory=dict)
    failed: dict[str, str] = msgspec.field(default_factory=dict)
    refused: dict[str, str] = msgspec.field(default_factory=dict)
    not_synced: dict[str, str] = msgspec.field(default_factory=dict)
    serial: int | None = None
    #: The upstream's serial when the run planned (None: the upstream gives none).
    upstream_serial: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.refused and not self.not_synced


class Reporter(Protocol):
    """Progress hooks (resolvelib style). Called from the event loop; keep them cheap."""

    def planned(self, plan: Plan) -> None: ...
    def project_done(self, name: str, error: str | None) -> None: ...
    def file_done(self, size: int) -> None: ...
    def finished(self, summary: Summary) -> None: ...


class NullReporter:
    """Reports nothing."""

    def planned(self, plan: Plan) -> None:
        pass

    def project_done(self, name: str, error: str | None) -> None:
        pass

    def file_done(self, size: int) -> None:
        pass

    def finished(self, summary: Summary) -> None:
        pass
