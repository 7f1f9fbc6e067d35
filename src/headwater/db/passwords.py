"""Users' interface passwords: their Argon2id hashes, password sessions, failed sign-in counters.

The methods here are part of :class:`headwater.db.Database`.

**Hashing.** A password is stored as an Argon2id hash (argon2-cffi, the maintained binding of the
reference implementation; RFC 9106) in PHC form: ``$argon2id$v=19$m=65536,t=3,p=4$salt$hash``, so
the parameters travel with each hash. :data:`PARAMETERS` is RFC 9106's second recommended
option (the "low memory" profile): 3 passes over 64 MiB with 4 lanes, a 16-byte random salt, a
32-byte hash (about 0.1-0.2 s on one core). A sign-in whose stored hash was made with other
parameters stores a new hash made with these (:meth:`Passwords.password_sign_in`), so raising
them takes effect as users sign in. Never the password itself, nor anything from which it could
be checked faster than by Argon2id, is stored or logged.

**Rules.** :data:`MIN_LENGTH` to :data:`MAX_LENGTH` characters, no other composition rule
(NIST SP 800-63B: length, not character classes; 15 for a password that is the only factor).

**Sessions.** A correct password gives an interface session: a row of ``ui_sessions`` whose
secret (``hws_<id>_<256 random bits>``) the browser keeps in the session cookie and the database
keeps only as a sha256 (as for tokens). Its rights are :data:`SESSION_SCOPES` on every index
(:class:`~headwater.db.TokenInfo` with ``session=True``); it is not a token: the API, uploads
and the Simple API never accept it (:meth:`~headwater.db.access.AccessControl.authenticate`
does not know its form). Setting or clearing a user's password ends all their sessions; signing
out ends one.

**Counting failures.** :mod:`headwater.db.throttle` decides; the counters are rows of
``sign_in_throttle``, read and written in one write transaction before the (slow) check, so every
node of a deployment counts the same attempts.

**Quiet writes.** A sign-in's writes (its counters, the new session, a rehash) are quiet
(:func:`headwater.db.engine.writing`): no cache is made from those rows, so they do not move the
change signal, and a flood of wrong passwords does not make the servers drop their cached pages.
Ending sessions (signing out, setting or clearing a password) is loud: every node's cached
credentials must forget them at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy.engine import Connection, Engine

from headwater.db import schema as t
from headwater.db import throttle
from headwater.db._checks import now, require_user
from headwater.db.engine import reading, writing
from headwater.db.errors import InvalidArgument
from headwater.db.records import TokenInfo

__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "PARAMETERS",
    "SESSION_PREFIX",
    "SESSION_SCOPES",
    "SESSION_SECONDS",
    "Passwords",
    "SignIn",
    "check_new_password",
    "is_session_secret",
]

MIN_LENGTH = 15
MAX_LENGTH = 256
#: RFC 9106's second recommended option: Argon2id, t=3, m=64 MiB, p=4, 16-byte salt, 32-byte hash.
PARAMETERS = RFC_9106_LOW_MEMORY
#: What a password session may do (authz scopes): change the projects its user owns (yank,
#: status, owners, trusted publishers), see and revoke the user's own tokens, and create tokens
#: for projects its user owns with the password typed again (headwater.server.session_grants);
#: never read a private index, upload or administer.
SESSION_SCOPES = frozenset({"manage"})
SESSION_SECONDS = 12 * 3600
SESSION_PREFIX = "hws_"
_SESSION = re.compile(r"^hws_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")
#: At most this many hashes at once per process (each takes 64 MiB while it runs).
_CONCURRENT_HASHES = 2
_hashing = threading.BoundedSemaphore(_CONCURRENT_HASHES)
_hasher = PasswordHasher.from_parameters(PARAMETERS)
_dummy: list[str] = []


def is_session_secret(value: str) -> bool:
    """Whether ``value`` has the form of a password session's secret."""
    return _SESSION.match(value) is not None


def check_new_password(password: object) -> str:
    """``password`` if it may be a password.

    Raises:
        InvalidArgument: not a string of :data:`MIN_LENGTH` to :data:`MAX_LENGTH` characters.
    """
    if not isinstance(password, str) or not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidArgument(
            f"a password must be {MIN_LENGTH} to {MAX_LENGTH} characters long; a few words "
            "that belong together only for you make a long one that is easy to type"
        )
    if "\x00" in password:
        raise InvalidArgument("a password cannot hold a NUL character")
    return password


def _hash(password: str, hasher: PasswordHasher | None = None) -> str:
    with _hashing:
        return (hasher or _hasher).hash(password)


