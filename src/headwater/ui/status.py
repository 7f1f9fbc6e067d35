"""``/ui/status``: the mirrors, proxies and peer mirrors with their freshness (the page form of
``/mirrors.json``, from the same :class:`~headwater.server.status.StatusService` document, so the
page and the JSON never disagree), with charts of each mirror's last runs."""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from headwater.server.status.service import MirrorView
from headwater.sync.history import Run
from headwater.ui.charts import bar_chart
from headwater.ui.interface import Interface

__all__ = ["lag_after", "status"]

#: How a state is shown: (badge class, words).
STATES = {
    "fresh": ("ok", "fresh"),
    "offline": ("", "offline"),
    "behind": ("warn", "behind"),
    "unknown": ("", "unknown"),
    "stale": ("bad", "stale"),
    "failing": ("bad", "failing"),
    "unreachable": ("bad", "unreachable"),
}


def lag_after(run: Run) -> int | None:
    """Serials the tree was behind its upstream when ``run`` ended (None: unknown)."""
    if run.serial is None or run.upstream_serial is None:
        return None
    return max(0, run.upstream_serial - run.serial)


def _label(run: Run) -> str:
    return datetime.fromtimestamp(run.started, UTC).strftime("%m-%d %H:%M")


def _charts(position: int, view: MirrorView) -> dict[str, object]:
    runs = view.runs
    labels = [_label(run) for run in runs]
    name = view.entry.name
    return {
        "duration": bar_chart(
            [max(0.0, run.seconds) for run in runs],
            labels,
            chart_id=f"m{position}-duration",
            title=f"How long each sync of {name} took",
            description="Duration of each of the last runs, oldest first.",
            unit="s",
        ),
        "lag": bar_chart(
            [None if (lag := lag_after(run)) is None else float(lag) for run in runs],
            labels,
            chart_id=f"m{position}-lag",
            title=f"Serials {name} was behind its upstream after each sync",
            description="Lag in serials after each of the last runs, oldest first.",
        ),
    }


#: The content of the page, rendered once per status document: (the document it shows, the
#: markup). Only the header around it (who is signed in) is rendered per request, so a page view
#: costs what the JSON costs, not a template of 100 table rows and charts per mirror.
_rendered: dict[int, tuple[object, Markup]] = {}


async def status(request: Request, ui: Interface) -> Response:
    service = ui.served.status
    document = await service.document()
    cached = _rendered.get(id(service))
    if cached is None or cached[0] is not document:
        views = await service.mirror_views()
        mirrors = [
            {"entry": entry, "runs": views[entry.name].runs, **_charts(i, views[entry.name])}
            for i, entry in enumerate(document.mirrors)
            if entry.name in views
        ]
        body = ui.templates.get_template("status_body.html").render(
            document=document,
            mirrors=mirrors,
            states=STATES,
            lag_after=lag_after,
            check_interval=service.settings.check_interval,
        )
        # Autoescaped by the environment; marked so the page does not escape it twice.
        cached = _rendered[id(service)] = (document, Markup(body))  # noqa: S704
    return await ui.render(request, "status.html", body=cached[1])
