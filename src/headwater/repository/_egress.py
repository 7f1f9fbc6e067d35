"""How the upstream client leaves this machine: forward proxy, credentials, TLS trust.

One :class:`Egress` per source (a mirror or a proxy), built once when the source starts, and asked
once per *origin* (scheme, host, port) by :class:`~headwater.repository._client.HttpClient`, which
keeps the answer for every later request to that origin: the direct path pays one dictionary
lookup per request and nothing else.

Vocabulary:

=====================  ==========================================================================
forward proxy          an HTTP proxy between headwater and the upstream (squid, tinyproxy, a
                       corporate egress proxy). ``http://`` origins are asked through it in
                       absolute form (``GET http://host/path``); ``https://`` origins through a
                       ``CONNECT host:port`` tunnel, then TLS with the origin itself.
proxy choice           per source: an explicit proxy URL, ``"none"``, or (unset) the environment:
                       ``https_proxy``/``HTTPS_PROXY`` for https origins, ``http_proxy``/
                       ``HTTP_PROXY`` for http ones, ``all_proxy``/``ALL_PROXY`` for both, with
                       ``no_proxy``/``NO_PROXY`` exceptions (lower case first, as curl reads them).
upstream credentials   Basic (user name and password) or Bearer (a token) for the upstream; sent
                       only to the upstream's own origin, never to another one (a redirect to a
                       file host or a CDN gets none).
secret                 a password or token: held in :class:`Secret`, whose ``repr`` and ``str``
                       show nothing, read from an environment variable, a file or netrc when the
                       source starts (never from the serve plan, which carries only the names).
=====================  ==========================================================================

NO_PROXY entries (comma or space separated, case-insensitive): ``*`` alone bypasses the proxy for
every host; ``example.com``, ``.example.com`` and ``*.example.com`` all match ``example.com`` and
every name below it; ``host:port`` matches only that port; an IP address matches that address
literally; a CIDR block (``10.0.0.0/8``, ``fd00::/8``) matches hosts written as addresses in it.
Host names are not resolved to match a CIDR block (curl and Go do the same). Loopback is not
bypassed implicitly: list ``localhost,127.0.0.1`` if the proxy must not see it.

Why an explicit ``proxy`` ignores NO_PROXY: it is the operator's choice for this one source, and a
NO_PROXY set for other programs must not silently route it around the proxy (give ``"none"`` to go
direct instead).
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from headwater.errors import InvalidInput

__all__ = [
    "Credentials",
    "Egress",
    "InvalidEgress",
    "ProxyEndpoint",
    "Secret",
    "build_egress",
    "bypasses_proxy",
    "check_egress_options",
    "check_upstream_url",
    "proxy_from_environment",
    "without_password",
]

Origin = tuple[str, str, int]  # scheme, host, port (as the client keys its pools)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PROXY_VARIABLES = (
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
)


class InvalidEgress(InvalidInput):
    """A proxy, credential or TLS option of a source is malformed or cannot be read."""


class Secret:
    """A password or token. Its ``repr`` and ``str`` never show it: only :meth:`reveal` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one header that carries it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _check_header_value(value: str, what: str) -> str:
    # A secret read from a file ends with a newline more often than not; anything else that is
    # not printable would split or corrupt the request head (header injection), so it is refused.
    value = value.strip()
    if not value:
        raise InvalidEgress(f"{what} is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidEgress(f"{what} contains control characters (a line break?); remove them")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidEgress(f"{what} has characters that cannot go into an HTTP header") from None
    return value


def _basic(username: str, password: str) -> Secret:
    # RFC 7617 2: the user-id cannot contain a colon; the credentials are sent as UTF-8.
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return Secret(f"Basic {token}")


@dataclass(frozen=True, slots=True)
class ProxyEndpoint:
    """A forward proxy: where it listens and, when it needs them, the credentials to send it.

    ``display`` names it in messages: ``http://user@host:port``, never with the password.
    """

    host: str
    port: int
    display: str
    authorization: Secret | None = None

    @classmethod
    def parse(cls, url: str, *, what: str, password: Secret | None = None) -> ProxyEndpoint:
        """A proxy from ``http://[user[:password]@]host[:port]`` (``host:port`` means http).

        ``password`` (from ``proxy_password_env``/``_file``) completes a URL that names only the
        user. Raises :class:`InvalidEgress` naming ``what`` (without the password).
        """
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise InvalidEgress(f"{what}: {without_password(url)!r} is not a proxy URL") from None
        if parts.scheme.lower() != "http":
            raise InvalidEgress(
                f"{what}: {without_password(url)!r}: only http:// forward proxies are supported "
                "(TLS to the upstream still goes end to end through a CONNECT tunnel)"
            )
        if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise InvalidEgress(
                f"{what}: {without_password(url)!r} is not a proxy URL; write "
                "http://[USER@]HOST:PORT"
            )
        host = parts.hostname
        port = port or 80
        shown_host = f"[{host}]" if ":" in host else host
        user = unquote(parts.username) if parts.username is not None else None
        secret: Secret | None = None
        if parts.password is not None:
            if password is not None:
                raise InvalidEgress(
                    f"{what}: the proxy URL has a password and proxy_password_env/_file gives "
                    "another; keep one"
                )
            password = Secret(unquote(parts.password))
        if password is not None and not user:
            raise InvalidEgress(
                f"{what}: a proxy password needs a user name in the proxy URL "
                "(http://USER@HOST:PORT)"
            )
        if user:
            if ":" in user:
                raise InvalidEgress(f"{what}: a proxy user name cannot contain ':'")
            pw = password.reveal() if password is not None else ""
            _check_header_value(user, f"{what}: the proxy user name")
            if pw:
                _check_header_value(pw, f"{what}: the proxy password")
            secret = _basic(user, pw)
        display = f"http://{user + '@' if user else ''}{shown_host}:{port}"
        return cls(host=host, port=port, display=display, authorization=secret)


def without_password(url: str) -> str:
    """``url`` with any password in its userinfo replaced by ``***`` (for messages)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{hostport}{slash}{path}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The ``Authorization`` header value for one origin (the upstream's)."""

    origin: Origin
    authorization: Secret
    #: How they were given (``"basic from password_env ..."``), for messages; never the secret.
    source: str


def check_upstream_url(url: str) -> None:
    """Refuse an upstream URL with credentials in it: the URL is shown in messages, logs and the
    ``tracks`` of served pages, so a password there would leak everywhere.

    Raises:
        InvalidEgress: naming the options to use instead.
    """
    try:
        userinfo = urlsplit(url).username is not None
    except ValueError:
        return  # not a URL at all: the caller's own check says so
    if userinfo:
        raise InvalidEgress(
            f"{without_password(url)!r} has credentials in it; remove them from the URL and give "
            "username with password_env or password_file (or token_env/token_file, or netrc)"
        )


def _origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise InvalidEgress(f"{url!r} is not an http(s) URL")
    return scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme]


