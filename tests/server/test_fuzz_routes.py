"""Malformed requests against every route of a running ``headwater serve``.

One real server (granian, one worker process) serves every kind of source: a public and a private
hosted index with a project, a mirror tree, a proxy of a test upstream, a proxy of a hostile
upstream (deep-nested JSON), a directory, and a composed index over them. The routes come from
``headwater.server.routes.ROUTES`` (the table the authorization matrix holds against the app) and
the built app's own Starlette routes, so a route added later is fuzzed without editing this file.

Each route gets a fixed corpus of inputs that once broke the server (a Range of 5,000 digits, an
invalid namespace name, a JSON body of the wrong type or 100,000 levels deep, ...) and a bounded,
derandomized set of hypothesis examples: garbage path segments, methods, headers, query strings and
bodies. Every answer must be below 500 (503 allowed: a real outage; 502/504 only from the proxy
of the hostile upstream), carry ``X-Content-Type-Options: nosniff`` (and a Content-Security-Policy
when it is an error page), and leave no traceback in the server's log; after the run the worker's memory must stay under a bound.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.assembly.plan import plan_from_config
from headwater.assembly.sources import database_url
from headwater.db import Database
from headwater.simple.names import normalize_name
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from headwater.testing.wheels import build_wheel, wheel_filename
from headwater.ui import build_app
from tests.server.conftest import build_tree
from tests.server.fuzzing import (
    BAD_SEGMENTS,
    BODIES,
    HEADER_VALUES,
    HOSTS,
    METHODS,
    QUERIES,
    Answer,
    Request,
    RouteSpec,
    basic,
    exchange,
    percent,
    route_table,
    workers_rss,
)
from tests.server.hosting import cli, post_upload, request
from tests.server.live import Live, serve

JSON = "application/vnd.pypi.simple.v1+json"
#: Indexes whose upstream misbehaves on purpose: 502 and 504 are honest answers there.
OUTAGE = frozenset({"hostile"})
#: A worker's resident memory after the whole run, MiB. An idle worker is about 90 MiB here;
#: before the fixes, one 200 MiB management body or 150 Hosts on a big legacy JSON page took
#: it past 400.
RSS_BOUND_MIB = 300
#: Hypothesis examples per route and index (derandomized: the same inputs on every run).
EXAMPLES = 20


class _Hostile(http.server.BaseHTTPRequestHandler):
    """An upstream whose project pages nest 100,000 levels deep: first under a key no parser
    knows (skipping it recursed past the limit), then where the files belong."""

    def do_GET(self) -> None:
        deep = b"[" * 100_000 + b"]" * 100_000
        if self.path.rstrip("/") == "/simple":
            body = json.dumps(
                {"meta": {"api-version": "1.1"}, "projects": [{"name": "deep"}]}
            ).encode()
        else:
            body = b'{"meta": {"api-version": "1.1"}, "x": %s, "name": "deep", "files": %s}' % (
                deep,
                deep,
            )
        self.send_response(200)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Server:
    live: Live
    port: int
    admin: str
    routes: list[RouteSpec]
    #: index -> placeholder -> a value that exists there
    values: dict[str, dict[str, bytes]]
    #: the project of the proxy "big" (a page of 4,600 files)
    big_project: bytes

    def log(self) -> str:
        return self.live.output()


@contextmanager
def _hostile_upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()


def _first_project_and_file(base: str, index: str, token: str) -> dict[str, bytes]:
    """A project and a file path (below /<index>/packages/) that ``index`` serves."""
    listing = request(f"{base}/{index}/simple/", token=token, headers={"Accept": JSON})
    assert listing.status == 200, (index, listing.status, listing.text)
    projects = sorted(p["name"] for p in json.loads(listing.body)["projects"])
    assert projects, index
    project = normalize_name(projects[0])
    page_url = f"{base}/{index}/simple/{project}/"
    page = request(page_url, token=token, headers={"Accept": JSON})
    values = {"project": project.encode()}
    if page.status == 200:
        files = json.loads(page.body)["files"]
        if files:
            from urllib.parse import urljoin

            path = urlsplit(urljoin(page_url, files[0]["url"])).path
            values["file"] = path.split("/packages/", 1)[1].encode()
            values["filename"] = files[0]["filename"].encode()
    return values


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("fuzz")
    data = work / "data"
    corpus = Corpus.generate(2, releases=1, files=2, seed=11)
    build_tree(work / "tree", corpus)
    folder = work / "wheels"
    folder.mkdir()
    dirpkg = normalize_name("dirpkg")
    (folder / wheel_filename(dirpkg, "1.0")).write_bytes(build_wheel(dirpkg, "dirpkg", "1.0"))
    with ExitStack() as stack:
        hostile = stack.enter_context(_hostile_upstream())
        up = stack.enter_context(Upstream(corpus).running())
        # One project with 4,600 files: a legacy JSON page of about 2.7 MiB.
        big = Corpus.generate(1, releases=2300, files=2, seed=5, metadata_only=True)
        big_up = stack.enter_context(Upstream(big).running())
        (work / "headwater.toml").write_text(
            "[hosted.pub]\n"
            '[hosted.priv]\nread = "token"\n'
            f'[mirror.tree]\nupstream = "{up.simple_url}"\ntarget = "{work / "tree"}"\n'
            f'[proxy.px]\nurl = "{up.simple_url}"\n'
            f'[proxy.big]\nurl = "{big_up.simple_url}"\n'
            f'[proxy.hostile]\nurl = "{hostile}"\ntimeout = 5\n'
            f'[directory.dir]\npath = "{folder}"\n'
            '[index.main]\nsources = ["priv", "pub", "dir", "tree", "px"]\n'
        )
        live = stack.enter_context(serve(["--workers", "1", "--data-dir", str(data)], work))
        admin = (data / "admin-token").read_text().strip()
        wheels = work / "dist"
        wheels.mkdir()
        name = normalize_name("fuzzpkg")
        wheel = wheels / wheel_filename(name, "1.0")
        wheel.write_bytes(build_wheel(name, "fuzzpkg", "1.0"))
        for index in ("pub", "priv"):
            done = post_upload(f"{live.url}/{index}/legacy/", admin, wheel)
            assert done.status == 200, done.text
        cli("namespace", "grant", "--data-dir", str(data), "pub", "fuzzns", "--owner", "admin")
        plan = plan_from_config(str(work / "headwater.toml"), data_dir=str(data))
        db = Database.connect(database_url(plan))
        try:
            routes = route_table(build_app(plan, db=db))
        finally:
            db.close()
        values: dict[str, dict[str, bytes]] = {}
        for index in ("pub", "priv", "tree", "px", "dir", "main"):
            values[index] = _first_project_and_file(live.url, index, admin)
        values["hostile"] = {"project": b"deep", "file": b"aa/bb/cc/deep-1.0.tar.gz"}
        big_project = _first_project_and_file(live.url, "big", admin)["project"]
        port = int(live.url.rsplit(":", 1)[1])
        yield Server(live, port, admin, routes, values, big_project)


# -- building requests -----------------------------------------------------------------------------

_COMMON = {"fixed": b"v1+json", "version": b"1.0", "user": b"admin", "namespace": b"fuzzns"}


def _indexes_for(spec: RouteSpec, server: Server) -> list[str]:
    if "index" not in spec.placeholders:
        return ["main"]  # the default index, or no index at all
    if spec.hot:
        return sorted(server.values)
    # Management routes and uploads: the hosted indexes, and one that is not hosted.
    return ["pub", "priv", "tree"]


def concrete(
    spec: RouteSpec, server: Server, index: str, override: dict[str, bytes] | None = None
) -> bytes:
    """``spec``'s template with real values for ``index`` (and ``override`` for some)."""
    known = {**_COMMON, "index": index.encode(), **server.values.get(index, {})}
    known.setdefault("filename", server.values["pub"]["filename"])
    known.setdefault("file", server.values["pub"]["file"])
    out = spec.template.encode()
    for name in spec.placeholders:
        value = (override or {}).get(name, known.get(name, b"x"))
        out = out.replace(b"{" + name.encode() + b"}", value, 1)
    return out


