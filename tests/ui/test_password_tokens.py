"""Signed in with a password, over HTTP, in process, on SQLite and on a real PostgreSQL: creating
a token (the password again, only projects the user owns, upload and manage, an expiry, shown
once, audited, CSRF-checked, the re-check counted as a sign-in), and the other administration
actions of a password session (yank, unyank, status, owners: on owned projects only; namespace
grants: never)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from headwater.db import schema
from headwater.db.audit import admin_actions
from headwater.db.throttle import USER_LIMIT, counter_key
from tests.server.hosting import dists, upload_form
from tests.ui.test_passwords import (
    FORM,
    PASSWORD,
    Site,
    cookie_of,
    csrf_of,
    page,
    post,
    run,
    sign_in,
    site,
)

__all__ = ["site"]  # the fixture, shared with test_passwords.py


def _signed_in(site: Site) -> tuple[str, str]:
    """alice's session secret and the CSRF token of her administration page."""
    secret = cookie_of(sign_in(site, "alice", PASSWORD))
    return secret, csrf_of(page(site, "/ui/admin", secret))


def _fields(csrf: str, **changes: str) -> dict[str, str]:
    fields = {
        "csrf": csrf,
        "scope": "upload",
        "indexes": "main",
        "projects": "alices-tool",
        "description": "CI of alices-tool",
        "days": "",
        "password": PASSWORD,
    }
    fields.update(changes)
    return fields


def _token_in(body: bytes) -> str:
    match = re.search(rb'id="new-token-value" type="text" readonly value="(hw_[^"]+)"', body)
    assert match, body[:2000]
    return match.group(1).decode()


def _upload(site: Site, tmp_path: Path, project: str, version: str, token: str) -> int:
    body, kind = upload_form(dists(tmp_path / f"{project}-{version}", project, version)[0])
    return run(site.app, "POST", "/main/legacy/", {"Content-Type": kind}, body, token).status


def test_a_password_session_creates_an_upload_token_for_a_project_it_owns(
    site: Site, tmp_path: Path
) -> None:
    # Another user's project, which alice's token must not reach.
    assert _upload(site, tmp_path, "bobs-thing", "1.0", site.admin) == 200
    secret, csrf = _signed_in(site)
    form = page(site, "/ui/admin", secret).body
    assert b'id="token-password"' in form and b"main/alices-tool" in form
    assert b'value="admin"' not in form and b'value="read"' not in form
    made = post(site, "/ui/admin/tokens", secret, _fields(csrf))
    assert made.status == 200, made.body[:3000]
    token = _token_in(made.body)
    (info,) = site.db.tokens("alice")
    assert token.startswith(f"hw_{info.id}_")
    assert info.scopes == {"upload"} and info.indexes == {"main"}
    assert info.projects == {"alices-tool"} and info.description == "CI of alices-tool"
    assert info.expires is not None
    left = info.expires - datetime.now(UTC)
    assert timedelta(days=89) < left <= timedelta(days=90)  # the default: 90 days
    # Shown once: the page after it shows the token's id, never the token again.
    assert token.encode() not in page(site, "/ui/admin", secret).body
    # The token works for the project alice owns, and nowhere else.
    assert _upload(site, tmp_path, "alices-tool", "1.1", token) == 200
    assert _upload(site, tmp_path, "bobs-thing", "1.1", token) == 403
    assert _upload(site, tmp_path, "brand-new", "1.0", token) == 403
    entry = next(e for e in admin_actions(site.db.engine) if e.action == "token-create")
    assert entry.actor == "alice" and entry.detail.startswith(info.id)
    assert "password session, re-checked" in entry.detail and token not in entry.detail
    # The password still is not a credential for the API.
    assert _upload(site, tmp_path, "alices-tool", "1.2", secret) == 403
    assert (
        run(site.app, "GET", "/api/main/projects/alices-tool/publishers", token=secret).status
        == 401
    )


def test_a_manage_token_from_a_password_session_is_checked_against_ownership_at_use(
    site: Site,
) -> None:
    secret, csrf = _signed_in(site)
    made = post(site, "/ui/admin/tokens", secret, _fields(csrf, scope="manage", days="7"))
    assert made.status == 200, made.body[:3000]
    token = _token_in(made.body)
    yank = b'{"version": "1.0"}'
    json = {"Content-Type": "application/json"}
    path = "/api/main/projects/alices-tool/yank"
    assert run(site.app, "POST", path, json, yank, token).status == 200
    # No longer an owner: the token made when she was one no longer manages the project.
    site.db.remove_owner("main", "alices-tool", "alice")
    assert run(site.app, "POST", path, json, yank, token).status == 403