def _matches(stored: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from. With nothing stored, a hash of
    the same cost is checked anyway: the time taken does not tell whether the user exists."""
    if stored is None:
        if not _dummy:
            _dummy.append(_hash(secrets.token_urlsafe(16)))
        stored, password = _dummy[0], password + "\x00"  # never matches (NUL is refused)
    try:
        with _hashing:
            return _hasher.verify(stored, password)  # constant time in the hash comparison
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class SignIn:
    """What a password sign-in came to.

    ``ok``: ``secret`` is the new session's (for the cookie). ``wrong``: the user name or the
    password is wrong, or the user has no password (one answer for all three). ``locked``: too
    many failures for this user name or from this address; refused unchecked until ``until``.
    """

    outcome: Literal["ok", "wrong", "locked"]
    secret: str | None = None
    until: datetime | None = None
    #: The stored hash was made with other parameters and was replaced (``ok`` only).
    rehashed: bool = False


def _counter(conn: Connection, key: str) -> throttle.Counter | None:
    row = conn.execute(sa.select(t.sign_in_throttle).where(t.sign_in_throttle.c.key == key)).first()
    if row is None:
        return None
    return throttle.Counter(failures=row.failures, since=row.since, locked_until=row.locked_until)


def _store(
    conn: Connection, key: str, kind: throttle.Kind, counter: throttle.Counter | None
) -> None:
    table = t.sign_in_throttle
    conn.execute(sa.delete(table).where(table.c.key == key))
    if counter is not None:
        conn.execute(
            sa.insert(table).values(
                key=key,
                kind=kind,
                failures=counter.failures,
                since=counter.since,
                locked_until=counter.locked_until,
            )
        )


_LIMITS: dict[throttle.Kind, throttle.Limit] = {
    "user": throttle.USER_LIMIT,
    "address": throttle.ADDRESS_LIMIT,
}


class Passwords:
    """Passwords, password sessions and sign-in counters (mixed into :class:`Database`)."""

    _engine: Engine

    # --- setting -------------------------------------------------------------------------------

    def set_password(self, user: str, password: str) -> None:
        """Give ``user`` the password ``password`` (replacing any); ends the user's sessions.

        Raises:
            InvalidArgument: the password is too short, too long or holds a NUL.
            NotFound: no such user.
        """
        hashed = _hash(check_new_password(password))  # outside the transaction: it is slow
        with writing(self._engine) as conn:
            require_user(conn, user)
            conn.execute(
                sa.update(t.users)
                .where(t.users.c.name == user)
                .values(password_hash=hashed, password_changed=now())
            )
            conn.execute(sa.delete(t.ui_sessions).where(t.ui_sessions.c.user == user))

    def clear_password(self, user: str) -> bool:
        """Remove ``user``'s password and end their sessions; False when they had none.

        Raises:
            NotFound: no such user.
        """
        with writing(self._engine) as conn:
            require_user(conn, user)
            had = conn.execute(
                sa.select(t.users.c.password_hash).where(t.users.c.name == user)
            ).scalar_one()
            conn.execute(
                sa.update(t.users)
                .where(t.users.c.name == user)
                .values(password_hash=None, password_changed=now())
            )
            conn.execute(sa.delete(t.ui_sessions).where(t.ui_sessions.c.user == user))
        return had is not None

    def has_password(self, user: str) -> bool:
        """Whether ``user`` exists and has a password."""
        with reading(self._engine) as conn:
            stored = conn.execute(
                sa.select(t.users.c.password_hash).where(t.users.c.name == user)
            ).scalar()
        return stored is not None

    def check_password(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s (False for a missing user or one without a
        password, in the same time). Counts nothing (an operator's check); the interface asks
        :meth:`password_sign_in`, which counts every attempt."""
        with reading(self._engine) as conn:
            stored = conn.execute(
                sa.select(t.users.c.password_hash).where(t.users.c.name == user)
            ).scalar()
        return _matches(stored, password) if isinstance(password, str) else False

    # --- signing in ----------------------------------------------------------------------------

    def password_sign_in(
        self,
        user: str,
        password: str,
        address: str,
        *,
        scopes: frozenset[str] = SESSION_SCOPES,
        start_session: bool = True,
    ) -> SignIn:
        """Check ``password`` for ``user`` from client ``address``, counting the attempt
        (:mod:`headwater.db.throttle`); on success, start a session (its secret is shown once)
        unless ``start_session`` is false (confirming the current password before a change,
        counted like a sign-in: a stolen session must not be a way to guess the password)."""
        keys: dict[throttle.Kind, str] = {
            "user": throttle.counter_key("user", user[:200]),
            "address": throttle.counter_key("address", throttle.address_key(address)),
        }
        with writing(self._engine, quiet=True) as conn:
            at = now()
            counters = {kind: _counter(conn, key) for kind, key in keys.items()}
            until = max(
                (u for c in counters.values() if (u := throttle.locked(c, at)) is not None),
                default=None,
            )
            if until is not None:
                return SignIn("locked", until=until)
            for kind, key in keys.items():
                counted = throttle.after_attempt(counters[kind], _LIMITS[kind], at)
                _store(conn, key, kind, counted)
            # Rows nobody will look at again (their window and lock are over): a guesser typing
            # new names cannot grow the table without bound.
            oldest = at - max(limit.window + limit.lockout for limit in _LIMITS.values())
            conn.execute(
                sa.delete(t.sign_in_throttle).where(
                    t.sign_in_throttle.c.since < oldest,
                    sa.or_(
                        t.sign_in_throttle.c.locked_until.is_(None),
                        t.sign_in_throttle.c.locked_until < at,
                    ),
                )
            )
            stored = conn.execute(
                sa.select(t.users.c.password_hash).where(t.users.c.name == user)
            ).scalar()
        # The slow check holds no transaction (and so no write lock).
        if not _matches(stored, password):
            return SignIn("wrong")
        assert stored is not None
        rehashed = None
        if _hasher.check_needs_rehash(stored):
            rehashed = _hash(password)
        session_id = secrets.token_hex(8)
        secret = f"{SESSION_PREFIX}{session_id}_{secrets.token_urlsafe(32)}"
        with writing(self._engine, quiet=True) as conn:
            at = now()
            for kind, key in keys.items():
                _store(
                    conn,
                    key,
                    kind,
                    throttle.after_success(_counter(conn, key), kind, _LIMITS[kind]),
                )
            current = conn.execute(
                sa.select(t.users.c.password_hash).where(t.users.c.name == user)
            ).scalar()
            if current != stored:
                # Changed or cleared while this was being checked: the old password is no more.
                return SignIn("wrong")
            if rehashed is not None:
                conn.execute(
                    sa.update(t.users).where(t.users.c.name == user).values(password_hash=rehashed)
                )
            if not start_session:
                return SignIn("ok", rehashed=rehashed is not None)
            conn.execute(sa.delete(t.ui_sessions).where(t.ui_sessions.c.expires <= at))
            conn.execute(
                sa.insert(t.ui_sessions).values(
                    id=session_id,
                    user=user,
                    secret_sha256=_digest(secret),
                    scopes=sorted(scopes),
                    created=at,
                    expires=at + timedelta(seconds=SESSION_SECONDS),
                )
            )
        return SignIn("ok", secret=secret, rehashed=rehashed is not None)

    def authenticate_session(self, secret: str) -> TokenInfo | None:
        """The session's rights (a :class:`TokenInfo` with ``session=True``) if ``secret`` is a
        live password session's, else None."""
        match = _SESSION.match(secret) if isinstance(secret, str) else None
        if match is None:
            return None
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(t.ui_sessions).where(t.ui_sessions.c.id == match.group(1))
            ).first()
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return None
        if row.expires <= now():
            return None
        return _session_info(row)

    def end_session(self, secret: str) -> bool:
        """End the password session ``secret`` (signing out); False when there was none."""
        match = _SESSION.match(secret) if isinstance(secret, str) else None
        if match is None:
            return False
        with writing(self._engine) as conn:
            result = conn.execute(
                sa.delete(t.ui_sessions).where(
                    t.ui_sessions.c.id == match.group(1),
                    t.ui_sessions.c.secret_sha256 == _digest(secret),
                )
            )
        return bool(result.rowcount)

    def sessions(self, user: str) -> list[TokenInfo]:
        """The live password sessions of ``user``, oldest first (never their secrets)."""
        with reading(self._engine) as conn:
            rows = conn.execute(
                sa.select(t.ui_sessions)
                .where(t.ui_sessions.c.user == user, t.ui_sessions.c.expires > now())
                .order_by(t.ui_sessions.c.created)
            ).all()
        return [_session_info(row) for row in rows]


def _session_info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        user=row.user,
        scopes=frozenset(row.scopes),
        indexes=None,
        projects=None,
        description="password session",
        created=row.created,
        expires=row.expires,
        revoked=None,
        session=True,
    )
