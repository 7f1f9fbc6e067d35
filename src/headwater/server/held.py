"""The management API of a mirror's or proxy's publisher guard: what it holds, accepting a release.

::

    GET /api/<source>/held                                       {"held": [...], "accepted": {...}}
    PUT /api/<source>/projects/<project>/accepted/<version>      accept a held release as it is

The same state as ``headwater provenance held/accept`` (the source's ledger,
:mod:`headwater.repository.publishers`): accepting records the operator's decision. A mirror's
next sync of the project (``headwater mirror --name MIRROR --project PROJECT``) mirrors the
release and establishes its publisher; a proxy serves it once it revalidates the project's page
(within its ``ttl``, on every server sharing its storage). Both routes ask :func:`headwater.server.authz.decide` for
``admin``: which publisher an index trusts is the operator's statement about where a project
comes from, as PEP 708 ``tracks`` is, not a project owner's to make (an owner's account is what a
publisher change may mean was taken over). Errors are the management API's JSON
``{"error": "..."}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.db import Database, DatabaseUnavailable
from headwater.errors import InvalidInput
from headwater.repository.publishers import Ledger
from headwater.server import params
from headwater.server.auth import Authenticator
from headwater.server.authz import NO_CREDENTIALS, Denied, Target, decide
from headwater.server.facts import decide_with_facts
from headwater.server.responses import ApiError, json_answer
from headwater.storage.base import StorageError

__all__ = ["held_routes"]


def held_routes(
    db: Database,
    ledgers: Mapping[str, Ledger],
    auth: Authenticator,
) -> list[Route]:
    """The publisher-guard routes over the mirrors' and proxies' ledgers (name -> ledger)."""

    def ledger_of(request: Request) -> tuple[str, Ledger]:
        name = request.path_params["index"]
        ledger = ledgers.get(name)
        if ledger is None:
            raise ApiError(404, f"no mirror or proxy called {params.shown(name)}")
        return name, ledger

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
            except InvalidInput as exc:
                return json_answer({"error": str(exc)}, 400)
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
        name, ledger = ledger_of(request)
        await authorize(request, name, None)
        held = await ledger.held()
        accepted = await ledger.accepted()
        return json_answer(
            {
                "held": [
                    {"project": project, **msgspec.to_builtins(record)}
                    for project, records in sorted(held.items())
                    for record in records
                ],
                "accepted": {p: sorted(v) for p, v in sorted(accepted.items())},
            }
        )

    async def accept(request: Request) -> Response:
        name, ledger = ledger_of(request)
        project = params.project(request.path_params["project"])
        await authorize(request, name, project)
        version = await ledger.accept(project, params.version(request.path_params["version"]))
        then = (
            f"headwater mirror --name {name} --project {project}"
            if ledger.kind == "mirror"
            else "served once the proxy revalidates the project's page (within its ttl)"
        )
        return json_answer(
            {"ok": True, "result": {"project": project, "version": version, "next": then}}
        )

    return [
        Route("/api/{index}/held", endpoint(held), methods=["GET"]),
        Route(
            "/api/{index}/projects/{project}/accepted/{version}",
            endpoint(accept),
            methods=["PUT"],
        ),
    ]
