"""The proxy's fetch-boundary table: URL kinds x where they appear x target.

A hostile upstream lists a file whose URL -- on the page itself, through a redirect from the
upstream, or at the end of a redirect chain -- points at a target: the upstream's own origin, a
listed host, or somewhere the operator did not allow (another service on loopback, private and
link-local networks, cloud metadata, IPv4-mapped IPv6, other schemes, userinfo tricks, decimal and
octal IPv4 forms, names resolving to private addresses through a fake resolver). A real
"internal service" on loopback records every request: for every forbidden target it must get
none, the client must get a clear refusal (503 naming the host and the option to change, never a
500), and no byte of the service's answer. The proxy streams cold files here (``verify_first=0``)
so a leak would show even for a small file.

The pure decisions (:class:`FetchBoundary`, :func:`is_public`) get their own tables below.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from headwater.config.settings import ServeSettings
from headwater.repository.base import SourceUnavailable
from headwater.repository.boundary import FetchBoundary, check_host_entry, is_public
from headwater.repository.errors import FetchRefused
from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.repository.proxy import ProxySource
from headwater.server.app import IndexApp
from headwater.simple.names import normalize_name
from headwater.storage import FileStorage
from headwater.storage.layout import file_url_from_project_page
from tests.aioserve import aiohttp_serving
from tests.server.asgi import call

FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.002)
JSON = "application/vnd.pypi.simple.v1+json"
GOOD = b"the wheel the page promises " * 100
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
SECRET = b"SECRET internal answer " * 400  # longer than GOOD: a leak would stream it
FILENAME = "victim-1.0-py3-none-any.whl"
# Names the fake resolver knows (everything else goes to the system resolver).
FAKE_DNS = {
    "files.test": ["127.0.0.1"],  # a listed host, allowed to be on loopback
    "evil.test": ["127.0.0.1"],  # not listed
    "private.test": ["127.0.0.1"],  # listed, but its address is not allowed
    "mixed.test": ["93.184.216.34", "127.0.0.1"],  # listed; one public, one loopback address
    "metadata.test": ["169.254.169.254"],
}


@dataclass
class Net:
    upstream: int  # port of the hostile upstream (127.0.0.1)
    files: int  # port of the listed files host
    internal: int  # port of the internal service


class Internal:
    """A service on the server's network that must never be reached."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path_qs)
        return web.Response(body=SECRET, content_type="application/octet-stream")


# (id, target URL template, expected: "ok" or the text the refusal must contain)
TARGETS: list[tuple[str, str, str]] = [
    ("same-origin", "http://127.0.0.1:{upstream}/files/good", "ok"),
    ("listed-host", "http://files.test:{files}/files/good", "ok"),
    ("unlisted-host", "http://evil.test:{internal}/x", "allowed_hosts"),
    ("loopback-other-port", "http://127.0.0.1:{internal}/x", "allowed_hosts"),
    ("loopback-127-x", "http://127.1.2.3:{internal}/x", "allowed_hosts"),
    ("loopback-v6", "http://[::1]:{internal}/x", "allowed_hosts"),
    ("localhost", "http://localhost:{internal}/x", "allowed_hosts"),
    ("ten", "http://10.0.0.1:{internal}/x", "allowed_hosts"),
    ("172-16", "http://172.16.0.1:{internal}/x", "allowed_hosts"),
    ("192-168", "http://192.168.0.1:{internal}/x", "allowed_hosts"),
    ("link-local", "http://169.254.10.10/x", "allowed_hosts"),
    ("metadata", "http://169.254.169.254/latest/meta-data/", "allowed_hosts"),
    ("metadata-name", "http://metadata.test/latest/meta-data/", "allowed_hosts"),
    ("v4-mapped-v6", "http://[::ffff:127.0.0.1]:{internal}/x", "allowed_hosts"),
    ("file", "file:///etc/passwd", "only http and https"),
    ("gopher", "gopher://127.0.0.1:{internal}/_GET%20/", "only http and https"),
    ("ftp", "ftp://127.0.0.1:{internal}/x", "only http and https"),
    ("userinfo", "http://127.0.0.1:{upstream}@127.0.0.1:{internal}/x", "allowed_hosts"),
    ("userinfo-name", "http://127.0.0.1:{upstream}@evil.test:{internal}/x", "allowed_hosts"),
    ("decimal-ip", "http://2130706433:{internal}/x", "allowed_hosts"),
    ("octal-ip", "http://0177.0.0.1:{internal}/x", "allowed_hosts"),
    ("hex-ip", "http://0x7f.0.0.1:{internal}/x", "allowed_hosts"),
    ("listed-name-private-ip", "http://private.test:{internal}/x", "allowed_networks"),
    ("listed-name-one-private-ip", "http://mixed.test:{internal}/x", "allowed_networks"),
    ("upstream-host-other-scheme", "https://127.0.0.1:{upstream}/files/good", "allowed_hosts"),
    # Control bytes in the URL: refused, and never raw in a message, header or log line.
    ("control-bytes", "http://evil.test:{internal}/\x1b[2J\x07\u2028x", "control characters"),
]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
WHERE = ["page", "redirect", "redirect-chain"]


