"""Black-box checks of one real ``headwater serve`` (two granian workers) from outside, written
from the docs and issue 10 without reading the other tests: a public and a private hosted index,
a caching proxy of a hostile upstream that this module scripts, a directory, two composed indexes.

Every check talks HTTP only (raw ``http.client``, so paths, headers and spellings reach the server
exactly as written) and the CLI an operator uses. A canary HTTP server stands for "another service
on the server's network": it must never receive a request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest

from headwater.simple.names import normalize_name
from headwater.testing.wheels import build_wheel
from tests.server.hosting import cli, dists, post_upload
from tests.server.live import Live, serve

JSON = "application/vnd.pypi.simple.v1+json"
CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# -- a scriptable upstream (and the canary) ---------------------------------------------------


@dataclass
class Scripted:
    """A raw HTTP/1.1 server on loopback: ``routes[path]`` is the answer (status, reason,
    headers, body); every request line is kept in ``hits``."""

    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    port: int = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.hits.append(line)
            path = line.split(" ")[1] if " " in line else "/"
            spec = self.routes.get(path.split("?")[0], {"status": 404, "body": b"no"})
            body: bytes = spec.get("body", b"")
            if "json" in spec:
                body = json.dumps(spec["json"]).encode()
            headers = {"Content-Length": str(len(body)), "Connection": "close"}
            if "json" in spec:
                headers["Content-Type"] = JSON
            headers.update(spec.get("headers", {}))
            out = f"HTTP/1.1 {spec['status']} {spec.get('reason', 'OK')}\r\n"
            out += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(out.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@dataclass
class Running:
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread


def start(servers: list[tuple[Scripted, list[str]]]) -> Running:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def main() -> None:
        for server, hosts in servers:
            for host in hosts:
                srv = await asyncio.start_server(server._handle, host, server.port)
                server.port = srv.sockets[0].getsockname()[1]
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    return Running(loop, thread)


# -- the world ----------------------------------------------------------------------------------


@dataclass
class World:
    live: Live
    work: Path
    upstream: Scripted
    canary: Scripted
    tokens: dict[str, str]
    files: dict[str, list[str]]  # "index/project" -> file paths as served
    upstream_files: dict[str, bytes]

    @property
    def port(self) -> int:
        return int(self.live.url.rsplit(":", 1)[1])

    def req(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        token: str | None = None,
        scheme: str = "basic",
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        all_headers = dict(headers or {})
        conn.putrequest(method, path, skip_host="Host" in all_headers, skip_accept_encoding=True)
        if token is not None:
            secret = self.tokens[token]
            all_headers["Authorization"] = (
                "Basic " + base64.b64encode(f"__token__:{secret}".encode()).decode()
                if scheme == "basic"
                else f"Bearer {secret}"
            )
        for key, value in all_headers.items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data

    def cli(self, *args: str) -> str:
        return cli(*args, "--config", str(self.work / "headwater.toml")).stdout


def _entry(filename: str, url: str, data: bytes, **extra: Any) -> dict[str, Any]:
    entry = {
        "filename": filename,
        "url": url,
        "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
        "size": len(data),
    }
    entry.update(extra)
    return entry


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("blackbox")
    upstream, canary = Scripted(), Scripted()
    start([(upstream, ["127.0.0.1"]), (canary, ["127.0.0.1"])])
    up = f"http://127.0.0.1:{upstream.port}"
    wheel = build_wheel(normalize_name("uppkg"), "uppkg", "1.0")
    upstream_files = {"uppkg-1.0-py3-none-any.whl": wheel}
    upstream.routes["/f/uppkg.whl"] = {"status": 200, "body": wheel}
    upstream.routes["/simple/uppkg/"] = {
        "status": 200,
        "json": {
            "meta": {"api-version": "1.1"},
            "name": "uppkg",
            "files": [_entry("uppkg-1.0-py3-none-any.whl", f"{up}/f/uppkg.whl", wheel)],
        },
    }
    (work / "wheels").mkdir()
    dists(work / "wheels", "dirpkg", "1.0")
    (work / "headwater.toml").write_text(
        f"""
[serve]
workers = 2
data_dir = "data"
default_index = "main"

[hosted.pub]

[hosted.priv]
read = "token"

[proxy.up]
url = "{up}/simple/"
ttl = 600
timeout = 3

