"""Garbage in every field of every form post, and of the upload, from callers who get past the
door: never a 500, and every answer carries its security headers.

tests/server/test_fuzz_routes.py sends malformed requests to every route, but a form's fields are
read only after the caller is signed in and (for a browser session) its CSRF token matches; a
fuzzer without both stops at the door. Here each form route of ROUTES (``layer="ui"``,
``body="form"``; a new form is walked without editing this file) is posted by three callers, an
admin token in ``Authorization``, a password session (cookie and its CSRF token), and nobody,
with:

- each field the interface's templates name (``name="..."``), one at a time, set to each hostile
  value (empty, 5,000 characters, control characters, non-UTF-8 bytes, NUL, a number past 64
  bits, markup, a path), with the others plausible;
- every field at once repeated, and none at all;
- bodies the form parser must survive: undecodable percent escapes, a multipart body, a
  multipart body cut short, UTF-16, JSON;
- a bounded, derandomized set of hypothesis forms over the same fields.

The upload (``/{index}/legacy/``) gets each of its fields (as twine sends them) replaced by each
hostile value, dropped, or repeated, and multipart bodies broken at each part boundary.

Every answer must be below 500, carry ``X-Content-Type-Options: nosniff``, and, when it is a page
(text/html), a Content-Security-Policy; the app must not raise.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.config.settings import HostedSettings, ServePlan, ServeSettings
from headwater.db import Database
from headwater.server.app import IndexApp
from headwater.server.routes import ROUTES, RouteSpec, example_path
from headwater.simple.names import normalize_name
from headwater.testing.wheels import build_wheel, wheel_filename
from headwater.ui import build_app
from tests.server.asgi import Answer, call
from tests.server.hosting import upload_form

FORMS = [r for r in ROUTES if r.layer == "ui" and r.body == "form"]
TEMPLATES = Path(__file__).parents[2] / "src/headwater/ui/templates"
#: Every field name a form of the interface has.
FIELDS = sorted(
    {m for t in TEMPLATES.rglob("*.html") for m in re.findall(r'name="([\w:-]+)"', t.read_text())}
)
PASSWORD = "correct horse battery staple fuzz"
FORM = "application/x-www-form-urlencoded"

#: Field values, as bytes before percent-encoding.
HOSTILE: tuple[bytes, ...] = (
    b"",
    b"x" * 5000,
    b"a\x1b[31mb\r\nX-Injected: 1",
    b"\xff\xfe",
    b"a\x00b",
    b"9" * 40,
    b"-1",
    b"<script>alert(1)</script>",
    b"../../etc/passwd",
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate
    "名前".encode(),
    b" ",
)

#: Whole bodies (with their content type) the form parser must survive.
BODIES: tuple[tuple[bytes, str], ...] = (
    (b"%ff%fe=%zz&%=&&==", FORM),
    (b"a=" + b"%" * 3000, FORM),
    (b"\xff\xfe\x00", FORM),
    ("user=é".encode("utf-16"), FORM + "; charset=utf-16"),
    (b'{"user": "x"}', "application/json"),
    (
        b'--x\r\nContent-Disposition: form-data; name="user"\r\n\r\nx\r\n--x--\r\n',
        "multipart/form-data; boundary=x",
    ),
    (
        b'--x\r\nContent-Disposition: form-data; name="user"\r\n\r\nx',
        "multipart/form-data; boundary=x",
    ),
    (
        b"--x\r\nContent-Disposition: form-data\r\n\r\n\r\n--x--\r\n",
        "multipart/form-data; boundary=x",
    ),
    (b"user=x", "multipart/form-data"),
    (b"user=x", "text/plain"),
    (b"user=x", "\xff"),
)


@dataclass
class World:
    app: IndexApp
    db: Database
    admin: str
    cookie: str
    csrf: str
    wheel: Path


def _basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


def _call(app: IndexApp, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
    return asyncio.run(call(app, method, path, headers=headers, body=body))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("formfuzz")
    db = Database.connect(f"sqlite:///{tmp / 'hw.sqlite3'}")
    db.upgrade()
    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp / "data")),
        hosted={"main": HostedSettings()},
        default="main",
    )
    db.create_user("root")
    _, admin = db.create_token("root", scopes={"admin"})
    app = build_app(plan, db=db)
    wheel = tmp / wheel_filename(normalize_name("demo"), "1.0")
    wheel.write_bytes(build_wheel(normalize_name("demo"), "demo", "1.0"))
    body, ctype = upload_form(wheel)
    done = _call(
        app, "POST", "/main/legacy/", {"Content-Type": ctype, "Authorization": _basic(admin)}, body
    )
    assert done.status == 200, done.body[:300]
    db.create_user("alice")
    db.set_password("alice", PASSWORD)
    db.add_owner("main", "demo", "alice")
    signin = _call(
        app,
        "POST",
        "/ui/signin",
        {"Content-Type": FORM},
        f"user=alice&password={quote_from_bytes(PASSWORD.encode())}&next=/ui/admin".encode(),
    )
    assert signin.status == 303, signin.body[:300]
    cookie = signin.headers["set-cookie"].split(";", 1)[0]
    page = _call(app, "GET", "/ui/admin", {"Cookie": cookie}, b"")
    found = re.search(rb'name="csrf" value="([0-9a-f]+)"', page.body)
    assert found is not None, page.body[:500]
    yield World(app, db, admin, cookie, found.group(1).decode(), wheel)
    db.close()


def _headers(world: World, caller: str, content_type: str = FORM) -> dict[str, str]:
    headers = {"Content-Type": content_type}
    if caller == "admin":
        headers["Authorization"] = _basic(world.admin)
    elif caller == "session":
        headers["Cookie"] = world.cookie
    return headers


def _encode(fields: list[tuple[str, bytes]]) -> bytes:
    return b"&".join(
        quote_from_bytes(k.encode()).encode() + b"=" + quote_from_bytes(v).encode()
        for k, v in fields
    )


def _plausible(world: World, caller: str) -> dict[str, bytes]:
    """A value for each field that a real form would send (so the walked one is reached)."""
    values = dict.fromkeys(FIELDS, b"x")
    values.update(
        {
            "csrf": world.csrf.encode() if caller == "session" else b"",
            "user": b"alice",
            "password": PASSWORD.encode(),
            "current": PASSWORD.encode(),
            "index": b"main",
            "indexes": b"main",
            "project": b"demo",
            "projects": b"demo",
            "version": b"1.0",
            "scope": b"upload",
            "days": b"30",
            "id": b"999999",  # no such token: a revoke reaches the lookup and changes nothing
            "reason": b"fuzz",
            "description": b"fuzz",
            "next": b"/ui/admin",
        }
    )
    return values


def problem(answer: Answer, what: str) -> str | None:
    if answer.status >= 500:
        return f"{answer.status} for {what}: {answer.body[:300]!r}"
    if answer.headers.get("x-content-type-options") != "nosniff":
        return f"no nosniff on {answer.status} for {what}"
    if answer.headers.get("content-type", "").startswith("text/html") and (
        "content-security-policy" not in answer.headers
    ):
        return f"a page without a Content-Security-Policy ({answer.status}) for {what}"
    if b"Traceback (most recent call last)" in answer.body:
        return f"a traceback in the answer to {what}"
    return None


def _send(world: World, route: RouteSpec, caller: str, body: bytes, ctype: str = FORM) -> Answer:
    path = example_path(route, index="main", project="demo")
    return _call(world.app, "POST", path, _headers(world, caller, ctype), body)


CALLERS = ("admin", "session", "nobody")


def test_the_walk_has_forms_and_fields() -> None:
    assert len(FORMS) >= 6, FORMS
    for expected in ("csrf", "user", "password", "scope", "id"):
        assert expected in FIELDS, FIELDS


@pytest.mark.parametrize("route", FORMS, ids=lambda r: r.path)
def test_every_field_of_every_form_takes_garbage(world: World, route: RouteSpec) -> None:
    failures: list[str] = []
    for caller in CALLERS:
        base = _plausible(world, caller)
        for name in FIELDS:
            if name == "password" and caller == "session":
                continue  # wrong passwords lock alice out; the re-check's refusals are tested elsewhere
            for value in HOSTILE:
                fields = [(k, value if k == name else v) for k, v in base.items()]
                answer = _send(world, route, caller, _encode(fields))
                wrong = problem(answer, f"{caller} {name}={value[:40]!r}")
                if wrong:
                    failures.append(wrong)
        every = [(k, v) for k, v in base.items()] * 3
        for body, ctype, what in (
            (_encode(every), FORM, "every field three times"),
            (b"", FORM, "no field at all"),
            *((b, c, f"body {b[:30]!r} as {c}") for b, c in BODIES),
        ):
            wrong = problem(_send(world, route, caller, body, ctype), f"{caller} {what}")
            if wrong:
                failures.append(wrong)
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failures)"


@pytest.mark.parametrize("route", FORMS, ids=lambda r: r.path)
def test_hypothesis_forms(world: World, route: RouteSpec) -> None:
    field = st.sampled_from([*FIELDS, "x", ""])
    value = st.one_of(
        st.sampled_from(HOSTILE), st.binary(max_size=80), st.text(max_size=40).map(str.encode)
    )

    @settings(
        max_examples=40,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.sampled_from(("admin", "nobody")), st.lists(st.tuples(field, value), max_size=12))
    def one(caller: str, fields: list[tuple[str, bytes]]) -> None:
        answer = _send(world, route, caller, _encode(fields))
        wrong = problem(answer, f"{caller} {fields!r}"[:300])
        assert wrong is None, wrong

    one()


UPLOAD_FIELDS = (
    ":action",
    "protocol_version",
    "metadata_version",
    "name",
    "version",
    "filetype",
    "pyversion",
    "sha256_digest",
    "filename",
)


def _upload(world: World, body: bytes, ctype: str) -> Answer:
    headers = {"Content-Type": ctype, "Authorization": _basic(world.admin)}
    return _call(world.app, "POST", "/main/legacy/", headers, body)


def test_every_upload_field_takes_garbage(world: World) -> None:
    failures: list[str] = []
    files = len(world.db.files("main", "demo")) if hasattr(world.db, "files") else None
    for name in UPLOAD_FIELDS:
        for raw in (*HOSTILE, None):
            value = None if raw is None else raw.decode("utf-8", "surrogateescape")
            if name == "filename" and value is None:
                continue
            try:
                body, ctype = upload_form(world.wheel, **{name: value})
            except UnicodeEncodeError:
                body, ctype = _upload_bytes(world, name, raw or b"")
            answer = _upload(world, body, ctype)
            wrong = problem(answer, f"upload {name}={raw!r:.60}")
            if wrong:
                failures.append(wrong)
    if files is not None:
        assert len(world.db.files("main", "demo")) == files  # no garbage was accepted
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failures)"


def _upload_bytes(world: World, name: str, raw: bytes) -> tuple[bytes, str]:
    """upload_form's body with ``name``'s value replaced by raw bytes (not UTF-8)."""
    body, ctype = upload_form(world.wheel)
    marker = f'name="{name}"\r\n\r\n'.encode()
    if marker in body:
        start = body.index(marker) + len(marker)
        end = body.index(b"\r\n", start)
        return body[:start] + raw + body[end:], ctype
    return body.replace(b'filename="', b'filename="' + raw, 1), ctype


def test_broken_multipart_uploads(world: World) -> None:
    body, ctype = upload_form(world.wheel)
    boundary = ctype.split("boundary=", 1)[1].encode()
    cuts = [m.start() for m in re.finditer(re.escape(b"--" + boundary), body)]
    failures: list[str] = []
    cases: list[tuple[bytes, str, str]] = []
    for cut in cuts + [c + 5 for c in cuts] + [c + 40 for c in cuts]:
        cases.append((body[:cut], ctype, f"cut at {cut}"))
    cases += [
        (body, "multipart/form-data; boundary=" + "z" * 70, "a boundary that is not in the body"),
        (body, "multipart/form-data", "no boundary"),
        (body, 'multipart/form-data; boundary="', "an unterminated quoted boundary"),
        (body, ctype + "; charset=utf-16", "a charset"),
        (
            body.replace(b"Content-Disposition: form-data; ", b"Content-Disposition: \xff; "),
            ctype,
            "a non-UTF-8 disposition",
        ),
        (body.replace(b'name="content"; ', b""), ctype, "the file part without a name"),
        (body.replace(b"\r\n\r\n", b"\r\n", 3), ctype, "headers that run into the value"),
        (body.replace(b'filename="', b'filename="../../', 1), ctype, "a filename with ../"),
        (
            body.replace(b'filename="', b'filename="a\x00\x1b', 1),
            ctype,
            "a filename with control characters",
        ),
        (body.replace(b"--" + boundary + b"--", b""), ctype, "no closing boundary"),
        (body + body, ctype, "the body twice"),
        (
            b"--" + boundary + b"\r\n" + b"X: y\r\n" * 2000 + b"\r\n\r\n",
            ctype,
            "2,000 part headers",
        ),
    ]
    for data, content_type, what in cases:
        wrong = problem(_upload(world, data, content_type), f"upload: {what}")
        if wrong:
            failures.append(wrong)
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failures)"


def test_malformed_input_a_form_handler_raises_is_a_400_page(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The net under every form handler (headwater.ui.routes.page): an InvalidInput that escapes
    a post's handler is a 400 page with the reason and the page's security headers, not a 500.
    (A handler that lets one escape is put in place of the revoke form's, as a future handler's
    unforeseen refusal would.)"""
    from starlette.requests import Request

    from headwater.ui import admin
    from headwater.ui.interface import Interface

    async def handler(request: Request, ui: Interface) -> object:
        normalize_name("../not a name")
        raise AssertionError("unreachable")

    monkeypatch.setattr(admin, "token_revoke", handler)
    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp_path / "data")),
        hosted={"main": HostedSettings()},
        default="main",
    )
    app = build_app(plan, db=world.db)
    headers = {"Content-Type": FORM, "Authorization": _basic(world.admin)}
    answer = _call(app, "POST", "/ui/admin/tokens/revoke", headers, b"id=1")
    assert answer.status == 400, answer.body[:300]
    assert b"the form was refused" in answer.body and b"../not a name" in answer.body
    assert "content-security-policy" in answer.headers
