"""The changes the administration pages make to a hosted project, one database call each (the
same the management API and ``headwater project`` make): :data:`PROJECT_ACTIONS`. Who may make
them is decided before, by :func:`headwater.ui.admin.project_action`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from starlette.datastructures import FormData

from headwater.db import Database, InvalidArgument
from headwater.db import NotFound as DbNotFound
from headwater.db.identities import decode_identity
from headwater.errors import printable
from headwater.server import params

__all__ = ["PROJECT_ACTIONS", "describe"]


def _field(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _yank(db: Database, index: str, project: str, actor: str, form: FormData) -> Any:
    filename, version = _field(form, "filename", 300) or None, _field(form, "version", 200) or None
    reason = _field(form, "reason", 1000)
    return db.yank(index, project, filename=filename, version=version, reason=reason, actor=actor)


def _unyank(db: Database, index: str, project: str, actor: str, form: FormData) -> Any:
    filename, version = _field(form, "filename", 300) or None, _field(form, "version", 200) or None
    return db.unyank(index, project, filename=filename, version=version, actor=actor)


def _status(db: Database, index: str, project: str, actor: str, form: FormData) -> Any:
    return db.set_status(
        index, project, _field(form, "status", 40), _field(form, "reason", 1000), actor=actor
    )


def _owner_add(db: Database, index: str, project: str, actor: str, form: FormData) -> Any:
    return db.add_owner(index, project, params.user(_field(form, "user", 100)))


def _owner_remove(db: Database, index: str, project: str, actor: str, form: FormData) -> Any:
    return db.remove_owner(index, project, params.user(_field(form, "user", 100)))


def _publisher_add(db: Database, index: str, project: str, actor: str, form: FormData) -> Any:
    kind = _field(form, "kind", 10)
    where = {"github": "repository", "gitlab": "project_path"}.get(kind)
    if where is None:
        raise InvalidArgument("a publisher's kind is github or gitlab (others: the API)")
    fields = {
        where: _field(form, "repository", 300),
        "workflow": _field(form, "workflow", 300),
        "environment": _field(form, "environment", 300),
    }
    try:
        identity = decode_identity({"type": kind, **{k: v for k, v in fields.items() if v}})
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"the {kind} publisher does not fit: {exc}") from None
    return db.add_publisher(index, project, identity, origin="ui", added_by=actor)


def _publisher_remove(db: Database, index: str, project: str, actor: str, form: FormData) -> Any:
    raw = _field(form, "id", 20)
    if not raw.isdigit() or len(raw) > 18:
        raise DbNotFound(f"no publisher {printable(raw, 20)!r}")
    return db.remove_publisher(int(raw), index=index, project=project)


#: action -> the database call it makes (the same the management API makes).
PROJECT_ACTIONS: dict[str, Callable[[Database, str, str, str, FormData], Any]] = {
    "yank": _yank,
    "unyank": _unyank,
    "status": _status,
    "owner-add": _owner_add,
    "owner-remove": _owner_remove,
    "publisher-add": _publisher_add,
    "publisher-remove": _publisher_remove,
}


def describe(form: FormData) -> str:
    """The form's fields worth recording in the audit log (never a password)."""
    keys = ("filename", "version", "status", "user", "reason", "kind", "repository", "workflow")
    shown = {k: _field(form, k, 200) for k in (*keys, "environment", "id")}
    return " ".join(f"{k}={v!r}" for k, v in shown.items() if v)
