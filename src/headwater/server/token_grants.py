"""Who may create, see and revoke tokens from the administration pages: a pure decision.

``headwater token create`` is the operator's (it writes the database directly); on the web, a
signed-in token may only hand out what it holds itself:

============================== =============================================================
request                        answer
============================== =============================================================
create a token for yourself    its scopes within yours (``admin`` holds every scope), its
                               indexes within yours when yours are limited, its projects
                               within yours when yours are limited; expiring no later than
                               yours when yours expires; never for another user
see tokens                     your own; every user's with an unlimited ``admin`` token
revoke a token                 your own; any with an unlimited ``admin`` token
anything, as a minted token    refused: a trusted publisher's token only uploads
create, as a password session  not decided here: :mod:`headwater.server.session_grants` (the
                               password again, only projects its user owns, upload and manage,
                               an expiry); refused here, so a session can never reach the
                               rule for tokens
============================== =============================================================

Why: a token that could mint a wider one would make every limit a suggestion (a leaked
``upload`` token must stay an ``upload`` token, and a token that expires tomorrow must not leave
behind one that never does).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from headwater.server.authz import Token

__all__ = ["may_create", "may_revoke", "sees_every_token"]


def _minted(holder: Token) -> bool:
    return bool(getattr(holder, "minted", False))


def sees_every_token(holder: Token) -> bool:
    """An unlimited admin token sees (and may revoke) every user's tokens."""
    return (
        not _minted(holder)
        and "admin" in holder.scopes
        and holder.indexes is None
        and holder.projects is None
    )


def may_revoke(holder: Token, owner: str) -> bool:
    """Whether ``holder`` may revoke a token of the user ``owner``."""
    return not _minted(holder) and (owner == holder.user or sees_every_token(holder))


def may_create(
    holder: Token,
    scopes: Collection[str],
    indexes: Collection[str] | None,
    projects: Collection[str] | None,
    expires: datetime | None = None,
) -> str | None:
    """None when ``holder`` may create, for its own user, a token with ``scopes`` limited to
    ``indexes`` and ``projects`` (None: not limited) that expires at ``expires`` (None: never);
    else why not, in a sentence with the fix. The holder's own expiry is its ``expires``
    attribute when it has one (a database token does)."""
    if _minted(holder):
        return "a trusted publisher's token cannot create tokens"
    if getattr(holder, "session", False):
        return (
            "signed in with a password, a token is created with your password typed again and "
            "only for projects you own (headwater.server.session_grants decides)"
        )
    if not scopes:
        return "choose at least one scope"
    held = set(holder.scopes)
    if "admin" not in held:
        wider = sorted(set(scopes) - held)
        if wider:
            return (
                f"your token does not have the {', '.join(wider)} scope(s): a token cannot "
                "grant more than it holds (ask an operator: `headwater token create`)"
            )
    if holder.indexes is not None and (indexes is None or not set(indexes) <= set(holder.indexes)):
        return (
            "your token is limited to the indexes "
            f"{', '.join(sorted(holder.indexes)) or '(none)'}: limit the new token to some of them"
        )
    if holder.projects is not None and (
        projects is None or not set(projects) <= set(holder.projects)
    ):
        return (
            "your token is limited to the projects "
            f"{', '.join(sorted(holder.projects)) or '(none)'}: limit the new token to some of them"
        )
    held_until: datetime | None = getattr(holder, "expires", None)
    if held_until is not None and (expires is None or expires > held_until):
        return (
            f"your token expires on {held_until:%Y-%m-%d %H:%M} UTC: a token cannot outlive the "
            "one that creates it; choose a number of days that ends by then"
        )
    return None
