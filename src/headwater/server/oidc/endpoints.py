"""Trusted publishing's HTTP endpoints: PyPI's two, per index and at the root, and PEP 807's
discovery.

::

    GET  /_/oidc/audience              {"audience": ...}                      (PyPI, uv, the action)
    POST /_/oidc/mint-token            {"token": JWT} -> {"success", "token", "expires"}
    GET  /<index>/_/oidc/audience      the same, for one index
    POST /<index>/_/oidc/mint-token    a token granted only in <index>
    GET  /.well-known/pytp?discover=<percent-encoded upload path>          (PEP 807)

Where clients look: uv and ``pypa/gh-action-pypi-publish`` build
``https://<host:port of the upload URL>/_/oidc/audience`` and ``.../mint-token`` themselves,
dropping the upload URL's path, so the root endpoints serve every hosted index: the minted token
is granted for each index whose publishers match (and only there). A client that follows PEP
807 discovers the per-index endpoints: ``/.well-known/pytp?discover=%2Fmain%2Flegacy%2F``
answers ``https://HOST/main/_/oidc/audience`` and ``https://HOST/main/_/oidc/mint-token``. A
composed index with ``upload = "NAME"`` has NAME's publishers, as its uploads go to NAME.

This module implements PEP 807 as in the draft of 29 September 2025 (Post-History 08-Aug-2025,
29-Sep-2025): the discovery key is the upload URL's path, percent-encoded, in the ``discover``
query parameter; the answer has ``audience-endpoint``, ``token-mint-endpoint``, ``features`` and
``default-features``; a path with no trusted publishing is a 404 without a body; error bodies
are RFC 9457 problem details (with PyPI's ``message``/``errors`` members too). One deliberate
difference: the draft says servers SHOULD answer 406 to any ``Accept`` other than
``application/vnd.pypi.pytp.v1+json``; we answer 406 only to a request that asks for nothing but
other versions of that format, because clients written for PyPI's endpoints send ``*/*`` or no
``Accept`` at all and must keep working.

All of these are ``public`` routes (:mod:`headwater.server.authz`): the OIDC token is the
credential, checked by :class:`~headwater.server.oidc.exchange.Exchange`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.server.api_bodies import BodyRejected, read_bytes
from headwater.server.oidc.exchange import DEFAULT_FEATURES, FEATURES, Exchange, Outcome, refusal

__all__ = ["PYTP_TYPE", "oidc_routes"]

PYTP_TYPE = "application/vnd.pypi.pytp.v1+json"
#: The largest mint-token body read (a token is at most 16 KiB).
MAX_BODY = 64 * 1024
_PYTP_FAMILY = "application/vnd.pypi.pytp."
_UPLOAD_PATH = re.compile(r"^/(?:(?P<index>[A-Za-z0-9][A-Za-z0-9._-]{0,99})/)?legacy/?\Z")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?\Z")
_ENCODER = msgspec.json.Encoder()


def _acceptable(request: Request) -> bool:
    """PEP 807: no Accept counts as ``application/vnd.pypi.pytp.v1+json``, and servers SHOULD
    answer 406 to others. We answer 406 only when every type asked for is another version of
    the pytp format (the negotiation that 406 is for): PyPI answers any Accept, and clients
    built for it send ``*/*`` or other types (requests, curl), which must keep working."""
    accept = request.headers.get("accept", "")
    asked = [item.partition(";")[0].strip().lower() for item in accept.split(",")]
    asked = [media for media in asked if media]
    if not asked or any(not media.startswith(_PYTP_FAMILY) for media in asked):
        return True
    return PYTP_TYPE in asked


def _answer(outcome: Outcome, request: Request) -> Response:
    if outcome.status >= 400:
        media = "application/problem+json"
    elif PYTP_TYPE in request.headers.get("accept", ""):
        media = PYTP_TYPE
    else:
        media = "application/json"
    return Response(
        _ENCODER.encode(outcome.body) + b"\n",
        status_code=outcome.status,
        media_type=media,
        headers={"cache-control": "no-store"},
    )


def _not_acceptable() -> Outcome:
    return refusal(
        406, "not-acceptable", f"this endpoint answers {PYTP_TYPE} (or application/json) only"
    )


def oidc_routes(
    exchange: Exchange,
    upload_targets: Mapping[str, str],
    *,
    default: str | None,
    base_url: str | None,
) -> list[Route]:
    """The routes above. ``upload_targets`` maps every index a client may upload to (hosted
    ones, and composed ones with ``upload``) to the hosted index that takes the upload;
    ``default`` is the hosted index of ``/legacy/``; ``base_url`` the server's public URL (the
    discovery answer's origin; else the request's own)."""

    def target(request: Request) -> str | None:
        name = request.path_params.get("index")
        return default if name is None else upload_targets.get(name)

    async def audience(request: Request) -> Response:
        if not _acceptable(request):
            return _answer(_not_acceptable(), request)
        if target(request) is None:
            return _answer(
                refusal(404, "not-found", "no hosted index here: trusted publishing is per index"),
                request,
            )
        return _answer(Outcome(200, {"audience": exchange.audience}), request)

    async def mint(request: Request) -> Response:
        if not _acceptable(request):
            return _answer(_not_acceptable(), request)
        index: str | None = None
        if "index" in request.path_params:
            index = target(request)
            if index is None:
                return _answer(refusal(404, "not-found", "no hosted index here"), request)
        try:
            body = await read_bytes(
                request, limit=MAX_BODY, too_large=f"the body is larger than {MAX_BODY} bytes"
            )
        except BodyRejected as exc:
            return _answer(refusal(exc.status, "invalid-payload", str(exc)), request)
        return _answer(await exchange.mint(body, index), request)

    def origin(request: Request) -> str | None:
        if base_url:
            return base_url.rstrip("/")
        host = request.headers.get("host", "")
        if not _HOST.match(host):
            return None
        return f"{request.url.scheme}://{host}"

    async def discover(request: Request) -> Response:
        if not _acceptable(request):
            return _answer(_not_acceptable(), request)
        key = request.query_params.get("discover")
        if key is None:
            return _answer(
                refusal(
                    400,
                    "invalid-request",
                    "give the upload URL's path, percent-encoded: "
                    "/.well-known/pytp?discover=%2FINDEX%2Flegacy%2F",
                ),
                request,
            )
        match = _UPLOAD_PATH.match(key)  # Starlette has percent-decoded the query
        name = None if match is None else match.group("index")
        index = (default if name is None else upload_targets.get(name)) if match else None
        base = origin(request)
        if index is None or base is None:
            return Response(status_code=404, headers={"cache-control": "no-store"})
        prefix = f"{base}/{name or index}/_/oidc"
        document = {
            "audience-endpoint": f"{prefix}/audience",
            "token-mint-endpoint": f"{prefix}/mint-token",
            "features": list(FEATURES),
            "default-features": list(DEFAULT_FEATURES),
        }
        return Response(
            _ENCODER.encode(document) + b"\n",
            media_type=PYTP_TYPE,
            headers={"cache-control": "no-store"},
        )

    return [
        Route("/_/oidc/audience", audience, methods=["GET"]),
        Route("/_/oidc/mint-token", mint, methods=["POST"]),
        Route("/{index}/_/oidc/audience", audience, methods=["GET"]),
        Route("/{index}/_/oidc/mint-token", mint, methods=["POST"]),
        Route("/.well-known/pytp", discover, methods=["GET"]),
    ]
