"""The management API of hosted indexes (JSON over HTTP, token in Basic auth), and PEP 752's
namespace endpoints.

::

    GET    /api/<index>/projects/<project>                      the project, its files, owners
    POST   /api/<index>/projects/<project>/yank                 {"filename"|"version", "reason"}
    POST   /api/<index>/projects/<project>/unyank               {"filename"|"version"}
    DELETE /api/<index>/projects/<project>/files/<filename>
    DELETE /api/<index>/projects/<project>/releases/<version>
    DELETE /api/<index>/projects/<project>
    PUT    /api/<index>/projects/<project>/status               {"status", "reason"}  (PEP 792)
    PUT    /api/<index>/projects/<project>/alternate-locations  {"urls": [...]}       (PEP 708)
    PUT    /api/<index>/projects/<project>/tracks               {"urls": [...]}       (admin only)
    PUT    /api/<index>/projects/<project>/owners/<user>        add an owner
    DELETE /api/<index>/projects/<project>/owners/<user>        remove an owner
    GET    /api/<index>/projects/<project>/publishers           trusted publishers (owners, admins)
    POST   /api/<index>/projects/<project>/publishers           {"github"|"gitlab"|"oidc": {...},
                                                                 "pending", "owner"}
    DELETE /api/<index>/projects/<project>/publishers/<id>      remove a trusted publisher
    GET    /api/<index>/publishing-log?project=&limit=          minted tokens and their uploads
                                                                 (admin)
    GET    /<index>/namespaces                                  PEP 752: [{"name"}]
    GET    /<index>/namespace/<namespace>                       PEP 752: {name, parent, children, owner}

Who may call each route is :func:`headwater.server.authz.decide`'s answer (the actions are in
:data:`headwater.server.routes.ROUTES`): reading a project of a private index needs the ``read``
scope, as its pages do; project changes need the ``manage`` scope and ownership of the project, or
``admin``; ``tracks`` is the operator's statement about where a project comes from (PEP 708), so it
needs ``admin``. Errors are JSON ``{"error": "..."}`` with a status that says what kind.
 Path parameters are checked by :mod:`headwater.server.params` (404 for a name nothing can
have); bodies are read after the token is checked, at most 64 KiB (413), and decoded into one type
per call by :mod:`headwater.server.api_bodies` (400 naming the field and the expected type).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.db import Database, DatabaseError, DatabaseUnavailable, InvalidArgument
from headwater.db import NotFound as DbNotFound
from headwater.db.identities import decode_identity
from headwater.repository.hosted import HostedSource
from headwater.server import params
from headwater.server.api_bodies import (
    BodyRejected,
    Empty,
    NewPublisher,
    Status,
    Unyank,
    Urls,
    Yank,
    read_body,
)
from headwater.server.auth import Authenticator
from headwater.server.authz import NO_CREDENTIALS, Action, Allowed, Denied, Target, decide
from headwater.server.facts import decide_with_facts
from headwater.server.responses import ApiError, json_answer
from headwater.storage.base import StorageError

__all__ = ["api_routes"]

log = logging.getLogger("headwater.api")

_Body = TypeVar("_Body", Yank, Unyank, Status, Urls, NewPublisher, Empty)


def api_routes(
    db: Database,
    hosted: Mapping[str, HostedSource],
    auth: Authenticator,
    *,
    private: Mapping[str, frozenset[str]] | None = None,
    composed: Mapping[str, Sequence[str]] | None = None,
) -> list[Route]:
    """The management and namespace routes over the hosted indexes (``private``: the indexes
    whose reading needs a token, as :class:`~headwater.server.app.IndexApp` takes them).

    ``composed`` maps each composed index that implements PEP 752 to its hosted sources: its
    ``/namespaces`` and ``/namespace/<ns>`` answer with their grants (PEP 752: an index that
    implements it implements all of it, its pages' ``namespaces`` and these endpoints alike).
    """
    private = dict(private or {})
    namespace_holders: dict[str, list[str]] = {name: [name] for name in hosted}
    for name, members in (composed or {}).items():
        if members:
            namespace_holders[name] = list(members)

    async def grants_of(request: Request) -> tuple[str, list[Any]]:
        index = request.path_params["index"]
        holders = namespace_holders.get(index)
        if holders is None:
            raise ApiError(
                404,
                f"index {params.shown(index)} does not implement PEP 752 namespaces (no hosted "
                "source)",
            )
        await authorize(request, index, "read")  # index-wide
        grants: list[Any] = []
        for holder in holders:
            grants.extend(await asyncio.to_thread(db.namespaces, holder))
        return index, grants

    def source_of(request: Request) -> tuple[str, HostedSource]:
        index = request.path_params["index"]
        source = hosted.get(index)
        if source is None:
            raise ApiError(404, f"no hosted index called {params.shown(index)}")
        return index, source

    def project_of(request: Request) -> str:
        return params.project(request.path_params["project"])

    async def authorize(
        request: Request, index: str, action: Action, project: str | None = None
    ) -> Allowed:
        """authz.decide's answer for this request, or the ApiError it denies with. Credentials
        are looked at only when the answer without them is no; ownership only for a token."""
        target = Target(
            index=index,
            private=index in private,
            private_sources=private.get(index, frozenset()),
            project=project,
        )
        decision = decide(NO_CREDENTIALS, target, action)
        if isinstance(decision, Denied):
            credentials = await auth.credentials(request.scope)
            decision = await decide_with_facts(db, credentials, target, action)
        if isinstance(decision, Denied):
            raise ApiError(decision.status, decision.message, challenge=decision.challenge)
        return decision

    def endpoint(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return json_answer({"error": str(exc)}, exc.status, challenge=exc.challenge)
            except (params.BadParameter, BodyRejected) as exc:
                return json_answer({"error": str(exc)}, exc.status)
            except DbNotFound as exc:
                return json_answer({"error": str(exc)}, 404)
            except (DatabaseUnavailable, StorageError) as exc:
                what = "database" if isinstance(exc, DatabaseUnavailable) else "storage"
                return json_answer(
                    {
                        "error": f"the index cannot reach its {what}; nothing was changed. Try "
                        "again later (the operator sees why at /health/ready)"
                    },
                    503,
                )
            except InvalidArgument as exc:
                return json_answer({"error": str(exc)}, 400)
            except DatabaseError as exc:
                return json_answer({"error": str(exc)}, 409)

        return wrapped

    async def show(request: Request) -> Response:
        index, _ = source_of(request)
        project = project_of(request)
        await authorize(request, index, "read", project)
        record = await asyncio.to_thread(db.project, index, project)
        if record is None:
            raise ApiError(404, f"no project {project!r} in {index!r}")
        owners = await asyncio.to_thread(db.owners, index, project)
        return json_answer({"project": record, "owners": owners})

    async def delete_blobs(source: HostedSource, keys: list[str]) -> None:
        try:
            for key in keys:
                for each in (key, key + ".metadata"):
                    await source.storage.delete(each)  # False when absent: fine
        except StorageError as exc:
            # The deletion is done (the database is the truth); what is left in storage is
            # referenced by nothing, and `headwater gc` removes it.
            log.warning("index %r: deleted objects stay in storage for gc: %s", source.name, exc)

    def change(
        action: Callable[[Request, str, str, str, _Body], Any],
        body: type[_Body],
        *,
        admin: bool = False,
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            index, source = source_of(request)
            project = project_of(request)
            allowed = await authorize(request, index, "admin" if admin else "manage", project)
            actor = str(allowed.user)
            # Read (bounded, typed) only once the token may make this change.
            data = await read_body(request, body)
            result = await asyncio.to_thread(action, request, index, project, actor, data)
            if isinstance(result, tuple) and result and result[0] == "deleted":
                await delete_blobs(source, result[1])
                result = {"deleted": len(result[1])}
            source.changed()
            return json_answer({"ok": True, "result": result})

        return handler

    def yank(request: Request, index: str, project: str, actor: str, data: Yank) -> Any:
        return db.yank(
            index,
            project,
            filename=data.filename,
            version=data.version,
            reason=data.reason,
            actor=actor,
        )

    def unyank(request: Request, index: str, project: str, actor: str, data: Unyank) -> Any:
        return db.unyank(index, project, filename=data.filename, version=data.version, actor=actor)

    def delete_file(request: Request, index: str, project: str, actor: str, data: Empty) -> Any:
        filename = params.filename(request.path_params["filename"])
        return ("deleted", db.delete_file(index, project, filename, actor=actor))

    def delete_release(request: Request, index: str, project: str, actor: str, data: Empty) -> Any:
        version = params.version(request.path_params["version"])
        return ("deleted", db.delete_release(index, project, version, actor=actor))

    def delete_project(request: Request, index: str, project: str, actor: str, data: Empty) -> Any:
        return ("deleted", db.delete_project(index, project, actor=actor))

    def status(request: Request, index: str, project: str, actor: str, data: Status) -> Any:
        return db.set_status(index, project, data.status, data.reason, actor=actor)

    def alternates(request: Request, index: str, project: str, actor: str, data: Urls) -> Any:
        return db.set_alternate_locations(index, project, data.urls, actor=actor)

    def tracks(request: Request, index: str, project: str, actor: str, data: Urls) -> Any:
        return db.set_tracks(index, project, data.urls, actor=actor)

    def add_owner(request: Request, index: str, project: str, actor: str, data: Empty) -> Any:
        return db.add_owner(index, project, params.user(request.path_params["user"]))

    def remove_owner(request: Request, index: str, project: str, actor: str, data: Empty) -> Any:
        return db.remove_owner(index, project, params.user(request.path_params["user"]))

    async def publishers(request: Request) -> Response:
        index, _ = source_of(request)
        project = project_of(request)
        # Owners and admins: which CI jobs publish a project is theirs to see.
        await authorize(request, index, "manage", project)
        return json_answer(await asyncio.to_thread(db.publishers, index, project))

    def add_publisher(
        request: Request, index: str, project: str, actor: str, data: NewPublisher
    ) -> Any:
        given = [
            (k, v)
            for k, v in (("github", data.github), ("gitlab", data.gitlab), ("oidc", data.oidc))
            if v is not None
        ]
        if len(given) != 1:
            raise InvalidArgument(
                f"give exactly one of github, gitlab or oidc, e.g. {NewPublisher.example}"
            )
        kind, table = given[0]
        try:
            identity = decode_identity({"type": kind, **table})
        except msgspec.ValidationError as exc:
            raise InvalidArgument(f"the {kind} publisher does not fit: {exc}") from None
        return db.add_publisher(
            index,
            project,
            identity,
            pending=data.pending,
            owner=data.owner,
            origin="api",
            added_by=actor,
        )

    def remove_publisher(
        request: Request, index: str, project: str, actor: str, data: Empty
    ) -> Any:
        raw = request.path_params["publisher"]
        if not raw.isdigit() or len(raw) > 18:
            raise ApiError(404, f"no publisher {params.shown(raw)}")
        return db.remove_publisher(int(raw), index=index, project=project)

    async def publishing_log(request: Request) -> Response:
        index, _ = source_of(request)
        await authorize(request, index, "admin")
        wanted = request.query_params.get("project")
        raw_limit = request.query_params.get("limit", "100")
        if not raw_limit.isdigit():
            raise ApiError(400, "limit must be a number of records (1-10000)")
        records = await asyncio.to_thread(
            db.publishing_log,
            index=index,
            project=None if wanted is None else params.project(wanted),
            limit=int(raw_limit),
        )
        return json_answer(records)

    async def namespaces(request: Request) -> Response:
        _, grants = await grants_of(request)
        names = sorted({str(g.name) for g in grants})
        return json_answer([{"name": name} for name in names])

    async def namespace(request: Request) -> Response:
        index, grants = await grants_of(request)
        wanted = params.namespace(request.path_params["namespace"])
        found = next((g for g in grants if g.name == wanted), None)
        if found is None:
            raise ApiError(404, f"no namespace {wanted!r} in {index!r}")
        # Grants never overlap within an index (PEP 752), so a namespace has no granted parent
        # or children here; the keys are there for clients that expect them.
        return json_answer(
            {"name": found.name, "parent": None, "children": [], "owner": found.owner}
        )

    base = "/api/{index}/projects/{project}"
    return [
        Route(base, endpoint(show), methods=["GET"]),
        Route(base, endpoint(change(delete_project, Empty)), methods=["DELETE"]),
        Route(base + "/yank", endpoint(change(yank, Yank)), methods=["POST"]),
        Route(base + "/unyank", endpoint(change(unyank, Unyank)), methods=["POST"]),
        Route(base + "/files/{filename}", endpoint(change(delete_file, Empty)), methods=["DELETE"]),
        Route(
            base + "/releases/{version}",
            endpoint(change(delete_release, Empty)),
            methods=["DELETE"],
        ),
        Route(base + "/status", endpoint(change(status, Status)), methods=["PUT"]),
        Route(base + "/alternate-locations", endpoint(change(alternates, Urls)), methods=["PUT"]),
        Route(base + "/tracks", endpoint(change(tracks, Urls, admin=True)), methods=["PUT"]),
        Route(base + "/owners/{user}", endpoint(change(add_owner, Empty)), methods=["PUT"]),
        Route(base + "/owners/{user}", endpoint(change(remove_owner, Empty)), methods=["DELETE"]),
        Route(base + "/publishers", endpoint(publishers), methods=["GET"]),
        Route(
            base + "/publishers", endpoint(change(add_publisher, NewPublisher)), methods=["POST"]
        ),
        Route(
            base + "/publishers/{publisher}",
            endpoint(change(remove_publisher, Empty)),
            methods=["DELETE"],
        ),
        Route("/api/{index}/publishing-log", endpoint(publishing_log), methods=["GET"]),
        Route("/{index}/namespaces", endpoint(namespaces), methods=["GET"]),
        Route("/{index}/namespace/{namespace}", endpoint(namespace), methods=["GET"]),
    ]