def test_what_a_password_session_cannot_put_in_a_token(site: Site) -> None:
    secret, csrf = _signed_in(site)
    refusals = {
        "admin scope": (_fields(csrf, scope="admin"), 400, b"upload and manage scopes only"),
        "read scope": (_fields(csrf, scope="read"), 400, b"upload and manage scopes only"),
        "every index": (_fields(csrf, indexes=""), 400, b"name the index"),
        "every project": (_fields(csrf, projects=""), 400, b"name the index"),
        "never expires": (_fields(csrf, days="0"), 400, b"always expires"),
        "over a year": (_fields(csrf, days="366"), 400, b"always expires"),
        "no description": (_fields(csrf, description=""), 400, b"describe the token"),
        "not an owner": (_fields(csrf, projects="roots-project"), 403, b"isn&#39;t allowed"),
        "not a manager": (
            _fields(csrf, scope="manage", projects="roots-project"),
            403,
            b"is not an owner",
        ),
        "owned elsewhere": (_fields(csrf, indexes="priv"), 403, b"isn&#39;t allowed"),
        "unknown index": (_fields(csrf, indexes="nowhere"), 400, b"no hosted index"),
        "control character": (_fields(csrf, description="CI\x1b[31m"), 400, b"cannot appear"),
    }
    for name, (fields, status, words) in refusals.items():
        answer = post(site, "/ui/admin/tokens", secret, fields)
        assert (answer.status, words in answer.body) == (status, True), (name, answer.body[:2000])
        assert b"no token was created" in answer.body
    assert site.db.tokens("alice") == []
    refused = [e for e in admin_actions(site.db.engine) if e.action == "refused token-create"]
    assert len(refused) == len(refusals)


def test_a_wrong_password_again_creates_nothing_and_counts_as_a_failed_sign_in(
    site: Site,
) -> None:
    secret, csrf = _signed_in(site)
    for n in range(USER_LIMIT.failures):
        wrong = post(
            site, "/ui/admin/tokens", secret, _fields(csrf, password=f"not her password {n}")
        )
        assert wrong.status == 400 and b"password you typed again is wrong" in wrong.body
        # The form comes back filled in, except the password.
        assert (
            b'name="projects" required autocomplete="off" spellcheck="false" value="alices-tool"'
            in wrong.body
        )
        assert f"not her password {n}".encode() not in wrong.body
        # It tells nothing about the projects asked for before the password is right.
        assert b"owner" not in re.search(rb'role="alert">([^<]*)<', wrong.body).group(1)  # type: ignore[union-attr]
    with site.db.engine.connect() as conn:
        failures = conn.execute(
            sa.select(sa.func.max(schema.sign_in_throttle.c.failures)).where(
                schema.sign_in_throttle.c.kind == "user"
            )
        ).scalar()
    assert failures == USER_LIMIT.failures
    # Locked now: even the right password is not checked, and signing in is locked too.
    locked = post(site, "/ui/admin/tokens", secret, _fields(csrf))
    assert locked.status == 429 and b"too many failed sign-ins" in locked.body
    assert sign_in(site, "alice", PASSWORD).status == 429
    assert site.db.tokens("alice") == []


def test_csrf_refusals_create_no_token(site: Site) -> None:
    secret, csrf = _signed_in(site)
    bad = post(site, "/ui/admin/tokens", secret, _fields("0" * 64))
    assert bad.status == 403 and b"does not match your session" in bad.body
    missing = {k: v for k, v in _fields(csrf).items() if k != "csrf"}
    assert post(site, "/ui/admin/tokens", secret, missing).status == 403
    body = "&".join(f"{k}={v}" for k, v in _fields(csrf).items()).encode()
    cross = run(
        site.app, "POST", "/ui/admin/tokens",
        {**FORM, "Cookie": f"headwater_session={secret}", "Origin": "https://evil.example",
         "Sec-Fetch-Site": "cross-site"},
        body,
    )  # fmt: skip
    assert cross.status == 403 and b"another site" in cross.body
    assert site.db.tokens("alice") == []
    actions = [e.action for e in admin_actions(site.db.engine)[:3]]
    assert actions == ["refused token-create"] * 3


def test_a_password_session_administers_the_projects_it_owns_only(
    site: Site, tmp_path: Path
) -> None:
    assert _upload(site, tmp_path, "bobs-thing", "1.0", site.admin) == 200
    secret, _ = _signed_in(site)
    mine, theirs = "/ui/admin/project/main/alices-tool", "/ui/admin/project/main/bobs-thing"
    csrf = csrf_of(page(site, mine, secret))
    changes = [
        ("yank", {"version": "1.0", "reason": "broken"}),
        ("unyank", {"version": "1.0"}),
        ("status", {"status": "archived", "reason": "done"}),
        ("owner-add", {"user": "bob", "password": PASSWORD}),
        ("owner-remove", {"user": "bob"}),
    ]
    for action, fields in changes:
        answer = post(site, f"{mine}/{action}", secret, {"csrf": csrf, **fields})
        assert answer.status == 303, (action, answer.body[:2000])
        assert post(site, f"{theirs}/{action}", secret, {"csrf": csrf, **fields}).status == 403
    record = site.db.project("main", "alices-tool")
    assert record is not None and record.status == "archived"
    assert site.db.owners("main", "alices-tool") == ["alice", "root"]
    assert site.db.owners("main", "bobs-thing") == ["root"]
    # Namespace grants stay an admin's (index-wide: they claim names nobody owns yet).
    assert page(site, "/ui/admin/grants/main", secret).status == 403
    grant = post(
        site, "/ui/admin/grants/main", secret,
        {"csrf": csrf, "op": "grant", "namespace": "alices", "owner": "alice"},
    )  # fmt: skip
    assert grant.status == 403 and site.db.namespaces("main") == []
    done = [(e.action, e.project) for e in admin_actions(site.db.engine) if e.actor == "alice"]
    for action, _ in changes:
        assert (action, "alices-tool") in done and (f"refused {action}", "bobs-thing") in done