# -- NO_PROXY ---------------------------------------------------------------------------------


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``host:port`` is excluded from the proxy by the NO_PROXY value ``no_proxy``.

    See the module docstring for the entries understood.
    """
    import ipaddress  # only with a NO_PROXY: kept off every command's start-up

    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.startswith("["):  # [v6]:port or [v6]
            inside, _, tail = entry[1:].partition("]")
            entry = inside
            if tail.startswith(":") and tail[1:].isdigit():
                entry_port = int(tail[1:])
        elif entry.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
            name, _, maybe_port = entry.partition(":")
            if maybe_port.isdigit():
                entry, entry_port = name, int(maybe_port)
        if entry_port is not None and entry_port != port:
            continue
        if "/" in entry:
            if address is None:
                continue
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if address.version == network.version and address in network:
                return True
            continue
        if address is not None:
            try:
                if ipaddress.ip_address(entry) == address:
                    return True
            except ValueError:
                pass
            continue
        suffix = entry.removeprefix("*").lstrip(".").rstrip(".")
        if suffix and (host == suffix or host.endswith("." + suffix)):
            return True
    return False


def proxy_from_environment(
    scheme: str, host: str, port: int, environ: Mapping[str, str]
) -> ProxyEndpoint | None:
    """The forward proxy the environment gives for an origin, or None (direct).

    Raises:
        InvalidEgress: the variable that applies holds something that is not a proxy URL.
    """
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    if no_proxy and bypasses_proxy(host, port, no_proxy):
        return None
    names = ("https_proxy", "HTTPS_PROXY") if scheme == "https" else ("http_proxy", "HTTP_PROXY")
    for name in (*names, "all_proxy", "ALL_PROXY"):
        value = environ.get(name, "").strip()
        if value:
            return ProxyEndpoint.parse(value, what=f"${name}")
    return None


# -- secrets ----------------------------------------------------------------------------------


def _read_secret(
    *, env: str | None, file: str | None, what: str, environ: Mapping[str, str]
) -> str:
    if env is not None:
        value = environ.get(env)
        if value is None:
            raise InvalidEgress(
                f"{what}: the environment variable {env} is not set; set it in the environment "
                "headwater runs in (the value is never logged)"
            )
        return _check_header_value(value, f"{what}: ${env}")
    assert file is not None
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidEgress(f"{what}: cannot read {file}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise InvalidEgress(f"{what}: {file} is not UTF-8 text") from None
    return _check_header_value(text, f"{what}: {file}")


def _netrc_credentials(
    path: str | None, host: str, what: str, environ: Mapping[str, str]
) -> Secret:
    import netrc as _netrc  # only with netrc = ...: kept off every command's start-up

    if path is None:
        path = environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        parsed = _netrc.netrc(path)
    except FileNotFoundError:
        raise InvalidEgress(
            f"{what}: netrc file {path} does not exist; create it with a 'machine {host}' entry, "
            'or name another with netrc = "/path" or $NETRC'
        ) from None
    except _netrc.NetrcParseError as exc:
        # The message of NetrcParseError quotes the offending token: it could be a password.
        raise InvalidEgress(
            f"{what}: netrc file {path} is malformed near line {exc.lineno}"
        ) from None
    except OSError as exc:
        raise InvalidEgress(f"{what}: cannot read netrc file {path}: {exc.strerror}") from None
    entry = parsed.authenticators(host)
    if entry is None:
        raise InvalidEgress(f"{what}: netrc file {path} has no 'machine {host}' (or default) entry")
    login, _, password = entry
    if not login:
        raise InvalidEgress(f"{what}: the netrc entry for {host} in {path} has no login")
    user = _check_header_value(login, f"{what}: the netrc login for {host}")
    if ":" in user:
        raise InvalidEgress(f"{what}: the netrc login for {host} cannot contain ':'")
    secret = (
        _check_header_value(password, f"{what}: the netrc password for {host}") if password else ""
    )
    return _basic(user, secret)


# -- TLS --------------------------------------------------------------------------------------


def _ssl_context(
    ca_bundle: str | None, certificate: str | None, key: str | None, what: str
) -> ssl.SSLContext | None:
    if ca_bundle is None and certificate is None:
        return None
    if ca_bundle is not None:
        # The bundle replaces the system's trust store, as pip's --cert and curl's --cacert do:
        # a source pinned to a private CA trusts nothing else (concatenate bundles to trust both).
        try:
            context = ssl.create_default_context(cafile=ca_bundle)
        except FileNotFoundError:
            raise InvalidEgress(f"{what}: ca_bundle {ca_bundle} does not exist") from None
        except (ssl.SSLError, OSError) as exc:
            raise InvalidEgress(
                f"{what}: ca_bundle {ca_bundle} holds no usable PEM certificate ({exc})"
            ) from None
    else:
        context = ssl.create_default_context()
    if certificate is not None:
        try:
            context.load_cert_chain(certificate, key)
        except FileNotFoundError:
            missing = certificate if not Path(certificate).exists() else key
            raise InvalidEgress(
                f"{what}: client certificate file {missing} does not exist"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            raise InvalidEgress(
                f"{what}: client_certificate {certificate}"
                f"{' with client_key ' + key if key else ''} cannot be loaded ({exc}); give a PEM "
                "certificate and its unencrypted PEM key (client_key, or both in one file)"
            ) from None
    return context


# -- the per-source decision ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Egress:
    """How one source reaches its upstream. Built by :func:`build_egress`; ``Egress()`` is the
    plain default (environment proxies, system trust, no credentials).

    ``proxy``: an explicit :class:`ProxyEndpoint`, ``None`` for always direct, or the string
    ``"environment"`` (read ``environ``, a snapshot of the proxy variables taken when built).
    """

    proxy: ProxyEndpoint | str | None = "environment"
    environ: Mapping[str, str] | None = None
    ssl_context: ssl.SSLContext | None = None
    credentials: Credentials | None = None

    def proxy_for(self, origin: Origin) -> ProxyEndpoint | None:
        """The forward proxy to reach ``origin`` through, or None (direct). Asked once per origin.

        Raises:
            InvalidEgress: a proxy environment variable is malformed.
        """
        if self.proxy is None or isinstance(self.proxy, ProxyEndpoint):
            return self.proxy
        environ = self.environ if self.environ is not None else _proxy_environ(os.environ)
        scheme, host, port = origin
        return proxy_from_environment(scheme, host, port, environ)

    def authorization_for(self, origin: Origin) -> Secret | None:
        """The ``Authorization`` value for ``origin``: the upstream's only, None elsewhere."""
        credentials = self.credentials
        if credentials is not None and credentials.origin == origin:
            return credentials.authorization
        return None


