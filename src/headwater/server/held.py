"""The management API of a mirror's publisher guard: what it holds, and accepting a release.

::

    GET /api/<mirror>/held                                       {"held": [...], "accepted": {...}}
    PUT /api/<mirror>/projects/<project>/accepted/<version>      accept a held release as it is

The same state as ``headwater provenance held/accept`` (``state/publishers.json`` of the mirror's
tree, :mod:`headwater.sync.publishers`): accepting records the operator's decision, and the next
sync of the project (``headwater mirror --name MIRROR --project PROJECT``) mirrors the release
and establishes its publisher. Both routes ask :func:`headwater.server.authz.decide` for
``admin``: which publisher an index trusts is the operator's statement about where a project
comes from, as PEP 708 ``tracks`` is, not a project owner's to make (an owner's account is what a
publisher change may mean was taken over). Errors are the management API's JSON
``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.db import Database, DatabaseUnavailable
from headwater.server import params
from headwater.server.auth import Authenticator
from headwater.server.authz import NO_CREDENTIALS, Denied, Target, decide
from headwater.server.facts import decide_with_facts
from headwater.server.responses import ApiError, json_answer
from headwater.storage.base import Storage, StorageError
from headwater.sync.publishers import load_publisher_state, save_publisher_state

__all__ = ["held_routes"]


def held_routes(
    db: Database,
    mirrors: Mapping[str, Storage],
    auth: Authenticator,
) -> list[Route]:
    """The publisher-guard routes over the mirrors' trees (``mirrors``: name -> tree storage)."""
    # One writer at a time per tree in this process (the state is read, changed, written back).
    locks = {name: asyncio.Lock() for name in mirrors}

    def mirror_of(request: Request) -> tuple[str, Storage]:
        name = request.path_params["index"]
        storage = mirrors.get(name)
        if storage is None:
            raise ApiError(404, f"no mirror called {params.shown(name)}")
        return name, storage

    async def authorize(request: Request, index: str, project: str | None) -> None:
        target = Target(index=index, private=False, project=project)
        decision = decide(NO_CREDENTIALS, target, "admin")
        if isinstance(decision, Denied):
            credentials = await auth.credentials(request.scope)
            decision = await decide_with_facts(db, credentials, target, "admin")
        if isinstance(decision, Denied):
            raise ApiError(decision.status, decision.message, challenge=decision.challenge)

    def endpoint(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            try:
                result: Response = await handler(request)
            except ApiError as exc:
                return json_answer({"error": str(exc)}, exc.status, challenge=exc.challenge)
            except params.BadParameter as exc:
                return json_answer({"error": str(exc)}, exc.status)
            except msgspec.DecodeError:
                return json_answer(
                    {
                        "error": "the mirror's state/publishers.json is not a publisher state; "
                        "nothing was changed. Repair or remove it (the next sync rewrites it)"
                    },
                    500,
                )
            except (DatabaseUnavailable, StorageError) as exc:
                what = "database" if isinstance(exc, DatabaseUnavailable) else "storage"
                return json_answer(
                    {
                        "error": f"the index cannot reach its {what}; nothing was changed. Try "
                        "again later (the operator sees why at /health/ready)"
                    },
                    503,
                )
            return result

        return wrapped

    async def held(request: Request) -> Response:
        name, storage = mirror_of(request)
        await authorize(request, name, None)
        state = await load_publisher_state(storage)
        return json_answer(
            {
                "held": [
                    {"project": project, **msgspec.to_builtins(record)}
                    for project, records in sorted(state.held.items())
                    for record in records
                ],
                "accepted": {p: sorted(v) for p, v in sorted(state.accepted.items())},
            }
        )

    async def accept(request: Request) -> Response:
        name, storage = mirror_of(request)
        project = params.project(request.path_params["project"])
        await authorize(request, name, project)
        version = params.version(request.path_params["version"])
        async with locks[name]:
            state = await load_publisher_state(storage)
            versions = state.accepted.setdefault(project, [])
            if version not in versions:
                versions.append(version)
                await save_publisher_state(storage, state)
        return json_answer(
            {
                "ok": True,
                "result": {
                    "project": project,
                    "version": version,
                    "next": f"headwater mirror --name {name} --project {project}",
                },
            }
        )

    return [
        Route("/api/{index}/held", endpoint(held), methods=["GET"]),
        Route(
            "/api/{index}/projects/{project}/accepted/{version}",
            endpoint(accept),
            methods=["PUT"],
        ),
    ]