[directory.dir]
path = "wheels"

[index.main]
sources = ["priv", "pub", "dir", "up"]
upload = "pub"

[index.open]
sources = ["pub", "dir", "up"]
"""
    )
    with serve(["--config", str(work / "headwater.toml")], work) as live:
        admin = (work / "data" / "admin-token").read_text().strip()
        world = World(live, work, upstream, canary, {"admin": admin}, {}, upstream_files)
        dist = work / "dist"
        uploads = {
            "pub": [("alpha", "1.0"), ("beta", "1.0"), ("Foo_Bar", "1.0")],
            "priv": [("secret", "1.0"), ("secret2", "1.0"), ("Foo_Bar", "1.0"), ("alpha", "1.0")],
        }
        for index, projects in uploads.items():
            for display, version in projects:
                for path in dists(dist, display, version):
                    reply = post_upload(f"{live.url}/{index}/legacy/", admin, path)
                    assert reply.status == 200, reply.text
        tokens = {
            "r1": ["--scope", "read", "--index", "priv", "--project", "secret"],
            "r2": ["--scope", "read", "--index", "priv", "--project", "Foo_Bar"],
            "rmain": ["--scope", "read", "--index", "main", "--project", "secret"],
            "rpub": ["--scope", "read", "--index", "pub"],
            "rall": ["--scope", "read", "--index", "priv"],
            "bob": ["--scope", "manage", "--scope", "upload", "--index", "pub"],
            "bobl": ["--scope", "manage", "--index", "pub", "--project", "alpha"],
            "carol": ["--scope", "upload", "--index", "pub", "--project", "beta"],
            "dave": ["--scope", "upload"],
        }
        for user, args in tokens.items():
            world.tokens[user] = world.cli("token", "create", "--user", user, *args).strip()
        for user in ("bob", "bobl"):
            world.cli("project", "owner-add", "pub", "alpha", user)
        for index, projects in uploads.items():
            for display, _ in projects:
                project = normalize_name(display)
                _, _, body = world.req(
                    "GET", f"/{index}/simple/{project}/", {"Accept": JSON}, token="admin"
                )
                world.files[f"{index}/{project}"] = [
                    f["url"].replace("../../", f"/{index}/") for f in json.loads(body)["files"]
                ]
        yield world


# -- 1. authorization ----------------------------------------------------------------------------

SPELLINGS = {
    "secret": ["secret", "SECRET", "Secret", "secre%74"],
    "secret2": ["secret2", "SECRET2", "Secret2", "secre%74%32", "secret2%2F", "x/../secret2"],
    "foo-bar": ["foo-bar", "Foo_Bar", "foo.bar", "FOO--BAR", "foo_bar", "foo%2Dbar", "Foo.Bar"],
    "alpha": ["alpha", "ALPHA", "alph%61"],
}


def _forms(index: str, spelled: str) -> list[str]:
    prefix = "" if index == "" else f"/{index}"
    return [
        f"{prefix}/simple/{spelled}/",
        f"{prefix}/simple/{spelled}",
        f"{prefix}/v1+json/simple/{spelled}/",
        f"{prefix}/v1+html/simple/{spelled}/",
        f"{prefix}/simple/{spelled}/?format={JSON}",
        f"{prefix}/pypi/{spelled}/json",
        f"{prefix}/pypi/{spelled}/json/",
        f"/api/{index or 'main'}/projects/{spelled}",
    ]


@pytest.mark.parametrize(
    ("token", "allowed"),
    [
        (None, set()),
        ("r1", {"secret"}),
        ("r2", {"foo-bar"}),
        ("rmain", {"secret"}),
        ("rpub", set()),
    ],
)
def test_a_read_token_reads_only_its_projects_by_every_route_and_spelling(
    world: World, token: str | None, allowed: set[str]
) -> None:
    leaks = []
    reached: set[tuple[str, str]] = set()  # (project, what): the limit is not a blanket refusal
    for index in ("priv", "main", ""):
        for project, spellings in SPELLINGS.items():
            for spelled in spellings:
                for path in _forms(index, spelled):
                    for method in ("GET", "HEAD"):
                        status, headers, _ = world.req(method, path, token=token)
                        if status in (301, 302, 307, 308):
                            target = urlsplit(urljoin(f"http://x{path}", headers["location"]))
                            status, _, _ = world.req(
                                method,
                                target.path + (f"?{target.query}" if target.query else ""),
                                token=token,
                            )
                        assert status < 500, (token, method, path, status)
                        if status == 200 and project not in allowed:
                            leaks.append((method, path))
                        elif status == 200:
                            reached.add((project, "page"))
            for path in world.files.get(f"priv/{project}", []):
                for served in (path, path + ".metadata", path.replace("/priv/", "/main/")):
                    status, _, _ = world.req("GET", served, token=token)
                    if status == 200 and project not in allowed:
                        leaks.append(("GET", served))
                    elif status == 200:
                        reached.add((project, "file"))
    assert not leaks, f"token {token} read projects outside its limit: {leaks}"
    assert reached == {(p, what) for p in allowed for what in ("page", "file")}, reached


def test_a_file_path_naming_another_projects_file_is_not_served(world: World) -> None:
    """The content address of secret2's file under a filename r1 may read."""
    secret2 = world.files["priv/secret2"][0]
    secret = world.files["priv/secret"][0]
    directory, _ = secret2.rsplit("/", 1)
    own_name = secret.rsplit("/", 1)[1]
    for path in [
        f"{directory}/{own_name}",
        f"{directory}/{own_name}.metadata",
        f"{directory}/{own_name}/../{secret2.rsplit('/', 1)[1]}",
        f"{directory}/secret-9.9.tar.gz",
        f"{directory}/",
        secret2 + f"?x={own_name}",
    ]:
        for method in ("GET", "HEAD"):
            status, _, body = world.req(method, path, token="r1")
            assert status in (403, 404), (method, path, status, body[:200])


