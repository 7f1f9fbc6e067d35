"""Who may do what: users, API tokens, project owners, PEP 752 namespace grants.

The methods here are part of :class:`headwater.db.Database` (this is its access-control half).

Tokens look like ``hw_<id>_<secret>``: the ``hw_`` prefix lets secret scanners find leaked ones,
``<id>`` (16 hex digits) names the token in listings and revocations, and ``<secret>`` is 256
random bits. The token is shown once, by :meth:`AccessControl.create_token`; the database keeps
only its sha256. A salted slow hash (bcrypt, argon2) protects low-entropy passwords from
guessing; a 256-bit random secret cannot be guessed, so a plain sha256 is as strong and costs
microseconds on every upload.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row

from headwater.db import schema as t
from headwater.db._checks import (
    check_index,
    check_line,
    check_user_name,
    name_of,
    now,
    require_project,
    require_user,
)
from headwater.db.engine import reading, writing
from headwater.db.errors import Conflict, InvalidArgument, NotFound
from headwater.db.records import SCOPES, NamespaceGrant, TokenInfo, User
from headwater.simple.names import NormalizedName

__all__ = ["TOKEN_PREFIX", "AccessControl", "parse_token"]

TOKEN_PREFIX = "hw_"  # noqa: S105 - a prefix, not a secret
_TOKEN = re.compile(r"^hw_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")


def parse_token(token: str) -> str | None:
    """The id of a well-formed token string, or None."""
    match = _TOKEN.match(token) if isinstance(token, str) else None
    return match.group(1) if match else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _token_info(row: Row[Any]) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        user=row.user,
        scopes=frozenset(row.scopes),
        indexes=None if row.indexes is None else frozenset(row.indexes),
        projects=None if row.projects is None else frozenset(row.projects),
        description=row.description,
        created=row.created,
        expires=row.expires,
        revoked=row.revoked,
    )


def _grant(row: Row[Any]) -> NamespaceGrant:
    return NamespaceGrant(
        index=row._mapping["index"],
        name=row.name,
        owner=row.owner,
        open=bool(row.open),
        created=row.created,
    )


def _prefixes(name: NormalizedName) -> list[str]:
    """``name`` and every shorter name at a ``-`` boundary: the namespaces that could cover it."""
    parts = name.split("-")
    return ["-".join(parts[:i]) for i in range(1, len(parts) + 1)]


class AccessControl:
    """Users, tokens, owners and namespaces (mixed into :class:`headwater.db.Database`)."""

    _engine: Engine

    def _authenticate_minted(self, token_id: str, token: str) -> TokenInfo | None:
        return None  # headwater.db.minting.Minting answers, in the Database

    # --- users -----------------------------------------------------------------------------

    def create_user(self, name: str) -> User:
        """Create the user ``name``.

        Raises:
            InvalidArgument: the name is not 1-100 of ``A-Za-z0-9._-`` with alnum at both ends.
            Conflict: the user exists.
        """
        check_user_name(name)
        with writing(self._engine) as conn:
            if conn.execute(sa.select(t.users.c.name).where(t.users.c.name == name)).first():
                raise Conflict(f"the user {name!r} exists already")
            created = now()
            conn.execute(sa.insert(t.users).values(name=name, created=created))
        return User(name=name, created=created)

    def users(self) -> list[User]:
        """Every user, by name."""
        with reading(self._engine) as conn:
            rows = conn.execute(sa.select(t.users).order_by(t.users.c.name)).all()
        return [
            User(name=row.name, created=row.created, password=row.password_hash is not None)
            for row in rows
        ]

    # --- tokens ----------------------------------------------------------------------------

    def create_token(
        self,
        user: str,
        *,
        indexes: Iterable[str] | None = None,
        projects: Iterable[str] | None = None,
        scopes: Iterable[str] = frozenset({"upload"}),
        description: str = "",
        expires: datetime | None = None,
        create_user: bool = False,
    ) -> tuple[str, str]:
        """A new token for ``user``: (token id, the token itself). Show the token once; it is not
        stored. ``indexes``/``projects`` None means all; projects are normalized.
        ``create_user``: a missing user is created in the same transaction as the token, so a
        refused token leaves no user behind.

        Raises:
            InvalidArgument: an unknown scope, no scope, an invalid index or project name, a naive
                or past ``expires``, the ``admin`` scope with a project limit (admin is
                index-wide).
            NotFound: no such user (and not ``create_user``).
        """
        if create_user:
            check_user_name(user)
        check_line(description, "description", limit=1000)
        scope_set = frozenset(scopes)
        if not scope_set or not scope_set <= SCOPES:
            raise InvalidArgument(
                f"invalid token scopes {sorted(scope_set)!r}: use one or more of {sorted(SCOPES)}"
            )
        index_list = None if indexes is None else sorted({check_index(i) for i in indexes})
        project_list = None if projects is None else sorted({name_of(p) for p in projects})
        if project_list is not None and "admin" in scope_set:
            # An admin's changes (tracks, any project, namespaces) are index-wide: a project limit
            # on them would either be ignored or mean nothing. The server still treats such tokens
            # from older versions as limited (headwater.server.authz).
            example = project_list[0] if project_list else "NAME"
            raise InvalidArgument(
                "a token limited to projects cannot have the admin scope: admin changes (tracks, "
                "every project, namespaces) are index-wide. Use --scope manage (with --scope "
                f"upload, --scope read as needed) and --project {example}, or an admin token "
                "without --project"
            )
        if expires is not None and (expires.tzinfo is None or expires <= now()):
            raise InvalidArgument("a token's expiry must be an aware datetime in the future")
        token_id = secrets.token_hex(8)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        with writing(self._engine) as conn:
            if (
                create_user
                and not conn.execute(
                    sa.select(t.users.c.name).where(t.users.c.name == user)
                ).first()
            ):
                conn.execute(sa.insert(t.users).values(name=user, created=now()))
            require_user(conn, user)
            conn.execute(
                sa.insert(t.tokens).values(
                    id=token_id,
                    user=user,
                    secret_sha256=_digest(token),
                    scopes=sorted(scope_set),
                    indexes=index_list,
                    projects=project_list,
                    description=description,
                    created=now(),
                    expires=expires,
                    revoked=None,
                )
            )
        return token_id, token

    def create_first_admin(self, user: str = "admin", *, description: str = "") -> str | None:
        """On a database without users: create ``user`` with a token of the ``admin`` scope and
        return the token (show it once). None when any user exists.

        The look and the creation are one write transaction, so of several servers starting
        on one new database at the same moment (a scale-out deployment's machines) exactly one
        creates the admin and the others start normally.
        """
        check_user_name(user)
        check_line(description, "description", limit=1000)
        token_id = secrets.token_hex(8)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        with writing(self._engine) as conn:
            if conn.execute(sa.select(t.users.c.name).limit(1)).first() is not None:
                return None
            created = now()
            conn.execute(sa.insert(t.users).values(name=user, created=created))
            conn.execute(
                sa.insert(t.tokens).values(
                    id=token_id,
                    user=user,
                    secret_sha256=_digest(token),
                    scopes=["admin"],
                    indexes=None,
                    projects=None,
                    description=description,
                    created=created,
                    expires=None,
                    revoked=None,
                )
            )
        return token

    def authenticate(self, token: str) -> TokenInfo | None:
        """The token's info if ``token`` is a valid, unrevoked, unexpired token, else None."""
        token_id = parse_token(token)
        if token_id is None:
            return None
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(t.tokens).where(t.tokens.c.id == token_id)).first()
        if row is None:
            # Tokens minted for trusted publishers live in their own table (db.minting).
            minted: TokenInfo | None = self._authenticate_minted(token_id, token)
            return minted
        # Constant-time comparison, so response times do not reveal how much of a guess matched.
        if not hmac.compare_digest(row.secret_sha256, _digest(token)):
            return None
        if row.revoked is not None or (row.expires is not None and row.expires <= now()):
            return None
        return _token_info(row)

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; False if it was revoked already.

        Raises:
            NotFound: no such token.
        """
        with writing(self._engine) as conn:
            row = conn.execute(
                sa.select(t.tokens.c.revoked).where(t.tokens.c.id == token_id)
            ).first()
            if row is None:
                raise NotFound(f"no token {token_id!r} (see `headwater token list`)")
            if row.revoked is not None:
                return False
            conn.execute(sa.update(t.tokens).where(t.tokens.c.id == token_id).values(revoked=now()))
        return True

    def tokens(self, user: str | None = None) -> list[TokenInfo]:
        """Tokens (of ``user``, or all), oldest first; never their secrets."""
        query = sa.select(t.tokens).order_by(t.tokens.c.created, t.tokens.c.id)
        if user is not None:
            query = query.where(t.tokens.c.user == user)
        with reading(self._engine) as conn:
            return [_token_info(row) for row in conn.execute(query).all()]

    # --- owners ----------------------------------------------------------------------------

    def owners(self, index: str, name: str) -> list[str]:
        """The owners of a project, by name ([] if there is no such project)."""
        project = name_of(name)
        with reading(self._engine) as conn:
            rows = conn.execute(
                sa.select(t.owners.c.user)
                .join(t.projects, t.projects.c.id == t.owners.c.project_id)
                .where(t.projects.c.index == index, t.projects.c.name == project)
                .order_by(t.owners.c.user)
            ).all()
        return [row.user for row in rows]

    def owned_projects(self, user: str, *, limit: int = 200) -> list[tuple[str, str]]:
        """The (index, project) pairs ``user`` owns, by index and name (at most ``limit``)."""
        with reading(self._engine) as conn:
            rows = conn.execute(
                sa.select(t.projects.c.index, t.projects.c.name)
                .join(t.owners, t.owners.c.project_id == t.projects.c.id)
                .where(t.owners.c.user == user)
                .order_by(t.projects.c.index, t.projects.c.name)
                .limit(limit)
            ).all()
        return [(str(row[0]), str(row[1])) for row in rows]

    def ownership(self, index: str, name: str) -> list[str] | None:
        """The owners of a project, by name, or None when the index holds no such name (so a
        first upload may create it). A project with no owner left gives []: nobody but an
        admin may upload to it."""
        project = name_of(name)
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(t.projects.c.id).where(
                    t.projects.c.index == index, t.projects.c.name == project
                )
            ).first()
            if row is None:
                return None
            rows = conn.execute(
                sa.select(t.owners.c.user)
                .where(t.owners.c.project_id == row.id)
                .order_by(t.owners.c.user)
            ).all()
        return [r.user for r in rows]

    def add_owner(self, index: str, name: str, user: str) -> bool:
        """Make ``user`` an owner of the project; False if it was one already.

        Raises:
            NotFound: no such project or user.
        """
        with writing(self._engine) as conn:
            row = require_project(conn, index, name_of(name))
            require_user(conn, user)
            exists = conn.execute(
                sa.select(t.owners.c.user).where(
                    t.owners.c.project_id == row.id, t.owners.c.user == user
                )
            ).first()
            if exists:
                return False
            conn.execute(sa.insert(t.owners).values(project_id=row.id, user=user))
        return True

    def remove_owner(self, index: str, name: str, user: str) -> bool:
        """Remove ``user`` from the project's owners; False if it was not one.

        Raises:
            NotFound: no such project.
        """
        with writing(self._engine) as conn:
            row = require_project(conn, index, name_of(name))
            result = conn.execute(
                sa.delete(t.owners).where(t.owners.c.project_id == row.id, t.owners.c.user == user)
            )
        return bool(result.rowcount)

    # --- namespaces (PEP 752) --------------------------------------------------------------

    def grant_namespace(
        self, index: str, namespace: str, owner: str, *, open: bool = False
    ) -> NamespaceGrant:
        """Grant ``namespace`` (normalized) of ``index`` to ``owner``.

        PEP 752: a grant covers the namespace and every ``<namespace>-*`` name, and "grants MUST
        NOT overlap" within a repository.

        Raises:
            Conflict: the namespace is granted, inside a granted one, or contains a granted one.
            NotFound: no such user.
        """
        check_index(index)
        ns = name_of(namespace)
        with writing(self._engine) as conn:
            require_user(conn, owner)
            overlapping = conn.execute(
                sa.select(t.namespaces).where(
                    t.namespaces.c.index == index,
                    sa.or_(
                        t.namespaces.c.name.in_(_prefixes(ns)),
                        # Normalized names hold only [a-z0-9-]: no LIKE wildcards to escape.
                        t.namespaces.c.name.like(ns + "-%"),
                    ),
                )
            ).first()
            if overlapping is not None:
                raise Conflict(
                    f"the namespace {ns!r} overlaps {overlapping.name!r}, granted to "
                    f"{overlapping.owner!r} in index {index!r}: PEP 752 grants must not overlap; "
                    "revoke that grant first"
                )
            created = now()
            conn.execute(
                sa.insert(t.namespaces).values(
                    index=index, name=ns, owner=owner, open=open, created=created
                )
            )
        return NamespaceGrant(index=index, name=ns, owner=owner, open=open, created=created)

    def revoke_namespace(self, index: str, namespace: str) -> bool:
        """Revoke a namespace grant; False if there was none."""
        ns = name_of(namespace)
        with writing(self._engine) as conn:
            result = conn.execute(
                sa.delete(t.namespaces).where(
                    t.namespaces.c.index == index, t.namespaces.c.name == ns
                )
            )
        return bool(result.rowcount)

    def namespaces(self, index: str) -> list[NamespaceGrant]:
        """The namespace grants of ``index``, by name."""
        with reading(self._engine) as conn:
            rows = conn.execute(
                sa.select(t.namespaces)
                .where(t.namespaces.c.index == index)
                .order_by(t.namespaces.c.name)
            ).all()
        return [_grant(row) for row in rows]

    def namespace_covering(self, index: str, name: str) -> NamespaceGrant | None:
        """The grant whose namespace covers project ``name`` (PEP 752), or None.

        The caller decides what it means: refuse (409) a new project by a user who is neither the
        grantee nor an admin unless the grant is ``open``; let projects that existed before the
        grant's ``created`` time be (PEP 752: they SHOULD be exempt).
        """
        project = name_of(name)
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(t.namespaces)
                .where(t.namespaces.c.index == index, t.namespaces.c.name.in_(_prefixes(project)))
                .order_by(sa.func.length(t.namespaces.c.name).desc())
            ).first()
        return None if row is None else _grant(row)
