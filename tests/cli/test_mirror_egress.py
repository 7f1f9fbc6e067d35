"""``headwater mirror`` and a ``[proxy.NAME]`` source reaching private upstreams as an operator
configures them: through a real forward proxy (tinyproxy), http and https upstreams, with and
without proxy credentials, a private CA bundle, upstream credentials from a variable, a file and
netrc. The configuration file is the interface; secrets must not show in any output."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.assembly import build_sources
from headwater.assembly.plan import plan_from_config
from headwater.repository.base import SourceUnavailable
from headwater.repository.proxy import ProxySource
from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.simple.names import normalize_name
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.forward_proxy import ForwardProxy, forward_proxy
from tests.repository.test_proxy import packages_path, read
from tests.tls import self_signed

HEADWATER = str(Path(sys.executable).with_name("headwater"))
USER, PASSWORD = "alice", "upstream-Pa55"
PROXY_USER, PROXY_PASSWORD = "proxyuser", "proxy-Pa55"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    return context


def egress_options(
    tmp_path: Path, proxy: ForwardProxy, scheme: str, cert: tuple[Path, Path], proxy_pw: str | None
) -> str:
    """The egress lines of a table: proxy (credentials from a variable), CA bundle for https,
    the upstream's basic credentials from a file."""
    (tmp_path / "upstream-password").write_text(PASSWORD + "\n")
    lines = []
    if proxy_pw is None:
        lines.append(f'proxy = "{proxy.url}"')
    else:
        lines.append(f'proxy = "http://{PROXY_USER}@127.0.0.1:{proxy.port}"')
        lines.append('proxy_password_env = "HW_PROXY_PASSWORD"')
    if scheme == "https":
        lines.append(f'ca_bundle = "{cert[0]}"')
    lines.append(f'username = "{USER}"')
    lines.append('password_file = "upstream-password"')  # relative to the config file
    return "\n".join(lines) + "\n"


def headwater(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "NETRC"
    }  # only what the test gives
    return subprocess.run(
        [HEADWATER, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environ, **(env or {})},
    )


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("proxy_auth", [False, True], ids=["open-proxy", "proxy-auth"])
def test_mirror_through_a_forward_proxy_with_credentials(
    scheme: str, proxy_auth: bool, cert: tuple[Path, Path], tmp_path: Path
) -> None:
    corpus = Corpus.generate(3, releases=1, files=2, seed=21)
    credentials = {"user": PROXY_USER, "password": PROXY_PASSWORD} if proxy_auth else {}
    with (
        forward_proxy(tmp_path / "proxy", **credentials) as proxy,
        Upstream(
            corpus,
            ssl=server_context(cert) if scheme == "https" else None,
            authorization={BASIC},
        ).running() as up,
    ):
        options = egress_options(
            tmp_path, proxy, scheme, cert, PROXY_PASSWORD if proxy_auth else None
        )
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.private]\nupstream = "{up.simple_url}"\ntarget = "tree"\n{options}'
        )
        env = {"HW_PROXY_PASSWORD": PROXY_PASSWORD}
        done = headwater("mirror", "--quiet", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert "synced 3, unchanged 0, deleted 0, failed 0" in done.stdout
        listing = parse_project_list_json((tmp_path / "tree/web/simple/index.v1_json").read_bytes())
        assert len(listing.projects) == 3
        assert len(list((tmp_path / "tree/web/packages").glob("*/*/*/*.whl"))) >= 1
        seen = proxy.requests_seen()
        assert (f"CONNECT 127.0.0.1:{up.port}" if scheme == "https" else "GET http://") in seen
        for secret in (PASSWORD, PROXY_PASSWORD, BASIC.split()[1]):
            assert secret not in done.stdout + done.stderr
        assert not any(p.startswith("401 ") for p in up.stats)  # never asked without credentials

        if proxy_auth:
            wrong = headwater(
                "mirror", "--quiet", cwd=tmp_path, env={"HW_PROXY_PASSWORD": "Wrong-Pa55"}
            )
            assert wrong.returncode != 0
            assert f"forward proxy http://{PROXY_USER}@127.0.0.1:{proxy.port} refused" in (
                wrong.stderr
            )
            assert "Wrong-Pa55" not in wrong.stdout + wrong.stderr


def test_mirror_config_errors_name_the_option_not_the_secret(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text(
        '[mirror.private]\nupstream = "https://127.0.0.1:9/simple/"\ntarget = "tree"\n'
        'token_env = "HW_TEST_TOKEN"\n'
    )
    missing = headwater("mirror", cwd=tmp_path)
    assert missing.returncode == 2
    assert "[mirror.private] token: the environment variable HW_TEST_TOKEN is not set" in (
        missing.stderr
    )
    assert not (tmp_path / "tree").exists()  # nothing half-made


def test_mirror_with_netrc(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=22)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1\n  login {USER}\n  password {PASSWORD}\n")
    netrc.chmod(0o600)
    with Upstream(corpus, authorization={BASIC}).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.private]\nupstream = "{up.simple_url}"\ntarget = "tree"\nnetrc = true\n'
            'proxy = "none"\n'
        )
        done = headwater("mirror", "--quiet", cwd=tmp_path, env={"NETRC": str(netrc)})
        assert done.returncode == 0, done.stderr
        assert "synced 2," in done.stdout


