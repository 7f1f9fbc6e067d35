"""Which token a person signed in with a password may create: a pure decision.

A password session (:mod:`headwater.db.passwords`) never authenticates pip, uv, twine or the API.
It may, like PyPI's and GitHub's account pages, create an API token, but only a token that is
no wider than what its user may already do, and only after the password is typed again ("sudo
mode": a stolen session cookie alone must not become a credential that outlives it).

:func:`decide` takes the session (``holder``), what the form asks (:class:`Ask`), the outcome of
the password re-check (:class:`Recheck`, counted by the sign-in throttle) and the ownership facts
the route looked up for the pairs :func:`pairs` names, and answers :class:`Grant` or
:class:`Refusal`. It does no I/O. Checks run in this order, the first that fails answers:

============ ======================================================== ======= ===================
reason       when                                                     status  fix named
============ ======================================================== ======= ===================
not-session  the holder is not a password session (a token signs in   400     token_grants
             through :mod:`headwater.server.token_grants`), or a              decides for tokens
             minted token
locked       the re-check's user name or address is locked             429     wait until the time
wrong        the re-check's password is wrong (counted as a failed     400     type it again
             sign-in)
scope        no scope; ``admin``; ``read``; anything but ``upload``    400     choose upload and/or
             and ``manage``                                                   manage
where        no index or no project named; an index that is not a      400     name them
             hosted index; more than :data:`MAX_PAIRS` index-project
             pairs
expiry       not a whole number of days in 1..:data:`MAX_DAYS` (empty  400     a number of days
             means :data:`DEFAULT_DAYS`); never is refused
description  empty                                                    400     say what it is for
owner        :func:`headwater.server.authz.decide` refuses one of the  403     ask an owner
             scopes on one index-project pair, the user's ownership
             of that pair as its fact
(none)       a :class:`Grant`: those scopes, limited to exactly those  --      --
             indexes and projects, expiring in the days asked
============ ======================================================== ======= ===================

Why each rule:

- **The password first.** Until it is re-checked, the form answers nothing about projects
  (whether one is owned), so a stolen cookie learns nothing either.
- **Every index x project pair is checked.** A token's limits are a product: indexes {A, B} and
  projects {p, q} reach p and q in both A and B. Owning p in A and q in B does not make p in B
  yours (it may not even exist, and a first upload would create it), so each pair must pass.
- **The same ownership decision as an upload or a yank.** Each (scope, pair) is put to
  :func:`~headwater.server.authz.decide` as a token limited to that one pair would be, with
  ``exists`` true: ``upload`` and ``manage`` of an existing project need its user to be an owner
  there. No second rule to drift from the first; and because the token's user is the session's
  user, every use of the token is checked against ownership again (an owner removed later loses
  the token's use at once).
- **No ``read``.** Reading a private index never looks at ownership (a read is decided on scopes
  and limits alone, so the hot path makes no database query), so a read token would keep reading
  after its user stopped owning the project, and a password session cannot read private indexes
  itself. A token with ``read`` comes from a token that holds it, or from an operator.
- **The same re-check for adding an owner or a trusted publisher** (:data:`RECHECKED_ACTIONS`):
  either gives someone else a way to upload (another account; a CI job whose minted tokens
  upload), so a stolen session cookie alone must not do it either.
- **No ``admin``, no unlimited token, no token that never expires**: those are what a password
  is not (an admin works with an admin token); at most a year (:data:`MAX_DAYS`), 90 days unless
  asked otherwise (:data:`DEFAULT_DAYS`): a forgotten or leaked token stops by itself.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Literal, TypeAlias

import msgspec

from headwater.server.authz import Action, Credentials, Denied, Target, Token
from headwater.server.authz import decide as authorize
from headwater.simple.names import NormalizedName, normalize_or_none

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "MAX_PAIRS",
    "RECHECKED_ACTIONS",
    "SCOPES",
    "Ask",
    "Decision",
    "Grant",
    "Recheck",
    "Refusal",
    "decide",
    "pairs",
    "recheck_refusal",
]

#: The scopes a password session may give a token.
SCOPES: frozenset[str] = frozenset({"upload", "manage"})
DEFAULT_DAYS = 90
MAX_DAYS = 365
#: At most this many index x project pairs in one token (each costs an ownership look-up).
MAX_PAIRS = 20
#: Administration actions that give someone else a way to act on a project (another owner; a CI
#: identity whose minted tokens upload): signed in with a password, each needs the password typed
#: again, as creating a token does (:func:`recheck_refusal`). A token signed in needs none: the
#: cookie then holds the credential itself.
RECHECKED_ACTIONS: frozenset[str] = frozenset({"owner-add", "publisher-add"})

#: Why a token was refused: the first column of the table above; ``stored``: the database's own
#: checks refused it afterwards (a description with control characters; the user removed).
Reason = Literal[
    "not-session", "locked", "wrong", "scope", "where", "expiry", "description", "owner", "stored"
]


class Ask(msgspec.Struct, frozen=True, kw_only=True):
    """What the create-token form of a password session asks, as typed."""

    scopes: frozenset[str]
    indexes: tuple[str, ...]
    projects: tuple[str, ...]
    #: Days until it expires, as typed; empty: :data:`DEFAULT_DAYS`.
    days: str
    description: str


class Recheck(msgspec.Struct, frozen=True):
    """The password typed again on the form (:meth:`headwater.db.Database.password_sign_in`
    without a session): ``ok``, ``wrong``, or ``locked`` until ``until``."""

    outcome: Literal["ok", "wrong", "locked"]
    until: datetime | None = None


class Grant(msgspec.Struct, frozen=True):
    """Create the token: these scopes, exactly these indexes and projects, for ``days`` days."""

    scopes: frozenset[str]
    indexes: frozenset[str]
    projects: frozenset[NormalizedName]
    days: int


class Refusal(msgspec.Struct, frozen=True):
    """Create nothing; ``message`` says why and what to do."""

    reason: Reason
    status: int
    message: str


Decision: TypeAlias = Grant | Refusal


class _Probe(msgspec.Struct, frozen=True):
    """The token this decision asks authz about: one scope, one index, one project."""

    id: str
    user: str
    scopes: frozenset[str]
    indexes: frozenset[str] | None
    projects: frozenset[str] | None
    minted: bool = False


def _projects(ask: Ask) -> list[NormalizedName] | None:
    names = [normalize_or_none(p) for p in ask.projects]
    if any(n is None for n in names):
        return None
    return sorted({n for n in names if n is not None})


def pairs(ask: Ask, hosted: Collection[str]) -> list[tuple[str, NormalizedName]]:
    """The (index, project) pairs whose ownership :func:`decide` needs: empty when the form's
    indexes or projects are refused anyway (nothing to look up)."""
    projects = _projects(ask)
    indexes = sorted(set(ask.indexes))
    if (
        not projects
        or not indexes
        or not set(indexes) <= set(hosted)
        or len(indexes) * len(projects) > MAX_PAIRS
    ):
        return []
    return [(index, project) for index in indexes for project in projects]


def _refuse(reason: Reason, status: int, message: str) -> Refusal:
    return Refusal(reason, status, f"{message}; no token was created")


def recheck_refusal(recheck: Recheck, *, outcome: str = "no token was created") -> Refusal | None:
    """None when the password typed again was right; else the refusal (``locked`` 429 or
    ``wrong`` 400), ending with ``outcome``."""
    if recheck.outcome == "locked":
        when = f" until {recheck.until:%H:%M} UTC" if recheck.until is not None else ""
        return Refusal(
            "locked",
            429,
            "too many failed sign-ins for this user name or from your address: password "
            f"checks are paused{when}; nothing was checked; {outcome}",
        )
    if recheck.outcome != "ok":
        return Refusal(
            "wrong",
            400,
            "the password you typed again is wrong (it counts as a failed sign-in); type your "
            f"current password; {outcome}",
        )
    return None


def decide(
    holder: Token,
    ask: Ask,
    recheck: Recheck,
    *,
    hosted: Collection[str],
    owned: Collection[tuple[str, str]],
) -> Decision:
    """May the password session ``holder`` create the token ``ask`` describes? ``owned``: the
    pairs of :func:`pairs` its user owns. See the module docstring for the table."""
    if not getattr(holder, "session", False) or getattr(holder, "minted", False):
        return _refuse("not-session", 400, "only a password session creates tokens this way")
    refused = recheck_refusal(recheck)
    if refused is not None:
        return refused
    scopes = frozenset(ask.scopes)
    if not scopes or not scopes <= SCOPES:
        return _refuse(
            "scope",
            400,
            "signed in with a password, a token may have the upload and manage scopes only "
            "(read and admin need a token that holds them: sign in with one, or ask an "
            "operator)",
        )
    projects = _projects(ask)
    indexes = frozenset(ask.indexes)
    if projects is None:
        return _refuse("where", 400, "a project name is not valid (letters, digits, . _ -)")
    if not indexes or not projects:
        return _refuse(
            "where",
            400,
            "name the index(es) and the project(s) the token is for: signed in with a password, "
            "a token covers only projects you own",
        )
    unknown = sorted(indexes - set(hosted))
    if unknown:
        return _refuse(
            "where",
            400,
            f"no hosted index called {', '.join(unknown)[:200]} (hosted: "
            f"{', '.join(sorted(hosted)) or 'none'})",
        )
    if len(indexes) * len(projects) > MAX_PAIRS:
        return _refuse(
            "where", 400, f"at most {MAX_PAIRS} index x project pairs in one token: make several"
        )
    days = ask.days.strip() or str(DEFAULT_DAYS)
    if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
        return _refuse(
            "expiry",
            400,
            f"expires in: a whole number of days from 1 to {MAX_DAYS} (empty: {DEFAULT_DAYS}); "
            "a token made with a password always expires",
        )
    if not ask.description.strip():
        return _refuse(
            "description", 400, "describe the token (where it will be used), to know it later"
        )
    for index in sorted(indexes):
        for project in projects:
            for scope in sorted(scopes):
                probe = _Probe(
                    id="-",
                    user=holder.user,
                    scopes=frozenset({scope}),
                    indexes=frozenset({index}),
                    projects=frozenset({project}),
                )
                target = Target(
                    index=index, project=project, exists=True, owner=(index, project) in owned
                )
                action: Action = "upload" if scope == "upload" else "manage"
                answer = authorize(Credentials("token", probe), target, action)
                if isinstance(answer, Denied):
                    return _refuse(
                        "owner",
                        403,
                        f"signed in with a password, a token covers only projects you own: "
                        f"{answer.message}",
                    )
    return Grant(scopes, indexes, frozenset(projects), int(days))
