"""Which indexes a client would use: from the command line, the input files, and pip's or uv's
own configuration, each with where it came from.

pip (``--from pip``): configuration files in pip's order, later ones overriding earlier ones —
global (``$XDG_CONFIG_DIRS/pip/pip.conf``, ``/etc/pip.conf``), user (``~/.pip/pip.conf``,
``$XDG_CONFIG_HOME/pip/pip.conf``; skipped when ``PIP_CONFIG_FILE`` names an existing file), site
(``$VIRTUAL_ENV/pip.conf``), then ``PIP_CONFIG_FILE``; in each, ``[global]`` then ``[install]``.
``PIP_CONFIG_FILE=/dev/null`` loads no file. Environment variables (``PIP_INDEX_URL``,
``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``) override the files; command-line
``--index-url`` overrides both, ``--extra-index-url`` and ``--find-links`` add to them. Then the
requirements files' own options apply in order, as pip applies them: ``--index-url`` replaces
every index so far, ``--extra-index-url`` adds one, ``--no-index`` drops them all. Without any
index-url, pip uses PyPI.

uv (``--from uv``): ``UV_CONFIG_FILE`` alone, or else the project's ``uv.toml`` (or
``pyproject.toml`` with ``[tool.uv]``) in the working directory or above, the user's
``$XDG_CONFIG_HOME/uv/uv.toml`` and the system's ``$XDG_CONFIG_DIRS/uv/uv.toml`` /
``/etc/uv/uv.toml``; ``UV_NO_CONFIG`` loads none. Indexes are in uv's priority order: command line,
then ``UV_INDEX`` / ``UV_EXTRA_INDEX_URL``, then the input files, then the configuration files
(project, user, system); the default index (``index-url``, ``UV_DEFAULT_INDEX``/``UV_INDEX_URL``,
an index with ``default = true``, else PyPI) comes last. ``explicit = true`` indexes serve only
the names pinned to them.

``--from none``: only the command line and the input files (like ``pip --isolated``).

``--find-links`` directories are local sources (PEP 708: always mergeable); a find-links URL or
a missing directory is skipped with a warning.
"""

from __future__ import annotations

import configparser
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from headwater.check.errors import CheckError, InvalidRequirements
from headwater.check.model import Client, IndexDirective, IndexSpec
from headwater.check.projectfiles import Where, uv_directives
from headwater.errors import printable

__all__ = [
    "DEFAULT_PUBLIC",
    "CommandLineIndexes",
    "ConfigPaths",
    "IndexPlan",
    "normalize_index_url",
    "resolve_indexes",
]

#: The public index: where anyone can register a name.
DEFAULT_PUBLIC = "https://pypi.org/simple/"
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class ConfigPaths(msgspec.Struct, frozen=True, kw_only=True):
    """Where pip's and uv's configuration files are looked for. :meth:`from_environ` gives the
    places pip and uv themselves look; tests give temporary ones."""

    pip_global: tuple[Path, ...] = ()
    pip_user: tuple[Path, ...] = ()
    pip_site: tuple[Path, ...] = ()
    uv_system: tuple[Path, ...] = ()
    uv_user: tuple[Path, ...] = ()
    #: Where uv's project configuration search starts (uv.toml / pyproject.toml, then parents).
    project_dir: Path | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], cwd: Path) -> ConfigPaths:
        """The places pip and uv look on this machine (POSIX layout)."""
        home = Path(environ.get("HOME", "~")).expanduser()
        config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
        config_dirs = [
            Path(d) for d in (environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":") if d
        ]
        venv = environ.get("VIRTUAL_ENV")
        return cls(
            pip_global=(*(d / "pip" / "pip.conf" for d in config_dirs), Path("/etc/pip.conf")),
            pip_user=(home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf"),
            pip_site=(Path(venv) / "pip.conf",) if venv else (),
            uv_system=(*(d / "uv" / "uv.toml" for d in config_dirs), Path("/etc/uv/uv.toml")),
            uv_user=(config_home / "uv" / "uv.toml",),
            project_dir=cwd,
        )


class CommandLineIndexes(msgspec.Struct, frozen=True, kw_only=True):
    """The index options given to ``headwater check`` itself."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()


class IndexPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The indexes to check against, in the client's priority order (for pip the order does not
    matter: it merges every index), the public one, and what was skipped."""

    client: Client
    indexes: tuple[IndexSpec, ...]
    public: str
    warnings: tuple[str, ...] = ()

    def by_name(self, name: str) -> IndexSpec | None:
        """The index called ``name``, if any."""
        return next((spec for spec in self.indexes if spec.name == name), None)

    def by_url(self, url: str) -> IndexSpec | None:
        """The index at ``url`` (compared normalized), if any."""
        key = normalize_index_url(url)
        return next(
            (s for s in self.indexes if not s.local and normalize_index_url(s.url) == key), None
        )


def normalize_index_url(url: str) -> str:
    """``url`` for comparison: scheme and host lower case, no credentials, ending in ``/``."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme.lower(), host, path, parts.query, ""))


@dataclass
class _Entry:
    url: str
    origin: str
    name: str | None = None
    explicit: bool = False


@dataclass
class _Layer:
    """What one place (command line, environment, a file) says about indexes."""

    default: _Entry | None = None
    indexes: list[_Entry] = field(default_factory=list)
    find_links: list[_Entry] = field(default_factory=list)
    no_index: str | None = None


# -- pip ------------------------------------------------------------------------------------------


def _pip_key(key: str) -> str:
    # pip normalizes option names: lower case, "_" as "-", no leading "--".
    return key.lower().replace("_", "-").removeprefix("--")


def _pip_files(environ: Mapping[str, str], paths: ConfigPaths) -> list[Path]:
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []  # pip: "Skipping loading configuration files" for os.devnull
    files = list(paths.pip_global)
    if not (env_file and Path(env_file).exists()):
        files.extend(paths.pip_user)
    files.extend(paths.pip_site)
    if env_file:
        files.append(Path(env_file))
    return files


def _pip_config(environ: Mapping[str, str], paths: ConfigPaths) -> dict[str, tuple[str, str]]:
    """The index keys pip's configuration ends up with: key -> (value, origin)."""
    values: dict[str, tuple[str, str]] = {}
    for path in _pip_files(environ, paths):
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError, OSError) as exc:
            raise InvalidRequirements(
                f"pip configuration file {path} cannot be read: {exc}; fix it, or run with "
                "--from none (or PIP_CONFIG_FILE=/dev/null) to ignore pip's configuration"
            ) from exc
        for section in ("global", "install"):
            if parser.has_section(section):
                for key, value in parser.items(section):
                    values[_pip_key(key)] = (value, f"{path} [{section}] {_pip_key(key)}")
    for key, value in environ.items():
        if key.startswith("PIP_") and key != "PIP_CONFIG_FILE":
            values[_pip_key(key[4:])] = (value, key)
    return values


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")


