"""The upstream client reaching real upstreams: through a real forward proxy (tinyproxy, absolute
form for http and CONNECT for https, with and without proxy credentials), NO_PROXY, upstreams that
require Basic or Bearer credentials (from a variable, a file, netrc), credentials kept to their
origin across redirects, a private CA bundle, and mutual TLS."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from headwater.repository._client import HttpClient, ProxyError
from headwater.repository._egress import Egress, InvalidEgress, build_egress
from headwater.repository.errors import UpstreamError
from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.aioserve import aiohttp_serving
from tests.forward_proxy import ForwardProxy, forward_proxy
from tests.tls import self_signed

FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002)
USER, PASSWORD, TOKEN = "alice", "s3cret-pw", "tok-0123456789"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BEARER = f"Bearer {TOKEN}"


class Certificates:
    def __init__(self, root: Path) -> None:
        (root / "server").mkdir()
        (root / "client").mkdir()
        self.cert, self.key = self_signed(root / "server")
        self.client_cert, self.client_key = self_signed(root / "client")

    def server_context(self, *, require_client: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if require_client:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_cert)
        return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("tls"))


def corpus() -> Corpus:
    return Corpus.generate(3, releases=1, files=1, seed=11)


async def sync_all(repo: HttpRepository) -> int:
    """The project list, every page and every file: what a mirror asks for. Returns files read."""
    listed = await repo.project_list()
    assert listed.project_list is not None
    files = 0
    for entry in listed.project_list.projects:
        fetched = await repo.project_page(entry.normalized)
        assert fetched.page is not None
        for file in fetched.page.files:
            assert file.size is not None
            await repo.fetch_bytes(file.url, sha256=file.hashes.get("sha256"), size=file.size)
            files += 1
    return files


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


# -- through a forward proxy ----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("proxy_auth", [False, True], ids=["open-proxy", "proxy-auth"])
def test_sync_through_a_forward_proxy(
    scheme: str, proxy_auth: bool, certs: Certificates, tmp_path: Path
) -> None:
    credentials = {"user": "proxyuser", "password": "proxy-pw"} if proxy_auth else {}
    with forward_proxy(tmp_path / "proxy", **credentials) as proxy:

        async def go() -> None:
            server_ssl = certs.server_context() if scheme == "https" else None
            async with Upstream(corpus(), ssl=server_ssl) as up:
                egress = build_egress(
                    up.simple_url,
                    where="[mirror.t]",
                    proxy=proxy.url_with_credentials,
                    ca_bundle=str(certs.cert) if scheme == "https" else None,
                    environ={},
                )
                async with client_session(connections=4, egress=egress) as session:
                    files = await sync_all(HttpRepository(up.simple_url, session, retry=FAST))
                assert files == 3
                seen = proxy.requests_seen()
                port = up.port
                if scheme == "https":
                    # Every byte went through the tunnel: the proxy saw CONNECTs, no paths.
                    assert f"CONNECT 127.0.0.1:{port}" in seen
                    assert "/simple/" not in seen
                else:
                    assert f"GET http://127.0.0.1:{port}/simple/ " in seen
                    assert re.search(rf"GET http://127\.0\.0\.1:{port}/packages/\S+ ", seen)
                assert up.requests("/simple/") == 1

        run(go)


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("given", ["missing", "wrong"])
def test_proxy_refusing_credentials_is_a_clear_error_and_not_retried(
    scheme: str, given: str, certs: Certificates, tmp_path: Path
) -> None:
    with forward_proxy(tmp_path / "proxy", user="proxyuser", password="right-pw") as proxy:
        proxy_url = (
            proxy.url if given == "missing" else f"http://proxyuser:WRONG-pw@127.0.0.1:{proxy.port}"
        )

        async def go() -> None:
            server_ssl = certs.server_context() if scheme == "https" else None
            async with Upstream(corpus(), ssl=server_ssl) as up:
                egress = build_egress(
                    up.simple_url,
                    where="[mirror.t]",
                    proxy=proxy_url,
                    ca_bundle=str(certs.cert) if scheme == "https" else None,
                    environ={},
                )
                sleeps: list[float] = []

                async def sleep(seconds: float) -> None:
                    sleeps.append(seconds)

                async with client_session(egress=egress) as session:
                    repo = HttpRepository(up.simple_url, session, retry=FAST, sleep=sleep)
                    with pytest.raises(UpstreamError) as caught:
                        await repo.project_list()
                message = str(caught.value)
                assert "WRONG-pw" not in message and "right-pw" not in message
                user = "proxyuser@" if given == "wrong" else ""
                if scheme == "http" and given == "wrong":
                    # tinyproxy answers a relayed request with bad credentials 401, not 407:
                    # the message cannot know whose 401 it is, so it names both.
                    refused = f"the forward proxy http://{user}127.0.0.1:{proxy.port} refused its"
                    assert refused in message
                    assert caught.value.status == 401
                else:
                    assert f"forward proxy http://{user}127.0.0.1:{proxy.port} refused" in message
                    fix = (
                        "did not accept the user name and password"
                        if given == "wrong"
                        else "needs a user name and password"
                    )
                    assert fix in message
                assert not caught.value.retryable and sleeps == []  # asked once, not 3 times
                assert up.requests("/simple/") == 0

        run(go)


def test_proxy_refusing_or_failing_a_tunnel_says_which_and_what_to_do(tmp_path: Path) -> None:
    """403: the proxy's rules refuse the destination (not retried); 5xx: the proxy could not reach
    it (retried, it may pass)."""
    with (
        forward_proxy(tmp_path / "strict", connect_ports=(443,)) as strict,
        forward_proxy(tmp_path / "open") as open_proxy,
    ):

        async def attempt(proxy: ForwardProxy, url: str) -> ProxyError:
            egress = build_egress(url, where="[proxy.p]", proxy=proxy.url, environ={})
            client = HttpClient(egress=egress, connect_timeout=10)
            try:
                with pytest.raises(ProxyError) as caught:
                    await client.get(url, {})
            finally:
                await client.close()
            return caught.value

        async def go() -> None:
            refused = await attempt(strict, "https://127.0.0.1:8443/simple/")
            assert f"the forward proxy {strict.url} refused to reach 127.0.0.1:8443" in str(refused)
            assert "HTTP 403" in str(refused) and "NO_PROXY" in str(refused)
            assert not refused.retryable
            failed = await attempt(open_proxy, "https://127.0.0.1:9/simple/")  # nothing listens
            assert f"the forward proxy {open_proxy.url} could not reach 127.0.0.1:9" in str(failed)
            assert re.search(r"HTTP 5\d\d", str(failed)) and failed.retryable

        run(go)


def test_unreachable_proxy_names_the_proxy_without_its_password() -> None:
    async def go() -> None:
        egress = build_egress(
            "https://127.0.0.1:9/simple/",
            where="[mirror.t]",
            proxy="http://bob:hunter2@127.0.0.1:9",
            environ={},
        )
        client = HttpClient(egress=egress)
        try:
            with pytest.raises(ProxyError) as caught:
                await client.get("https://127.0.0.1:9/simple/", {})
        finally:
            await client.close()
        message = str(caught.value)
        assert "cannot connect to the forward proxy http://bob@127.0.0.1:9" in message
        assert "hunter2" not in message and caught.value.retryable

    run(go)


def test_environment_proxy_and_no_proxy(tmp_path: Path) -> None:
    """HTTP_PROXY is used when NO_PROXY does not match; NO_PROXY sends the origin direct; an
    explicit proxy = "none" ignores the environment."""
    with forward_proxy(tmp_path / "proxy") as proxy:

        async def fetch(up: Upstream, environ: dict[str, str], **options: Any) -> int:
            egress = build_egress(up.simple_url, where="[mirror.t]", environ=environ, **options)
            async with client_session(egress=egress) as session:
                return await sync_all(HttpRepository(up.simple_url, session, retry=FAST))

        async def go() -> None:
            async with Upstream(corpus()) as up:
                through = f"127.0.0.1:{up.port}/simple/"
                await fetch(up, {"HTTP_PROXY": proxy.url, "NO_PROXY": "example.com,10.0.0.0/8"})
                assert through in proxy.requests_seen()  # NO_PROXY did not match: proxied
                proxy.log.write_text("")
                dead = "http://127.0.0.1:9"  # nothing listens: any use of it fails the sync
                for no_proxy in ("127.0.0.1", "127.0.0.0/8", f"127.0.0.1:{up.port}", "*"):
                    await fetch(up, {"http_proxy": dead, "no_proxy": no_proxy})
                await fetch(up, {"HTTP_PROXY": dead}, proxy="none")
                with pytest.raises(
                    UpstreamError, match=re.escape("forward proxy http://127.0.0.1:9")
                ):
                    await fetch(up, {"HTTP_PROXY": dead, "NO_PROXY": "127.0.0.1:1"})
                assert through not in proxy.requests_seen()

        run(go)


# -- upstream credentials -------------------------------------------------------------------------


def _credential_options(kind: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Options for ``build_egress`` and the environment they need, for each way to give them."""
    if kind == "basic-env":
        return {"username": USER, "password_env": "UPSTREAM_PW"}, {"UPSTREAM_PW": PASSWORD}
    if kind == "basic-file":
        path = tmp_path / "password"
        path.write_text(PASSWORD + "\n")  # the trailing newline of an editor is not the password
        return {"username": USER, "password_file": str(path)}, {}
    if kind == "netrc":
        path = tmp_path / "netrc"
        path.write_text(f"machine 127.0.0.1\n  login {USER}\n  password {PASSWORD}\n")
        path.chmod(0o600)
        return {"netrc": str(path)}, {}
    if kind == "netrc-env":
        path = tmp_path / "netrc"
        path.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
        path.chmod(0o600)
        return {"netrc": True}, {"NETRC": str(path)}
    if kind == "bearer-env":
        return {"token_env": "UPSTREAM_TOKEN"}, {"UPSTREAM_TOKEN": TOKEN}
    assert kind == "bearer-file"
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return {"token_file": str(path)}, {}


