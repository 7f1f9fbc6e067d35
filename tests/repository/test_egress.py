"""Egress decisions without a network: NO_PROXY as a truth table, proxy URLs, which origin gets
credentials, the option checks, and secrets kept out of every message, repr and plan."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.assembly.plan import plan_from_config
from headwater.config import ConfigError, parse_config
from headwater.repository._client import HttpClient
from headwater.repository._egress import (
    Egress,
    InvalidEgress,
    ProxyEndpoint,
    Secret,
    build_egress,
    bypasses_proxy,
    proxy_from_environment,
)
from tests.repository.test_client import raw_server

SECRET = "pa55-Wörd-xyz"  # what must never show: in messages, reprs, plans


# -- NO_PROXY -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("pypi.org", 443, "", False),
        ("pypi.org", 443, "*", True),
        ("pypi.org", 443, " * ", True),
        ("pypi.org", 443, "pypi.org", True),
        ("PyPI.org", 443, "pypi.ORG", True),  # case-insensitive
        ("pypi.org.", 443, "pypi.org", True),  # a fully qualified name's trailing dot
        ("files.pypi.org", 443, "pypi.org", True),  # a domain covers its subdomains
        ("files.pypi.org", 443, ".pypi.org", True),
        ("files.pypi.org", 443, "*.pypi.org", True),
        ("pypi.org", 443, ".pypi.org", True),
        ("notpypi.org", 443, "pypi.org", False),  # a suffix only at a dot boundary
        ("pypi.org.evil.com", 443, "pypi.org", False),
        ("pypi.org", 443, "example.com, pypi.org", True),
        ("pypi.org", 443, "example.com pypi.org", True),  # space separated too
        ("pypi.org", 443, "example.com,,", False),
        ("pypi.org", 443, "pypi.org:443", True),  # host:port matches that port only
        ("pypi.org", 8443, "pypi.org:443", False),
        ("10.1.2.3", 80, "10.1.2.3", True),
        ("10.1.2.3", 80, "10.1.2.4", False),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("10.1.2.3", 80, "10.1.2.3:80", True),
        ("10.1.2.3", 81, "10.1.2.3:80", False),
        ("intranet.corp", 80, "10.0.0.0/8", False),  # names are not resolved for CIDR blocks
        ("::1", 80, "::1", True),
        ("[::1]", 80, "::1", True),
        ("::1", 80, "[::1]", True),
        ("::1", 8080, "[::1]:8080", True),
        ("::1", 8081, "[::1]:8080", False),
        ("fd00::5", 443, "fd00::/8", True),
        ("10.1.2.3", 443, "fd00::/8", False),  # families never mix
        ("127.0.0.1", 80, "localhost", False),  # no implicit loopback bypass
        ("0.0.0.0", 1, "0", False),  # an address is never a domain suffix match (hypothesis found)
        ("pypi.org", 443, "not a cidr/99", False),  # junk entries are ignored
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, bypass: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is bypass


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_NAME = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# A host that is an IP address ("0.0.0.0") is matched by address and CIDR entries only, never as a
# domain suffix (curl's rule; test_no_proxy's table has those rows): the property is about names.
_HOST = _NAME.filter(lambda name: not _is_ip(name))


@given(host=_HOST, domain=_NAME, port=st.integers(1, 65535), other=st.integers(1, 65535))
def test_no_proxy_domain_property(host: str, domain: str, port: int, other: int) -> None:
    """A domain entry matches exactly the domain and the names below it, on every port; with a
    port, on that port only; the entry's spelling (leading dot, star, case) does not matter."""
    below = host == domain or host.endswith("." + domain)
    for entry in (domain, "." + domain, "*." + domain, domain.upper()):
        assert bypasses_proxy(host, port, entry) is below
        assert bypasses_proxy(host, port, f"{entry}:{port}") is below
        assert bypasses_proxy(host, port, f"{entry}:{other}") is (below and other == port)
    assert bypasses_proxy(host, port, f"nomatch.invalid, {domain}") is below
    assert bypasses_proxy(host, port, "*") is True