MANAGEMENT: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/yank", {"version": "1.0", "reason": "x"}),
    ("POST", "/unyank", {"version": "1.0"}),
    ("PUT", "/status", {"status": "archived", "reason": "x"}),
    ("PUT", "/alternate-locations", {"urls": ["https://example.org/simple/x/"]}),
    ("PUT", "/tracks", {"urls": ["https://example.org/simple/x/"]}),
    ("PUT", "/owners/dave", None),
    ("DELETE", "/owners/admin", None),
    ("DELETE", "/files/beta-1.0.tar.gz", None),
    ("DELETE", "/releases/1.0", None),
    ("DELETE", "", None),
]


@pytest.mark.parametrize("token", [None, "bobl", "bob", "carol", "dave", "rall", "rpub"])
def test_no_management_call_on_a_project_the_token_may_not_manage_changes_anything(
    world: World, token: str | None
) -> None:
    before = world.req("GET", "/pub/simple/beta/", {"Accept": JSON})[2]
    for spelled in ("beta", "BETA", "Beta", "bet%61"):
        for method, suffix, body in MANAGEMENT:
            for scheme in ("basic", "bearer"):
                status, _, text = world.req(
                    method,
                    f"/api/pub/projects/{spelled}{suffix}",
                    {"Content-Type": "application/json"},
                    json.dumps(body).encode() if body is not None else None,
                    token=token,
                    scheme=scheme,
                )
                assert status in (401, 403), (token, scheme, method, spelled, suffix, status, text)
    assert world.req("GET", "/pub/simple/beta/", {"Accept": JSON})[2] == before


@pytest.mark.parametrize("token", ["bobl", "bob"])
def test_a_managed_project_cannot_reach_another_projects_files(world: World, token: str) -> None:
    """bob and bobl own alpha; beta's files named through alpha's routes stay untouched."""
    before = world.req("GET", "/pub/simple/beta/", {"Accept": JSON})[2]
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/yank", {"filename": "beta-1.0.tar.gz", "reason": "x"}),
        ("POST", "/yank", {"filename": "../beta/beta-1.0.tar.gz"}),
        ("POST", "/unyank", {"filename": "beta-1.0.tar.gz"}),
        ("DELETE", "/files/beta-1.0.tar.gz", None),
        ("DELETE", "/files/beta-1.0-py3-none-any.whl", None),
        ("DELETE", "/files/..%2Fbeta-1.0.tar.gz", None),
        ("DELETE", "/files/beta-1.0.tar.gz%2F", None),
    ]
    for method, suffix, body in calls:
        status, _, text = world.req(
            method,
            f"/api/pub/projects/alpha{suffix}",
            {"Content-Type": "application/json"},
            json.dumps(body).encode() if body is not None else None,
            token=token,
        )
        assert status in (400, 403, 404), (token, method, suffix, status, text)
    assert world.req("GET", "/pub/simple/beta/", {"Accept": JSON})[2] == before


