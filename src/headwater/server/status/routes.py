"""``GET /mirrors.json``: the status document (:mod:`headwater.server.status.document`)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from headwater.server.status.service import StatusService

__all__ = ["MIRRORS_JSON", "status_routes"]

MIRRORS_JSON = "/mirrors.json"
_encoder = msgspec.json.Encoder()


def status_routes(service: StatusService) -> list[BaseRoute]:
    """The routes that serve ``service``'s document."""

    encoded: list[tuple[object, bytes]] = []  # (document, its JSON): encoded once per document

    async def mirrors_json(request: Request) -> Response:
        document = await service.document()
        if not encoded or encoded[0][0] is not document:
            encoded[:] = [(document, _encoder.encode(document))]
        body = encoded[0][1]
        return Response(
            b"" if request.method == "HEAD" else body,
            headers={
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                # Public facts about public mirrors, readable by a dashboard on another origin;
                # fresh for as long as the document is kept.
                "Access-Control-Allow-Origin": "*",
                "Cache-Control": "public, max-age=10",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return [Route(MIRRORS_JSON, mirrors_json, methods=["GET", "HEAD"])]