async def fake_resolver(host: str, port: int) -> list[str]:
    if host in FAKE_DNS:
        return FAKE_DNS[host]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def page_for(url: str) -> bytes:
    return msgspec.json.encode(
        {
            "meta": {"api-version": "1.1"},
            "name": "victim",
            "files": [
                {
                    "filename": FILENAME,
                    "url": url,
                    "hashes": {"sha256": GOOD_SHA},
                    # A page promising more than the secret: the old stream sent every byte.
                    "size": len(GOOD),
                }
            ],
        }
    )


@contextlib.asynccontextmanager
async def network(target: str, where: str) -> AsyncIterator[tuple[Net, Internal]]:
    """The internal service, a listed files host and a hostile upstream whose page leads to
    ``target`` (a template of ``Net`` ports) directly or through redirects."""
    internal = Internal()
    internal_app = web.Application()
    internal_app.router.add_route("*", "/{tail:.*}", internal.handle)

    async def good(request: web.Request) -> web.Response:
        return web.Response(body=GOOD, content_type="application/octet-stream")

    files_app = web.Application()
    files_app.router.add_get("/files/good", good)
    holder: dict[str, Net] = {}

    def resolved() -> str:
        net = holder["net"]
        return target.format(upstream=net.upstream, files=net.files, internal=net.internal)

    async def project(request: web.Request) -> web.Response:
        url = {"page": resolved(), "redirect": "/go", "redirect-chain": "/chain"}[where]
        return web.Response(body=page_for(url), headers={"Content-Type": JSON})

    async def go(request: web.Request) -> web.Response:
        raise web.HTTPFound(location=resolved())

    async def chain(request: web.Request) -> web.Response:
        raise web.HTTPFound(location="/go")

    upstream_app = web.Application()
    upstream_app.router.add_get("/simple/victim/", project)
    upstream_app.router.add_get("/files/good", good)
    upstream_app.router.add_get("/go", go)
    upstream_app.router.add_get("/chain", chain)
    async with (
        aiohttp_serving(internal_app) as internal_url,
        aiohttp_serving(files_app) as files_url,
        aiohttp_serving(upstream_app) as upstream_url,
    ):
        holder["net"] = Net(
            upstream=_port(upstream_url), files=_port(files_url), internal=_port(internal_url)
        )
        yield holder["net"], internal