@pytest.mark.parametrize(
    ("token", "url", "dist"),
    [
        ("dave", "/pub/legacy/", ("beta", "1.0")),  # a byte-identical file of someone else's
        ("dave", "/main/legacy/", ("beta", "1.0")),
        ("dave", "/legacy/", ("beta", "2.0")),
        ("carol", "/pub/legacy/", ("alpha", "2.0")),  # another project than her token's
        ("carol", "/pub/legacy/", ("beta", "2.0")),  # her project, but not its owner
        ("bobl", "/pub/legacy/", ("alpha", "2.0")),  # manage only
        ("rall", "/legacy/", ("beta", "2.0")),
        ("dave", "/priv/legacy/", ("secret", "1.0")),
    ],
)
def test_uploads_by_non_owners_are_refused(
    world: World, token: str, url: str, dist: tuple[str, str]
) -> None:
    for path in dists(world.work / "dist", *dist):
        reply = post_upload(world.live.url + url, world.tokens[token], path)
        assert reply.status == 403, (token, url, path.name, reply.status, reply.text)


def test_a_revoked_token_is_refused_at_the_next_request_on_every_worker(world: World) -> None:
    world.tokens["eve"] = world.cli(
        "token", "create", "--user", "eve", "--scope", "read", "--index", "priv"
    ).strip()
    paths = [
        "/priv/simple/secret/",
        "/main/simple/secret/",
        "/priv/pypi/secret/json",
        "/api/priv/projects/secret",
        world.files["priv/secret"][0],
    ]
    for _ in range(10):  # both workers remember the token
        for path in paths:
            assert world.req("GET", path, token="eve")[0] == 200
    token_id = world.tokens["eve"].split("_")[1]
    world.cli("token", "revoke", token_id)
    for _ in range(10):
        for path in paths:
            assert world.req("GET", path, token="eve")[0] == 401, path


# -- 2. the fetch boundary ---------------------------------------------------------------------


def test_no_file_url_or_redirect_of_a_hostile_page_reaches_another_service(world: World) -> None:
    c, u = world.canary.port, world.upstream.port
    up = f"http://127.0.0.1:{u}"
    wheel = world.upstream_files["uppkg-1.0-py3-none-any.whl"]
    redirects = {
        "/r1": f"http://127.0.0.1:{c}/via-redirect",
        "/r2": "file:///etc/passwd",
        "/r3": f"gopher://127.0.0.1:{c}/x",
        "/r4": f"//localhost:{c}/scheme-relative",
        "/r5": f"http://2130706433:{c}/decimal",
        "/r6": "/r1",
        "/r7": f"http://127.0.0.1:{u}@127.0.0.1:{c}/userinfo",
    }
    for path, location in redirects.items():
        world.upstream.routes[path] = {"status": 302, "headers": {"Location": location}}
    urls = [
        f"http://127.0.0.1:{c}/direct",
        f"http://localhost:{c}/localhost",
        f"http://localhost.:{c}/localhost-dot",
        f"http://2130706433:{c}/decimal",
        f"http://0x7f000001:{c}/hex",
        f"http://0177.0.0.1:{c}/octal",
        f"http://127.1:{c}/short",
        f"http://127.0.0.2:{c}/other-loopback",
        f"http://0.0.0.0:{c}/zero",
        f"http://[::1]:{c}/v6",
        f"http://[::ffff:127.0.0.1]:{c}/mapped",
        f"http://127.0.0.1:{u}@127.0.0.1:{c}/userinfo",
        f"http://127.0.0.1:{u}\\@127.0.0.1:{c}/backslash",
        f"http://127.0.0.1:{c}#@127.0.0.1:{u}/fragment",
        f"//127.0.0.1:{c}/scheme-relative",
        f"HTTP://127.0.0.1:{c}/upper",
        f"http://127.0.0.1.:{c}/trailing-dot",
        f"http://127.0.0.1:0{c}/leading-zero",
        "http://169.254.169.254/latest/meta-data/",
        *(up + path for path in redirects),
    ]
    world.upstream.routes["/simple/ssrf/"] = {
        "status": 200,
        "json": {
            "meta": {"api-version": "1.1"},
            "name": "ssrf",
            "files": [
                _entry(f"ssrf-1.{i}-py3-none-any.whl", url, wheel) for i, url in enumerate(urls)
            ],
        },
    }
    for index in ("up", "open"):
        status, _, body = world.req("GET", f"/{index}/simple/ssrf/", {"Accept": JSON})
        assert status == 200
        for listed in json.loads(body)["files"]:
            path = quote(listed["url"].replace("../../", f"/{index}/"), safe="/%")
            for method in ("GET", "HEAD"):
                status, _, answer = world.req(method, path)
                assert status == 503, (method, listed["filename"], status, answer[:300])
    assert world.canary.hits == []


