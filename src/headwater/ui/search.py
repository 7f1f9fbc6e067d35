"""``/ui/search`` (a page) and ``/ui/suggest`` (JSON for search-as-you-type): project names,
ranked by :class:`headwater.ui.names.NameIndex` (exact, prefix, one typo away, substring).

The index searched is ``?index=``; without one (the home page's and every page's search box),
every index the request may list, the hits of all interleaved by class (an exact name anywhere
first) and each labelled with its index. Only indexes the request may list (authz ``list``) are
searched: a private index only with a token that may read it, and a token limited to projects
finds only those. ``?source=`` limits a composed index's
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
    """The index asked for by ``?index=`` if the request may list it (None otherwise, or when no
    index is named: then every index it may list is searched), and every index it may list."""
    visible = await ui.visible(request)
    wanted = request.query_params.get("index", "")
    return (wanted if wanted in visible else None), visible


def _everywhere(request: Request) -> bool:
    """No index named (``?index=`` absent or empty): search every index the request may list."""
    return not request.query_params.get("index")


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


#: How the classes of hits of several indexes interleave (best first; see ui/names.py).
_RANK = {"exact": 0, "prefix": 1, "similar": 2, "substring": 3}


async def _found(
    ui: Interface,
    indexes: list[str],
    visible: dict[str, Allowed],
    query: str,
    source: str | None,
    limit: int,
) -> tuple[list[tuple[str, Hit]], list[str]]:
    """The best ``limit`` hits over ``indexes`` as (index, hit), and the indexes whose list
    cannot be read now. Several indexes interleave by class, then by rank within each index,
    then in the order the indexes are named: an exact name in any index comes before every
    prefix."""
    ranked: list[tuple[int, int, int, str, Hit]] = []
    unreadable: list[str] = []
    for order, index in enumerate(indexes):
        found = await _hits(ui, index, visible[index], query, source, limit)
        if found is None:
            unreadable.append(index)
            continue
        for position, hit in enumerate(found):
            ranked.append((_RANK[hit.kind], position, order, index, hit))
    ranked.sort(key=lambda row: row[:3])
    return [(index, hit) for *_, index, hit in ranked[:limit]], unreadable


async def search_page(request: Request, ui: Interface) -> Response:
    index, visible = await _pick_index(request, ui)
    everywhere = _everywhere(request)
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
    if index is None and not everywhere:
        name = request.query_params.get("index", "")
        problem = (
            f"there is no index {name[:100]!r} you may search: pick one below"
            if visible
            else "there is no index you may search: sign in with a token that may read one"
        )
    elif everywhere and not visible:
        problem = "there is no index you may search: sign in with a token that may read one"
    elif source is not None and source not in sources:
        problem = (
            f"{source[:100]!r} is not a source of index {index!r}: searching all of it"
            if index
            else f"pick an index to search by source ({source[:100]!r} is ignored)"
        )
        source = None
    searched = [index] if index else (list(visible) if everywhere else [])
    hits: list[tuple[str, Hit]] = []
    if searched and query:
        hits, unreadable = await _found(ui, searched, visible, query, source, limit)
        if unreadable:
            problem = (
                f"the project list of {', '.join(map(repr, unreadable))} cannot be read now "
                "(see the home page)"
            )
    status = 404 if index is None and not everywhere else 200
    return await ui.render(
        request,
        "search.html",
        status=status,
        index=index,
        searched=searched,
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
    searched = [index] if index else (list(visible) if _everywhere(request) else [])
    results: list[dict[str, str]] = []
    if searched and query:
        hits, _ = await _found(ui, searched, visible, query, None, SUGGESTIONS)
        results = [
            {
                "name": hit.name,
                "kind": hit.kind,
                "index": where,
                "url": f"/ui/{where}/project/{hit.name}",
            }
            for where, hit in hits
        ]
    return JSONResponse(
        {"index": index, "query": query, "results": results},
        headers={"cache-control": "private, no-cache", "vary": "Cookie, Authorization"},
    )