# -- [proxy.NAME] ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("proxy_auth", [False, True], ids=["open-proxy", "proxy-auth"])
def test_proxy_source_through_a_forward_proxy_with_credentials(
    scheme: str,
    proxy_auth: bool,
    cert: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The configuration as `headwater serve` reads it, through the plan the workers get, to the
    proxy source's pages and files."""
    corpus = Corpus.generate(2, releases=1, files=1, seed=23)
    credentials = {"user": PROXY_USER, "password": PROXY_PASSWORD} if proxy_auth else {}
    monkeypatch.setenv("HW_PROXY_PASSWORD", PROXY_PASSWORD)
    with forward_proxy(tmp_path / "proxy", **credentials) as proxy:

        async def go() -> None:
            server_ssl = server_context(cert) if scheme == "https" else None
            async with Upstream(corpus, ssl=server_ssl, authorization={BASIC}) as up:
                options = egress_options(
                    tmp_path, proxy, scheme, cert, PROXY_PASSWORD if proxy_auth else None
                )
                config = tmp_path / "headwater.toml"
                config.write_text(
                    f'[serve]\ndata_dir = "{tmp_path / "data"}"\n'
                    f'[proxy.private]\nurl = "{up.simple_url}"\n{options}'
                )
                plan = plan_from_config(str(config))
                sources = build_sources(plan, None)
                source = sources.proxies["private"]
                assert isinstance(source, ProxySource)
                try:
                    root = await source.page(None, "json")
                    assert root is not None and root.stale is None
                    assert len(parse_project_list_json(root.body).projects) == 2
                    name = normalize_name(corpus.project_list().projects[0].name)
                    page = await source.page(name, "json")
                    assert page is not None
                    file = parse_project_page_json(page.body).files[0]
                    ref = await source.file(packages_path(file))
                    assert ref is not None
                    body = await read(ref)
                    assert hashlib.sha256(body).hexdigest() == file.hashes["sha256"]
                finally:
                    await sources.aclose()
                seen = proxy.requests_seen()
                assert (f"CONNECT 127.0.0.1:{up.port}" if scheme == "https" else "GET http://") in (
                    seen
                )
                assert not any(p.startswith("401 ") for p in up.stats)

                if proxy_auth:  # the wrong password: a clear refusal, nothing cached
                    monkeypatch.setenv("HW_PROXY_PASSWORD", "Wrong-Pa55")
                    wrong = build_sources(plan_from_config(str(config)), None)
                    source = wrong.proxies["private"]
                    try:
                        with pytest.raises(SourceUnavailable) as caught:
                            await source.page(normalize_name("not-cached-yet"), "json")
                    finally:
                        await wrong.aclose()
                    message = str(caught.value)
                    assert f"http://{PROXY_USER}@127.0.0.1:{proxy.port}" in message
                    assert "Wrong-Pa55" not in message

        asyncio.run(go())


def test_mirror_follows_the_proxy_environment(cert: tuple[Path, Path], tmp_path: Path) -> None:
    """No proxy option: HTTPS_PROXY (credentials in it, as is common) is used, NO_PROXY sends the
    upstream direct, and a dead proxy from the environment is named in the error."""
    corpus = Corpus.generate(2, releases=1, files=1, seed=24)
    with (
        forward_proxy(tmp_path / "proxy", user=PROXY_USER, password=PROXY_PASSWORD) as proxy,
        Upstream(corpus, ssl=server_context(cert)).running() as up,
    ):
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.pypi]\nupstream = "{up.simple_url}"\ntarget = "tree"\n'
            f'ca_bundle = "{cert[0]}"\n'
        )
        through = {"HTTPS_PROXY": f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"}
        done = headwater("mirror", "--quiet", cwd=tmp_path, env=through)
        assert done.returncode == 0, done.stderr
        assert f"CONNECT 127.0.0.1:{up.port}" in proxy.requests_seen()
        assert PROXY_PASSWORD not in done.stdout + done.stderr

        dead = {"https_proxy": f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:9"}
        bypassed = headwater(
            "mirror", "--quiet", cwd=tmp_path, env={**dead, "no_proxy": "127.0.0.1"}
        )
        assert bypassed.returncode == 0, bypassed.stderr
        failed = headwater("mirror", "--quiet", cwd=tmp_path, env=dead)
        assert failed.returncode == 2
        assert (
            f"cannot connect to the forward proxy http://{PROXY_USER}@127.0.0.1:9" in failed.stderr
        )
        assert PROXY_PASSWORD not in failed.stdout + failed.stderr