def _auth(server: Server, which: str) -> list[tuple[bytes, bytes]]:
    token = server.admin.encode()
    return {
        "none": [],
        "admin": [(b"Authorization", basic(b"__token__", token))],
        "bearer": [(b"Authorization", b"Bearer " + token)],
        "wrong": [(b"Authorization", basic(b"__token__", b"hw_" + b"0" * 40))],
    }[which]


def _safe_for_admin(spec: RouteSpec, method: str, auth: str) -> dict[str, bytes]:
    """Destructive calls with a real token go to a project that does not exist, so the fixture's
    data stays for the other routes (the body is still parsed: that happens before the lookup)."""
    if auth in ("admin", "bearer") and method == "DELETE":
        return {"project": b"fuzz-absent", "filename": b"fuzz_absent-1.0-py3-none-any.whl"}
    return {}


def problem(req: Request, answer: Answer | None, index: str) -> str | None:
    """What is wrong with ``answer`` to ``req`` (None: nothing)."""
    what = req.describe()
    if answer is None:
        # Only a request the HTTP parser itself may drop (bytes a request line cannot hold, a
        # body shorter than declared, a body far beyond any limit).
        dropped = any(b >= 0x80 for b in req.target) or req.content_length is not None
        return None if dropped or req.zeros else f"no answer to {what}"
    ok = answer.status < 500 or answer.status == 503
    ok = ok or (answer.status in (502, 504) and index in OUTAGE)
    if not ok:
        return f"{answer.status} for {what}: {answer.body[:300]!r}"
    if answer.header("server") is None:
        # The HTTP parser's own answer (400 or 431, no body) to a request line or headers it
        # cannot read: the application never saw the request.
        if answer.status in (400, 431) and not answer.body:
            return None
        return f"{answer.status} without a Server header for {what}"
    if answer.header("x-content-type-options") != "nosniff":
        return f"no nosniff on {answer.status} for {what}"
    page = (answer.header("content-type") or "").startswith("text/html")
    if answer.status >= 400 and page and answer.header("content-security-policy") is None:
        return f"an error page ({answer.status}) without a Content-Security-Policy for {what}"
    return None