# -- 3. requests a server must not answer from its own headers -------------------------------


REDIRECTING = [
    "/api/pub/projects/beta/",
    "/api/pub/projects/beta%2F",
    "/api/pub/projects/beta/yank/",
    "/health/",
    "/health/ready/",
    "/metrics/",
    "/pub/simple/BETA/",
    "/pub/simple",
    "/pub",
]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE"])
def test_no_redirect_sends_a_client_to_the_host_its_request_named(
    world: World, method: str
) -> None:
    """A ``Host`` header is the client's word, not the server's name: a Location built from it
    sends a client (with its credentials, a DELETE kept by 307) wherever a forged Host said, and
    poisons any cache in front. Redirects are relative, or on ``base_url``."""
    for path in REDIRECTING:
        status, headers, _ = world.req(method, path, {"Host": "evil.example"})
        assert status < 500, (method, path, status)
        assert "evil.example" not in json.dumps(headers), (method, path, status, headers)


# -- 4. upstream text, stale pages ------------------------------------------------------------


def test_upstream_control_bytes_reach_no_header_page_or_log(world: World) -> None:
    wheel = world.upstream_files["uppkg-1.0-py3-none-any.whl"]
    url = f"http://127.0.0.1:{world.upstream.port}/f/uppkg.whl"
    evil = "bad\x1b[2J\x00\r\nX-Injected: 1\x07\x85"
    page = {
        "meta": {"api-version": "1.1", "_last-serial": 5},
        "name": "ctrl",
        "files": [
            _entry(
                "ctrl-1.0-py3-none-any.whl", url, wheel, yanked=evil, **{"requires-python": evil}
            )
        ],
        "project-status": {"status": "archived", "reason": evil},
    }
    world.upstream.routes["/simple/ctrl/"] = {"status": 200, "json": page}
    world.upstream.routes["/simple/ctrl-html/"] = {
        "status": 200,
        "headers": {"Content-Type": "text/html"},
        "body": (
            f'<a href="{url}#sha256={hashlib.sha256(wheel).hexdigest()}" '
            'data-yanked="x&#27;y&#0;z&#x85;&#x9b;" data-requires-python="&gt;=3&#8;">'
            "ctrl_html-1.0-py3-none-any.whl</a>"
        ).encode(),
    }
    failures = {
        "/simple/ctrl-reason/": {"status": 500, "reason": "Bad\x1b[2J\x07thing\x7f"},
        "/simple/ctrl-type/": {"status": 200, "headers": {"Content-Type": "text/ht\x1bml\x07"}},
        "/simple/ctrl-404/": {"status": 404, "reason": "Nope\x1b]0;pwned\x07"},
    }
    world.upstream.routes.update(failures)
    for index in ("up", "open"):
        for project in ("ctrl", "ctrl-html", "ctrl-reason", "ctrl-type", "ctrl-404"):
            for accept in (JSON, "text/html"):
                status, headers, body = world.req(
                    "GET", f"/{index}/simple/{project}/", {"Accept": accept}
                )
                assert status < 500 or status == 503, (index, project, status, body[:200])
                raw = "".join(f"{k}: {v}\n" for k, v in headers.items()).encode("latin-1")
                assert not CONTROL.search(raw), (index, project, headers)
                assert not CONTROL.search(body), (index, project, body[:400])
                assert b"X-Injected" not in raw
    assert not CONTROL.search(world.live.log.read_bytes().replace(b"\r\n", b"\n"))