def _pip_layer(environ: Mapping[str, str], paths: ConfigPaths) -> _Layer:
    config = _pip_config(environ, paths)
    layer = _Layer()
    if "index-url" in config:
        value, origin = config["index-url"]
        layer.default = _Entry(value.strip(), origin)
    if "extra-index-url" in config:
        value, origin = config["extra-index-url"]
        layer.indexes = [_Entry(url, origin) for url in value.split()]
    if "find-links" in config:
        value, origin = config["find-links"]
        layer.find_links = [_Entry(link, origin) for link in value.split()]
    if "no-index" in config and _truthy(config["no-index"][0]):
        layer.no_index = config["no-index"][1]
    return layer


# -- uv -------------------------------------------------------------------------------------------


def _read_toml(path: Path, what: str) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InvalidRequirements(
            f"{what} {path} cannot be read: {exc}; fix it, or run with --from none "
            "(or UV_NO_CONFIG=1) to ignore uv's configuration"
        ) from exc


def _uv_file_layer(path: Path, *, pyproject: bool) -> _Layer:
    text, data = _read_toml(path, "uv configuration file")
    table = data.get("tool", {}).get("uv", {}) if pyproject else data
    if not isinstance(table, dict):
        raise InvalidRequirements(f"{path}: [tool.uv] must be a table")
    prefix = "[tool.uv]" if pyproject else "uv.toml"
    return _layer_from_directives(uv_directives(table, Where(path, text), prefix), Client.UV)


def _uv_project_file(start: Path, skip: frozenset[Path]) -> tuple[Path, bool] | None:
    """uv's project configuration: the nearest ``uv.toml``, or ``pyproject.toml`` with a
    ``[tool.uv]`` table, in ``start`` or its parents (uv.toml wins in the same directory)."""
    for directory in (start, *start.parents):
        candidate = directory / "uv.toml"
        if candidate.is_file():
            return (candidate, False) if candidate.resolve() not in skip else None
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            _, data = _read_toml(candidate, "pyproject file")
            tool = data.get("tool", {})
            if isinstance(tool, dict) and "uv" in tool:
                return (candidate, True) if candidate.resolve() not in skip else None
    return None