def test_adding_an_owner_needs_the_password_again_and_counts_it(site: Site) -> None:
    """Another owner can upload: a stolen session cookie alone must not add one."""
    secret, _ = _signed_in(site)
    mine = "/ui/admin/project/main/alices-tool"
    csrf = csrf_of(page(site, mine, secret))
    for typed in ("", "not alice's password"):
        fields = {"csrf": csrf, "user": "bob", "password": typed}
        refused = post(site, f"{mine}/owner-add", secret, fields)
        assert refused.status == 400 and b"nothing was changed" in refused.body
    assert site.db.owners("main", "alices-tool") == ["alice", "root"]
    with site.db.engine.connect() as conn:
        failures = conn.execute(
            sa.select(schema.sign_in_throttle.c.failures).where(
                schema.sign_in_throttle.c.key == counter_key("user", "alice")
            )
        ).scalar()
    assert failures == 2
    # Signed in with a token, the cookie is the credential itself: no password is asked.
    cookie = f"headwater_session={site.admin}"
    answer = run(site.app, "GET", mine, {"Cookie": cookie})
    assert b'id="owner-password"' not in answer.body
    body = f"csrf={csrf_of(answer)}&user=bob".encode()
    added = run(site.app, "POST", f"{mine}/owner-add", {**FORM, "Cookie": cookie}, body)
    assert added.status == 303 and "bob" in site.db.owners("main", "alices-tool")


def test_a_password_session_manages_the_trusted_publishers_of_projects_it_owns(
    site: Site, tmp_path: Path
) -> None:
    """As on PyPI, an owner manages a project's trusted publishers: the same ``manage`` decision
    as the management API's publisher routes."""
    assert _upload(site, tmp_path, "bobs-thing", "1.0", site.admin) == 200
    secret, _ = _signed_in(site)
    mine, theirs = "/ui/admin/project/main/alices-tool", "/ui/admin/project/main/bobs-thing"
    shown = page(site, mine, secret)
    assert b'id="publisher-repository"' in shown.body
    csrf = csrf_of(shown)
    assert b'id="publisher-password"' in shown.body and b'id="owner-password"' in shown.body
    github = {"kind": "github", "repository": "alice/tool", "workflow": "release.yml"}
    # Sudo mode: a publisher can upload, so the session's cookie alone does not add one.
    for typed in ("", "a thief's guess at it"):
        fields = {"csrf": csrf, **github, "password": typed}
        refused = post(site, f"{mine}/publisher-add", secret, fields)
        assert refused.status == 400 and b"password you typed again is wrong" in refused.body
    assert site.db.publishers("main", "alices-tool") == []
    github["password"] = PASSWORD
    added = post(site, f"{mine}/publisher-add", secret, {"csrf": csrf, **github})
    assert added.status == 303, added.body[:2000]
    assert post(site, f"{theirs}/publisher-add", secret, {"csrf": csrf, **github}).status == 403
    (publisher,) = site.db.publishers("main", "alices-tool")
    assert publisher.origin == "ui" and publisher.added_by == "alice"
    assert publisher.identity.describe().startswith("GitHub")
    assert site.db.publishers("main", "bobs-thing") == []
    # A malformed one is refused with the reason, nothing added.
    again = {"csrf": csrf, "password": PASSWORD}
    bad = post(
        site, f"{mine}/publisher-add", secret, {**again, "kind": "github", "repository": "x"}
    )
    assert bad.status == 400 and b"nothing was changed" in bad.body
    gone = post(site, f"{mine}/publisher-add", secret, {**again, "kind": "svn"})
    assert gone.status == 400 and len(site.db.publishers("main", "alices-tool")) == 1
    # root's publisher of bob's project: alice cannot remove it, not even through her project.
    identity = publisher.identity
    other = site.db.add_publisher("main", "bobs-thing", identity, added_by="root")
    fields = {"csrf": csrf, "id": str(other.id)}
    assert post(site, f"{theirs}/publisher-remove", secret, fields).status == 403
    assert post(site, f"{mine}/publisher-remove", secret, fields).status == 404
    assert len(site.db.publishers("main", "bobs-thing")) == 1
    removed = post(site, f"{mine}/publisher-remove", secret, {**fields, "id": str(publisher.id)})
    assert removed.status == 303 and site.db.publishers("main", "alices-tool") == []
    done = [e.action for e in admin_actions(site.db.engine) if e.actor == "alice"]
    assert {"publisher-add", "publisher-remove", "refused publisher-add"} <= set(done)
    assert {"failed publisher-add", "failed publisher-remove"} <= set(done)
