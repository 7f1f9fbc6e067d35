"""``/``: every index and source, its kind, its health, its totals, and a search box.

A mirror's or a proxy's health includes its upstream: reachable or not at the status service's
last scheduled check (the same entry ``/ui/status`` and ``/mirrors.json`` show), with its
freshness; a proxy's files and bytes are those of its cache.

A private index is listed only when the request may list it (:meth:`Interface.visible`), with
its totals counted over what the request may see; otherwise not even its name is shown (the
Simple API names no index either: its name must be known). Every signed-out page says that
signing in may show more, whether or not this server has a private index.
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
        if allowed is None:
            continue  # a private index the request may not read: not even its name
        rows.append(
            {
                "name": name,
                "kind": ui.sources[name].kind,
                "private": name in ui.private,
                "summary": await ui.catalog.get(name, allowed.only),
                "health": await ui.catalog.health(name),
                "upstream": upstreams.get(name),
            }
        )
    return await ui.render(request, "home.html", rows=rows)