@pytest.mark.parametrize(
    ("scheme", "environ", "expected"),
    [
        ("https", {"HTTPS_PROXY": "http://p:1"}, "http://p:1"),
        ("https", {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:1"}, "http://low:1"),
        ("https", {"HTTP_PROXY": "http://p:1"}, None),  # http's proxy is not https's
        ("http", {"HTTP_PROXY": "http://p:1"}, "http://p:1"),
        ("http", {"http_proxy": "p:3128"}, "http://p:3128"),  # no scheme: http
        ("http", {"ALL_PROXY": "http://all:1"}, "http://all:1"),
        ("https", {"all_proxy": "http://all:1", "https_proxy": "http://s:1"}, "http://s:1"),
        ("https", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "pypi.org"}, None),
        (
            "https",
            {"HTTPS_PROXY": "http://p:1", "no_proxy": "x", "NO_PROXY": "pypi.org"},
            "http://p:1",
        ),
        ("https", {"HTTPS_PROXY": "http://u:pw@p:1"}, "http://u@p:1"),
        ("https", {"HTTPS_PROXY": "http://p"}, "http://p:80"),
        ("https", {}, None),
        ("https", {"HTTPS_PROXY": ""}, None),
    ],
)
def test_proxy_from_environment(scheme: str, environ: dict[str, str], expected: str | None) -> None:
    found = proxy_from_environment(scheme, "pypi.org", 443, environ)
    assert (found.display if found else None) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://proxy:3128",  # a TLS proxy
        "socks5://proxy:1080",
        "http://proxy:3128/path",
        "http://proxy:notaport",
        "http://:3128",
        "http://us%3Aer:pw@proxy:1",  # a colon in the user name cannot be encoded in Basic
    ],
)
def test_unsupported_proxy_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidEgress, match=r"\[mirror.m\] proxy"):
        ProxyEndpoint.parse(url, what="[mirror.m] proxy")


def test_proxy_credentials_are_percent_decoded_and_never_displayed() -> None:
    proxy = ProxyEndpoint.parse(
        f"http://us%40er:{SECRET.replace('ö', '%C3%B6')}@[::1]:3128", what="x"
    )
    assert proxy.display == "http://us@er@[::1]:3128"
    assert proxy.authorization is not None
    import base64

    decoded = base64.b64decode(proxy.authorization.reveal().removeprefix("Basic ")).decode()
    assert decoded == f"us@er:{SECRET}"
    assert SECRET not in repr(proxy) and "Basic" not in repr(proxy)


# -- which origin gets credentials ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "gets"),
    [
        (("https", "private.example", 443), True),
        (("http", "private.example", 443), False),  # another scheme (a downgrade)
        (("https", "private.example", 8443), False),  # another port
        (("https", "files.private.example", 443), False),  # a subdomain is another origin
        (("https", "cdn.example", 443), False),
    ],
)
def test_credentials_go_to_the_upstream_origin_only(
    origin: tuple[str, str, int], gets: bool
) -> None:
    egress = build_egress(
        "https://Private.Example/simple/", where="[proxy.p]", token_env="T", environ={"T": SECRET}
    )
    assert (egress.authorization_for(origin) is not None) is gets


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_to_another_origin_drops_credentials(status: int) -> None:
    """For each redirect status: the upstream's token reaches the upstream and the same-origin
    target, never the other origin; caller-given Authorization and Cookie are dropped too."""
    heads: dict[str, list[bytes]] = {"upstream": [], "other": []}

    async def go() -> None:
        async with raw_server(lambda head: record("other", head, b"")) as other:

            def upstream_answer(head: bytes) -> bytes:
                path = head.split(b" ", 2)[1]
                target = b"/same" if path == b"/to-same" else f"{other}/elsewhere".encode()
                return record("upstream", head, b"Location: " + target + b"\r\n", status)

            async with raw_server(upstream_answer) as upstream:
                egress = build_egress(
                    upstream + "/simple/",
                    where="[mirror.m]",
                    username="u",
                    password_env="P",
                    environ={"P": SECRET},
                )
                client = HttpClient(egress=egress)
                try:
                    for path in ("/to-other", "/to-same"):
                        async with await client.get(upstream + path, {"X-Ok": "1"}) as r:
                            await r.read()
                finally:
                    await client.close()
                plain = HttpClient(egress=Egress(proxy=None))
                try:
                    caller = {"Authorization": "Bearer caller", "cookie": "c=1", "X-Ok": "1"}
                    async with await plain.get(upstream + "/to-other", caller) as r:
                        await r.read()
                finally:
                    await plain.close()

    def record(who: str, head: bytes, extra: bytes, code: int = 200) -> bytes:
        heads[who].append(head.lower())
        if code == 200 or b"get /same " in head.lower():
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        return f"HTTP/1.1 {code} Moved\r\nContent-Length: 0\r\n".encode() + extra + b"\r\n"

    asyncio.run(go())
    assert len(heads["other"]) == 2
    for head in heads["other"]:
        assert b"authorization" not in head and b"cookie" not in head and b"x-ok: 1" in head
    with_token = [h for h in heads["upstream"] if b"authorization: basic " in h]
    assert len(with_token) == 3  # /to-other, /to-same and /same: the upstream's own origin