def _proxy_environ(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: environ[name] for name in _PROXY_VARIABLES if name in environ}


def build_egress(
    upstream: str,
    *,
    where: str,
    proxy: str | None = None,
    proxy_password_env: str | None = None,
    proxy_password_file: str | None = None,
    ca_bundle: str | None = None,
    client_certificate: str | None = None,
    client_key: str | None = None,
    username: str | None = None,
    password_env: str | None = None,
    password_file: str | None = None,
    token_env: str | None = None,
    token_file: str | None = None,
    netrc: bool | str = False,
    environ: Mapping[str, str] | None = None,
) -> Egress:
    """Resolve a source's egress options (as ``[mirror.NAME]``/``[proxy.NAME]`` give them) for the
    upstream at ``upstream``: read the secrets, load the certificates, parse the proxy.

    ``where`` names the source in messages (``[proxy.internal]``). Secrets never appear in them.

    Raises:
        InvalidEgress: an option is inconsistent, a variable is unset, a file is unreadable.
    """
    env = os.environ if environ is None else environ
    check_upstream_url(upstream)
    origin = _origin_of(upstream)
    # Structural checks (one credential kind, a user for a password, ...) are repeated here so
    # callers that do not go through the config file get the same guarantees.
    check_egress_options(
        where,
        proxy=proxy,
        proxy_password_env=proxy_password_env,
        proxy_password_file=proxy_password_file,
        client_certificate=client_certificate,
        client_key=client_key,
        username=username,
        password_env=password_env,
        password_file=password_file,
        token_env=token_env,
        token_file=token_file,
        netrc=netrc,
    )
    chosen: ProxyEndpoint | str | None = "environment"
    if proxy is not None and proxy.strip().lower() == "none":
        chosen = None
    elif proxy is not None:
        password = None
        if proxy_password_env is not None or proxy_password_file is not None:
            password = Secret(
                _read_secret(
                    env=proxy_password_env,
                    file=proxy_password_file,
                    what=f"{where} proxy password",
                    environ=env,
                )
            )
        chosen = ProxyEndpoint.parse(proxy, what=f"{where} proxy", password=password)
    credentials: Credentials | None = None
    if username is not None:
        user = _check_header_value(username, f"{where} username")
        secret = _read_secret(
            env=password_env, file=password_file, what=f"{where} password", environ=env
        )
        via = f"password_env {password_env}" if password_env else f"password_file {password_file}"
        credentials = Credentials(origin, _basic(user, secret), f"basic auth ({via})")
    elif token_env is not None or token_file is not None:
        token = _read_secret(env=token_env, file=token_file, what=f"{where} token", environ=env)
        via = f"token_env {token_env}" if token_env else f"token_file {token_file}"
        credentials = Credentials(origin, Secret(f"Bearer {token}"), f"bearer token ({via})")
    elif netrc is not False:
        path = netrc if isinstance(netrc, str) else None
        secret_header = _netrc_credentials(path, origin[1], f"{where} netrc", env)
        credentials = Credentials(origin, secret_header, "basic auth (netrc)")
    context = _ssl_context(ca_bundle, client_certificate, client_key, where)
    return Egress(
        proxy=chosen,
        environ=_proxy_environ(env),
        ssl_context=context,
        credentials=credentials,
    )