def _port(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("target", "expected"), [pytest.param(t, e, id=i) for i, t, e in TARGETS])
def test_fetch_boundary_table(
    tmp_path: Path, where: str, target: str, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    if CONTROL.search(target) and where != "page":
        pytest.skip("an HTTP server cannot send control bytes in a Location header")

    async def t() -> None:
        async with network(target, where) as (net, internal):
            proxy = ProxySource(
                "pub",
                f"http://127.0.0.1:{net.upstream}/simple/",
                FileStorage(tmp_path),
                retry=FAST,
                timeout=5.0,
                verify_first=0,  # stream cold files: a leak would show as bytes sent
                allowed_hosts=[
                    f"files.test:{net.files}",
                    f"private.test:{net.internal}",
                    f"mixed.test:{net.internal}",
                ],
                # The listed files host is on loopback: the operator allows that address (the
                # origin check must refuse the rest on its own), except where the address check
                # itself is what the case is about.
                allowed_networks=[] if expected == "allowed_networks" else ["127.0.0.1/32"],
                resolver=fake_resolver,
            )
            try:
                path = file_url_from_project_page(GOOD_SHA, FILENAME).removeprefix(
                    "../../packages/"
                )
                page = await proxy.page(normalize_name("victim"), "json")
                assert page is not None
                app = IndexApp(ServeSettings(), {"pub": proxy}, default="pub")
                with caplog.at_level(logging.DEBUG):
                    answer = await call(app, "GET", f"/pub/packages/{path}")
                for record in caplog.records:
                    assert not CONTROL.search(record.getMessage()), record.getMessage()
                for value in answer.headers.values():
                    assert not CONTROL.search(value), value
                assert not CONTROL.search(answer.body.decode("utf-8", "replace"))
                assert internal.hits == [], f"the internal service was reached: {internal.hits}"
                assert SECRET[:20] not in answer.body
                if expected == "ok":
                    assert answer.status == 200
                    assert answer.body == GOOD
                    return
                on_page = where == "page" and expected == "only http and https"
                if on_page:
                    # Left off the served page already: the proxy has no such file.
                    assert answer.status == 404, answer
                else:
                    assert answer.status == 503, (answer.status, answer.body[:500])
                    text = answer.body.decode()
                    assert expected in text, text
                    assert "nothing was" in text, text
                    if expected.startswith("allowed_"):
                        assert "[proxy.pub]" in text, text
                assert not list((tmp_path / "web").rglob(FILENAME))
            finally:
                await proxy.aclose()

    asyncio.run(t())


def test_the_internal_service_is_reachable_without_the_proxy(tmp_path: Path) -> None:
    """The control: the service the table protects answers when asked directly, so "zero hits"
    above means the proxy never asked, not that nothing could."""

    async def t() -> None:
        async with network("http://127.0.0.1:{internal}/x", "page") as (net, internal):
            reader, writer = await asyncio.open_connection("127.0.0.1", net.internal)
            writer.write(b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
            assert SECRET[:20] in data and internal.hits == ["/probe"]

    asyncio.run(t())


@pytest.mark.parametrize("where", WHERE)
def test_the_mirror_keeps_the_same_boundary(tmp_path: Path, where: str) -> None:
    """``headwater mirror`` reads hostile pages too: the same refusal, the same zero hits."""

    async def t() -> None:
        async with network("http://127.0.0.1:{internal}/x", where) as (net, internal):
            async with client_session() as session:
                repo = HttpRepository(
                    f"http://127.0.0.1:{net.upstream}/simple/", session, retry=FAST
                )
                fetched = await repo.project_page(normalize_name("victim"))
                assert fetched.page is not None
                url = fetched.page.files[0].url
                with pytest.raises(FetchRefused, match="allowed_hosts"):
                    await repo.fetch_verified(
                        url,
                        sha256=GOOD_SHA,
                        size=len(GOOD),
                        storage=FileStorage(tmp_path),
                        key="web/packages/x",
                    )
            assert internal.hits == []

    asyncio.run(t())


def test_an_upstream_name_resolving_to_loopback_is_refused_unless_its_network_is_listed(
    tmp_path: Path,
) -> None:
    """DNS of a name can change under the operator (rebinding): an upstream given by name must
    resolve to public addresses, or to a network the operator listed."""

    async def t() -> None:
        async with network("http://127.0.0.1:{upstream}/files/good", "page") as (net, _):
            FAKE_DNS["upstream.test"] = ["127.0.0.1"]
            try:
                for networks, ok in (([], False), (["127.0.0.0/8"], True)):
                    proxy = ProxySource(
                        "pub",
                        f"http://upstream.test:{net.upstream}/simple/",
                        FileStorage(tmp_path / str(ok)),
                        retry=FAST,
                        allowed_networks=networks,
                        resolver=fake_resolver,
                    )
                    try:
                        if ok:
                            assert await proxy.page(normalize_name("victim"), "json") is not None
                        else:
                            with pytest.raises(SourceUnavailable, match="allowed_networks"):
                                await proxy.page(normalize_name("victim"), "json")
                    finally:
                        await proxy.aclose()
            finally:
                del FAKE_DNS["upstream.test"]

    asyncio.run(t())


# -- the pure decisions ---------------------------------------------------------------------------

UP = "http://127.0.0.1:8000/simple/"
BOUNDARY_CASES: list[tuple[str, list[str], str, bool]] = [
    # (upstream, allowed_hosts, url, allowed)
    (UP, [], "http://127.0.0.1:8000/files/x", True),
    (UP, [], "http://127.0.0.1:8001/files/x", False),
    (UP, [], "https://127.0.0.1:8000/files/x", False),
    (UP, [], "http://127.0.0.1./x", False),
    (UP, [], "http://[::1]:8000/x", False),
    (UP, [], "http://2130706433:8000/x", False),
    (UP, [], "http://0177.0.0.1:8000/x", False),
    (UP, [], "http://127.0.0.1:8000@evil.example/x", False),
    (UP, ["files.example.com"], "https://files.example.com/x", True),
    (UP, ["files.example.com"], "http://files.example.com/x", True),
    (UP, ["files.example.com"], "https://files.example.com:8443/x", False),
    (UP, ["files.example.com"], "https://FILES.example.com./x", True),
    (UP, ["files.example.com"], "https://evil.files.example.com/x", False),
    (UP, ["files.example.com:8443"], "https://files.example.com:8443/x", True),
    (UP, ["https://files.example.com"], "http://files.example.com/x", False),
    (UP, ["*.cdn.example"], "https://a.b.cdn.example/x", True),
    (UP, ["*.cdn.example"], "https://cdn.example/x", False),
    (UP, ["*.cdn.example"], "https://evilcdn.example/x", False),
    (UP, ["[fd00::1]:81"], "http://[fd00::1]:81/x", True),
    (UP, ["[fd00::1]:81"], "http://[fd00:0::1]:81/x", True),
    ("https://pypi.org/simple/", [], "https://files.pythonhosted.org/packages/x", True),
    ("https://pypi.org/simple/", [], "http://files.pythonhosted.org/packages/x", False),
    ("https://pypi.org/simple/", [], "https://pypi.org/x", True),
    ("https://pypi.org/simple/", [], "https://evil.pythonhosted.org/x", False),
    ("https://test.pypi.org/simple/", [], "https://test-files.pythonhosted.org/x", True),
    ("https://example.org/simple/", [], "https://files.pythonhosted.org/x", False),
]


@pytest.mark.parametrize(("upstream", "hosts", "url", "allowed"), BOUNDARY_CASES)
def test_origin_decisions(upstream: str, hosts: list[str], url: str, allowed: bool) -> None:
    from urllib.parse import urlsplit

    boundary = FetchBoundary.for_upstream(upstream, allowed_hosts=hosts, where="[proxy.x]")
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if allowed:
        boundary.check_origin(url, parts.scheme, parts.hostname or "", port)
    else:
        with pytest.raises(FetchRefused, match=r"allowed_hosts in \[proxy\.x\]"):
            boundary.check_origin(url, parts.scheme, parts.hostname or "", port)


ADDRESSES: list[tuple[str, bool]] = [
    ("93.184.216.34", True),
    ("2606:4700::1", True),
    ("127.0.0.1", False),
    ("127.255.0.1", False),
    ("::1", False),
    ("10.1.2.3", False),
    ("172.16.0.1", False),
    ("172.31.255.255", False),
    ("192.168.1.1", False),
    ("169.254.169.254", False),
    ("fe80::1", False),
    ("fc00::1", False),
    ("fd12:3456::1", False),
    ("0.0.0.0", False),
    ("::", False),
    ("100.64.0.1", False),
    ("224.0.0.1", False),
    ("255.255.255.255", False),
    ("::ffff:127.0.0.1", False),
    ("::ffff:10.0.0.1", False),
    ("::ffff:93.184.216.34", True),
    ("64:ff9b::7f00:1", False),
    ("64:ff9b::a00:1", False),
    ("2002:7f00:1::", False),
    ("2002:a00:1::", False),
]


@pytest.mark.parametrize(("address", "public"), ADDRESSES)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_address_decisions() -> None:
    literal = FetchBoundary.for_upstream("http://10.0.0.5:3141/simple/", where="[proxy.x]")
    literal.check_addresses("u", "10.0.0.5", 3141, ["10.0.0.5"])  # written by the operator
    with pytest.raises(FetchRefused, match=r'"10\.0\.0\.6/32"'):
        literal.check_addresses("u", "10.0.0.5", 3141, ["10.0.0.6"])
    named = FetchBoundary.for_upstream(
        "http://pypi.corp/simple/", allowed_hosts=["files.corp"], where="[proxy.x]"
    )
    # The upstream itself may be on the organisation's network (RFC 1918, IPv6 ULA)...
    named.check_addresses("u", "pypi.corp", 80, ["93.184.216.34", "10.1.2.3", "fd00::7"])
    # ...never on this machine, link-local (cloud metadata) or 0.0.0.0, by name...
    for address, kind in (
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "private"),
        ("::ffff:10.1.2.3", "private"),
        ("100.64.0.1", "non-public"),
    ):
        with pytest.raises(FetchRefused, match=rf"{kind} address.*allowed_networks"):
            named.check_addresses("u", "pypi.corp", 80, ["10.1.2.3", address])
    # ...and every other host (a listed file host, what a page names) must be public or listed.
    with pytest.raises(FetchRefused, match=r"10\.1\.2\.3, a private address.*allowed_networks"):
        named.check_addresses("u", "files.corp", 80, ["93.184.216.34", "10.1.2.3"])
    listed = FetchBoundary.for_upstream(
        "http://pypi.corp/simple/", allowed_networks=["10.0.0.0/8"], where="[proxy.x]"
    )
    listed.check_addresses("u", "pypi.corp", 80, ["10.1.2.3"])
    with pytest.raises(FetchRefused, match="link-local"):
        listed.check_addresses("u", "pypi.corp", 80, ["169.254.169.254"])
    typed = FetchBoundary.for_upstream("http://pypi.corp/simple/", trust_upstream_addresses=True)
    typed.check_addresses("u", "pypi.corp", 80, ["10.1.2.3"])  # its own name: any address
    with pytest.raises(FetchRefused):
        typed.check_addresses("u", "other.corp", 80, ["10.1.2.3"])  # nothing else
    local = FetchBoundary.for_upstream("http://localhost:8080/simple/")
    local.check_addresses("u", "localhost", 8080, ["127.0.0.1", "::1"])
    with pytest.raises(FetchRefused):
        local.check_addresses("u", "localhost", 8080, ["10.0.0.1"])


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "files.example.com/path",
        "user@files.example.com",
        "ftp://files.example.com",
        "files example.com",
        "files.example.com:99999",
        "fïles.example.com",
        "*",
    ],
)
def test_bad_allowed_hosts_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed_hosts entry"):
        check_host_entry(entry)


