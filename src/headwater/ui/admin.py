"""The administration pages: yank and unyank, project status (PEP 792), owners, namespace grants
(PEP 752), tokens, and the audit log of all of it.

::

    GET  /ui/admin                                   your tokens, a new-token form, the audit log
    POST /ui/admin/tokens                            create a token (shown once)
    POST /ui/admin/tokens/revoke                     revoke a token
    GET  /ui/admin/project/{index}/{project}         a hosted project's files, status and owners
    POST /ui/admin/project/{index}/{project}/{action}   yank, unyank, status, owner-add,
                                                     owner-remove, publisher-add, publisher-remove
    GET  /ui/admin/grants/{index}                an index's namespace grants
    POST /ui/admin/grants/{index}                grant or revoke one

Nothing here decides or changes anything itself. Who may act is
:func:`headwater.server.authz.decide` with the facts the management API gathers
(:func:`headwater.server.facts.decide_with_facts`: ``manage`` for a project, ``admin`` for
namespaces) or, for tokens, :mod:`headwater.server.token_grants`; the change is the database
call the management API and the CLI make (``db.yank``, ``db.set_status``, ...). Every form post
is checked first by :mod:`headwater.ui.csrf`, and every post, allowed, refused or failed, is
recorded in the audit log (:mod:`headwater.db.audit`) with who, what, when and from where.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from headwater.db import Database, DatabaseError, DatabaseUnavailable, InvalidArgument
from headwater.db import NotFound as DbNotFound
from headwater.db.audit import admin_actions
from headwater.errors import InvalidInput, printable
from headwater.server import params
from headwater.server.authz import Action, Allowed, Credentials, Denied, Target, Token
from headwater.server.facts import decide_with_facts
from headwater.server.session_grants import (
    DEFAULT_DAYS,
    MAX_DAYS,
    RECHECKED_ACTIONS,
    Refusal,
    recheck_refusal,
)
from headwater.server.session_grants import SCOPES as SESSION_TOKEN_SCOPES
from headwater.server.token_grants import may_create, may_revoke, sees_every_token
from headwater.ui import csrf, password_tokens
from headwater.ui.admin_changes import PROJECT_ACTIONS, describe
from headwater.ui.audit import audit
from headwater.ui.interface import Interface

__all__ = [
    "PROJECT_ACTIONS",
    "namespace_change",
    "namespaces_page",
    "overview",
    "project_action",
    "project_page",
    "token_create",
    "token_revoke",
]

#: Notices shown after a change (by key: nothing from the request is reflected).
DONE = {
    "yank": "Yanked.",
    "unyank": "Unyanked.",
    "status": "Status set.",
    "owner-add": "Owner added.",
    "owner-remove": "Owner removed.",
    "publisher-add": "Trusted publisher added.",
    "publisher-remove": "Trusted publisher removed.",
    "grant": "Namespace granted.",
    "revoke": "Namespace grant revoked.",
    "token-revoke": "Token revoked.",
}
_NO_DATABASE = (
    "this server has no hosted index, so there is nothing to administer (mirrors and proxies "
    "are configured in the configuration file)"
)
_FORM_LIMITS: dict[str, Any] = {"max_files": 0, "max_fields": 40, "max_part_size": 4096}


class _Refused(Exception):
    """A post that changes nothing: the status and the page's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _record(
    db: Database,
    request: Request,
    *,
    actor: str | None,
    action: str,
    detail: str,
    index: str | None = None,
    project: str | None = None,
) -> None:
    await audit(
        db, request, actor=actor or "-", action=action, detail=detail, index=index, project=project
    )


