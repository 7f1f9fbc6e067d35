"""``/ui/search`` (a page) and ``/ui/suggest`` (JSON for search-as-you-type): project names of one
index, ranked by :class:`headwater.ui.names.NameIndex` (exact, prefix, one typo away, substring).

The index searched is ``?index=`` (default: the server's default index), and only an index the
request may list (authz ``list``): a private index is searched only with a token that may read
it, and a token limited to projects finds only those. ``?source=`` limits a composed index's
results to the projects one of its sources has (the names are still the composed index's, and
link to its pages).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from headwater.repository.index import ComposedIndex
from headwater.server.authz import Allowed
from headwater.ui.interface import Interface
from headwater.ui.names import Hit, NameIndex, normalize_query

__all__ = ["search_page", "suggest"]

PAGE_RESULTS = 50
MAX_RESULTS = 500
SUGGESTIONS = 10


async def _pick_index(request: Request, ui: Interface) -> tuple[str | None, dict[str, Allowed]]:
    visible = await ui.visible(request)
    wanted = request.query_params.get("index") or ui.plan.default or ""
    if wanted in visible:
        return wanted, visible
    if "index" not in request.query_params and visible:
        return next(iter(visible)), visible
    return None, visible


def _sources_of(ui: Interface, index: str) -> list[str]:
    source = ui.sources.get(index)
    return list(source.sources) if isinstance(source, ComposedIndex) else []


async def _hits(
    ui: Interface, index: str, allowed: Allowed, query: str, source: str | None, limit: int
) -> list[Hit] | None:
    """The ranked names, None when the index's list cannot be read now."""
    names = await ui.catalog.names(index)
    if names is None:
        return None
    if allowed.only is not None:
        names = NameIndex(name for name in allowed.only if name in names)
    if source is None:
        return names.search(query, limit=limit)
    held = await ui.catalog.names(source)
    if held is None:
        return None
    # The source's best names that the index lists too (a few more are asked for, as some of
    # the source's names may be served by another source of the index, or not at all).
    return [hit for hit in held.search(query, limit=limit * 4) if hit.name in names][:limit]


async def search_page(request: Request, ui: Interface) -> Response:
    index, visible = await _pick_index(request, ui)
    text = request.query_params.get("q", "")
    query = normalize_query(text)
    try:
        wanted = int(request.query_params.get("n", PAGE_RESULTS))
    except ValueError:
        wanted = PAGE_RESULTS
    limit = max(1, min(wanted, MAX_RESULTS))
    sources = _sources_of(ui, index) if index else []
    source = request.query_params.get("source") or None
    problem = None
    if index is None:
        name = request.query_params.get("index", "")
        problem = (
            f"there is no index {name[:100]!r} you may search: pick one below"
            if visible
            else "there is no index you may search: sign in with a token that may read one"
        )
    elif source is not None and source not in sources:
        problem = f"{source[:100]!r} is not a source of index {index!r}: searching all of it"
        source = None
    hits: list[Hit] = []
    if index is not None and query:
        found = await _hits(ui, index, visible[index], query, source, limit)
        if found is None:
            problem = f"the project list of {index!r} cannot be read now (see the home page)"
        hits = found or []
    status = 404 if index is None and "index" in request.query_params else 200
    return await ui.render(
        request,
        "search.html",
        status=status,
        index=index,
        visible=list(visible),
        sources=sources,
        source=source,
        normalized=query,
        hits=hits,
        more=len(hits) >= limit and limit < MAX_RESULTS,
        next_n=min(limit * 2, MAX_RESULTS),
        problem=problem,
    )


async def suggest(request: Request, ui: Interface) -> Response:
    index, visible = await _pick_index(request, ui)
    query = normalize_query(request.query_params.get("q", ""))
    results: list[dict[str, str]] = []
    if index is not None and query:
        hits = await _hits(ui, index, visible[index], query, None, SUGGESTIONS) or []
        results = [
            {
                "name": hit.name,
                "kind": hit.kind,
                "index": index,
                "url": f"/ui/{index}/project/{hit.name}",
            }
            for hit in hits
        ]
    return JSONResponse(
        {"index": index, "query": query, "results": results},
        headers={"cache-control": "private, no-cache", "vary": "Cookie, Authorization"},
    )
