"""The headwater configuration file (TOML).

One file configures everything; every option has a default and unknown keys are errors (a typo must
not silently turn a filter off). Found at ``--config``, else ``$HEADWATER_CONFIG``, else
``./headwater.toml``. See ``docs/configuration.md`` for every option.

Example::

    [mirror.pypi]
    upstream = "https://pypi.org/simple/"
    target = "/srv/headwater/pypi"
    workers = 16

    [mirror.pypi.filters]
    allow_requirements = ["requirements.txt"]
    python_versions = ["3.11", "3.12"]
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from headwater.config.settings import (
    DirectorySettings,
    HostedSettings,
    IndexSettings,
    ProxySettings,
    ServeSettings,
    UpstreamSettings,
    check_storage,
)
from headwater.config.status import StatusSettings
from headwater.errors import HeadwaterError
from headwater.repository._egress import check_upstream_url
from headwater.storage.location import S3Options, is_s3_url
from headwater.sync.closure_config import ClosureConfig
from headwater.sync.filters import FilterConfig, InvalidFilter

__all__ = [
    "Config",
    "ConfigError",
    "EgressSettings",
    "MirrorConfig",
    "find_config",
    "load_config",
    "parse_config",
]

T = TypeVar("T")

ENV_VAR = "HEADWATER_CONFIG"
DEFAULT_FILE = "headwater.toml"


class ConfigError(HeadwaterError):
    """The configuration file is missing, unreadable, or has invalid or unknown keys."""


class MirrorConfig(UpstreamSettings, kw_only=True, forbid_unknown_fields=True):
    """One ``[mirror.NAME]`` table: sync ``upstream`` into the static tree at ``target``; the
    proxy, credential, TLS, fetch-boundary and publisher-guard options are
    :class:`~headwater.config.settings.UpstreamSettings`."""

    #: The upstream index's simple URL (PyPI, another headwater, any PEP 691/503 index).
    upstream: str
    #: Directory of the tree (``web/`` is served; ``state/`` beside it is not), or
    #: ``s3://BUCKET/PREFIX`` for a tree in a bucket (docs/mirror.md "Mirroring into a bucket").
    target: str
    #: Options of an ``s3://`` target (endpoint, region, addressing_style, profile, ...).
    s3: S3Options | None = None
    #: Concurrent page fetches, and separately concurrent file downloads.
    workers: int = 16
    #: Seconds to wait for a connection or for the next bytes of a response.
    timeout: float = 60.0
    #: Attempts per request before a project is counted as failed.
    retries: int = 5
    #: Seconds one upstream request (each attempt) may take in all, plus 1 s per 32 KiB it sends
    #: (default: twice ``timeout``).
    deadline: float | None = None
    #: Largest page read, in bytes after decompression (larger pages are refused as hostile).
    max_page_size: int = 256 << 20
    #: Most bytes read of a file whose page gives no size (with the filters' ``max_size`` set,
    #: the smaller of the two); a file is never read past the size its page gives.
    max_file_size: int = 8 << 30
    #: Mirror PEP 658 ``.metadata`` files.
    metadata: bool = True
    #: Write PEP 708 ``tracks`` (the upstream project URL) on every mirrored page.
    tracks: bool = True
    #: Where to write the list of keys the last sync wrote or removed (relative to ``target``).
    diff_file: str = "state/last-sync.diff"
    #: Which projects and files to mirror (``[mirror.NAME.filters]``; see docs/filters.md).
    filters: FilterConfig = msgspec.field(default_factory=FilterConfig)
    #: A closure mirror: what to satisfy and for which environments (``[mirror.NAME.closure]``;
    #: see docs/airgap.md). None: the filters alone decide.
    closure: ClosureConfig | None = None
    #: Processes verifying provenance documents: 1 verifies in a thread, more in a pool of that
    #: many. None: a pool of one process per usable CPU for a large run (200+ projects) when
    #: more than one CPU is usable, else a thread (docs/provenance.md).
    verify_processes: int | None = None

    @property
    def upstream_url(self) -> str:
        return self.upstream

    def __post_init__(self) -> None:
        super().__post_init__()
        check_storage(self.target, self.s3, "target")
        if not self.upstream.startswith(("http://", "https://")):
            raise ValueError(f"upstream must be an http(s) URL, got {self.upstream!r}")
        check_upstream_url(self.upstream)
        if not 1 <= self.workers <= 1024:
            raise ValueError(f"workers must be between 1 and 1024, got {self.workers}")
        if self.verify_processes is not None and not 1 <= self.verify_processes <= 256:
            raise ValueError(
                f"verify_processes must be between 1 and 256, got {self.verify_processes} "
                "(or leave it out: one per usable CPU for a large run)"
            )
        if self.timeout <= 0 or self.retries < 1:
            raise ValueError("timeout must be positive and retries at least 1")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be positive (or left out for twice timeout)")
        if self.max_page_size < 1 or self.max_file_size < 1:
            raise ValueError("max_page_size and max_file_size must be positive")

    def bounds(self) -> dict[str, Any]:
        """The bounds of every upstream request, as :class:`HttpRepository` takes them."""
        limit = self.max_file_size
        if self.filters.max_size is not None:
            limit = min(limit, self.filters.max_size)  # a larger file could never be kept
        return {
            "deadline": self.deadline if self.deadline is not None else 2 * self.timeout,
            "max_page_size": self.max_page_size,
            "max_file_size": limit,
        }


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole file."""

    mirror: dict[str, MirrorConfig] = msgspec.field(default_factory=dict)
    #: ``[serve]``: how ``headwater serve`` listens and where it keeps data.
    serve: ServeSettings = msgspec.field(default_factory=ServeSettings)
    #: ``[hosted.NAME]``: indexes that accept uploads.
    hosted: dict[str, HostedSettings] = msgspec.field(default_factory=dict)
    #: ``[proxy.NAME]``: remote indexes fetched on demand and cached.
    proxy: dict[str, ProxySettings] = msgspec.field(default_factory=dict)
    #: ``[directory.NAME]``: local folders of distribution files.
    directory: dict[str, DirectorySettings] = msgspec.field(default_factory=dict)
    #: ``[index.NAME]``: indexes composed of the sources above, under a policy.
    index: dict[str, IndexSettings] = msgspec.field(default_factory=dict)
    #: ``[status]``: the mirror status pages, /mirrors.json and peer mirrors.
    status: StatusSettings = msgspec.field(default_factory=StatusSettings)