def _field(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


async def _user_of(ui: Interface, request: Request) -> Credentials:
    return await ui.credentials(request)


def _private(ui: Interface, index: str) -> Target:
    return Target(
        index=index,
        private=index in ui.private,
        private_sources=ui.private.get(index, frozenset()),
    )


async def _decide(
    ui: Interface, db: Database, request: Request, index: str, action: Action, project: str | None
) -> Allowed | Denied:
    target = _private(ui, index)
    if project is not None:
        target = Target(
            index=target.index,
            private=target.private,
            private_sources=target.private_sources,
            project=project,
        )
    return await decide_with_facts(db, await ui.credentials(request), target, action)


# -- the overview and tokens -------------------------------------------------------------------


async def overview(request: Request, ui: Interface, **extra: Any) -> Response:
    """``GET /ui/admin``: your tokens (every user's for an unlimited admin), a form for a new
    one, the hosted indexes to administer, and the audit log."""
    db = ui.served.database
    if db is None:
        return await ui.render(request, "error.html", status=404, message=_NO_DATABASE)
    wanted = request.query_params.get("index"), request.query_params.get("project")
    if not extra and wanted[0] and wanted[1]:
        # The "administer this project" form (a form cannot build the path): the same page.
        return await project_page(request, ui, where=(wanted[0], wanted[1]))
    status = extra.pop("status_code", 200)
    credentials = await ui.credentials(request)
    token = credentials.token
    if credentials.state != "token" or token is None:
        return await ui.render(
            request, "admin.html", status=status, holder=None, **_defaults(extra)
        )
    everyone = sees_every_token(token)
    tokens = await asyncio.to_thread(db.tokens, None if everyone else token.user)
    log = await asyncio.to_thread(admin_actions, db.engine, limit=200)
    if not everyone:
        log = [entry for entry in log if entry.actor == token.user]
    done = request.query_params.get("done")
    session = bool(getattr(token, "session", False))
    owned = await asyncio.to_thread(db.owned_projects, token.user) if session else []
    return await ui.render(
        request,
        "admin.html",
        status=status,
        holder=token,
        everyone=everyone,
        tokens=tokens,
        log=log[:100],
        hosted=sorted(ui.served.sources.hosted),
        scopes=(sorted(SESSION_TOKEN_SCOPES) if session else ("read", "upload", "manage", "admin")),
        owned=owned,
        default_days=DEFAULT_DAYS,
        max_days=MAX_DAYS,
        csrf_token=csrf.token_for(request),
        **_defaults(extra, done),
    )


def _defaults(extra: dict[str, Any], done: str | None = None) -> dict[str, Any]:
    return {
        "problem": None,
        "new_token": None,
        "asked": None,  # a refused password-session form, filled in again (never the password)
        "done": DONE.get(done) if done else None,
        **extra,
    }


def _names(text: str) -> list[str] | None:
    """A comma- or space-separated list from a form field; None when empty (no limit)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    return parts or None


async def _checked(request: Request, ui: Interface, action: str) -> tuple[Database, FormData]:
    """The database and the form of an administration post that passed the CSRF checks.

    Raises:
        _Refused: no database, or the CSRF checks failed (recorded in the audit log).
    """
    db = ui.served.database
    if db is None:
        raise _Refused(404, _NO_DATABASE)
    form = await request.form(**_FORM_LIMITS)
    problem = csrf.problem(request, form.get(csrf.FIELD))
    # Nobody signed in: authz (or the sign-in page) answers that, as for a page.
    if problem is not None and problem != csrf.NOT_SIGNED_IN:
        credentials = await ui.credentials(request)
        user = credentials.token.user if credentials.token is not None else None
        await _record(db, request, actor=user, action=f"refused {action}", detail=problem)
        raise _Refused(403, problem)
    return db, form


async def _refused_page(request: Request, ui: Interface, refused: _Refused) -> Response:
    return await ui.render(request, "error.html", status=refused.status, message=str(refused))


async def token_create(request: Request, ui: Interface) -> Response:
    """``POST /ui/admin/tokens``: a token for the signed-in user, within what its token holds."""
    try:
        db, form = await _checked(request, ui, "token-create")
    except _Refused as refused:
        return await _refused_page(request, ui, refused)
    credentials = await ui.credentials(request)
    holder = credentials.token
    if holder is None:
        return RedirectResponse("/ui/signin?next=/ui/admin", status_code=303)
    if getattr(holder, "session", False):
        return await _session_token_create(request, ui, db, form, holder)
    scopes = sorted({s for s in form.getlist("scope") if isinstance(s, str)})
    indexes = _names(_field(form, "indexes"))
    projects = _names(_field(form, "projects"))
    description = _field(form, "description", 200)
    days = _field(form, "days", 5)
    expires = None
    problem = None
    if days:
        if not days.isdigit() or not 1 <= int(days) <= 3650:
            problem = "expires in: a whole number of days from 1 to 3650, or empty for never"
        else:
            expires = datetime.now(UTC) + timedelta(days=int(days))
    problem = problem or may_create(holder, scopes, indexes, projects, expires)
    detail = f"scopes={','.join(scopes)} indexes={indexes} projects={projects}"
    if problem is None:
        try:
            token_id, secret = await asyncio.to_thread(
                db.create_token,
                holder.user,
                indexes=indexes,
                projects=projects,
                scopes=scopes,
                description=description,
                expires=expires,
            )
        except (InvalidInput, DbNotFound) as exc:  # InvalidInput: also a malformed project name
            problem = printable(str(exc))
        else:
            await _record(
                db, request, actor=holder.user, action="token-create", detail=f"{token_id} {detail}"
            )
            return await overview(request, ui, new_token=(token_id, secret))
    await _record(
        db,
        request,
        actor=holder.user,
        action="refused token-create",
        detail=f"{detail}: {problem}",
    )
    return await overview(request, ui, problem=problem, status_code=400)


async def _session_token_create(
    request: Request, ui: Interface, db: Database, form: FormData, holder: Token
) -> Response:
    """A token made while signed in with a password (:mod:`headwater.ui.password_tokens`)."""
    ask, decision, made = await password_tokens.create(request, ui, db, form, holder)
    detail = (
        f"scopes={','.join(sorted(ask.scopes))} indexes={list(ask.indexes)} "
        f"projects={list(ask.projects)} days={ask.days or '-'} (password session, re-checked)"
    )
    if isinstance(decision, Refusal) or made is None:
        problem = decision.message if isinstance(decision, Refusal) else "not created"
        status = decision.status if isinstance(decision, Refusal) else 400
        await _record(
            db, request, actor=holder.user, action="refused token-create",
            detail=f"{detail}: {problem}",
        )  # fmt: skip
        return await overview(request, ui, problem=problem, status_code=status, asked=ask)
    token_id, secret = made
    await _record(
        db, request, actor=holder.user, action="token-create", detail=f"{token_id} {detail}"
    )
    return await overview(request, ui, new_token=(token_id, secret))


async def token_revoke(request: Request, ui: Interface) -> Response:
    """``POST /ui/admin/tokens/revoke``: revoke your token, or any with an unlimited admin."""
    try:
        db, form = await _checked(request, ui, "token-revoke")
    except _Refused as refused:
        return await _refused_page(request, ui, refused)
    holder = (await ui.credentials(request)).token
    if holder is None:
        return RedirectResponse("/ui/signin?next=/ui/admin", status_code=303)
    token_id = _field(form, "id", 40)
    everything = await asyncio.to_thread(db.tokens)
    found = next((t for t in everything if t.id == token_id), None)
    if found is None or not may_revoke(holder, found.user):
        # The same answer whether the token exists or belongs to someone else.
        problem = f"you have no token {printable(token_id, 40)!r} to revoke"
        await _record(db, request, actor=holder.user, action="refused token-revoke", detail=problem)
        return await overview(request, ui, problem=problem)
    await asyncio.to_thread(db.revoke_token, token_id)
    await _record(db, request, actor=holder.user, action="token-revoke", detail=token_id)
    return RedirectResponse("/ui/admin?done=token-revoke", status_code=303)


# -- a project ---------------------------------------------------------------------------------


def _project_of(
    request: Request, ui: Interface, where: tuple[str, str] | None = None
) -> tuple[str, str]:
    """(index, normalized project) from the path (or ``where``).

    Raises:
        _Refused: no such hosted index, or no project can have that name (404).
    """
    index, raw = where or (request.path_params["index"], request.path_params["project"])
    if index not in ui.served.sources.hosted:
        raise _Refused(404, f"no hosted index called {params.shown(index)}")
    try:
        return index, params.project(raw)
    except params.BadParameter as exc:
        raise _Refused(404, str(exc)) from None


async def project_page(request: Request, ui: Interface, **extra: Any) -> Response:
    """``GET /ui/admin/project/{index}/{project}``: its files by version with yank and unyank
    forms, its status, its owners (for a token that may manage it)."""
    db = ui.served.database
    try:
        if db is None:
            raise _Refused(404, _NO_DATABASE)
        index, project = _project_of(request, ui, extra.pop("where", None))
    except _Refused as refused:
        return await _refused_page(request, ui, refused)
    decision = await _decide(ui, db, request, index, "manage", project)
    if isinstance(decision, Denied):
        return await ui.denied(request, decision)
    record = await asyncio.to_thread(db.project, index, project)
    if record is None:
        return await ui.not_found(request, f"no project {project!r} in {index!r}")
    owners = await asyncio.to_thread(db.owners, index, project)
    # Trusted publishers (headwater.db.publishers) and what their minted tokens did: managed here
    # by whoever may manage the project (its owners, admins), as with the management API.
    publishers = await asyncio.to_thread(db.publishers, index, project)
    minted = await asyncio.to_thread(db.publishing_log, index=index, project=project, limit=20)
    versions: dict[str, list[Any]] = {}
    for file in record.files:
        versions.setdefault(file.version, []).append(file)
    done = request.query_params.get("done")
    return await ui.render(
        request,
        "admin_project.html",
        status=extra.pop("status_code", 200),
        index=index,
        record=record,
        versions=sorted(versions.items(), reverse=True),
        owners=owners,
        publishers=[(p, msgspec.to_builtins(p.identity)) for p in publishers],
        minted=minted,
        csrf_token=csrf.token_for(request),
        # Signed in with a password: adding an owner or a publisher asks for it again.
        recheck=bool(getattr((await ui.credentials(request)).token, "session", False)),
        statuses=("active", "archived", "quarantined", "deprecated"),
        done=DONE.get(done) if done else None,
        problem=extra.pop("problem", None),
    )


async def project_action(request: Request, ui: Interface) -> Response:
    """``POST /ui/admin/project/{index}/{project}/{action}``."""
    action = request.path_params["action"]
    change = PROJECT_ACTIONS.get(action)
    try:
        if change is None:
            raise _Refused(404, f"no administration action {params.shown(action)}")
        index, project = _project_of(request, ui)
        db, form = await _checked(request, ui, action)
    except _Refused as refused:
        return await _refused_page(request, ui, refused)
    decision = await _decide(ui, db, request, index, "manage", project)
    credentials = await ui.credentials(request)
    user = credentials.token.user if credentials.token is not None else None
    detail = describe(form)
    if isinstance(decision, Denied):
        await _record(
            db,
            request,
            actor=user,
            action=f"refused {action}",
            detail=f"{detail}: {decision.message}",
            index=index,
            project=project,
        )
        return await ui.denied(request, decision)
    actor = str(decision.user)
    holder = credentials.token
    if holder is not None and getattr(holder, "session", False) and action in RECHECKED_ACTIONS:
        # Another owner or a trusted publisher could upload: the password again (sudo mode).
        again = await password_tokens.password_again(request, ui, db, form, holder)
        denied_again = recheck_refusal(again, outcome="nothing was changed")
        if denied_again is not None:
            await _record(
                db, request, actor=actor, action=f"refused {action}",
                detail=f"{detail}: {denied_again.message}", index=index, project=project,
            )  # fmt: skip
            return await project_page(
                request, ui, problem=denied_again.message, status_code=denied_again.status
            )
    try:
        await asyncio.to_thread(change, db, index, project, actor, form)
    except (params.BadParameter, InvalidArgument, DbNotFound, DatabaseError) as exc:
        status = (
            503
            if isinstance(exc, DatabaseUnavailable)
            else 404
            if isinstance(exc, (DbNotFound, params.BadParameter))
            else 400
            if isinstance(exc, InvalidArgument)
            else 409
        )
        await _record(
            db,
            request,
            actor=actor,
            action=f"failed {action}",
            detail=f"{detail}: {exc}",
            index=index,
            project=project,
        )
        return await project_page(
            request, ui, problem=f"{exc}; nothing was changed", status_code=status
        )
    ui.served.sources.hosted[index].changed()
    await _record(
        db, request, actor=actor, action=action, detail=detail, index=index, project=project
    )
    return RedirectResponse(f"/ui/admin/project/{index}/{project}?done={action}", status_code=303)


# -- namespaces --------------------------------------------------------------------------------


async def namespaces_page(request: Request, ui: Interface, **extra: Any) -> Response:
    """``GET /ui/admin/grants/{index}``: the grants, and forms to grant and revoke."""
    db = ui.served.database
    index = request.path_params["index"]
    if db is None or index not in ui.served.sources.hosted:
        return await ui.not_found(request, f"no hosted index called {params.shown(index)}")
    decision = await _decide(ui, db, request, index, "admin", None)
    if isinstance(decision, Denied):
        return await ui.denied(request, decision)
    grants = await asyncio.to_thread(db.namespaces, index)
    done = request.query_params.get("done")
    return await ui.render(
        request,
        "admin_namespaces.html",
        status=extra.pop("status_code", 200),
        index=index,
        grants=grants,
        csrf_token=csrf.token_for(request),
        done=DONE.get(done) if done else None,
        problem=extra.pop("problem", None),
    )


async def namespace_change(request: Request, ui: Interface) -> Response:
    """``POST /ui/admin/grants/{index}``: ``op`` grant (namespace, owner, open) or revoke."""
    index = request.path_params["index"]
    try:
        if index not in ui.served.sources.hosted:
            raise _Refused(404, f"no hosted index called {params.shown(index)}")
        db, form = await _checked(request, ui, "namespace")
    except _Refused as refused:
        return await _refused_page(request, ui, refused)
    op = _field(form, "op", 10)
    namespace, owner = _field(form, "namespace", 200), _field(form, "owner", 100)
    detail = f"op={op!r} namespace={namespace!r} owner={owner!r}"
    decision = await _decide(ui, db, request, index, "admin", None)
    credentials = await ui.credentials(request)
    user = credentials.token.user if credentials.token is not None else None
    if isinstance(decision, Denied):
        await _record(
            db, request, actor=user, action="refused namespace", detail=detail, index=index
        )
        return await ui.denied(request, decision)
    try:
        if op == "grant":
            await asyncio.to_thread(
                db.grant_namespace, index, namespace, owner, open=form.get("open") == "on"
            )
        elif op == "revoke":
            if not await asyncio.to_thread(db.revoke_namespace, index, namespace):
                raise DbNotFound(f"no namespace {namespace!r} is granted in {index!r}")
        else:
            raise InvalidArgument("op must be grant or revoke")
    except (InvalidArgument, DbNotFound, DatabaseError) as exc:
        await _record(
            db, request, actor=user, action="failed namespace", detail=f"{detail}: {exc}",
            index=index,
        )  # fmt: skip
        status = (
            404 if isinstance(exc, DbNotFound) else 400 if isinstance(exc, InvalidArgument) else 409
        )
        return await namespaces_page(
            request, ui, problem=f"{exc}; nothing was changed", status_code=status
        )
    for source in ui.served.sources.hosted.values():
        source.changed()
    await _record(db, request, actor=user, action=f"namespace {op}", detail=detail, index=index)
    return RedirectResponse(f"/ui/admin/grants/{index}?done={op}", status_code=303)