CREDENTIAL_KINDS = ["basic-env", "basic-file", "netrc", "netrc-env", "bearer-env", "bearer-file"]


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
def test_upstream_requiring_credentials(kind: str, tmp_path: Path) -> None:
    accepted = BEARER if kind.startswith("bearer") else BASIC

    async def go() -> None:
        async with Upstream(corpus(), authorization={accepted}) as up:
            async with client_session() as session:  # no credentials: refused, with the fix
                with pytest.raises(UpstreamError) as caught:
                    await HttpRepository(up.simple_url, session, retry=FAST).project_list()
            assert caught.value.status == 401 and "token_env or netrc" in str(caught.value)
            options, environ = _credential_options(kind, tmp_path)
            egress = build_egress(up.simple_url, where="[mirror.t]", environ=environ, **options)
            assert PASSWORD not in repr(egress) and TOKEN not in repr(egress)
            async with client_session(egress=egress) as session:
                assert await sync_all(HttpRepository(up.simple_url, session, retry=FAST)) == 3
            assert up.requests("/simple/") == 1

    run(go)


def test_wrong_upstream_password_is_refused_and_not_shown(tmp_path: Path) -> None:
    async def go() -> None:
        async with Upstream(corpus(), authorization={BASIC}) as up:
            egress = build_egress(
                up.simple_url,
                where="[mirror.t]",
                username=USER,
                password_env="PW",
                environ={"PW": "not-the-password"},
            )
            async with client_session(egress=egress) as session:
                with pytest.raises(UpstreamError) as caught:
                    await HttpRepository(up.simple_url, session, retry=FAST).project_list()
            assert caught.value.status == 401 and "not-the-password" not in str(caught.value)

    run(go)