# -- 5. composed indexes serve what they list --------------------------------------------------


def test_a_composed_index_serves_every_file_its_page_lists(world: World) -> None:
    wheel = world.upstream_files["uppkg-1.0-py3-none-any.whl"]
    names = [
        "odd_pkg-1.0-py3-none-any.whl",
        "odd-pkg-1.0.zip",
        "Odd_Pkg-1.1.tar.gz",
        "odd-pkg-1.0.tar.bz2",
        "odd-pkg-1.0.tgz",
        "odd-pkg-1.0.tar",
        "odd_pkg-1.0-py3.6.egg",
        "odd-pkg-1.0.win32.exe",
        "odd-pkg-1.0-beta.tar.gz",
        "odd-pkg-1.0.linux-x86_64.tar.gz",
    ]
    for i, _ in enumerate(names):
        world.upstream.routes[f"/f/odd{i}"] = {"status": 200, "body": wheel}
    base = f"http://127.0.0.1:{world.upstream.port}"
    world.upstream.routes["/simple/odd-pkg/"] = {
        "status": 200,
        "json": {
            "meta": {"api-version": "1.1"},
            "name": "odd-pkg",
            "files": [_entry(n, f"{base}/f/odd{i}", wheel) for i, n in enumerate(names)],
        },
    }
    missing = {}
    for index in ("up", "open"):
        _, _, body = world.req("GET", f"/{index}/simple/odd-pkg/", {"Accept": JSON})
        for listed in json.loads(body)["files"]:
            status, _, _ = world.req("GET", listed["url"].replace("../../", f"/{index}/"))
            if status != 200:
                missing[f"{index}: {listed['filename']}"] = status
    assert not missing, f"listed on a page, not served: {missing}"


# -- 6. malformed input: no 5xx, nosniff, Vary on 406 -------------------------------------------


def test_malformed_requests_get_no_5xx_and_every_app_answer_says_nosniff(world: World) -> None:
    file = world.files["pub/beta"][0]
    bases = [
        "/", "/simple/", "/pub/simple/", "/up/simple/", "/dir/simple/", "/open/simple/",
        "/pub/simple/beta/", "/up/simple/uppkg/", "/open/simple/beta/", "/pub/pypi/beta/json",
        "/open/pypi/uppkg/json", file, file + ".metadata", "/pub/namespaces",
        "/pub/namespace/acme", "/open/namespaces", "/api/pub/projects/beta", "/health",
        "/metrics", "/pub/legacy/", "/legacy/", "/main/legacy/",
    ]  # fmt: skip
    tails = ["%", "%zz", "%00", "%ff", "..", "%2e%2e", "//", "/./", "/-/", "*", ";x",
             "?format=", "?format=%ff", "/namespace/-", "/pypi/-/json", "x" * 3000]  # fmt: skip
    accepts = ["", "image/png", "*/*;q=abc", "a" * 5000, f"{JSON};q=1e999", "text/html;q=-1",
               "application/vnd.pypi.simple.v2+json", ",,;;"]  # fmt: skip
    headers: list[dict[str, str]] = [
        {"Range": "bytes=" + "9" * 5000 + "-"}, {"Range": "bytes=5-1"}, {"Range": "bytes=0-1,2-3"},
        {"If-None-Match": '"' + "a" * 5000}, {"Accept-Encoding": "gzip;q=abc"},
        {"Authorization": "Basic %%%"}, {"Authorization": "Bearer " + "A" * 20000},
        {"Content-Type": "multipart/form-data; boundary="},
    ]  # fmt: skip
    bodies = [b"{", b"[" * 100000, b'{"version": {"a": 1}}', b"\x00" * 100, b'{"urls": [1]}']
    problems: list[tuple[Any, ...]] = []

    def check(method: str, path: str, extra: dict[str, str], body: bytes | None = None) -> None:
        status, got, text = world.req(method, path, extra, body)
        if status >= 500 and status != 503:
            problems.append((method, path[:80], extra, status, text[:200]))
        if got.get("x-content-type-options") != "nosniff":
            problems.append(("no nosniff", method, path[:80], status))
        if status == 406 and "accept" not in got.get("vary", "").lower():
            problems.append(("406 without Vary: Accept", method, path[:80]))

    for base in bases:
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            check(method, base, {})
        for tail in tails:
            check("GET", base + tail, {})
        for accept in accepts:
            check("GET", base, {"Accept": accept})
        for extra in headers:
            check("GET", base, extra)
            check("POST", base, extra)
        for body in bodies:
            check("POST", base, {"Content-Type": "application/json"}, body)
    assert not problems, problems[:20]
    assert "Traceback" not in world.live.output()


