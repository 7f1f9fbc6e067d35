"""Who may do what: the one authorization decision every route of the server asks.

:func:`decide` takes what the request's credentials resolved to (:class:`Credentials`), what the
request is about (:class:`Target`: an index, maybe a project, and the facts the decision needs)
and the :data:`Action`, and returns :class:`Allowed` or :class:`Denied` (a status, a message that
names the fix, and the ``WWW-Authenticate`` realm when credentials would help). It does no I/O:
the routes gather the facts (authenticating the token, looking up ownership) and act on the
answer. :data:`headwater.server.routes.ROUTES` says which action each route asks about.

Vocabulary (the same words in docs/serve.md, "Who may do what"):

======== ============================== ======== ===========================================
action   what                           scope    a token limited to projects P
======== ============================== ======== ===========================================
public   health, metrics, landing page; none     (not consulted)
         trusted publishing's exchange
list     an index's project list        read     allowed; the list shows only P
read     a page, file, ``.metadata``,   read     only projects in P; index-wide reads
         ``/pypi/<p>/json``, a project           (namespaces, a file whose name names no
         record; namespaces (index-wide)         project) are refused
upload   ``/legacy/``                   upload   only projects in P; a minted token
                                                 (trusted publishing) only where one of its
                                                 publishers may publish (``publisher``)
manage   yank, unyank, delete, status,  manage   only projects in P; the user must own the
         alternate-locations, owners             project unless the token has ``admin``
admin    ``tracks`` (the operator's     admin    always refused: admin actions are index-wide
         PEP 708 statement)
======== ============================== ======== ===========================================

``admin`` implies every scope. ``list`` and ``read`` of an index that is not private need
nothing: credentials are not even looked at (as on PyPI, and so the hot path of public indexes
never waits for the database). An index is private when it is a hosted index with
``read = "token"`` or a composed index with such a source (it shows what its sources hold).

Why these answers:

- **401 or 403.** No credentials, or credentials that are not a valid token (malformed, unknown,
  revoked, expired, or a user name other than ``__token__``): 401 with a Basic challenge, because
  pip and uv answer a 401 by asking keyring or netrc for credentials and retrying. Valid
  credentials that are not enough: 403. Uploads answer 403 in both cases, as PyPI does
  ("Invalid or non-existent authentication information."): twine and uv publish send
  credentials up front and never retry on a 401, so the challenge would help nobody.
- **403, not 404, for a project outside a token's limit**, whether or not the project exists. The
  answer never depends on existence, so it reveals nothing; and a 404 would tell uv's default
  ``first-index`` strategy (and pip, always) to take the name from the next index, the
  dependency-confusion path, where a 403 stops uv. The message names the fix.
- **A project limit is never ignored.** Tokens limited to projects that also carry ``admin``
  (refused by ``headwater token create`` now, but possibly in older databases) are limited like
  any other: every action is checked against their projects and the index-wide ``admin`` action
  is refused.
- **A composed index over private sources** may be read by a token limited to indexes when the
  limit names the composed index, or names every private source of it (such a token could read
  those sources directly; the other sources are public).
- **The project matters only to a token limited to projects** (for ``list`` and ``read``, any
  other token gets the same answer whatever the project), so the hot path works out whose file a
  request names only for such tokens (a property test holds this).
- **Ownership** is a fact the route looks up (only once the credentials are a valid token, so an
  anonymous request costs no database query); ``None`` (not looked up) counts as "not an owner":
  the decision fails closed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal, Protocol, TypeAlias

import msgspec

__all__ = [
    "ACTIONS",
    "NO_CREDENTIALS",
    "SCOPE_OF",
    "Action",
    "Allowed",
    "Credentials",
    "Decision",
    "Denied",
    "Target",
    "Token",
    "decide",
    "realm",
]

Action = Literal["public", "list", "read", "upload", "manage", "admin"]
ACTIONS: tuple[Action, ...] = ("public", "list", "read", "upload", "manage", "admin")
#: The scope each action needs (``admin`` implies every scope).
SCOPE_OF: dict[Action, str | None] = {
    "public": None,
    "list": "read",
    "read": "read",
    "upload": "upload",
    "manage": "manage",
    "admin": "admin",
}
_VERB: dict[Action, str] = {
    "public": "see",
    "list": "read",
    "read": "read",
    "upload": "upload to",
    "manage": "change projects of",
    "admin": "make admin changes to",
}


class Token(Protocol):
    """What the decision reads of a token (:class:`headwater.db.TokenInfo` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def scopes(self) -> Collection[str]: ...
    @property
    def indexes(self) -> Collection[str] | None: ...
    @property
    def projects(self) -> Collection[str] | None: ...
    @property
    def minted(self) -> bool: ...


class Credentials(msgspec.Struct, frozen=True):
    """What a request's ``Authorization`` header resolved to.

    ``none``: no header. ``invalid``: a header that is not a valid token (``problem`` says why,
    in one line that names the fix). ``token``: a valid, unrevoked, unexpired token.
    """

    state: Literal["none", "invalid", "token"]
    token: Token | None = None
    problem: str = ""


NO_CREDENTIALS = Credentials("none")


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """What a request is about, with the facts the decision needs."""

    index: str
    #: Reading needs a token (a hosted index with read = "token", or a composed index over one).
    private: bool = False
    #: A composed index's private sources (see the module docstring); empty otherwise.
    private_sources: frozenset[str] = frozenset()
    #: The normalized project, or None for the index as a whole.
    project: str | None = None
    #: The project exists in the hosted index (uploads: an existing project needs an owner).
    exists: bool | None = None
    #: The token's user owns the project; None when not looked up (counts as not an owner).
    owner: bool | None = None
    #: A minted token (trusted publishing): one of its publishers may publish the project now;
    #: None when not looked up (counts as no).
    publisher: bool | None = None


class Allowed(msgspec.Struct, frozen=True):
    """Go ahead. ``user`` is the token's user (None when no token was needed)."""

    user: str | None = None
    #: The token has the admin scope (for PEP 752 namespaces: admins may create any name).
    admin: bool = False
    #: ``list`` only: show just these projects (the token is limited to them); None shows all.
    only: frozenset[str] | None = None


class Denied(msgspec.Struct, frozen=True):
    """Refuse with ``status``; ``message`` is one line that says what to do."""

    status: int
    message: str
    #: The Basic realm to challenge for (401 only).
    challenge: str | None = None


Decision: TypeAlias = Allowed | Denied


def realm(index: str) -> str:
    """The Basic auth realm of ``index`` (what a 401's ``WWW-Authenticate`` names)."""
    return f"headwater {index}"


def _no_token(credentials: Credentials, target: Target, action: Action) -> Denied:
    scope = SCOPE_OF[action]
    what = (
        f"index {target.index!r} is private: reading it"
        if action in ("list", "read")
        else f"to {_VERB[action]} index {target.index!r}, a request"
    )
    if credentials.state == "none":
        message = (
            f"{what} needs a token with the {scope} scope: send it as HTTP Basic auth with user "
            "__token__ (e.g. https://__token__:TOKEN@HOST/INDEX/simple/) or as "
            "'Authorization: Bearer TOKEN'"
        )
    else:
        message = f"{credentials.problem}; {what} needs a valid token with the {scope} scope"
    if action == "upload":
        # PyPI's answer and status; twine prints it.
        return Denied(403, f"Invalid or non-existent authentication information. {message}")
    return Denied(401, message, challenge=realm(target.index))


def _index_allows(token: Token, target: Target) -> bool:
    if token.indexes is None or target.index in token.indexes:
        return True
    sources = target.private_sources
    return bool(sources) and all(source in token.indexes for source in sources)


def decide(credentials: Credentials, target: Target, action: Action) -> Decision:
    """May a request with ``credentials`` do ``action`` on ``target``? See the module docstring."""
    if action == "public" or (action in ("list", "read") and not target.private):
        return Allowed()
    token = credentials.token
    if credentials.state != "token" or token is None:
        return _no_token(credentials, target, action)
    scopes = token.scopes
    admin = "admin" in scopes
    needed = SCOPE_OF[action]
    if not _index_allows(token, target):
        return Denied(
            403,
            f"this token is limited to the index(es) {', '.join(sorted(token.indexes or ()))}: it "
            f"cannot {_VERB[action]} {target.index!r}; create a token with --index "
            f"{target.index}",
        )
    if needed is not None and needed not in scopes and not admin:
        return Denied(
            403,
            f"this token has the scope(s) {', '.join(sorted(scopes))}, not {needed}: it cannot "
            f"{_VERB[action]} {target.index!r}; create a token with --scope {needed}",
        )
    projects = token.projects
    if projects is not None:
        limit = ", ".join(sorted(projects))
        if action == "admin":
            return Denied(
                403,
                f"this token is limited to the project(s) {limit}, and admin changes are "
                "index-wide: use a token with the admin scope and no --project",
            )
        if action == "list":
            return Allowed(token.user, admin, only=frozenset(projects))
        if target.project is None:
            if action == "upload":
                # Before the body is read: the project is checked once the file names it.
                return Allowed(token.user, admin)
            return Denied(
                403,
                f"this token is limited to the project(s) {limit}, and this is about index "
                f"{target.index!r} as a whole: use a token without --project",
            )
        if target.project not in projects:
            return Denied(
                403,
                f"this token is limited to the project(s) {limit}: it cannot {_VERB[action]} "
                f"project {target.project!r} of {target.index!r}; create a token with --project "
                f"{target.project}",
            )
    if token.minted and action == "upload" and target.project is not None:
        # A trusted publisher stands in for ownership: the project's owners (or an admin)
        # configured it. Its grants are checked again here because a publisher can be removed,
        # or go stale, between the mint and the upload.
        if target.publisher is not True:
            return Denied(
                403,
                f"this token was minted for a trusted publisher that may no longer publish "
                f"{target.project!r} to {target.index!r} (it was removed, or it was pending and "
                "someone else created the project): see `headwater publisher list "
                f"{target.index}`",
            )
        return Allowed(token.user, False)
    if action == "manage" and not admin and target.owner is not True:
        return Denied(
            403,
            f"user {token.user!r} is not an owner of {target.index}/{target.project}: an owner "
            f"can add them with `headwater project owner-add {target.index} {target.project} "
            f"{token.user}` (or PUT .../owners/{token.user})",
        )
    if (
        action == "upload"
        and target.project is not None
        and target.exists is not False  # not looked up counts as existing: fail closed
        and not admin
        and target.owner is not True
    ):
        # PyPI's wording, with the fix.
        return Denied(
            403,
            f"The user {token.user!r} isn't allowed to upload to project {target.project!r}: ask "
            f"an owner to run `headwater project owner-add {target.index} {target.project} "
            f"{token.user}`.",
        )
    return Allowed(token.user, admin)