# -- option checks, and secrets that never show ---------------------------------------------------


def _mirror(options: str) -> str:
    return f'[mirror.m]\nupstream = "https://private.example/simple/"\ntarget = "/t"\n{options}\n'


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('username = "u"', "username needs password_env or password_file"),
        ('password_env = "P"', "password_env/password_file need username"),
        ('username = "u"\npassword_env = "P"\npassword_file = "f"', "not both"),
        ('token_env = "T"\ntoken_file = "f"', "not both"),
        ('username = "u"\npassword_env = "P"\ntoken_env = "T"', "one kind of upstream credentials"),
        ('token_env = "T"\nnetrc = true', "one kind of upstream credentials"),
        ('client_key = "k.pem"', "client_key needs client_certificate"),
        ('proxy_password_env = "P"', "need proxy ="),
        ('proxy = "none"\nproxy_password_env = "P"', "need proxy ="),
        ('proxy = "https://p:1"', "only http:// forward proxies"),
        ('username = "a:b"\npassword_env = "P"', "cannot contain ':'"),
        ('proxy_user = "x"', "unknown field `proxy_user`"),
        ("netrc = 3", "Expected `bool | str`"),
    ],
)
def test_conflicting_or_unknown_options_are_config_errors(options: str, message: str) -> None:
    for text in (
        _mirror(options),
        f'[proxy.p]\nurl = "https://private.example/simple/"\n{options}\n',
    ):
        with pytest.raises(ConfigError, match=r"\[(mirror.m|proxy.p)\]") as caught:
            parse_config(text)
        assert message in str(caught.value)


@pytest.mark.parametrize("table", ["mirror", "proxy"])
def test_credentials_in_the_upstream_url_are_refused(table: str) -> None:
    key = "upstream" if table == "mirror" else "url"
    text = f'[{table}.m]\n{key} = "https://user:{SECRET}@private.example/simple/"\n'
    if table == "mirror":
        text += 'target = "/t"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert "has credentials in it" in str(caught.value) and SECRET not in str(caught.value)


def test_file_options_are_resolved_against_the_config_directory(tmp_path: Path) -> None:
    text = _mirror('ca_bundle = "ca.pem"\ntoken_file = "secrets/token"')
    text += '[proxy.p]\nurl = "https://x/simple/"\nclient_certificate = "c.pem"\nnetrc = "netrc"\n'
    config = parse_config(text, base=tmp_path)
    mirror = config.mirror["m"]
    assert mirror.ca_bundle == str(tmp_path / "ca.pem")
    assert mirror.token_file == str(tmp_path / "secrets" / "token")
    assert config.proxy["p"].client_certificate == str(tmp_path / "c.pem")
    assert config.proxy["p"].netrc == str(tmp_path / "netrc")