def _uv_layers(
    environ: Mapping[str, str], paths: ConfigPaths, skip: frozenset[Path]
) -> tuple[_Layer, list[_Layer]]:
    """The environment's layer, and the configuration files' layers (highest priority first)."""
    env = _Layer()
    for key in ("UV_INDEX_URL", "UV_DEFAULT_INDEX"):  # UV_DEFAULT_INDEX wins over the older one
        if environ.get(key):
            env.default = _Entry(environ[key].strip(), key)
    for item in environ.get("UV_INDEX", "").split():
        name, eq, url = item.partition("=")
        if eq and "://" not in name:
            env.indexes.append(_Entry(url, "UV_INDEX", name=name))
        else:
            env.indexes.append(_Entry(item, "UV_INDEX"))
    env.indexes.extend(
        _Entry(url, "UV_EXTRA_INDEX_URL") for url in environ.get("UV_EXTRA_INDEX_URL", "").split()
    )
    env.find_links.extend(
        _Entry(link.strip(), "UV_FIND_LINKS")
        for link in environ.get("UV_FIND_LINKS", "").split(",")
        if link.strip()
    )
    if _truthy(environ.get("UV_NO_INDEX", "")):
        env.no_index = "UV_NO_INDEX"
    if _truthy(environ.get("UV_NO_CONFIG", "")):
        return env, []
    if environ.get("UV_CONFIG_FILE"):
        path = Path(environ["UV_CONFIG_FILE"])
        if not path.is_file():
            raise CheckError(
                f"UV_CONFIG_FILE names {path}, which does not exist; fix the variable or unset it"
            )
        return env, [_uv_file_layer(path, pyproject=path.name == "pyproject.toml")]
    files: list[_Layer] = []
    if paths.project_dir is not None:
        project = _uv_project_file(paths.project_dir, skip)
        if project is not None:
            files.append(_uv_file_layer(project[0], pyproject=project[1]))
    for group in (paths.uv_user, paths.uv_system):  # uv reads the first file of each level
        found = next((path for path in group if path.is_file()), None)
        if found is not None:
            files.append(_uv_file_layer(found, pyproject=False))
    return env, files


# -- directives, layers and the final list --------------------------------------------------------


def _layer_from_directives(directives: Iterable[IndexDirective], client: Client) -> _Layer:
    """A layer from directives, applied in order with ``client``'s semantics."""
    layer = _Layer()
    for d in directives:
        entry = _Entry(d.value, d.origin, name=d.name, explicit=d.explicit)
        if d.action == "index-url":
            layer.default = entry
            if client is not Client.UV:
                layer.indexes = []  # pip: a file's --index-url replaces every index before it
        elif d.action == "extra-index-url":
            layer.indexes.append(entry)
        elif d.action == "index":
            if d.default:
                layer.default = entry
            else:
                layer.indexes.append(entry)
        elif d.action == "find-links":
            layer.find_links.append(entry)
        else:  # no-index
            layer.no_index = d.origin
            layer.default, layer.indexes = None, []
    return layer


def _unique_name(wanted: str | None, url: str, used: set[str], public: bool) -> str:
    base = _NAME_CHARS.sub("-", wanted).strip("-._") if wanted else ""
    if not base:
        if public:
            base = "pypi" if "pypi.org" in url else "public"
        else:
            host = (urlsplit(url).hostname or "index").split(".")[0]
            base = _NAME_CHARS.sub("-", host).strip("-._") or "index"
            if base in ("127", "localhost", "index") or base.isdigit():
                base = "index"
    name, n = base[:90], 2
    while name in used:
        name = f"{base[:90]}-{n}"
        n += 1
    used.add(name)
    return name


def resolve_indexes(
    client: Client,
    *,
    command_line: CommandLineIndexes,
    directives: Sequence[IndexDirective] = (),
    environ: Mapping[str, str] | None = None,
    paths: ConfigPaths | None = None,
    public: str = DEFAULT_PUBLIC,
    skip_files: Iterable[Path] = (),
) -> IndexPlan:
    """The indexes ``client`` would use (see the module docstring), with their origins.

    ``skip_files`` are input files already read (a pyproject.toml given to check is not read a
    second time as uv's project configuration).

    Raises:
        InvalidRequirements: a pip or uv configuration file is malformed.
        CheckError: ``UV_CONFIG_FILE`` names a missing file.
    """
    environ = os.environ if environ is None else environ
    paths = paths or ConfigPaths()
    cli = _Layer(
        default=_Entry(command_line.index_url, "--index-url") if command_line.index_url else None,
        indexes=[_Entry(url, "--extra-index-url") for url in command_line.extra_index_urls],
        find_links=[_Entry(link, "--find-links") for link in command_line.find_links],
    )
    if client is Client.UV:
        remote, default, links, no_index = _uv_order(
            cli, directives, environ, paths, frozenset(p.resolve() for p in skip_files)
        )
        fallback_origin = "uv's default index (no index-url configured)"
    else:
        remote, default, links, no_index = _pip_order(cli, directives, environ, paths, client)
        fallback_origin = (
            "pip's default index (no index-url configured)"
            if client is Client.PIP
            else "the default index (no --index-url given)"
        )
    if default is None and no_index is None:
        default = _Entry(public, fallback_origin)
    if no_index is not None:
        remote, default = [], None
    ordered = [*remote, default] if default is not None and client is Client.UV else remote
    if default is not None and client is not Client.UV:
        ordered = [default, *remote]
    return _plan(client, ordered, links, public)