SENT = [0]


def send(server: Server, req: Request, index: str) -> Answer | None:
    """Send ``req``; fail the test if the answer is wrong."""
    SENT[0] += 1
    answer = exchange(server.port, req)
    wrong = problem(req, answer, index)
    assert wrong is None, wrong
    return answer


def _fixed_corpus(spec: RouteSpec, server: Server, index: str) -> Iterator[Request]:
    """The known-bad inputs, each sent to this route."""
    methods = [m for m in spec.methods if m != "HEAD"] or ["GET"]
    good = concrete(spec, server, index)
    for name in spec.placeholders:
        for segment in BAD_SEGMENTS:
            for method in methods:
                yield Request(
                    method,
                    concrete(
                        spec,
                        server,
                        index,
                        {**_safe_for_admin(spec, method, "admin"), name: segment},
                    ),
                    headers=_auth(server, "admin"),
                )
    for header, values in HEADER_VALUES.items():
        for value in values:
            yield Request(methods[0], good, headers=[(header, value)])
    for host in HOSTS:
        yield Request(methods[0], good, host=host)
    for query in QUERIES:
        yield Request(methods[0], good + b"?" + query)
    for method in METHODS:
        yield Request(method, good)
    for method in methods:
        auth = "admin"
        target = concrete(spec, server, index, _safe_for_admin(spec, method, auth))
        for body in BODIES:
            for ctype in (b"application/json", b"multipart/form-data; boundary=x"):
                yield Request(
                    method,
                    target,
                    headers=[*_auth(server, auth), (b"Content-Type", ctype)],
                    body=body,
                )
        # Content-Length lies: more than is sent, and a negative or absurd length.
        for declared in (10_000, 2**70):
            yield Request(
                method, target, headers=_auth(server, auth), body=b"{}", content_length=declared
            )
    # Repeated headers.
    yield Request(
        methods[0],
        good,
        headers=[(b"Range", b"bytes=0-1")] * 50
        + [(b"Authorization", b"Basic x")] * 50
        + [(b"Accept", JSON.encode())] * 50,
    )


