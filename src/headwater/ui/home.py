"""``/``: every index and source, its kind, its health, its totals, and a search box.

A mirror's or a proxy's health includes its upstream: reachable or not at the status service's
last scheduled check (the same entry ``/ui/status`` and ``/mirrors.json`` show), with its
freshness; a proxy's files and bytes are those of its cache.

A private index is listed by name and kind only, unless the request may list it
(:meth:`Interface.visible`): its totals are counted over what the request may see.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headwater.server.status.document import MirrorEntry, ProxyEntry
from headwater.ui.interface import Interface

__all__ = ["home"]


async def home(request: Request, ui: Interface) -> Response:
    visible = await ui.visible(request)
    document = await ui.served.status.document()
    upstreams: dict[str, MirrorEntry | ProxyEntry] = {m.name: m for m in document.mirrors}
    upstreams.update((p.name, p) for p in document.proxies)
    rows = []
    for name in sorted(ui.sources):
        allowed = visible.get(name)
        summary = await ui.catalog.get(name, allowed.only if allowed is not None else None)
        rows.append(
            {
                "name": name,
                "kind": ui.sources[name].kind,
                "private": name in ui.private,
                "shown": allowed is not None,
                "summary": summary if allowed is not None else None,
                "health": await ui.catalog.health(name),
                "upstream": upstreams.get(name),
            }
        )
    return await ui.render(request, "home.html", rows=rows)