def check_egress_options(
    where: str,
    *,
    proxy: str | None = None,
    proxy_password_env: str | None = None,
    proxy_password_file: str | None = None,
    client_certificate: str | None = None,
    client_key: str | None = None,
    username: str | None = None,
    password_env: str | None = None,
    password_file: str | None = None,
    token_env: str | None = None,
    token_file: str | None = None,
    netrc: bool | str = False,
) -> None:
    """The checks that need no file or variable: one way to give each secret, one kind of
    upstream credentials, a proxy password only with a proxy. Called when the config is parsed.

    Raises:
        InvalidEgress: naming the options that conflict and what to do.
    """
    if proxy_password_env is not None and proxy_password_file is not None:
        raise InvalidEgress(f"{where}: give proxy_password_env or proxy_password_file, not both")
    if (proxy_password_env is not None or proxy_password_file is not None) and (
        proxy is None or proxy.strip().lower() == "none"
    ):
        raise InvalidEgress(
            f'{where}: proxy_password_env/_file need proxy = "http://USER@HOST:PORT"'
        )
    if proxy is not None and proxy.strip().lower() != "none":
        ProxyEndpoint.parse(
            proxy,
            what=f"{where} proxy",
            password=Secret("x") if proxy_password_env or proxy_password_file else None,
        )
    if client_key is not None and client_certificate is None:
        raise InvalidEgress(f"{where}: client_key needs client_certificate")
    if password_env is not None and password_file is not None:
        raise InvalidEgress(f"{where}: give password_env or password_file, not both")
    if token_env is not None and token_file is not None:
        raise InvalidEgress(f"{where}: give token_env or token_file, not both")
    has_password = password_env is not None or password_file is not None
    if username is not None and not has_password:
        raise InvalidEgress(
            f"{where}: username needs password_env or password_file (the password itself is "
            "never written in the configuration)"
        )
    if has_password and username is None:
        raise InvalidEgress(f"{where}: password_env/password_file need username")
    if username is not None and ":" in username:
        raise InvalidEgress(f"{where}: username cannot contain ':' (RFC 7617)")
    kinds = [
        name
        for name, given in (
            ("username/password", username is not None),
            ("token_env/token_file", token_env is not None or token_file is not None),
            ("netrc", netrc is not False),
        )
        if given
    ]
    if len(kinds) > 1:
        raise InvalidEgress(
            f"{where}: give one kind of upstream credentials, not {' and '.join(kinds)}"
        )