def test_credentials_through_the_forward_proxy_tunnel(certs: Certificates, tmp_path: Path) -> None:
    """A private https index behind an egress proxy: CONNECT, then TLS with the private CA, then
    the bearer token, which the proxy never sees (it is inside the tunnel)."""
    with forward_proxy(tmp_path / "proxy", user="p", password="pp") as proxy:

        async def go() -> None:
            async with Upstream(corpus(), ssl=certs.server_context(), authorization={BEARER}) as up:
                egress = build_egress(
                    up.simple_url,
                    where="[proxy.private]",
                    proxy=f"http://p@127.0.0.1:{proxy.port}",
                    proxy_password_env="PROXY_PW",
                    ca_bundle=str(certs.cert),
                    token_env="TOKEN",
                    environ={"PROXY_PW": "pp", "TOKEN": TOKEN},
                )
                async with client_session(egress=egress) as session:
                    assert await sync_all(HttpRepository(up.simple_url, session, retry=FAST)) == 3
                assert TOKEN not in proxy.requests_seen()
                assert f"CONNECT 127.0.0.1:{up.port}" in proxy.requests_seen()

        run(go)


# -- credentials stay with their origin -----------------------------------------------------------


@asynccontextmanager
async def recording_server(
    seen: list[dict[str, str]], routes: dict[str, str]
) -> AsyncIterator[str]:
    """An aiohttp server that records the headers of every request; ``routes`` maps a path to a
    redirect target (anything else answers 200). Yields its base URL."""

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append({"path": request.path, **{k.lower(): v for k, v in request.headers.items()}})
        target = routes.get(request.path)
        if target is not None:
            raise web.HTTPFound(target)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    async with aiohttp_serving(app) as simple_url:
        yield simple_url.removesuffix("/simple/")