def _failures(tmp_path: Path) -> list[tuple[dict[str, Any], dict[str, str], str]]:
    """(options, environment, expected message) for every way resolving can fail; each carries
    the secret somewhere it might leak from."""
    bad_file = tmp_path / "bad"
    bad_file.write_text(f"{SECRET}\nsecond line {SECRET}\n")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine other.example login u password {SECRET}\n")
    broken_netrc = tmp_path / "broken-netrc"
    broken_netrc.write_text(f"machine private.example login u password {SECRET} bogus\n")
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text(SECRET)
    return [
        ({"username": "u", "password_env": "PW"}, {}, "the environment variable PW is not set"),
        ({"username": "u\r\nX-Injected", "password_env": "PW"}, {"PW": SECRET}, "control"),
        ({"token_env": "T"}, {"T": f"{SECRET}\r\nX-Injected: 1"}, "control characters"),
        ({"token_file": str(bad_file)}, {}, "control characters"),
        ({"token_file": str(tmp_path / "none")}, {"X": SECRET}, "cannot read"),
        ({"token_env": "T"}, {"T": "   "}, "is empty"),
        ({"netrc": str(netrc)}, {}, "has no 'machine private.example'"),
        ({"netrc": str(broken_netrc)}, {}, "is malformed"),
        ({"netrc": True}, {"NETRC": str(tmp_path / "missing")}, "does not exist"),
        ({"ca_bundle": str(not_pem)}, {}, "holds no usable PEM certificate"),
        ({"ca_bundle": str(tmp_path / "missing.pem")}, {}, "does not exist"),
        ({"client_certificate": str(not_pem)}, {}, "cannot be loaded"),
        (
            {"proxy": f"http://u:{SECRET}@p:1", "proxy_password_env": "PP"},
            {"PP": SECRET},
            "has a password and proxy_password_env",
        ),
        ({"proxy": "http://u@p:1", "proxy_password_env": "PP"}, {}, "PP is not set"),
        ({"proxy": f"ftp://u:{SECRET}@p:1"}, {}, "only http://"),
    ]


def test_every_resolution_failure_names_the_source_and_never_the_secret(tmp_path: Path) -> None:
    for options, environ, message in _failures(tmp_path):
        with pytest.raises(InvalidEgress) as caught:
            build_egress(
                "https://private.example/simple/", where="[proxy.p]", environ=environ, **options
            )
        text = str(caught.value)
        assert message in text, (options, text)
        assert text.startswith("[proxy.p]"), text
        assert SECRET not in text and "pa55" not in text, (options, text)
        assert caught.value.__cause__ is None or SECRET not in str(caught.value.__cause__)


def test_secrets_stay_out_of_reprs_and_the_serve_plan(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET)
    config = tmp_path / "headwater.toml"
    config.write_text(
        "[serve]\n"
        f'data_dir = "{tmp_path / "data"}"\n'
        "[proxy.private]\n"
        'url = "https://private.example/simple/"\n'
        'token_file = "token"\n'
        'proxy = "http://user@proxy.corp:3128"\n'
        'proxy_password_env = "HW_TEST_PROXY_PW"\n'
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HW_TEST_PROXY_PW", SECRET)
        plan = plan_from_config(str(config))
        encoded = msgspec.json.encode(plan).decode()
        assert SECRET not in encoded  # the workers' plan carries names, not secrets
        assert "HW_TEST_PROXY_PW" in encoded and str(token) in encoded
        settings = plan.proxies["private"]
        egress = settings.egress(settings.url, where="[proxy.private]")
        assert SECRET not in repr(egress) and SECRET not in repr(settings)
        assert egress.credentials is not None
        assert egress.credentials.authorization.reveal() == f"Bearer {SECRET}"
    with pytest.raises(ConfigError, match="HW_TEST_PROXY_PW is not set"):
        plan_from_config(str(config))  # a worker would fail the same way: caught at start


def test_a_password_written_into_the_proxy_url_is_hidden_in_reprs() -> None:
    config = parse_config(_mirror(f'proxy = "http://u:{SECRET}@p:3128"'))
    assert SECRET not in repr(config) and "http://u:***@p:3128" in repr(config.mirror["m"])
    assert repr(Secret(SECRET)) == str(Secret(SECRET)) == "Secret('***')"
