"""Refusals that reach the person at the terminal, through pip's and uv's own output.

Neither installer prints the body of an error response, and ASGI cannot set a reason phrase. What
each does print (measured with pip 26.3 and uv 0.13):

- pip, at its default verbosity, prints nothing about a failing index page except "No matching
  distribution found" -- but it warns, naming the ``Content-Type``, when a page answers 200 with a
  type it does not read. So pip (recognised by its ``User-Agent``, ``pip/...``) gets a ``200
  text/plain`` whose ``headwater-refused`` parameter carries the message and the fix. The page is
  still refused: pip skips it and the install fails.
- uv prints the status and the final URL of a failed request. So every other client gets a ``302``
  to the same project URL with the message and the fix in its query, which answers the refusal's
  status (409 or 503) with the full text in the body (what curl and browsers show).

Both responses say ``Cache-Control: no-store``: a refusal must go away as soon as the config or the
upstream is fixed.
"""

from __future__ import annotations

from headwater.policy.held import REFUSED_PARAM
from headwater.policy.messages import header_safe, query_safe
from headwater.server.responses import header, send_bytes, send_redirect, send_text
from headwater.server.types import Headers, Scope, Send

__all__ = ["REFUSED_PARAM", "send_refusal"]


async def send_refusal(
    scope: Scope,
    send: Send,
    *,
    project_url: str,
    kind: str,
    status: int,
    message: str,
    fix: str,
    head: bool,
) -> int:
    """Answer a refused project page; return the status sent. ``project_url`` is the page's own
    path (``/<index>/simple/<project>/``)."""
    text = f"{message}\nTo resolve: {fix}"
    no_store: Headers = [
        (b"cache-control", b"no-store"),
        (b"x-headwater-refused", kind.encode()),
    ]
    agent = header(scope, b"user-agent") or b""
    if agent.startswith(b"pip/"):
        content_type = (
            f'text/plain; charset=utf-8; headwater-refused="{header_safe(message)} '
            f'To resolve: {header_safe(fix)}"'
        )
        headers: Headers = [(b"content-type", content_type.encode("latin-1")), *no_store]
        await send_bytes(send, 200, headers, (text + "\n").encode(), head=head)
        return 200
    query = (scope.get("query_string") or b"").decode("latin-1")
    if f"{REFUSED_PARAM}=" in query:
        await send_text(send, status, text, head=head, extra=no_store)
        return status
    location = f"{project_url}?{REFUSED_PARAM}={query_safe(message)}&fix={query_safe(fix)}"
    await send_redirect(send, location, status=302, head=head, extra=no_store)
    return 302
