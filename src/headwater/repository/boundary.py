"""The fetch boundary: where a source's upstream client may send a request, as one pure decision.

A proxy or mirror fetches URLs it reads from pages it did not write: file URLs, and redirects.
A hostile or tampered page could name any URL; without a boundary headwater would fetch it from
inside the operator's network and, for a proxy, hand the answer to an anonymous client (a
read-SSRF). The boundary makes that impossible rather than unlikely: a request is sent only to an
origin the operator allowed, and a connection is made only to an address the operator allowed.

Two checks, both made by :class:`~headwater.repository._client.HttpClient` and nowhere else:

=====================  ========================================================================
check                  rule
=====================  ========================================================================
scheme                 only ``http`` and ``https`` (``file:``, ``gopher:``, ``ftp:``, ... never)
origin (every URL,     the upstream's own origin (scheme, host and port); the file host of a
every redirect hop)    known index (``files.pythonhosted.org`` for ``pypi.org``); the hosts the
                       operator lists in ``allowed_hosts``. Hosts are compared as written
                       (lower case, no trailing dot): ``2130706433`` or ``0177.0.0.1`` is not
                       ``127.0.0.1``, and ``http://upstream@evil/`` is host ``evil``.
address (every         every address the host resolves to must be public, or inside a network
connection)           listed in ``allowed_networks``, or be an address the operator wrote as
                       the upstream's or a listed host (``http://127.0.0.1:8000/simple/``,
                       ``localhost``); the upstream's own host name may also resolve to a
                       private address (RFC 1918, IPv6 unique local: an index inside the
                       organisation's network). The client
                       connects to the address it checked, so a second DNS answer (rebinding)
                       cannot swap it.
=====================  ========================================================================

"Public" means globally reachable (:attr:`ipaddress.IPv4Address.is_global`), not multicast,
reserved or unspecified; an IPv6 address that embeds an IPv4 one (``::ffff:a.b.c.d``, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``) must be public in both forms. With a forward proxy, the
proxy resolves the host: the origin check still applies, the address check is the proxy's.

Why the upstream's own name may be private but never loopback or link-local: indexes that
organisations proxy (devpi, Artifactory, GitLab) usually live on a private network, and the
operator named that host; but the operator wrote the name, not what its DNS answers tomorrow, and
loopback (this machine's own services) and link-local (cloud metadata at ``169.254.169.254``) are
what a hostile upstream pointing its name elsewhere would be after. An address the operator wrote
(or a network they listed) cannot change under them. Every other host (a preset file host, an
``allowed_hosts`` entry, what a page or a redirect names) must resolve to public addresses or to a
listed network.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from headwater.errors import printable
from headwater.repository.errors import FetchRefused

__all__ = [
    "FILE_HOST_PRESETS",
    "FetchBoundary",
    "check_host_entry",
    "check_network_entry",
    "is_public",
    "refuse_scheme",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Indexes whose files live on another host, and that host (always https).
FILE_HOST_PRESETS: dict[str, tuple[str, ...]] = {
    "pypi.org": ("files.pythonhosted.org",),
    "test.pypi.org": ("test-files.pythonhosted.org",),
}
_SCHEMES = ("http", "https")
_DEFAULT_PORT = {"http": 80, "https": 443}
_HOST = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\Z")
# IPv6 with an embedded IPv4 address that the network would reach (the IPv4 one must be public).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: Where an organisation's own index lives: RFC 1918's networks and IPv6 unique local addresses
#: (never loopback, link-local, 0.0.0.0 or an IPv6 form embedding an IPv4 address).
_PRIVATE_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
    ipaddress.IPv6Network("fc00::/7"),
)


@dataclass(frozen=True)
class _Allowed:
    """One allowed host: a name (``*.`` for any subdomain), a port (None: the scheme's default)
    and a scheme (None: http or https)."""

    host: str
    port: int | None = None
    scheme: str | None = None

    def admits(self, scheme: str, host: str, port: int) -> bool:
        if self.scheme is not None and scheme != self.scheme:
            return False
        if port != (self.port if self.port is not None else _DEFAULT_PORT[scheme]):
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host


def _normal_host(host: str) -> str:
    host = host.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_host_entry(entry: str) -> _Allowed:
    """Parse one ``allowed_hosts`` entry: ``host``, ``host:port``, ``*.domain``, ``[v6]:port``,
    or an origin ``https://host[:port]``.

    Raises:
        ValueError: naming the entry and the forms it may take.
    """
    text = entry.strip()
    scheme: str | None = None
    if "://" in text:
        scheme, _, text = text.partition("://")
        scheme = scheme.lower()
        text = text.removesuffix("/")
    problem = ValueError(
        f"allowed_hosts entry {printable(entry, 100)!r} is not a host: give a host name "
        "('files.example.com'), a host and port ('files.example.com:8443'), '*.example.com' for "
        "its subdomains, or an origin ('https://files.example.com')"
    )
    if scheme is not None and scheme not in _SCHEMES:
        raise problem
    if not text or any(c in text for c in "/?#@\\ ") or not text.isascii():
        raise problem
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port
    except ValueError as exc:
        raise problem from exc
    host = parts.hostname or ""
    name = host if host.startswith("*.") else _normal_host(host)
    if _literal(name) is None and not _HOST.match(name):
        raise problem
    return _Allowed(name, port, scheme)


def check_network_entry(entry: str) -> IPNetwork:
    """Parse one ``allowed_networks`` entry (``10.0.0.0/8``, ``fd00::/8``, ``192.0.2.7``).

    Raises:
        ValueError: naming the entry.
    """
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(
            f"allowed_networks entry {printable(entry, 100)!r} is not an IP network: give an "
            "address ('10.1.2.3') or a network in CIDR form ('10.0.0.0/8', 'fd00::/8')"
        ) from exc


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is globally reachable (see the module docstring)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not is_public(embedded):
            return False
        if address.ipv4_mapped is not None:
            return True
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def _kind(address: IPAddress) -> str:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    return "non-public"


@dataclass(frozen=True)
class FetchBoundary:
    """Where one source may fetch (see the module docstring); immutable and hashable.

    Build it with :meth:`for_upstream`. ``where`` names the configuration table in messages
    (``[proxy.pypi]``).
    """

    upstream: str
    where: str
    allowed: tuple[_Allowed, ...]
    networks: tuple[IPNetwork, ...] = ()
    #: Addresses the operator wrote as a host (the upstream's or a listed one): allowed for that
    #: host whatever they are.
    literals: frozenset[IPAddress] = frozenset()
    #: Names the operator wrote that mean this machine (``localhost``): loopback allowed for them.
    local_names: frozenset[str] = field(default_factory=frozenset)
    #: Names whose addresses are not checked (only the upstream's, and only when asked for).
    trusted_names: frozenset[str] = field(default_factory=frozenset)
    #: Names that may also resolve to private (not loopback, not link-local) addresses: the
    #: upstream's own host.
    private_names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_upstream(
        cls,
        upstream: str,
        *,
        allowed_hosts: Iterable[str] = (),
        allowed_networks: Iterable[str] = (),
        where: str = "",
        trust_upstream_addresses: bool = False,
    ) -> FetchBoundary:
        """The boundary of a source whose upstream index is ``upstream``.

        ``trust_upstream_addresses`` lets the upstream's own host name resolve to any address
        (the origin checks stay): for a URL a person just typed on a command line (``headwater
        check``), never for a configured source that serves what it fetches.

        Raises:
            ValueError: ``upstream`` is not an http(s) URL, or an entry is malformed.
        """
        parts = urlsplit(upstream)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES or not parts.hostname:
            raise ValueError(f"upstream {printable(upstream, 200)!r} is not an http(s) URL")
        host = _normal_host(parts.hostname)
        allowed = [_Allowed(host, parts.port or _DEFAULT_PORT[scheme], scheme)]
        allowed.extend(_Allowed(h, None, "https") for h in FILE_HOST_PRESETS.get(host, ()))
        allowed.extend(check_host_entry(entry) for entry in allowed_hosts)
        written = [a.host for a in allowed]
        literals = frozenset(ip for ip in map(_literal, written) if ip is not None)
        local = frozenset(h for h in written if h == "localhost")
        return cls(
            upstream=upstream,
            where=where or f"the source of {printable(upstream, 200)}",
            allowed=tuple(allowed),
            networks=tuple(check_network_entry(entry) for entry in allowed_networks),
            literals=literals,
            local_names=local,
            trusted_names=frozenset({host}) if trust_upstream_addresses else frozenset(),
            # A name the operator wrote for the upstream (not an address, not localhost).
            private_names=frozenset({host} - local) if _literal(host) is None else frozenset(),
        )

    # -- the decisions ----------------------------------------------------------------------------

    def check_origin(self, url: str, scheme: str, host: str, port: int) -> None:
        """Allow a request to ``url`` (whose origin the caller parsed as it will connect).

        Raises:
            FetchRefused: naming the URL, the host and the option that would allow it.
        """
        scheme = scheme.lower()
        if scheme not in _SCHEMES:
            raise refuse_scheme(url)
        name = _normal_host(host)
        if any(a.admits(scheme, name, port) for a in self.allowed):
            return
        shown = f"[{name}]" if ":" in name else name
        if port != _DEFAULT_PORT[scheme]:
            shown = f"{shown}:{port}"
        raise FetchRefused(
            f"refused to fetch {printable(url, 200)}: {printable(shown, 100)} is outside the "
            f"fetch boundary of {self.where} (the upstream {self.origin()} and the hosts listed "
            f"in allowed_hosts); nothing was sent there. If the upstream really serves files "
            f'from it, add "{printable(shown, 100)}" to allowed_hosts in {self.where}',
            url=url,
            host=shown,
            option="allowed_hosts",
        )

    def check_addresses(self, url: str, host: str, port: int, addresses: Iterable[str]) -> None:
        """Allow connecting to ``host`` at every one of ``addresses`` (what it resolved to).

        Raises:
            FetchRefused: an address is not allowed (naming it and the option to change).
        """
        name = _normal_host(host)
        for text in addresses:
            address = ipaddress.ip_address(text.partition("%")[0])
            if self.address_allowed(name, address):
                continue
            network = f"{address}/{address.max_prefixlen}"
            raise FetchRefused(
                f"refused to connect to {printable(name, 100)}:{port} for {printable(url, 200)}: "
                f"it resolves to {address}, a {_kind(address)} address, which {self.where} does "
                "not allow; nothing was sent. If this host is really on your network, add "
                f'"{network}" (or its network) to allowed_networks in {self.where}',
                url=url,
                host=name,
                option="allowed_networks",
            )

    def address_allowed(self, host: str, address: IPAddress) -> bool:
        """Whether ``host`` may be reached at ``address``."""
        if address in self.literals and _literal(host) == address:
            return True  # the operator wrote this address as the host (not a name that maps to it)
        if host in self.local_names and address.is_loopback:
            return True
        if host in self.trusted_names:
            return True
        if host in self.private_names and any(address in net for net in _PRIVATE_NETWORKS):
            return True  # the upstream itself is on the organisation's network
        if any(address in network for network in self.networks):
            return True
        return is_public(address)

    def origin(self) -> str:
        parts = urlsplit(self.upstream)
        return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2]}"


def refuse_scheme(url: str) -> FetchRefused:
    """The refusal of a URL whose scheme is not http or https (also without a boundary)."""
    scheme = url.partition(":")[0] if ":" in url else ""
    return FetchRefused(
        f"refused to fetch {printable(url, 200)}: only http and https URLs are fetched "
        f"(this one is {printable(scheme, 20)!r}); nothing was sent",
        url=url,
        host="",
        option="",
    )
