"""Operator commands over the database of hosted indexes: ``db``, ``user``, ``token``,
``project``, ``publisher``, ``namespace`` and ``audit``.

They act on the database (and a hosted index's storage, for deletions) directly, with the same
``--config`` / ``--data-dir`` / ``--database`` as ``headwater serve``; the HTTP management API
(``/api/...``) does the same things for token holders.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from headwater.cli.arguments import SQL_INT_MAX, bounded_int
from headwater.config.settings import ServePlan
from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.db import Database

# The database layer (SQLAlchemy) and the server are imported inside the commands: building the
# parser for every `headwater` command must not pay for them (``headwater mirror`` does not need
# them; they cost ~0.3 s and ~15 MB).
#: Token scopes, as :data:`headwater.db.SCOPES` has them (a test keeps the two equal).
SCOPES = ("admin", "manage", "read", "upload")

__all__ = ["register"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="configuration file (default: $HEADWATER_CONFIG, ./headwater.toml)"
    )
    parser.add_argument(
        "--data-dir", help="the server's data directory (holds the SQLite database)"
    )
    parser.add_argument("--database", help="database URL (sqlite:///PATH or postgresql://...)")


def _plan(args: argparse.Namespace) -> ServePlan:
    from headwater.assembly.plan import plan_from_flags

    return plan_from_flags(
        args.config, overrides={"data_dir": args.data_dir, "database": args.database}
    )


def _connect(plan: ServePlan, *, create: bool = True) -> Database:
    """The plan's database; for SQLite, its directory is made first (a new data directory).
    ``create=False`` (commands that only read or check): an embedded database that does not
    exist yet is refused by name, and nothing is made."""
    from pathlib import Path

    from headwater.assembly import database_url
    from headwater.db import Database

    url = database_url(plan)
    if not create:
        return Database.connect(url, create=False)
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if not folder.exists():  # a new data directory: private, as the server makes it
            from headwater.storage.filesystem import private_directory

            try:
                private_directory(folder)
            except OSError as exc:
                raise HeadwaterError(
                    f"cannot make the database's directory {folder}: {exc.strerror or exc}; "
                    "give a directory you can write (--data-dir) or a database URL (--database)"
                ) from exc
    return Database.connect(url)


def _database(
    args: argparse.Namespace, *, upgrade: bool = True, create: bool = True
) -> tuple[ServePlan, Database]:
    plan = _plan(args)
    db = _connect(plan, create=create)
    if upgrade and db.url.startswith("sqlite:"):
        db.upgrade()  # the embedded database is created on first use
    else:
        db.check_schema()
    return plan, db


def _command(
    subparsers: Any, name: str, help_text: str, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text
    )
    _common(parser)
    parser.set_defaults(run=run)
    return parser


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


# -- db ----------------------------------------------------------------------------------------


def _db_upgrade(args: argparse.Namespace) -> int:
    db = _connect(_plan(args))
    before, after = db.upgrade()
    print(f"database {db.url}: revision {before or '(empty)'} -> {after}")
    return 0


def _db_check(args: argparse.Namespace) -> int:
    db = _connect(_plan(args), create=False)
    db.check_schema()
    print(f"database {db.url}: schema is current")
    return 0


# -- users and tokens --------------------------------------------------------------------------


def _user_create(args: argparse.Namespace) -> int:
    _, db = _database(args)
    user = db.create_user(args.name)
    print(f"user {user.name} created")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    _, db = _database(args, create=False)
    for user in db.users():
        print(f"{user.name}{'  (password)' if user.password else ''}")
    return 0


def _read_password(user: str) -> str:
    """The new password: asked twice at a terminal (never echoed), else the first line of
    standard input (a script: ``printf '%s\n' "$PW" | headwater user password NAME``). Never
    from the command line, where other users of the machine see it in the process list."""
    import getpass

    if sys.stdin.isatty():
        first = getpass.getpass(f"new password for {user}: ")
        if getpass.getpass("again: ") != first:
            raise SystemExit("headwater: the two passwords differ; nothing was changed")
        return first
    raw = sys.stdin.buffer.readline()
    if not raw:
        raise HeadwaterError(
            "no password on standard input (it is empty): give the password as its first line, "
            "or run the command at a terminal to be asked; nothing was changed"
        )
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HeadwaterError(
            "the password on standard input is not UTF-8 text; give it as UTF-8; nothing was "
            "changed"
        ) from None
    return line[:-1] if line.endswith("\n") else line


def _user_password(args: argparse.Namespace) -> int:
    _, db = _database(args)
    if args.clear:
        had = db.clear_password(args.name)
        print(
            f"password of {args.name} cleared; their password sessions have ended"
            if had
            else f"{args.name} had no password; their password sessions have ended"
        )
        return 0
    db.set_password(args.name, _read_password(args.name))
    print(f"password of {args.name} set; their earlier password sessions have ended")
    return 0


def _token_create(args: argparse.Namespace) -> int:
    _, db = _database(args)
    new_user = args.user not in {u.name for u in db.users()}
    expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
    # The user (when new) and the token in one transaction: a refused token leaves no user.
    token_id, token = db.create_token(
        args.user,
        indexes=args.index or None,
        projects=args.project or None,
        scopes=set(args.scope or ["upload"]),
        description=args.description,
        expires=expires,
        create_user=True,
    )
    if new_user:
        print(f"headwater: created user {args.user}", file=sys.stderr)
    print(f"headwater: token {token_id} for {args.user}; it is shown only now", file=sys.stderr)
    print(token)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    _, db = _database(args, create=False)
    _print_json(db.tokens(args.user))
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    _, db = _database(args)
    if not db.revoke_token(args.id):
        print(f"headwater: no active token {args.id}", file=sys.stderr)
        return 1
    print(f"token {args.id} revoked")
    return 0


# -- projects ----------------------------------------------------------------------------------


def _delete_blobs(plan: ServePlan, index: str, keys: list[str]) -> None:
    from headwater.assembly import hosted_storage
    from headwater.storage.open import aclose_storage

    storage = hosted_storage(plan, index)

    async def go() -> None:
        try:
            for key in keys:
                for each in (key, key + ".metadata"):
                    await storage.delete(each)  # False when absent: fine
        finally:
            await aclose_storage(storage)

    asyncio.run(go())


def _project(args: argparse.Namespace) -> int:
    plan, db = _database(args)
    index, name, actor = args.index, args.project, "cli"
    action = args.action
    if action == "show":
        record = db.project(index, name)
        if record is None:
            print(f"headwater: no project {name!r} in {index!r}", file=sys.stderr)
            return 1
        _print_json({"project": record, "owners": db.owners(index, name)})
        return 0
    if action in ("yank", "unyank"):
        if not (args.file or args.version):
            from headwater.db import DatabaseError

            raise DatabaseError(f"{action}: give --file FILENAME or --version VERSION")
        if action == "yank":
            changed = db.yank(
                index,
                name,
                filename=args.file,
                version=args.version,
                reason=args.reason,
                actor=actor,
            )
        else:
            changed = db.unyank(index, name, filename=args.file, version=args.version, actor=actor)
        print(f"{action}: {', '.join(changed) or 'nothing changed'}")
        return 0
    if action == "delete":
        if args.file:
            keys = db.delete_file(index, name, args.file, actor=actor)
        elif args.version:
            keys = db.delete_release(index, name, args.version, actor=actor)
        else:
            keys = db.delete_project(index, name, actor=actor)
        _delete_blobs(plan, index, keys)
        print(f"deleted; {len(keys)} file(s) removed from storage")
        return 0
    if action == "status":
        db.set_status(index, name, args.value[0] if args.value else "", args.reason, actor=actor)
        print(f"{index}/{name}: status {args.value[0] if args.value else ''}")
        return 0
    if action == "alternate-locations":
        db.set_alternate_locations(index, name, args.value, actor=actor)
    elif action == "tracks":
        db.set_tracks(index, name, args.value, actor=actor)
    elif action == "owner-add":
        for user in args.value:
            db.add_owner(index, name, user)
    elif action == "owner-remove":
        for user in args.value:
            db.remove_owner(index, name, user)
    print(f"{index}/{name}: {action} done")
    return 0


def _namespace(args: argparse.Namespace) -> int:
    _, db = _database(args)
    if args.action == "list":
        _print_json(db.namespaces(args.index))
    elif args.action == "grant":
        if not args.owner:
            from headwater.db import DatabaseError

            raise DatabaseError("namespace grant: give --owner USER")
        grant = db.grant_namespace(args.index, args.namespace, args.owner, open=args.open)
        print(f"namespace {grant.name} of {grant.index} granted to {grant.owner}")
    elif args.action == "revoke":
        if not db.revoke_namespace(args.index, args.namespace):
            print(f"headwater: no namespace {args.namespace} in {args.index}", file=sys.stderr)
            return 1
        print(f"namespace {args.namespace} revoked")
    return 0


# -- trusted publishers ------------------------------------------------------------------------


def _identity(args: argparse.Namespace) -> Any:
    """The identity the ``publisher add`` flags describe."""
    from headwater.db import DatabaseError, GitHubIdentity, GitLabIdentity, OidcIdentity

    kinds = [k for k in ("github", "gitlab", "oidc_issuer") if getattr(args, k)]
    if len(kinds) != 1:
        raise DatabaseError(
            "publisher add: give exactly one of --github OWNER/REPO, --gitlab GROUP/PROJECT or "
            "--oidc-issuer URL (with --claim NAME=VALUE)"
        )
    issuer = {"issuer": args.issuer} if args.issuer else {}
    if args.github:
        if not args.workflow:
            raise DatabaseError("publisher add --github: give --workflow FILE (e.g. release.yml)")
        return GitHubIdentity(
            repository=args.github,
            workflow=args.workflow,
            environment=args.environment,
            ref=args.ref,
            repository_id=args.repository_id,
            repository_owner_id=args.repository_owner_id,
            **issuer,
        )
    if args.gitlab:
        return GitLabIdentity(
            project_path=args.gitlab,
            workflow=args.workflow,
            environment=args.environment,
            ref=args.ref,
            project_id=args.project_id,
            **issuer,
        )
    claims: dict[str, str] = {}
    for item in args.claim or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise DatabaseError(f"--claim {item!r}: write NAME=VALUE")
        claims[name] = value
    return OidcIdentity(issuer=args.oidc_issuer, claims=claims)


def _publisher(args: argparse.Namespace) -> int:
    plan, db = _database(args)
    if args.action == "add":
        from headwater.db import DatabaseError

        if not args.project:
            raise DatabaseError("publisher add: give INDEX PROJECT")
        if args.index not in plan.hosted:
            raise DatabaseError(
                f"no hosted index {args.index!r} in the configuration (hosted indexes: "
                f"{', '.join(sorted(plan.hosted)) or 'none'}): add [hosted.{args.index}] first"
            )
        added = db.add_publisher(
            args.index,
            args.project,
            _identity(args),
            pending=args.pending,
            owner=args.owner,
            origin="cli",
            added_by="cli",
        )
        print(
            f"publisher {added.id} ({added.status}): {added.identity.describe()} may publish "
            f"{added.index}/{added.project}"
        )
    elif args.action == "list":
        _print_json(db.publishers(args.index, args.project))
    elif args.action == "remove":
        if args.id is None:
            from headwater.db import DatabaseError

            raise DatabaseError("publisher remove: give --id ID (see `headwater publisher list`)")
        removed = db.remove_publisher(args.id, index=args.index)
        print(f"publisher {removed.id} removed: {removed.identity.describe()}")
    elif args.action == "log":
        try:
            since = datetime.fromisoformat(args.since) if args.since else None
        except ValueError:
            from headwater.db import DatabaseError

            raise DatabaseError(
                f"--since {args.since!r} is not an ISO 8601 time (e.g. 2026-12-01T12:00:00Z)"
            ) from None
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        _print_json(
            db.publishing_log(index=args.index, project=args.project, since=since, limit=args.limit)
        )
    return 0


# -- the administration audit log ------------------------------------------------------------


def _audit(args: argparse.Namespace) -> int:
    from headwater.db.audit import admin_actions

    _, db = _database(args, create=False)
    entries = admin_actions(db.engine, limit=args.limit, index=args.index)
    if args.json:
        _print_json(entries)
        return 0
    for e in reversed(entries):  # oldest first, like a log
        where = f"{e.index or '-'}/{e.project}" if e.project else (e.index or "-")
        when = e.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(f"{when} {e.actor} from {e.origin} via {e.via}: {e.action} {where} {e.detail}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``db``, ``user``, ``token``, ``project``, ``publisher``, ``namespace`` and
    ``audit`` commands."""
    db = subparsers.add_parser("db", help="database schema: upgrade or check")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    _command(
        db_sub, "upgrade", "create or migrate the database to this headwater's schema", _db_upgrade
    )
    _command(db_sub, "check", "exit non-zero unless the database schema is current", _db_check)

    user = subparsers.add_parser("user", help="users of hosted indexes")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    create = _command(user_sub, "create", "create a user", _user_create)
    create.add_argument("name")
    _command(user_sub, "list", "list users", _user_list)
    password = _command(
        user_sub,
        "password",
        "set a user's interface password (asked at the terminal, or read from standard input)",
        _user_password,
    )
    password.add_argument("name")
    password.add_argument(
        "--clear", action="store_true", help="remove the password (tokens still work)"
    )

    token = subparsers.add_parser("token", help="API tokens (for twine, pip, uv and the API)")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = _command(
        token_sub, "create", "create a token and print it (once) on stdout", _token_create
    )
    create.add_argument("--user", required=True, help="the token's user (created if missing)")
    create.add_argument(
        "--scope", action="append", choices=SCOPES, help="repeatable; default upload"
    )
    create.add_argument("--index", action="append", help="limit to these indexes (repeatable)")
    create.add_argument("--project", action="append", help="limit to these projects (repeatable)")
    create.add_argument("--description", default="")
    create.add_argument(
        "--expires-days", type=bounded_int(1, 36_500), help="expire after this many days"
    )
    listing = _command(token_sub, "list", "list tokens (never their secrets)", _token_list)
    listing.add_argument("--user")
    revoke = _command(token_sub, "revoke", "revoke a token by its id", _token_revoke)
    revoke.add_argument("id")

    project = _command(
        subparsers,
        "project",
        "manage a hosted project: yank, delete, status, owners, PEP 708 URLs",
        _project,
    )
    project.add_argument(
        "action",
        choices=[
            "show",
            "yank",
            "unyank",
            "delete",
            "status",
            "alternate-locations",
            "tracks",
            "owner-add",
            "owner-remove",
        ],
    )
    project.add_argument("index")
    project.add_argument("project")
    project.add_argument("value", nargs="*", help="status marker, URLs, or user names")
    project.add_argument("--file", help="one file (yank, unyank, delete)")
    project.add_argument("--version", help="every file of a release (yank, unyank, delete)")
    project.add_argument("--reason", default="", help="why (yank, status)")

    publisher = _command(
        subparsers,
        "publisher",
        "trusted publishers of hosted projects (CI jobs that publish without a stored token), "
        "and the log of what they minted and uploaded",
        _publisher,
    )
    publisher.add_argument("action", choices=["add", "list", "remove", "log"])
    publisher.add_argument("index", nargs="?", help="the hosted index (list, log: optional)")
    publisher.add_argument("project", nargs="?", help="the project (add; list, log: optional)")
    publisher.add_argument("--github", metavar="OWNER/REPO", help="a GitHub Actions workflow")
    publisher.add_argument("--gitlab", metavar="GROUP/PROJECT", help="a GitLab CI pipeline")
    publisher.add_argument("--oidc-issuer", metavar="URL", help="any OIDC issuer, with --claim")
    publisher.add_argument(
        "--claim", action="append", metavar="NAME=VALUE", help="a claim that must match (oidc)"
    )
    publisher.add_argument(
        "--workflow", help="GitHub: workflow file name; GitLab: CI configuration file path"
    )
    publisher.add_argument("--environment", help="the deployment environment the job runs in")
    publisher.add_argument("--ref", help="the git ref (refs/tags/v1.0, refs/heads/main)")
    publisher.add_argument("--repository-id", help="GitHub: the repository's numeric id")
    publisher.add_argument("--repository-owner-id", help="GitHub: the owner's numeric id")
    publisher.add_argument("--project-id", help="GitLab: the project's numeric id")
    publisher.add_argument(
        "--issuer", help="GitHub Enterprise Server or self-managed GitLab: the issuer URL"
    )
    publisher.add_argument(
        "--pending", action="store_true", help="the project does not exist yet: this may create it"
    )
    publisher.add_argument("--owner", help="pending: the user who will own the project")
    publisher.add_argument(
        "--id", type=bounded_int(1, SQL_INT_MAX), help="remove: the publisher's id"
    )
    publisher.add_argument("--since", help="log: minted at or after (ISO 8601)")
    publisher.add_argument(
        "--limit", type=bounded_int(1, 1_000_000), default=100, help="log: at most this many"
    )

    namespace = _command(
        subparsers, "namespace", "PEP 752 namespace grants of a hosted index", _namespace
    )
    namespace.add_argument("action", choices=["list", "grant", "revoke"])
    namespace.add_argument("index")
    namespace.add_argument("namespace", nargs="?")
    namespace.add_argument("--owner")
    namespace.add_argument("--open", action="store_true", help="anyone may create projects in it")

    audit = _command(
        subparsers,
        "audit",
        "the administration audit log: who changed what from the web interface, when, from "
        "where (and what was refused)",
        _audit,
    )
    audit.add_argument("--index", help="only this index")
    audit.add_argument(
        "--limit", type=bounded_int(1, 1_000_000), default=100, help="the newest N entries (100)"
    )
    audit.add_argument("--json", action="store_true", help="as JSON")