def parse_config(text: str, *, source: str = "<config>", base: Path | None = None) -> Config:
    """Parse TOML ``text``; relative ``target`` paths are resolved against ``base``.

    Raises:
        ConfigError: naming ``source``, the key path and what is wrong.
    """
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:  # tomllib recurses on nesting
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(Config.__struct_fields__))
    if unknown:
        raise ConfigError(
            f"{source}: unknown table or key {unknown[0]!r} at the top level (known: "
            f"{', '.join(Config.__struct_fields__)}). See docs/configuration.md."
        )
    mirrors = data.get("mirror", {})
    if not isinstance(mirrors, dict):
        raise ConfigError(f"{source}: 'mirror' must be a table of [mirror.NAME] tables")
    config = Config()
    for name, table in mirrors.items():
        try:
            config.mirror[name] = msgspec.convert(table, MirrorConfig)
        except msgspec.ValidationError as exc:
            # msgspec says e.g. "Object contains unknown field `wrokers`" or "... - at `$.workers`".
            detail = str(exc).replace("`$.", "`")
            raise ConfigError(
                f"{source}: [mirror.{name}]: {detail}. See docs/configuration.md."
            ) from exc
    serve = data.get("serve", {})
    if not isinstance(serve, dict):
        raise ConfigError(f"{source}: 'serve' must be a table ([serve])")
    try:
        config.serve = msgspec.convert(serve, ServeSettings)
    except msgspec.ValidationError as exc:
        detail = str(exc).replace("`$.", "`")
        raise ConfigError(f"{source}: [serve]: {detail}. See docs/configuration.md.") from exc
    status = data.get("status", {})
    if not isinstance(status, dict):
        raise ConfigError(f"{source}: 'status' must be a table ([status])")
    try:
        config.status = msgspec.convert(status, StatusSettings)
    except msgspec.ValidationError as exc:
        detail = str(exc).replace("`$.", "`")
        raise ConfigError(f"{source}: [status]: {detail}. See docs/configuration.md.") from exc
    config.hosted = _tables(data, "hosted", HostedSettings, source)
    config.proxy = _tables(data, "proxy", ProxySettings, source)
    config.directory = _tables(data, "directory", DirectorySettings, source)
    indexes = data.get("index", {})
    if not isinstance(indexes, dict):
        raise ConfigError(f"{source}: 'index' must be a table of [index.NAME] tables")
    for name, table in indexes.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [index.{name}] must be a table")
        rules = {key: value for key, value in table.items() if key not in ("sources", "upload")}
        try:
            config.index[name] = msgspec.convert(
                {"sources": table.get("sources"), "upload": table.get("upload"), "rules": rules},
                IndexSettings,
            )
        except msgspec.ValidationError as exc:
            detail = str(exc).replace("`$.", "`").replace("`rules.", "`")
            raise ConfigError(f"{source}: [index.{name}]: {detail}. See docs/policy.md.") from exc
    if base is not None:
        serve_settings = config.serve
        for key in ("data_dir", "tls_certificate", "tls_key"):
            value = getattr(serve_settings, key)
            if value is not None and not Path(value).is_absolute():
                setattr(serve_settings, key, str((base / value).resolve()))
        for proxy in config.proxy.values():
            proxy.resolve_paths(str(base))
            proxy.storage = _resolve_storage(base, proxy.storage)
        for hosted in config.hosted.values():
            hosted.storage = _resolve_storage(base, hosted.storage)
        for directory in config.directory.values():
            directory.path = str((base / directory.path).resolve())
        for index in config.index.values():
            for key in ("routes-file", "routes_file"):
                value = index.rules.get(key)
                if isinstance(value, str) and not Path(value).is_absolute():
                    index.rules[key] = str((base / value).resolve())
        for name, mirror in config.mirror.items():
            if mirror.filters.allow_requirements:
                mirror.filters = _load_requirements(
                    mirror.filters, base, f"{source}: [mirror.{name}.filters]"
                )
            if mirror.closure is not None:
                # Inputs are named relative to the configuration file, like targets.
                mirror.closure.inputs = [str((base / p).resolve()) for p in mirror.closure.inputs]
            mirror.resolve_paths(str(base))
            mirror.target = _resolve_storage(base, mirror.target) or mirror.target
            if mirror.s3 is not None and mirror.s3.credentials_file:
                mirror.s3.credentials_file = _resolve_storage(base, mirror.s3.credentials_file)
        options = [h.s3 for h in config.hosted.values()] + [p.s3 for p in config.proxy.values()]
        for s3 in options:
            if s3 is not None and s3.credentials_file:
                s3.credentials_file = _resolve_storage(base, s3.credentials_file)
    _warn_plaintext_secrets(config, source)
    return config