def _pip_order(
    cli: _Layer,
    directives: Sequence[IndexDirective],
    environ: Mapping[str, str],
    paths: ConfigPaths,
    client: Client,
) -> tuple[list[_Entry], _Entry | None, list[_Entry], str | None]:
    base = _pip_layer(environ, paths) if client is Client.PIP else _Layer()
    default = cli.default or base.default
    extras = [*base.indexes, *cli.indexes]
    links = [*base.find_links, *cli.find_links]
    no_index = base.no_index
    if no_index is not None:
        default, extras = None, []
    for d in directives:  # pip's order: each file option changes what came before it
        entry = _Entry(d.value, d.origin, name=d.name, explicit=d.explicit)
        if d.action == "index-url" or (d.action == "index" and d.default):
            default, extras = entry, []
        elif d.action in ("extra-index-url", "index"):
            extras.append(entry)
        elif d.action == "find-links":
            links.append(entry)
        else:
            no_index, default, extras = d.origin, None, []
    if no_index is not None:
        default, extras = None, []
    return extras, default, links, no_index


def _uv_order(
    cli: _Layer,
    directives: Sequence[IndexDirective],
    environ: Mapping[str, str],
    paths: ConfigPaths,
    skip: frozenset[Path],
) -> tuple[list[_Entry], _Entry | None, list[_Entry], str | None]:
    env, files = _uv_layers(environ, paths, skip)
    layers = [cli, env, _layer_from_directives(directives, Client.UV), *files]
    remote = [entry for layer in layers for entry in layer.indexes]
    default = next((layer.default for layer in layers if layer.default is not None), None)
    links = [entry for layer in layers for entry in layer.find_links]
    no_index = next((layer.no_index for layer in layers if layer.no_index is not None), None)
    return remote, default, links, no_index


def _check_index_url(url: str, origin: str) -> None:
    """Refuse an index URL that names no http(s) host: a scheme other than http(s), no host, a
    port out of range, a malformed IPv6 address, control characters.

    Raises:
        CheckError: naming where the URL came from and the form to write.
    """
    why = None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
        if parts.scheme.lower() not in ("http", "https"):
            why = "is not an http(s) URL"
        elif not parts.hostname:
            why = "names no host"
        elif port == 0:
            why = "has port 0"
        elif not url.isprintable():
            why = "has control characters in it"
    except ValueError as exc:  # urlsplit: "Invalid IPv6 URL", "Port out of range 0-65535"
        why = f"is not a URL ({exc})"
    if why is not None:
        raise CheckError(
            f"{origin}: index URL '{printable(url, 200)}' {why}; write it as https://host/simple/"
        )


def _plan(client: Client, ordered: list[_Entry], links: list[_Entry], public: str) -> IndexPlan:
    _check_index_url(public, "--public")
    public_key = normalize_index_url(public)
    specs: list[IndexSpec] = []
    names: set[str] = set()
    seen: set[str] = set()
    warnings: list[str] = []
    for entry in ordered:
        _check_index_url(entry.url, entry.origin)
        key = normalize_index_url(entry.url)
        if key in seen:
            continue
        seen.add(key)
        is_public = key == public_key
        url = entry.url if entry.url.endswith("/") else entry.url + "/"
        specs.append(
            IndexSpec(
                name=_unique_name(entry.name, url, names, is_public),
                url=url,
                origin=entry.origin,
                public=is_public,
                explicit=entry.explicit,
            )
        )
    for entry in links:
        if "://" in entry.url and not entry.url.startswith("file://"):
            warnings.append(
                f"find-links {entry.url} ({entry.origin}) is a URL; only find-links directories "
                "are checked, so it was skipped"
            )
            continue
        directory = Path(entry.url.removeprefix("file://")).expanduser()
        if not directory.is_dir():
            warnings.append(
                f"find-links directory {directory} ({entry.origin}) does not exist; skipped"
            )
            continue
        key = str(directory.resolve())
        if key in seen:
            continue
        seen.add(key)
        specs.append(
            IndexSpec(
                name=_unique_name(directory.name or "local", key, names, False),
                url=key,
                origin=entry.origin,
                local=True,
            )
        )
    if not any(spec.public for spec in specs):
        url = public if public.endswith("/") else public + "/"
        specs.append(
            IndexSpec(
                name=_unique_name(None, url, names, True),
                url=url,
                origin="--public: not used by the client; asked only whether a name is claimed",
                public=True,
                used=False,
            )
        )
    return IndexPlan(client=client, indexes=tuple(specs), public=public, warnings=tuple(warnings))
