"""Settings of ``headwater serve``: the ``[serve]`` and ``[hosted.NAME]`` tables of the config file.

Every option has a default, so ``headwater serve`` with no config file runs: a data directory
``./headwater-data`` holding a SQLite database and one hosted index called ``main``, served at
``/main/simple/`` and, as the default index, at ``/simple/``.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from headwater.config.egress import EgressSettings
from headwater.config.status import StatusSettings
from headwater.policy.publishers import PublisherIdentity, parse_publisher_spec
from headwater.repository._egress import check_upstream_url
from headwater.repository.boundary import check_host_entry, check_network_entry
from headwater.simple.names import NormalizedName, is_valid_name, normalize_name
from headwater.storage.location import S3Options, is_s3_url, parse_s3_url

__all__ = [
    "RESERVED_NAMES",
    "DirectorySettings",
    "HostedSettings",
    "IndexSettings",
    "ProxySettings",
    "ServePlan",
    "ServeSettings",
    "check_data_dir",
    "check_guard",
    "check_index_name",
    "check_storage",
    "is_pypi",
    "parse_listen",
]

#: Top-level URL segments the server uses itself; no index may be called one of these.
RESERVED_NAMES = frozenset(
    {
        "simple",
        "packages",
        "legacy",
        "health",
        "metrics",
        "api",
        "static",
        "namespaces",
        "namespace",
        "v1+json",
        "v1+html",
        # The browser interface (docs/web-interface.md).
        "ui",
        # The mirror list with freshness (docs/web-interface.md, "/mirrors.json").
        "mirrors.json",
        # Files the publisher guard holds (docs/provenance.md, "What pip and uv show").
        "held",
    }
)
_INDEX_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?\Z")


def check_index_name(name: str) -> str:
    """Return ``name`` if it can be an index name (the first segment of its URLs); raise otherwise.

    Raises:
        ValueError: naming the name and the rule.
    """
    if not _INDEX_NAME.match(name):
        raise ValueError(
            f"index name {name!r} must be 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"index name {name!r} is reserved for the server's own URLs")
    return name


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6) -> (host, port).

    Raises:
        ValueError: the value is not host:port with a port in 1..65535.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"listen must be HOST:PORT (e.g. 127.0.0.1:8080), got {value!r}")
    return host.strip("[]"), int(port)


def check_storage(url: str | None, s3: S3Options | None, key: str = "storage") -> None:
    """Check a source's storage URL against its ``s3`` options table.

    Raises:
        ValueError: the S3 URL or options are invalid, or ``s3`` options come without an
            ``s3://`` URL to apply to.
    """
    if url is not None and is_s3_url(url):
        parse_s3_url(url, s3)
    elif s3 is not None:
        raise ValueError(
            f'an s3 table needs {key} = "s3://BUCKET/PREFIX"; {key} is '
            + (repr(url) if url is not None else "not set")
        )
    elif url is not None and not url:
        raise ValueError(f"{key} must be a directory or s3://BUCKET/PREFIX, not empty")


def is_pypi(url: str) -> bool:
    """Whether ``url`` is PyPI's (or TestPyPI's) index: publisher continuity is on by default for
    the mirrors and proxies of it (docs/provenance.md)."""
    return urlsplit(url).hostname in ("pypi.org", "test.pypi.org")


def check_guard(required: list[str], expected: dict[str, list[str]]) -> None:
    """Check a mirror's or proxy's ``require_provenance`` and ``trusted_publishers``.

    Raises:
        ValueError: a project name or a publisher spec is invalid (naming it).
    """
    for project in [*required, *expected]:
        if project != "*" and not is_valid_name(project):
            raise ValueError(f'{project!r} is not a project name (or "*" for every project)')
    for specs in expected.values():
        for spec in specs:
            parse_publisher_spec(spec)  # InvalidPublisher (a ValueError) names it


class PublisherSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[[hosted.NAME.publishers]]`` entry: a trusted publisher (docs/trusted-publishing.md).

    Exactly one of ``github``, ``gitlab``, ``oidc`` (a table of the identity's fields, checked
    by :func:`headwater.db.identities.check_identity` when the server starts). The project is
    created by the publisher's first upload when it does not exist yet (a pending publisher),
    owned by ``owner`` if given."""

    project: str
    github: dict[str, str] | None = None
    gitlab: dict[str, str] | None = None
    oidc: dict[str, Any] | None = None
    owner: str | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("github", "gitlab", "oidc") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"publisher of {self.project!r}: give exactly one of github, gitlab or oidc "
                f"(got {', '.join(given) or 'none'})"
            )


class HostedSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[hosted.NAME]`` table: an index that accepts uploads."""

    #: Where uploaded files live: a directory or ``s3://BUCKET/PREFIX`` (docs/configuration.md
    #: "Storage"); default ``<data_dir>/hosted/NAME``.
    storage: str | None = None
    #: Options of an ``s3://`` storage (endpoint, region, addressing_style, profile, ...).
    s3: S3Options | None = None

    #: Who may read: ``anonymous`` (anyone) or ``token`` (a token with the ``read`` scope).
    read: Literal["anonymous", "token"] = "anonymous"
    #: Largest accepted upload, in bytes (PyPI's default limit is 100 MiB).
    max_upload_size: int = 1 << 30
    #: Seconds a client (or CDN) may reuse a page without asking again.
    page_max_age: int = 60
    #: Trusted publishers stated in the file (the CLI and API add more).
    publishers: list[PublisherSettings] = msgspec.field(default_factory=list)
    #: PEP 740: project -> the publishers whose attestations it accepts (specs such as
    #: ``github:OWNER/REPO:release.yml``; docs/provenance.md). An attested upload of a listed
    #: project signed by anyone else is refused. ``"*"`` applies to every project.
    trusted_publishers: dict[str, list[str]] = msgspec.field(default_factory=dict)
    #: Projects (or ``"*"``) whose uploads must carry attestations.
    require_provenance: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        check_storage(self.storage, self.s3)
        if self.read == "token" and self.s3 is not None and self.s3.files_base_url:
            raise ValueError(
                "files_base_url would send a private index's files to a public URL anyone can "
                "fetch; use files = 'redirect-presigned' (short-lived URLs handed out after "
                "authorization) or leave files streamed through headwater"
            )
        for project, specs in self.trusted_publishers.items():
            if project != "*" and not is_valid_name(project):
                raise ValueError(f"trusted_publishers: {project!r} is not a project name")
            for spec in specs:
                parse_publisher_spec(spec)  # raises InvalidPublisher (a ValueError) naming it
        for project in self.require_provenance:
            if project != "*" and not is_valid_name(project):
                raise ValueError(f"require_provenance: {project!r} is not a project name")
        if self.max_upload_size < 1:
            raise ValueError("max_upload_size must be positive")
        if self.page_max_age < 0:
            raise ValueError("page_max_age must not be negative")

    def publishers_of(self, project: NormalizedName) -> list[PublisherIdentity]:
        """The trusted publishers configured for ``project`` (its own and ``"*"``'s)."""
        specs = [
            spec
            for name, listed in self.trusted_publishers.items()
            if name == "*" or normalize_name(name) == project
            for spec in listed
        ]
        return [parse_publisher_spec(spec) for spec in specs]

    def requires_provenance(self, project: NormalizedName) -> bool:
        """Whether uploads of ``project`` must carry attestations."""
        return any(p == "*" or normalize_name(p) == project for p in self.require_provenance)


class UpstreamSettings(EgressSettings, kw_only=True, forbid_unknown_fields=True):
    """The options every source fetched from an upstream has, ``[proxy.NAME]`` and
    ``[mirror.NAME]`` alike: the egress options (:class:`~headwater.config.egress.EgressSettings`),
    the fetch boundary, and the provenance and publisher guard (docs/provenance.md)."""

    #: Hosts besides the upstream's own origin that files and redirects may point at
    #: (``files.pythonhosted.org`` is added for ``pypi.org``): ``host``, ``host:port``,
    #: ``*.domain``, or ``https://host[:port]`` (docs/proxy.md "Fetch boundary").
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    #: Non-public networks (``10.0.0.0/8``) the upstream's hosts may resolve to.
    allowed_networks: list[str] = msgspec.field(default_factory=list)
    #: The Sigstore trusted_root.json PEP 740 provenance is verified against (default: for a
    #: proxy ``[serve] trusted_root``, else the copy shipped with headwater; docs/provenance.md).
    #: Never fetched.
    trusted_root: str | None = None
    #: Publisher continuity (docs/provenance.md): hold a release whose publisher is not the one
    #: that published the project's earlier releases. None: on for an upstream of pypi.org.
    publisher_continuity: bool | None = None
    #: Projects (or ``"*"``) whose files must carry verified provenance to be served or mirrored.
    require_provenance: list[str] = msgspec.field(default_factory=list)
    #: Project (or ``"*"``) -> the publishers its files must be attested by (specs such as
    #: ``github:numpy/numpy:wheels.yml``).
    trusted_publishers: dict[str, list[str]] = msgspec.field(default_factory=dict)

    @property
    def upstream_url(self) -> str:
        """The upstream index's URL (each kind of source names it its own way)."""
        raise NotImplementedError

    @property
    def continuity(self) -> bool:
        """Whether publisher continuity applies (the default for an upstream of PyPI)."""
        if self.publisher_continuity is not None:
            return self.publisher_continuity
        return is_pypi(self.upstream_url)

    @property
    def guarded(self) -> bool:
        """Whether the publisher guard can hold anything on this source."""
        return self.continuity or bool(self.require_provenance or self.trusted_publishers)

    def __post_init__(self) -> None:
        super().__post_init__()
        for entry in self.allowed_hosts:
            check_host_entry(entry)
        for entry in self.allowed_networks:
            check_network_entry(entry)
        check_guard(self.require_provenance, self.trusted_publishers)


class ProxySettings(UpstreamSettings, kw_only=True, forbid_unknown_fields=True):
    """One ``[proxy.NAME]`` table: a remote index fetched on demand and cached (docs/proxy.md);
    the proxy, credential, TLS, fetch-boundary and publisher-guard options are
    :class:`UpstreamSettings`."""

    #: The remote index's simple URL (PyPI, another headwater, any PEP 691/503 index).
    url: str
    #: Seconds a cached page is served before it is revalidated upstream (with its ETag).
    ttl: float = 600.0
    #: Largest total size of cached files in bytes; least recently used files go first. None: no cap.
    max_size: int | None = None
    #: Serve only what is cached; never ask the upstream.
    offline: bool = False
    #: Seconds to wait for the upstream to connect or send the next bytes.
    timeout: float = 30.0
    #: Seconds one upstream request may take in all, plus 1 s per 32 KiB it sends (default:
    #: twice ``timeout``).
    deadline: float | None = None
    #: Where fetched pages and files are cached: a directory or ``s3://BUCKET/PREFIX``
    #: (docs/configuration.md "Storage"); default ``<data_dir>/proxy/NAME``.
    storage: str | None = None
    #: Options of an ``s3://`` storage (endpoint, region, addressing_style, profile, ...).
    s3: S3Options | None = None
    #: Largest file fetched when the page gives no size (a file is never read past its size).
    max_file_size: int = 8 << 30
    #: Largest upstream page read, in bytes after decompression; a larger one is refused.
    max_page_size: int = 256 << 20
    #: Most files one upstream page may list; a page listing more is refused (each costs about
    #: 3 KiB of the page memory budget while it is parsed and served).
    max_page_files: int = 250_000

    @property
    def upstream_url(self) -> str:
        return self.url

    def __post_init__(self) -> None:
        super().__post_init__()
        check_storage(self.storage, self.s3)
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, got {self.url!r}")
        check_upstream_url(self.url)
        if self.ttl < 0 or self.timeout <= 0 or (self.deadline is not None and self.deadline <= 0):
            raise ValueError("ttl must not be negative, timeout and deadline must be positive")
        if self.max_size is not None and self.max_size < 1:
            raise ValueError("max_size must be positive (or left out for no cap)")
        if self.max_file_size < 1:
            raise ValueError("max_file_size must be positive")
        if self.max_page_size < 1 or self.max_page_files < 1:
            raise ValueError("max_page_size and max_page_files must be positive")


class DirectorySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[directory.NAME]`` table: a local folder of distribution files (PEP 708 "local")."""

    path: str


class IndexSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[index.NAME]`` table: ordered sources under a policy (docs/policy.md).

    ``rules`` holds the rest of the table as written (policy, routes, routes-file, cooldown):
    :func:`headwater.policy.rules_from_config` checks it, once the sources are known.
    """

    sources: list[str]
    #: The hosted source (one of ``sources``) that stores uploads sent to ``/<index>/legacy/``,
    #: so one URL serves installs and uploads. None: the index accepts no uploads. What the index
    #: serves is still the policy's decision; who may upload is the hosted source's.
    upload: str | None = None
    rules: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("sources must name at least one source")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError(f"sources {self.sources} name a source twice")


def check_data_dir(value: str) -> None:
    """Refuse a ``data_dir`` that cannot be a local directory: empty, or a URL (it holds the
    SQLite database, locks and run-time state, which need a file system; files go to a bucket
    through a source's ``storage``).

    Raises:
        ValueError: naming the value and what to give instead.
    """
    if not value.strip():
        raise ValueError("data_dir must be a directory, not empty")
    if "://" in value:
        raise ValueError(
            f"data_dir must be a local directory (it holds the SQLite database and run-time "
            f"state), not the URL {value!r}; to keep files in a bucket give a source "
            'storage = "s3://BUCKET/PREFIX" (docs/configuration.md)'
        )


class ServeSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[serve]`` table."""

    #: Address to listen on.
    listen: str = "127.0.0.1:8080"
    #: Server processes; one per core is the usual choice.
    workers: int = 1
    #: Where hosted files, the SQLite database and run-time state live.
    data_dir: str = "headwater-data"
    #: Database URL; default ``sqlite:///<data_dir>/headwater.sqlite3``. PostgreSQL:
    #: ``postgresql://user:password@host/dbname``.
    database: str | None = None
    #: The canonical public URL (e.g. ``https://pypi.example.org``); legacy hosts redirect here.
    base_url: str | None = None
    #: Old host names that get a permanent redirect to ``base_url``, path kept (PEP 449's lesson).
    legacy_hosts: list[str] = msgspec.field(default_factory=list)
    #: PEM certificate chain and private key: serve HTTPS directly.
    tls_certificate: str | None = None
    tls_key: str | None = None
    #: The index also served at ``/simple/`` (default: the only index, or ``main``).
    default_index: str | None = None
    #: Seconds a mirror tree's page may be served from memory before storage is asked again.
    revalidate: float = 1.0
    #: Seconds clients may reuse a mirror tree's page (PyPI uses 600).
    page_max_age: int = 600
    #: ``/metrics`` answers anyone, so private indexes' series are added together under
    #: ``index="(private)"``; true shows them by name (a scraper on an internal network).
    metrics_private_labels: bool = False
    #: The browser interface (docs/web-interface.md); false leaves the plain landing page at ``/``.
    ui: bool = True
    #: Trusted publishing: the audience OIDC tokens must be made for (default: the host of
    #: ``base_url``, else ``headwater``); make it unique to this server.
    oidc_audience: str | None = None
    #: Seconds a token minted for a trusted publisher lasts (PEP 807: 900 to 21600).
    minted_token_lifetime: int = 900
    #: The Sigstore trusted_root.json attestations are verified against (default: the copy
    #: shipped with headwater; docs/provenance.md says how to update it). Never fetched.
    trusted_root: str | None = None

    def __post_init__(self) -> None:
        parse_listen(self.listen)
        check_data_dir(self.data_dir)
        if self.database is not None and not self.database.strip():
            raise ValueError(
                "database must be a URL (sqlite:///PATH or postgresql://...), not empty; leave "
                "it out for SQLite in data_dir"
            )
        if not 1 <= self.workers <= 256:
            raise ValueError(f"workers must be between 1 and 256, got {self.workers}")
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("tls_certificate and tls_key go together: give both or neither")
        if self.legacy_hosts and not self.base_url:
            raise ValueError("legacy_hosts need base_url: the URL they redirect to")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.revalidate < 0 or self.page_max_age < 0:
            raise ValueError("revalidate and page_max_age must not be negative")
        if not 900 <= self.minted_token_lifetime <= 21600:
            raise ValueError(
                "minted_token_lifetime must be between 900 and 21600 seconds (PEP 807: a minted "
                f"token lasts 15 minutes to 6 hours), got {self.minted_token_lifetime}"
            )
        if self.oidc_audience is not None and not (
            0 < len(self.oidc_audience) <= 200 and self.oidc_audience.isprintable()
        ):
            raise ValueError("oidc_audience must be 1-200 printable characters")

    @property
    def audience(self) -> str:
        """The OIDC audience of trusted publishing (see ``oidc_audience``)."""
        if self.oidc_audience:
            return self.oidc_audience
        if self.base_url:
            host = urlsplit(self.base_url).netloc
            if host:
                return host
        return "headwater"


class ServePlan(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything a server process needs, resolved from the config file and the command line.

    ``headwater serve`` builds it once and hands it to every worker process (as JSON in an
    environment variable), so workers never re-read a config file that may have changed since.
    """

    settings: ServeSettings
    #: Mirror name -> the tree's directory (absolute) or ``s3://`` URL.
    mirrors: dict[str, str] = msgspec.field(default_factory=dict)
    #: Mirror name -> the options of its ``s3://`` target (the ``[mirror.NAME.s3]`` table).
    mirror_s3: dict[str, S3Options] = msgspec.field(default_factory=dict)
    hosted: dict[str, HostedSettings] = msgspec.field(default_factory=dict)
    proxies: dict[str, ProxySettings] = msgspec.field(default_factory=dict)
    #: Directory source name -> the folder (absolute).
    directories: dict[str, str] = msgspec.field(default_factory=dict)
    #: Indexes composed of the sources above.
    indexes: dict[str, IndexSettings] = msgspec.field(default_factory=dict)
    #: The index served at ``/simple/``.
    default: str | None = None
    #: The ``[status]`` table: peer mirrors and freshness thresholds.
    status: StatusSettings = msgspec.field(default_factory=StatusSettings)

    def all_names(self) -> list[str]:
        """Every index name the server answers: each source on its own, and each composed index."""
        return [*self.mirrors, *self.hosted, *self.proxies, *self.directories, *self.indexes]

    def upload_target(self, index: str | None) -> str | None:
        """The hosted source that stores uploads sent to ``/<index>/legacy/`` (``index`` None:
        the default index's, at ``/legacy/``): the hosted index itself, or the ``upload`` of a
        composed index; None when that index accepts no uploads."""
        if index is None:
            index = self.default
        if index is None:
            return None
        if index in self.hosted:
            return index
        composed = self.indexes.get(index)
        return composed.upload if composed is not None else None

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for kind, names in (
            ("mirror", self.mirrors),
            ("hosted index", self.hosted),
            ("proxy", self.proxies),
            ("directory", self.directories),
            ("index", self.indexes),
        ):
            for name in names:
                check_index_name(name)
                if name in seen:
                    raise ValueError(f"{name!r} names both a {seen[name]} and a {kind}; rename one")
                seen[name] = kind
        for name, index in self.indexes.items():
            for source in index.sources:
                if source not in seen or seen[source] == "index":
                    known = sorted(n for n, k in seen.items() if k != "index")
                    raise ValueError(
                        f"[index.{name}] sources: {source!r} is not a configured mirror, hosted "
                        f"index, proxy or directory (known: {', '.join(known) or 'none'})"
                    )
            if index.upload is not None and (
                index.upload not in index.sources or index.upload not in self.hosted
            ):
                hosted = [s for s in index.sources if s in self.hosted]
                raise ValueError(
                    f"[index.{name}] upload = {index.upload!r}: uploads go to a hosted source of "
                    "this index, and it is not one ("
                    + (
                        f"its hosted sources: {', '.join(hosted)}"
                        if hosted
                        else "it has none: add a [hosted.NAME] to its sources, or leave out upload"
                    )
                    + ")"
                )
        if self.default is not None and self.default not in seen:
            raise ValueError(f"default_index {self.default!r} is not a configured index")