@st.composite
def _requests(draw: st.DrawFn, spec: RouteSpec, server: Server, index: str) -> Request:
    """One malformed request to ``spec``: some placeholders replaced by garbage, a method,
    headers, a query and a body."""
    auth = draw(st.sampled_from(["none", "admin", "bearer", "wrong"]))
    method = draw(st.sampled_from([*spec.methods, *METHODS]))
    segment = st.one_of(
        st.sampled_from(BAD_SEGMENTS),
        st.binary(max_size=60).map(percent),
        st.text(max_size=40).map(lambda t: percent(t.encode())),
    )
    override = _safe_for_admin(spec, method, auth)
    for name in spec.placeholders:
        if draw(st.booleans()):
            override[name] = draw(segment)
    target = concrete(spec, server, index, override)
    if draw(st.booleans()):
        target += b"/" + draw(segment)
    if draw(st.integers(0, 3)) == 0:
        target += b"?" + draw(
            st.one_of(st.sampled_from(QUERIES), st.binary(max_size=80).map(percent))
        )
    headers = list(_auth(server, auth))
    for header in draw(st.lists(st.sampled_from(sorted(HEADER_VALUES)), max_size=3)):
        headers.append((header, draw(st.sampled_from(HEADER_VALUES[header]))))
    body = b""
    if method not in ("GET", "HEAD") and draw(st.booleans()):
        body = draw(st.one_of(st.sampled_from(BODIES), st.binary(max_size=200)))
        if not any(h == b"Content-Type" for h, _ in headers):
            headers.append((b"Content-Type", b"application/json"))
    host = draw(st.sampled_from((b"127.0.0.1", *HOSTS)))
    return Request(method, target, headers=headers, body=body, host=host)


def _log_since(server: Server, offset: int) -> str:
    return server.log()[offset:]


def test_the_route_table_covers_every_kind_of_route(server: Server) -> None:
    templates = {spec.template for spec in server.routes}
    # The hot path, the management API, uploads, namespaces, health and metrics.
    for expected in (
        "/{index}/simple/{project}/",
        "/{index}/packages/{file}",
        "/{index}/pypi/{project}/json",
        "/api/{index}/projects/{project}/yank",
        "/{index}/legacy/",
        "/{index}/namespace/{namespace}",
        "/health/ready",
        "/metrics",
    ):
        assert expected in templates, sorted(templates)


def test_every_route_survives_malformed_requests(server: Server) -> None:
    failures: list[str] = []
    for spec in server.routes:
        for n, index in enumerate(_indexes_for(spec, server)):
            offset = len(server.log())
            found: list[str] = []
            if n == 0:
                for req in _fixed_corpus(spec, server, index):
                    SENT[0] += 1
                    wrong = problem(req, exchange(server.port, req), index)
                    if wrong is not None:
                        found.append(wrong)
            try:
                _fuzz(spec, server, index)
            except Exception as exc:  # an assertion, or hypothesis's group of them
                found.append(f"hypothesis: {exc}")
            log = _log_since(server, offset)
            if "Traceback" in log or "headwater: 500" in log:
                found.append(f"a traceback or an error in the log:\n{log[:2000]}")
            failures += [f"{spec.template} on {index}: {each[:400]}" for each in found[:5]]
    print(f"{SENT[0]} requests to {len(server.routes)} routes")
    assert not failures, "\n".join(failures) + f"\n({len(failures)} failures)"


def _fuzz(spec: RouteSpec, server: Server, index: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_requests(spec, server, index))
    def one(req: Request) -> None:
        send(server, req, index)

    one()


def test_worker_memory_stays_bounded(server: Server) -> None:
    """After the fuzzing (this runs after it in the module), a 200 MiB management body, 100 MiB
    bodies where none is read, and the legacy JSON of a 4,600-file page asked for under 150
    different Host names."""
    pid = server.live.process.pid
    before = workers_rss(pid)
    target = b"/api/pub/projects/fuzzpkg/status"
    send(server, Request("PUT", target, headers=_auth(server, "admin"), zeros=200 << 20), "pub")
    # Big bodies where none is read: a page GET, a 405, an upload refused for its token, an
    # upload whose multipart is garbage from the first byte.
    multipart = [(b"Content-Type", b"multipart/form-data; boundary=x")]
    for method, path, headers in (
        ("GET", b"/pub/simple/", []),
        ("POST", b"/health/live", []),
        ("POST", b"/pub/legacy/", multipart),
        ("POST", b"/pub/legacy/", [*_auth(server, "admin"), *multipart]),
    ):
        send(server, Request(method, path, headers=headers, zeros=100 << 20), "pub")
    after_body = workers_rss(pid)
    pypi = b"/big/pypi/" + server.big_project + b"/json"
    for n in range(150):
        answer = send(server, Request("GET", pypi, host=f"host-{n}.example".encode()), "big")
        assert answer is not None and answer.status == 200
        assert len(answer.body) > 2.5 * 2**20
    rss = workers_rss(pid)
    assert rss, "no worker processes found"
    print(f"worker RSS (MiB): before {before}, after the body {after_body}, after 150 Hosts {rss}")
    assert max(rss.values()) < RSS_BOUND_MIB, (before, after_body, rss)