def test_credentials_never_follow_a_redirect_to_another_origin() -> None:
    async def go() -> None:
        upstream_seen: list[dict[str, str]] = []
        other_seen: list[dict[str, str]] = []
        # The other server is on the same host, another port: another origin (RFC 6454).
        async with recording_server(other_seen, {}) as other:
            routes = {
                "/simple/away/": f"{other}/files/a.whl",
                "/simple/home/": "/files/b.whl",
            }
            async with recording_server(upstream_seen, routes) as upstream:
                egress = build_egress(
                    upstream + "/simple/",
                    where="[mirror.t]",
                    token_env="T",
                    environ={"T": TOKEN},
                )
                client = HttpClient(egress=egress)
                try:
                    for path in ("/simple/away/", "/simple/home/"):
                        async with await client.get(upstream + path, {"User-Agent": "t"}) as r:
                            assert r.status == 200
                finally:
                    await client.close()
                # Credentials a caller passed itself are dropped the same way.
                plain = HttpClient(egress=Egress(proxy=None))
                caller = {"Authorization": "Basic Y2FsbGVyOnB3", "Cookie": "s=1", "X-Ok": "1"}
                try:
                    async with await plain.get(upstream + "/simple/away/", caller) as r:
                        assert r.status == 200
                finally:
                    await plain.close()
        assert upstream_seen[-1]["authorization"] == "Basic Y2FsbGVyOnB3"  # its own origin: kept
        by_path = {entry["path"]: entry for entry in upstream_seen[:-1]}
        assert by_path["/simple/away/"]["authorization"] == BEARER
        assert by_path["/files/b.whl"]["authorization"] == BEARER  # same origin: kept
        assert len(other_seen) == 2
        for entry in other_seen:
            assert "authorization" not in entry and "cookie" not in entry, entry
        assert other_seen[1]["x-ok"] == "1"  # other headers still go

    run(go)


# -- TLS: private CA, mutual TLS ------------------------------------------------------------------


def test_ca_bundle_is_required_for_a_private_ca_and_replaces_the_system_store(
    certs: Certificates,
) -> None:
    async def go() -> None:
        async with Upstream(corpus(), ssl=certs.server_context()) as up:
            async with client_session(egress=Egress(proxy=None)) as session:
                with pytest.raises(UpstreamError, match="CERTIFICATE_VERIFY_FAILED") as caught:
                    await HttpRepository(up.simple_url, session, retry=FAST).project_list()
                assert "give that CA's certificate as ca_bundle" in str(caught.value)
            egress = build_egress(
                up.simple_url, where="[mirror.t]", ca_bundle=str(certs.cert), environ={}
            )
            async with client_session(egress=egress) as session:
                assert await sync_all(HttpRepository(up.simple_url, session, retry=FAST)) == 3

    run(go)