def _resolve_storage(base: Path, value: str | None) -> str | None:
    """A relative directory resolved against the config file's; an ``s3://`` URL as it is."""
    if value is None or is_s3_url(value) or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def _warn_plaintext_secrets(config: Config, source: str) -> None:
    tables: list[tuple[str, S3Options | None]] = [
        *((f"[mirror.{n}.s3]", m.s3) for n, m in config.mirror.items()),
        *((f"[hosted.{n}.s3]", h.s3) for n, h in config.hosted.items()),
        *((f"[proxy.{n}.s3]", p.s3) for n, p in config.proxy.items()),
    ]
    for where, options in tables:
        if options is not None and options.plaintext_secrets():
            # The operator insisted (allow_plaintext_secrets); say so every time, never the value.
            logging.getLogger("headwater.config").warning(
                "%s: %s keeps S3 credentials in clear (allow_plaintext_secrets = true); prefer "
                "the AWS environment variables, a profile or credentials_file",
                source,
                where,
            )


def _tables(data: dict[str, Any], kind: str, struct: type[T], source: str) -> dict[str, T]:
    """The ``[KIND.NAME]`` tables of ``data`` converted to ``struct``."""
    tables = data.get(kind, {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: {kind!r} must be a table of [{kind}.NAME] tables")
    converted: dict[str, T] = {}
    for name, table in tables.items():
        try:
            converted[name] = msgspec.convert(table, struct)
        except msgspec.ValidationError as exc:
            detail = str(exc).replace("`$.", "`")
            raise ConfigError(
                f"{source}: [{kind}.{name}]: {detail}. See docs/configuration.md."
            ) from exc
    return converted


def _load_requirements(filters: FilterConfig, base: Path, where: str) -> FilterConfig:
    texts: dict[str, str] = {}
    for relative in filters.allow_requirements:
        path = base / relative
        try:
            texts[relative] = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot read requirements file {path}: {exc.strerror or exc}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{where}: requirements file {path} is not UTF-8 text (byte {exc.start}): "
                "save it as UTF-8"
            ) from exc
    try:
        return filters.with_requirements(texts)
    except InvalidFilter as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def find_config(explicit: str | None) -> Path | None:
    """The config file to use: ``explicit``, else ``$HEADWATER_CONFIG``, else ``./headwater.toml``
    if it exists, else None."""
    if explicit is not None:
        if not explicit:
            raise ConfigError(
                "--config is empty: name a configuration file, or leave --config out to use "
                f"${ENV_VAR} or ./{DEFAULT_FILE}"
            )
        if "://" in explicit:
            raise ConfigError(
                f"--config {explicit!r} is a URL: the configuration is a local TOML file; copy it "
                "here and name its path"
            )
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load_config(path: Path) -> Config:
    """Read and parse the file at ``path``.

    Raises:
        ConfigError: the file cannot be read or is invalid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        # TOML is UTF-8 (toml.io: "A TOML file must be a valid UTF-8 encoded Unicode document").
        raise ConfigError(
            f"configuration file {path} is not UTF-8 text (byte {exc.start} is "
            f"{exc.object[exc.start : exc.start + 1]!r}): TOML files must be UTF-8; save it as "
            "UTF-8"
        ) from exc
    return parse_config(text, source=str(path), base=path.parent)
