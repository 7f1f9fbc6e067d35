"""``GET /<index>/held/<project>/<filename>``: the URL of a file the publisher guard holds.

A page lists a held file as yanked, with the refusal as its reason, at this URL
(:mod:`headwater.policy.held`); an installer reaches it only when the request pins the held
release. The answer is always a refusal, never the file: ``409`` with the refusal (the guard's
message, both publisher identities, and the fix) as plain text and ``Cache-Control: no-store``,
so the refusal ends as soon as the release is accepted and the page lists the file again.

The answer comes from the project's page as the index serves it, like the integrity route: a
composed index's policy decides which source's page that is, and a mirror's sync or a caching
proxy writes the held entry with :func:`headwater.policy.held.hold_files`. So every source that
writes held entries is answered here without a route of its own. A file the page does not list
as held (accepted since, or never held) is a ``404`` that says so.
"""

from __future__ import annotations

from headwater.errors import printable
from headwater.policy.held import held_reason
from headwater.repository.base import ServedSource, SourceUnavailable
from headwater.repository.index import Refusal
from headwater.server import params
from headwater.server.integrity import listed_file, send_page_failure
from headwater.server.responses import NO_STORE, send_text
from headwater.server.types import Headers, Scope, Send
from headwater.simple.model import InvalidPage
from headwater.storage.base import StorageError

__all__ = ["HELD_KIND", "held_file"]

#: The ``X-Headwater-Refused`` kind of a held file's refusal.
HELD_KIND = "publisher-held"


async def held_file(
    scope: Scope, send: Send, source: ServedSource, index: str, tail: list[str], head: bool
) -> int:
    """Answer the held URL whose path after ``held/`` is ``tail`` (``[project, filename]``);
    returns the status sent."""
    shown = printable(scope["path"], 300)
    if len(tail) != 2 or not all(tail):
        await send_text(send, 404, f"no such URL: {shown}", head=head)
        return 404
    raw_project, filename = tail
    try:
        project = params.project(raw_project)
    except params.BadParameter as exc:
        await send_text(send, 404, str(exc), head=head)
        return 404
    try:
        listed = await listed_file(source, project, filename)
    except (Refusal, SourceUnavailable, StorageError) as exc:
        # The policy refuses the whole project: that refusal is the answer.
        return await send_page_failure(send, index, exc, head=head)
    except InvalidPage:
        listed = None
    reason = held_reason(listed) if listed is not None else None
    if reason is None:
        await send_text(
            send,
            404,
            f"index {index!r} holds no file {printable(filename, 200)!r} of {project}: the "
            "project's page lists what is served (install again to read it afresh)",
            head=head,
            extra=[NO_STORE],
        )
        return 404
    text = printable(reason, 2000).replace(" To resolve: ", "\nTo resolve: ", 1)
    extra: Headers = [NO_STORE, (b"x-headwater-refused", HELD_KIND.encode())]
    await send_text(send, 409, text, head=head, extra=extra)
    return 409