# -- 7. admin changes apply at the next request, on every worker --------------------------------


def _statuses(world: World, path: str, times: int = 12) -> set[int]:
    return {world.req("GET", path, {"Accept": JSON})[0] for _ in range(times)}


def test_admin_changes_apply_at_the_next_request_on_every_worker(world: World) -> None:
    assert _statuses(world, "/open/simple/uppkg/") == {200}
    world.cli("namespace", "grant", "pub", "uppkg", "--owner", "admin")
    assert _statuses(world, "/open/simple/uppkg/") == {302}  # the refusal pip and uv print
    world.cli("namespace", "revoke", "pub", "uppkg")
    assert _statuses(world, "/open/simple/uppkg/") == {200}

    def yanked() -> set[bool]:
        return {
            all(
                f.get("yanked")
                for f in json.loads(world.req("GET", path, {"Accept": JSON})[2])["files"]
            )
            for path in ["/open/simple/alpha/", "/pub/simple/alpha/"] * 6
        }

    body = json.dumps({"version": "1.0", "reason": "bad build"}).encode()
    headers = {"Content-Type": "application/json"}
    assert world.req("POST", "/api/pub/projects/alpha/yank", headers, body, token="bob")[0] == 200
    assert yanked() == {True}
    unyank = json.dumps({"version": "1.0"}).encode()
    assert (
        world.req("POST", "/api/pub/projects/alpha/unyank", headers, unyank, token="bob")[0] == 200
    )
    assert yanked() == {False}


def test_pep708_urls_that_are_not_http_urls_are_refused(world: World) -> None:
    headers = {"Content-Type": "application/json"}
    try:
        for url in ["x", "/relative", "javascript:alert(1)", "file:///etc/passwd"]:
            body = json.dumps({"urls": [url]}).encode()
            for suffix, token in (("alternate-locations", "bob"), ("tracks", "admin")):
                status, _, text = world.req(
                    "PUT", f"/api/pub/projects/alpha/{suffix}", headers, body, token=token
                )
                assert status == 400, (suffix, url, status, text)
    finally:
        empty = json.dumps({"urls": []}).encode()
        for suffix in ("alternate-locations", "tracks"):
            world.req("PUT", f"/api/pub/projects/alpha/{suffix}", headers, empty, token="admin")


@pytest.mark.parametrize("size", [-1, 2**64, 10**30])
def test_an_upstream_size_no_client_can_hold_is_never_reserved(world: World, size: int) -> None:
    """uv refuses a whole page whose size does not fit a u64; headwater must not emit one."""
    wheel = world.upstream_files["uppkg-1.0-py3-none-any.whl"]
    name = f"size{abs(size) % 997}"
    url = f"http://127.0.0.1:{world.upstream.port}/f/uppkg.whl"
    world.upstream.routes[f"/simple/{name}/"] = {
        "status": 200,
        "json": {
            "meta": {"api-version": "1.1"},
            "name": name,
            "files": [_entry(f"{name}-1.0-py3-none-any.whl", url, wheel, size=size)],
        },
    }
    for index in ("up", "open"):
        status, _, body = world.req("GET", f"/{index}/simple/{name}/", {"Accept": JSON})
        assert status in (302, 503), (index, status, body[:300])


@pytest.mark.parametrize("serial", [-5, 10**30, "9" * 5000])
def test_an_upstream_serial_no_client_can_hold_is_never_reserved(
    world: World, serial: object
) -> None:
    name = f"serial{len(str(serial))}"
    world.upstream.routes[f"/simple/{name}/"] = {
        "status": 200,
        "json": {"meta": {"api-version": "1.1", "_last-serial": serial}, "name": name, "files": []},
    }
    for index in ("up", "open"):
        status, headers, _ = world.req("GET", f"/{index}/simple/{name}/", {"Accept": JSON})
        assert status in (302, 503), (index, status, headers.get("x-pypi-last-serial"))
    assert "ValueError" not in world.live.output()
