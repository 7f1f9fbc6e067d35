"""What every page handler gets: the server's parts, the templates, and the request's rights.

:class:`Interface` is built once per application (in :func:`headwater.ui.routes.ui_routes`) over
:class:`headwater.server.factory.Served`. A handler asks it three things:

- :meth:`Interface.credentials`: who is asking (an ``Authorization`` header, as the API takes it,
  else the session cookie a browser got by signing in with a token or a password; see
  :mod:`headwater.ui.session`);
- :meth:`Interface.authorize`: may they do an action on an index (and project)? This is
  :func:`headwater.server.authz.decide` with the same facts the hot path gives it, so a private
  index is exactly as private here as in the Simple API;
- :meth:`Interface.render`: a template as an HTML response with the interface's headers
  (:mod:`headwater.ui.security`).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Hashable, Mapping
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from headwater.db.passwords import is_session_secret
from headwater.repository.base import ServedSource
from headwater.server.authz import (
    NO_CREDENTIALS,
    Action,
    Allowed,
    Credentials,
    Decision,
    Denied,
    Target,
    decide,
)
from headwater.server.factory import Served
from headwater.server.lru import ByteBudgetLRU
from headwater.ui import csrf, session
from headwater.ui.catalog import Catalog
from headwater.ui.readmes import Readmes
from headwater.ui.security import page_headers
from headwater.ui.templating import make_environment

__all__ = ["Interface"]

_CREDENTIALS_KEY = "headwater.ui.credentials"
#: Rendered project page content kept per process.
RENDERED_CACHE_BYTES = 32 * 1024 * 1024


class Interface:
    """The interface's view of one server (see the module docstring)."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.plan = served.plan
        self.sources: Mapping[str, ServedSource] = served.sources.all
        self.private = served.private
        self.templates = make_environment()
        self.catalog = Catalog(self.sources, served.database)
        self.readmes = Readmes()
        #: Rendered page content kept per process (see ui/project.py), by bytes.
        self.rendered: ByteBudgetLRU[Hashable, Markup] = ByteBudgetLRU(RENDERED_CACHE_BYTES)
        #: Whole pages kept (see render_kept), by bytes.
        self.pages: ByteBudgetLRU[Hashable, tuple[bytes, bytes]] = ByteBudgetLRU(
            RENDERED_CACHE_BYTES
        )
        #: Password checks at once in this process: each Argon2id check holds 64 MiB for
        #: ~0.1-0.2 s, and must not take every thread the database calls share.
        self.password_checks = asyncio.Semaphore(2)
        #: https when the server terminates TLS or says its public URL is https: cookies are
        #: then marked Secure (a proxy in front that terminates TLS is told by base_url).
        settings = served.plan.settings
        self.https = settings.tls_certificate is not None or (settings.base_url or "").startswith(
            "https://"
        )

    # -- who is asking ------------------------------------------------------------------------

    async def credentials(self, request: Request) -> Credentials:
        """The request's credentials: its ``Authorization`` header, else its session cookie,
        else none. Resolved once per request."""
        known = request.scope.get(_CREDENTIALS_KEY)
        if isinstance(known, Credentials):
            return known
        auth = self.served.authenticator
        found = NO_CREDENTIALS
        if auth is not None:
            if request.headers.get("authorization") is not None:
                found = await auth.credentials(request.scope, cached=True)
            else:
                secret = session.token_of(request)
                if secret is not None and is_session_secret(secret):
                    # Signed in with a password: a session only the interface accepts.
                    found = await auth.session(secret, cached=True)
                elif secret is not None:
                    found = await auth.token(secret, cached=True)
        request.scope[_CREDENTIALS_KEY] = found
        return found

    async def signed_in(self, request: Request) -> str | None:
        """The signed-in user's name (a valid token's user), or None."""
        credentials = await self.credentials(request)
        token = credentials.token
        return token.user if credentials.state == "token" and token is not None else None

    async def authorize(
        self, request: Request, index: str, action: Action, project: str | None = None
    ) -> Decision:
        """:func:`~headwater.server.authz.decide` for ``action`` on ``index`` (and
        ``project``, normalized), with the facts the server gives it for the same read."""
        private = index in self.private
        target = Target(
            index=index,
            private=private,
            private_sources=self.private.get(index, frozenset()),
            project=project,
        )
        if action == "public" or (action in ("list", "read") and not private):
            # Credentials are not even looked at (as on the hot path: no database query).
            return decide(NO_CREDENTIALS, target, action)
        return decide(await self.credentials(request), target, action)

    async def visible(self, request: Request) -> dict[str, Allowed]:
        """Every index the request may list, with the decision (its ``only`` limits a token
        restricted to projects)."""
        shown: dict[str, Allowed] = {}
        for name in sorted(self.sources):
            decision = await self.authorize(request, name, "list")
            if isinstance(decision, Allowed):
                shown[name] = decision
        return shown

    # -- answering ----------------------------------------------------------------------------

    async def render(
        self, request: Request, template: str, status: int = 200, **values: Any
    ) -> Response:
        """``template`` rendered (autoescaped) as an HTML response with the interface's
        headers. Every template gets ``user`` (the signed-in user or None), ``indexes`` (the
        configured index names) and ``query`` (the search box's text)."""
        user = await self.signed_in(request)
        context = {
            "user": user,
            # The sign-out button's CSRF token (the button is in every page's header).
            "signout_csrf": csrf.token_for(request) if user is not None else None,
            "indexes": sorted(self.sources),
            "query": request.query_params.get("q", "")[:200],
            "request_path": request.url.path,
            "status": status,
            **values,
        }
        body = self.templates.get_template(template).render(context)
        return HTMLResponse(body, status_code=status, headers=page_headers())

    async def render_kept(
        self, request: Request, key: Hashable, template: str, **values: Any
    ) -> Response:
        """:meth:`render`, with the page's bytes (and their gzip) kept under ``key`` plus who is
        signed in and the search box's text (everything else a page shows must be in ``key``):
        a large page costs a lookup, and browsers that accept gzip get a tenth of the bytes."""
        user = await self.signed_in(request)
        # The session's CSRF token too: the header's sign-out button carries it.
        signed = csrf.token_for(request) if user is not None else None
        full_key = (key, user, signed, request.query_params.get("q", "")[:200])
        kept = self.pages.get(full_key)
        if kept is None:
            response = await self.render(request, template, **values)
            body = bytes(response.body)
            kept = (body, gzip.compress(body, compresslevel=6))
            self.pages.put(full_key, kept, len(kept[0]) + len(kept[1]))
        headers = page_headers()
        headers["vary"] += ", Accept-Encoding"
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["content-encoding"] = "gzip"
            body = kept[1]
        else:
            body = kept[0]
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)

    async def denied(self, request: Request, denied: Denied) -> Response:
        """The page for a refusal: authz's status and message, and how to sign in. A browser
        gets no Basic challenge (it would open a password dialog): it signs in with the form."""
        return await self.render(
            request, "denied.html", status=denied.status, message=denied.message
        )

    async def not_found(self, request: Request, message: str) -> Response:
        return await self.render(request, "error.html", status=404, message=message)