@pytest.mark.parametrize(
    ("table", "text"),
    [
        ('allowed_hosts = ["files.example.com/path"]', "allowed_hosts entry"),
        ('allowed_networks = ["10.0.0.0/33"]', "allowed_networks entry"),
        ('allowed_host = ["files.example.com"]', "allowed_host"),  # unknown keys are errors
        ("deadline = 0", "deadline"),
    ],
)
def test_boundary_options_are_checked_when_the_config_loads(table: str, text: str) -> None:
    from headwater.config import ConfigError, parse_config

    for kind, first in (("proxy", 'url = "https://pypi.org/simple/"'),):
        with pytest.raises(ConfigError, match=re.escape(text)):
            parse_config(f"[{kind}.x]\n{first}\n{table}\n", source="t.toml")
    mirror = 'upstream = "https://pypi.org/simple/"\ntarget = "t"'
    if "deadline" not in table:
        with pytest.raises(ConfigError, match=re.escape(text)):
            parse_config(f"[mirror.x]\n{mirror}\n{table}\n", source="t.toml")


def test_a_small_cold_file_with_wrong_bytes_sends_not_one_byte(tmp_path: Path) -> None:
    """Verified before its first byte: whoever answered, a client gets a 503 and none of it."""

    async def t() -> None:
        # The upstream's own file route answers the secret instead of the promised file.
        async with network("http://127.0.0.1:{internal}/x", "page") as (net, internal):
            proxy = ProxySource(
                "pub",
                f"http://127.0.0.1:{net.internal}/simple/",  # the "internal" service IS upstream
                FileStorage(tmp_path),
                retry=FAST,
            )
            try:
                app = IndexApp(ServeSettings(), {"pub": proxy}, default="pub")
                # It has no pages; ask for the file through a page of our own making.
                proxy._entries.clear()
                path = file_url_from_project_page(GOOD_SHA, FILENAME).removeprefix(
                    "../../packages/"
                )
                from headwater.repository._proxy_files import Target

                target = Target(
                    url=f"http://127.0.0.1:{net.internal}/files/good",
                    key=f"web/packages/{path}",
                    sha256=GOOD_SHA,
                    size=len(SECRET),
                )

                async def fake_target(_: str) -> Target:
                    return target

                proxy._target = fake_target  # type: ignore[method-assign]
                answer = await call(app, "GET", f"/pub/packages/{path}")
                assert internal.hits == ["/files/good"]  # it was asked (inside the boundary)
                assert answer.status == 503, answer.status
                assert SECRET[:20] not in answer.body
                assert b"sha256" in answer.body
                assert not list((tmp_path / "web").rglob(FILENAME))
            finally:
                await proxy.aclose()

    asyncio.run(t())
