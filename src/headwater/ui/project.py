"""``/ui/<index>/project/<project>``: one project as the index serves it to pip and uv.

The page is made from the very page pip gets (the index's JSON project page, through the same
:class:`~headwater.repository.base.ServedSource`, after the same authorization), so it shows
exactly what an installer would see: a composed index's decided files, a hidden cooldown, a
refusal. What it adds is for people (:mod:`headwater.ui.project_view`): versions newest first
(pre-releases and yanked releases marked), each file's size, sha256, upload time,
``Requires-Python``, its tags in words (:mod:`headwater.ui.tags`), the ``.metadata`` link,
provenance when the page has it, the project status (PEP 792) and namespaces (PEP 752), install
commands with this index's URL, and the README (:mod:`headwater.ui.readme`) of the newest release.
"""

from __future__ import annotations

import asyncio

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from headwater.errors import printable
from headwater.repository.base import RenderedPage, ServedSource, SourceUnavailable
from headwater.repository.index import Refusal
from headwater.server.authz import Denied
from headwater.simple.json import parse_project_page_json
from headwater.simple.names import NormalizedName, is_valid_name, normalize_name
from headwater.ui.interface import Interface
from headwater.ui.project_view import build_view

__all__ = ["project_page"]


def _base_url(request: Request, ui: Interface) -> str:
    configured = ui.plan.settings.base_url
    if configured:
        return configured.rstrip("/")
    host = printable(request.headers.get("host", "HOST"), 200)
    return f"{request.url.scheme}://{host}"


async def readable_project(
    request: Request, ui: Interface, *, tail: str = ""
) -> tuple[str, NormalizedName] | Response:
    """The index and normalized project of a ``/ui/{index}/project/{project}{tail}`` page the
    request may read, or the answer instead: a 404 page for an unknown index or a name that is no
    project name, a 301 to the normalized name, or the authorization's refusal."""
    index = request.path_params["index"]
    raw = request.path_params["project"]
    if index not in ui.sources:
        return await ui.not_found(request, f"there is no index {printable(index, 100)!r}")
    if not is_valid_name(raw):
        return await ui.not_found(request, f"{printable(raw, 100)!r} is not a project name")
    name = normalize_name(raw)
    if name != raw:
        return RedirectResponse(f"/ui/{index}/project/{name}{tail}", status_code=301)
    decision = await ui.authorize(request, index, "read", name)
    if isinstance(decision, Denied):
        return await ui.denied(request, decision)
    return index, name


async def project_page(request: Request, ui: Interface) -> Response:
    found = await readable_project(request, ui)
    if isinstance(found, Response):
        return found
    index, name = found
    source = ui.sources[index]
    composed = source.kind == "index"
    try:
        rendered = await source.page(name, "json")
    except Refusal as exc:
        refused = exc.refused
        return await ui.render(
            request,
            "refused.html",
            status=refused.status,
            index=index,
            name=name,
            message=refused.message,
            fix=refused.fix,
            composed=composed,
        )
    except SourceUnavailable as exc:
        return await ui.render(
            request,
            "refused.html",
            status=503,
            index=index,
            name=name,
            message=str(exc),
            fix="wait for the source to come back; headwater never takes the project from "
            "another source instead",
            composed=composed,
        )
    if rendered is None:
        message = f"index {index!r} has no project {name!r}"
        return await ui.render(
            request,
            "missing.html",
            status=404,
            index=index,
            name=name,
            message=message,
            composed=composed,
        )
    base = _base_url(request, ui)
    # The content depends only on the page pip gets (its ETag) and the URL it tells to use; it
    # is rendered once per version and kept, so a 1,000-file page costs a lookup, not a render.
    key = (index, name, rendered.etag, rendered.stale, base)
    content = ui.rendered.get(key)
    if content is None:
        content = await _content(ui, source, index, rendered, base, composed)
        ui.rendered.put(key, content, len(content))
    return await ui.render_kept(
        request, key, "project.html", index=index, name=name, content=content
    )


async def _content(
    ui: Interface,
    source: ServedSource,
    index: str,
    rendered: RenderedPage,
    base: str,
    composed: bool,
) -> Markup:
    page = await asyncio.to_thread(parse_project_page_json, rendered.body)
    view = build_view(index, page, stale=rendered.stale)
    readme = await ui.readmes.get(source, view)
    text = ui.templates.get_template("project-content.html").render(
        view=view,
        readme=Markup(readme.html) if readme is not None else None,  # noqa: S704 - sanitised
        readme_note=readme.note if readme is not None else "",
        index_url=f"{base}/{index}/simple/",
        private=index in ui.private,
        composed=composed,
    )
    return Markup(text)  # noqa: S704 - an autoescaped rendering
