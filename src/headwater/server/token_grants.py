"""Who may create, see and revoke tokens from the administration pages: a pure decision.

``headwater token create`` is the operator's (it writes the database directly); on the web, a
signed-in token may only hand out what it holds itself:

============================== =============================================================
request                        answer
============================== =============================================================
create a token for yourself    its scopes within yours (``admin`` holds every scope), its
                               indexes within yours when yours are limited, its projects
                               within yours when yours are limited; never for another user
see tokens                     your own; every user's with an unlimited ``admin`` token
revoke a token                 your own; any with an unlimited ``admin`` token
anything, as a minted token    refused: a trusted publisher's token only uploads
============================== =============================================================

Why: a token that could mint a wider one would make every limit a suggestion (a leaked
``upload`` token must stay an ``upload`` token).
"""

from __future__ import annotations

from collections.abc import Collection

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
) -> str | None:
    """None when ``holder`` may create, for its own user, a token with ``scopes`` limited to
    ``indexes`` and ``projects`` (None: not limited); else why not, in a sentence with the fix."""
    if _minted(holder):
        return "a trusted publisher's token cannot create tokens"
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
    return None