@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "through-proxy"])
def test_mutual_tls(through_proxy: bool, certs: Certificates, tmp_path: Path) -> None:
    async def go(proxy: ForwardProxy | None) -> None:
        server_ssl = certs.server_context(require_client=True)
        async with Upstream(corpus(), ssl=server_ssl) as up:
            common: dict[str, Any] = {
                "where": "[mirror.t]",
                "ca_bundle": str(certs.cert),
                "proxy": proxy.url if proxy else "none",
                "environ": {},
            }
            without = build_egress(up.simple_url, **common)
            async with client_session(egress=without) as session:
                with pytest.raises(UpstreamError):
                    await HttpRepository(up.simple_url, session, retry=FAST).project_list()
            assert up.requests("/simple/") == 0
            egress = build_egress(
                up.simple_url,
                client_certificate=str(certs.client_cert),
                client_key=str(certs.client_key),
                **common,
            )
            async with client_session(egress=egress) as session:
                assert await sync_all(HttpRepository(up.simple_url, session, retry=FAST)) == 3

    if through_proxy:
        with forward_proxy(tmp_path / "proxy") as proxy:
            run(lambda: go(proxy))
    else:
        run(lambda: go(None))


def test_unreadable_client_key_is_a_clear_error(certs: Certificates, tmp_path: Path) -> None:
    with pytest.raises(InvalidEgress, match=r"\[mirror.t\]: client certificate file .* does not"):
        build_egress(
            "https://x/simple/",
            where="[mirror.t]",
            client_certificate=str(certs.client_cert),
            client_key=str(tmp_path / "missing.pem"),
        )


def test_proxy_source_asks_a_refusing_forward_proxy_once(
    certs: Certificates, tmp_path: Path
) -> None:
    """A [proxy.NAME] whose forward proxy refuses its credentials does not ask again, for a page or
    a file: a 407 (tinyproxy: 401) would be the same answer, only later."""
    from headwater.repository.base import SourceUnavailable
    from headwater.repository.proxy import ProxySource
    from headwater.simple.json import parse_project_page_json
    from headwater.simple.names import normalize_name
    from headwater.storage import FileStorage

    with forward_proxy(tmp_path / "proxy", user="svc", password="right") as proxy:

        async def go() -> None:
            async with Upstream(corpus(), ssl=certs.server_context()) as up:

                def source(password: str) -> ProxySource:
                    egress = build_egress(
                        up.simple_url,
                        where="[proxy.p]",
                        proxy=f"http://svc:{password}@127.0.0.1:{proxy.port}",
                        ca_bundle=str(certs.cert),
                        environ={},
                    )
                    storage = FileStorage(tmp_path / "cache")
                    return ProxySource("p", up.simple_url, storage, egress=egress, timeout=5)

                def connects() -> int:
                    return proxy.requests_seen().count(f"CONNECT 127.0.0.1:{up.port}")

                good = source("right")
                name = normalize_name(up.corpus.project_list().projects[0].name)
                try:
                    page = await good.page(name, "json")
                finally:
                    await good.aclose()
                assert page is not None
                file = parse_project_page_json(page.body).files[0]
                bad = source("wrong")  # the page is cached (within its TTL), the file is not
                try:
                    before = connects()
                    with pytest.raises(SourceUnavailable, match=re.escape("svc@127.0.0.1")):
                        await bad.page(normalize_name("never-fetched"), "json")
                    assert connects() == before + 1
                    with pytest.raises(SourceUnavailable, match="did not accept the user name"):
                        await bad.file(file.url.removeprefix("../../packages/"))
                    assert connects() == before + 2
                finally:
                    await bad.aclose()

        run(go)
