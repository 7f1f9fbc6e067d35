"""Password sign-in over HTTP, in process, on SQLite and on a real PostgreSQL: sessions only the
interface accepts, one answer whatever was wrong, lockout, changing and clearing a password,
signing out on the server, and every step in the audit log."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from headwater.config.settings import HostedSettings, ServePlan, ServeSettings
from headwater.db import Database
from headwater.db.audit import admin_actions
from headwater.db.throttle import USER_LIMIT
from headwater.server.app import IndexApp
from headwater.ui import build_app
from headwater.ui.csrf import token_of_secret
from headwater.ui.passwords import WRONG
from tests.postgres import fresh_database
from tests.server.asgi import Answer, call
from tests.server.hosting import dists, upload_form

PASSWORD = "alice's long enough password"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Site:
    app: IndexApp
    db: Database
    admin: str
    #: A second node: its own app and its own connections to the same database.
    other: IndexApp


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    def build(url: str) -> Iterator[Site]:
        db = Database.connect(url)
        db.upgrade()
        plan = ServePlan(
            settings=ServeSettings(data_dir=str(tmp_path / "data")),
            hosted={"main": HostedSettings(), "priv": HostedSettings(read="token")},
            default="main",
        )
        app = build_app(plan, db=db)
        db.create_user("root")
        _, admin = db.create_token("root", scopes={"admin"})
        db.create_user("alice")
        db.set_password("alice", PASSWORD)
        db.create_user("bob")  # no password
        body, kind = upload_form(dists(tmp_path / "d", "alices-tool", "1.0")[0])
        answer = run(app, "POST", "/main/legacy/", {"Content-Type": kind}, body, admin)
        assert answer.status == 200, answer.body
        db.add_owner("main", "alices-tool", "alice")
        second = Database.connect(url)
        try:
            yield Site(app, db, admin, build_app(plan, db=second))
        finally:
            second.close()
            db.close()

    if request.param == "sqlite":
        yield from build(f"sqlite:///{tmp_path / 'hw.sqlite3'}")
    else:
        with fresh_database() as url:
            yield from build(url)


def run(
    app: IndexApp,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    token: str | None = None,
) -> Answer:
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    path, _, query = path.partition("?")
    return asyncio.run(call(app, method, path, headers=headers, query=query, body=body))


def signout(secret: str, cookie: str = "headwater_session") -> tuple[str, dict[str, str], bytes]:
    """The path, headers and body of the header's sign-out form, as the session's page has it."""
    headers = {"Cookie": f"{cookie}={secret}", "Content-Type": "application/x-www-form-urlencoded"}
    return "/ui/signout", headers, f"csrf={token_of_secret(secret)}".encode()


def sign_in(site: Site, user: str, password: str, *, node: IndexApp | None = None) -> Answer:
    body = f"user={quote(user)}&password={quote(password)}&next=/ui/admin".encode()
    return run(node or site.app, "POST", "/ui/signin", FORM, body)


def cookie_of(answer: Answer) -> str:
    match = re.match(r"headwater_session=([^;]+);", answer.headers["set-cookie"])
    assert match, answer.headers
    return match.group(1)


def page(site: Site, path: str, secret: str) -> Answer:
    return run(site.app, "GET", path, {"Cookie": f"headwater_session={secret}"})


def csrf_of(answer: Answer) -> str:
    match = re.search(rb'name="csrf" value="([0-9a-f]+)"', answer.body)
    assert match, answer.body[:500]
    return match.group(1).decode()


def post(site: Site, path: str, secret: str, fields: dict[str, str]) -> Answer:
    body = "&".join(f"{k}={quote(v)}" for k, v in fields.items()).encode()
    return run(site.app, "POST", path, {**FORM, "Cookie": f"headwater_session={secret}"}, body)


def test_a_password_gives_an_interface_session_and_nothing_else(site: Site) -> None:
    answer = sign_in(site, "alice", PASSWORD)
    assert answer.status == 303 and answer.headers["location"] == "/ui/admin"
    secret = cookie_of(answer)
    assert secret.startswith("hws_") and "HttpOnly" in answer.headers["set-cookie"]
    admin = page(site, "/ui/admin", secret)
    assert admin.status == 200 and b"Signed in as" in admin.body and b"alice" in admin.body
    # The projects alice owns may be managed (the manage scope, and ownership)...
    assert page(site, "/ui/admin/project/main/alices-tool", secret).status == 200
    # ... but a private index may not be read, nor namespaces administered.
    assert page(site, "/ui/priv/project/anything", secret).status == 403
    assert page(site, "/ui/admin/grants/main", secret).status == 403
    # Never the API, uploads or the Simple API, whichever way it is sent (the interface has
    # just resolved this very secret: nothing it remembered may leak to the API).
    assert run(site.app, "GET", "/priv/simple/", token=secret).status == 401
    assert page(site, "/priv/simple/", secret).status == 401
    yank = run(
        site.app, "POST", "/api/main/projects/alices-tool/yank",
        {"Content-Type": "application/json"}, b'{"version": "1.0"}', secret,
    )  # fmt: skip
    assert yank.status == 401, yank.body
    upload = run(
        site.app, "POST", "/main/legacy/", {"Content-Type": "multipart/form-data"}, b"", secret
    )
    assert upload.status == 403 and b"Invalid or non-existent authentication" in upload.body
    assert all(f.yanked is False for f in site.db.project("main", "alices-tool").files)  # type: ignore[union-attr]


def test_one_answer_for_a_wrong_password_an_unknown_user_and_no_password(site: Site) -> None:
    answers = [
        sign_in(site, "alice", "not alice's password at all"),
        sign_in(site, "nobody-here", PASSWORD),
        sign_in(site, "bob", PASSWORD),
    ]
    assert {a.status for a in answers} == {401}
    problems = {re.search(rb'role="alert">([^<]*)<', a.body).group(1) for a in answers}  # type: ignore[union-attr]
    assert len(problems) == 1 and b"user name or the password is wrong" in problems.pop()
    assert all("set-cookie" not in a.headers for a in answers)
    assert WRONG.startswith("the user name or the password is wrong")
    # The typed name comes back in the form (escaped), the password never.
    assert (
        b"not alice&#39;s password" not in answers[0].body
        and PASSWORD.encode() not in answers[1].body
    )
    log = admin_actions(site.db.engine)
    assert [(e.actor, e.action) for e in log[:3]] == [
        ("bob", "refused sign-in"),
        ("nobody-here", "refused sign-in"),
        ("alice", "refused sign-in"),
    ]
    assert sign_in(site, "alice", PASSWORD).status == 303
    assert (admin_actions(site.db.engine)[0].actor, admin_actions(site.db.engine)[0].action) == (
        "alice",
        "sign-in",
    )


def test_lockout_after_five_failures_holds_even_for_the_right_password(site: Site) -> None:
    for n in range(USER_LIMIT.failures):
        assert sign_in(site, "alice", f"wrong password number {n}").status == 401
    locked = sign_in(site, "alice", PASSWORD)
    assert locked.status == 429 and b"too many failed sign-ins" in locked.body
    assert "set-cookie" not in locked.headers
    assert admin_actions(site.db.engine)[0].detail.startswith("password: locked until")


def test_lockout_and_sign_out_hold_across_nodes(site: Site) -> None:
    """Two nodes over one database: failures on one lock the name on the other, and a session
    started on one and ended on the other is ended on both (nothing is kept per process)."""
    for n in range(USER_LIMIT.failures):
        node = site.app if n % 2 else site.other
        assert sign_in(site, "alice", f"wrong password number {n}", node=node).status == 401
    assert sign_in(site, "alice", PASSWORD, node=site.app).status == 429
    assert sign_in(site, "alice", PASSWORD, node=site.other).status == 429


def test_a_session_ends_on_every_node(site: Site) -> None:
    secret = cookie_of(sign_in(site, "alice", PASSWORD, node=site.other))
    jar = {"Cookie": f"headwater_session={secret}"}
    for node in (site.app, site.other):
        assert b"Signed in as" in run(node, "GET", "/ui/admin", jar).body
    assert run(site.other, "POST", *signout(secret)).status == 303
    for node in (site.app, site.other):
        assert b"Signed in as" not in run(node, "GET", "/ui/admin", jar).body


def test_signing_out_ends_the_session_on_the_server(site: Site) -> None:
    secret = cookie_of(sign_in(site, "alice", PASSWORD))
    out = run(site.app, "POST", *signout(secret))
    assert out.status == 303
    # The same cookie, kept by a copy of the browser's profile, is worth nothing now.
    assert b"Signed in as" not in page(site, "/ui/admin", secret).body
    assert site.db.sessions("alice") == []
    assert admin_actions(site.db.engine)[0].action == "sign-out"


def test_changing_the_password_needs_the_current_one_and_ends_every_session(site: Site) -> None:
    secret = cookie_of(sign_in(site, "alice", PASSWORD))
    other = cookie_of(sign_in(site, "alice", PASSWORD))
    account = page(site, "/ui/account", secret)
    assert account.status == 200 and b"Change your password" in account.body
    token = csrf_of(account)
    new = "a brand new password for alice"
    fields = {"csrf": token, "current": "a wrong current password", "new": new, "repeat": new}
    wrong = post(site, "/ui/account/password", secret, fields)
    assert wrong.status == 400 and b"current password is wrong" in wrong.body
    differ = post(
        site, "/ui/account/password", secret, {**fields, "current": PASSWORD, "repeat": new + "x"}
    )
    assert differ.status == 400 and b"differ" in differ.body
    short = post(
        site,
        "/ui/account/password",
        secret,
        {**fields, "current": PASSWORD, "new": "short", "repeat": "short"},
    )
    assert short.status == 400 and b"15 to 256 characters" in short.body
    no_csrf = post(
        site, "/ui/account/password", secret, {**fields, "csrf": "0" * 64, "current": PASSWORD}
    )
    assert no_csrf.status == 403
    assert site.db.check_password("alice", PASSWORD)
    done = post(site, "/ui/account/password", secret, {**fields, "current": PASSWORD})
    assert done.status == 303 and "done=password" in done.headers["location"]
    assert site.db.check_password("alice", new) and not site.db.check_password("alice", PASSWORD)
    for ended in (secret, other):
        assert b"Signed in as" not in page(site, "/ui/admin", ended).body
    assert sign_in(site, "alice", PASSWORD).status == 401
    assert sign_in(site, "alice", new).status == 303
    actions = [e.action for e in admin_actions(site.db.engine)]
    assert "password-set" in actions and actions.count("refused password-set") == 4


def test_a_token_session_sets_a_first_password_only_when_it_is_as_wide(site: Site) -> None:
    _, narrow = site.db.create_token("bob", scopes={"read"})
    _, wide = site.db.create_token("bob", scopes={"manage"})
    refused = page(site, "/ui/account", narrow)
    assert (
        b"narrower than what a password gives" in refused.body and b'name="new"' not in refused.body
    )
    forced = post(
        site,
        "/ui/account/password",
        narrow,
        {"csrf": csrf_of(page(site, "/ui/admin", narrow)), "new": PASSWORD, "repeat": PASSWORD},
    )
    assert forced.status == 400 and not site.db.has_password("bob")
    account = page(site, "/ui/account", wide)
    assert b"Set a password" in account.body
    done = post(
        site,
        "/ui/account/password",
        wide,
        {"csrf": csrf_of(account), "new": PASSWORD, "repeat": PASSWORD},
    )
    assert done.status == 303 and site.db.check_password("bob", PASSWORD)


def test_an_admin_clears_a_password_and_the_user_is_signed_out(site: Site) -> None:
    secret = cookie_of(sign_in(site, "alice", PASSWORD))
    # A password session is no admin: refused.
    own = page(site, "/ui/account", secret)
    assert b"Users' passwords" not in own.body
    refused = post(
        site, "/ui/admin/users/password-clear", secret, {"csrf": csrf_of(own), "user": "alice"}
    )
    assert refused.status == 400 and b"needs an admin token" in refused.body
    assert site.db.has_password("alice")
    account = page(site, "/ui/account", site.admin)
    assert account.status == 200 and b"Users' passwords" in account.body
    cleared = post(
        site,
        "/ui/admin/users/password-clear",
        site.admin,
        {"csrf": csrf_of(account), "user": "alice"},
    )
    assert cleared.status == 303 and not site.db.has_password("alice")
    assert b"Signed in as" not in page(site, "/ui/admin", secret).body
    assert sign_in(site, "alice", PASSWORD).status == 401
    entry = next(e for e in admin_actions(site.db.engine) if e.action == "password-clear")
    assert (entry.actor, entry.detail) == ("root", "alice")


def test_a_password_session_revokes_its_tokens(site: Site) -> None:
    """(Creating them: tests/ui/test_password_tokens.py.)"""
    token_id, _ = site.db.create_token("alice", scopes={"upload"})
    secret = cookie_of(sign_in(site, "alice", PASSWORD))
    admin = page(site, "/ui/admin", secret)
    assert token_id.encode() in admin.body
    revoked = post(
        site, "/ui/admin/tokens/revoke", secret, {"csrf": csrf_of(admin), "id": token_id}
    )
    assert revoked.status == 303 and site.db.tokens("alice")[0].revoked is not None


def test_this_process_forgets_a_session_it_ended_at_once(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing out (or changing a password) on this node is honoured by it at once, even before
    the database's change signal reaches it (on PostgreSQL a notification travels back to the
    process's own listener): here the signal never moves."""
    secret = cookie_of(sign_in(site, "alice", PASSWORD))
    other = cookie_of(sign_in(site, "alice", PASSWORD))
    for held in (secret, other):
        assert b"Signed in as" in page(site, "/ui/admin", held).body  # now remembered
    monkeypatch.setattr(site.db, "generation", lambda: 1)
    for held in (secret, other):
        assert b"Signed in as" in page(site, "/ui/admin", held).body
    run(site.app, "POST", *signout(secret))
    assert b"Signed in as" not in page(site, "/ui/admin", secret).body
    new = "another long password for alice"
    account = page(site, "/ui/account", other)
    fields = {"csrf": csrf_of(account), "current": PASSWORD, "new": new, "repeat": new}
    assert post(site, "/ui/account/password", other, fields).status == 303
    assert b"Signed in as" not in page(site, "/ui/admin", other).body
