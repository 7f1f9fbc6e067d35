"""Rules from configuration: the ``[index.NAME]`` TOML table, and PEP 708's "mapping file".

The mapping file is the shape PEP 708 shows (and rejects as a standard) in "Rejected Ideas: Only
recommend that installers offer explicit configuration"::

    {
      "repositories": {"PyTorch": ["https://download.pytorch.org/whl/"],
                       "PyPI": ["https://pypi.org/simple/"]},
      "mapping": [
        {"paths": ["torch*"], "repositories": ["PyTorch"], "terminating": true},
        {"paths": ["*"], "repositories": ["PyPI"]}
      ]
    }

Repositories are named lists of index URLs; each URL must be the URL of one of the index's sources.
``terminating`` defaults to false in this file, as in the TUF map file it descends from (TAP 4); in
the TOML table it defaults to true.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from headwater.policy.merge import normalize_url
from headwater.policy.rules import POLICIES, PolicyError, PolicyKind, Route, Rules, SourceSpec

__all__ = ["INDEX_KEYS", "ROUTE_KEYS", "routes_from_mapping_file", "rules_from_config"]

#: The keys of ``[index.NAME]`` this module reads (``sources`` is parsed by the caller).
INDEX_KEYS = ("sources", "policy", "routes", "routes-file", "cooldown")
#: The keys of one ``[[index.NAME.routes]]`` entry.
ROUTE_KEYS = ("projects", "sources", "terminating")


def _strings(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{what} must be a list of strings, got {value!r}")
    return tuple(value)


def _unknown(keys: Iterable[object], known: Sequence[str], what: str) -> None:
    extra = sorted(str(k) for k in keys if k not in known)
    if extra:
        raise PolicyError(
            f"{what}: unknown key(s) {', '.join(repr(k) for k in extra)}; "
            f"known keys: {', '.join(known)}"
        )


def _route(entry: object, what: str) -> Route:
    if not isinstance(entry, Mapping):
        raise PolicyError(f"{what} must be a table with 'projects' and 'sources'")
    _unknown(entry.keys(), ROUTE_KEYS, what)
    for key in ("projects", "sources"):
        if key not in entry:
            raise PolicyError(f"{what} needs '{key}'")
    terminating = entry.get("terminating", True)
    if not isinstance(terminating, bool):
        raise PolicyError(f"{what}: 'terminating' must be true or false, got {terminating!r}")
    try:
        return Route(
            _strings(entry["projects"], f"{what} 'projects'"),
            _strings(entry["sources"], f"{what} 'sources'"),
            terminating,
        )
    except PolicyError as exc:
        raise PolicyError(f"{what}: {exc}") from None


def rules_from_config(
    index: str,
    table: Mapping[str, Any],
    sources: Sequence[SourceSpec],
    *,
    where: str,
    read_file: Callable[[str], bytes] | None = None,
    source_urls: Mapping[str, str] | None = None,
    namespaces: Sequence[tuple[str, str]] = (),
) -> Rules:
    """The rules of index ``index`` from its ``[index.NAME]`` table.

    ``sources`` are the index's sources in order (parsed by the caller from ``sources = [...]``).
    ``read_file`` reads ``routes-file`` (relative paths are the caller's business); ``source_urls``
    maps each remote source's index URL to its name, for the routes file. ``namespaces`` are the
    PEP 752 grants of the index's hosted sources, as (namespace, source). ``where`` names the file
    (and table) in messages. Routes from the table come before those from ``routes-file``.

    Raises:
        PolicyError: an unknown key, a value of the wrong type, an unknown policy or source, an
            unreadable or malformed routes file; the message names ``where`` and the key.
    """
    what = f"{where} [index.{index}]"
    if not isinstance(table, Mapping):
        raise PolicyError(f"{what} must be a table")
    _unknown(table.keys(), INDEX_KEYS, what)
    names = [s.name for s in sources]
    if "sources" in table and list(_strings(table["sources"], f"{what} 'sources'")) != names:
        raise PolicyError(f"{what} 'sources' lists {table['sources']!r}, expected {names!r}")
    policy = table.get("policy", "priority")
    if policy not in POLICIES:
        raise PolicyError(
            f"{what} 'policy': unknown policy {policy!r}; use one of "
            + ", ".join(repr(p) for p in POLICIES)
            + " (the unsafe merge must be asked for by its full name)"
        )
    raw_routes = table.get("routes", [])
    if not isinstance(raw_routes, list):
        raise PolicyError(f"{what} 'routes' must be an array of tables ([[index.{index}.routes]])")
    routes = [_route(entry, f"{what} routes[{i}]") for i, entry in enumerate(raw_routes)]
    if "routes-file" in table:
        routes.extend(_routes_file(table["routes-file"], what, read_file, source_urls))
    specs = _with_cooldown(list(sources), table.get("cooldown", {}), what)
    try:
        return Rules(index, tuple(specs), _policy(policy), tuple(routes), tuple(namespaces))
    except PolicyError as exc:
        raise PolicyError(f"{what}: {exc}") from None


def _policy(value: str) -> PolicyKind:
    for policy in POLICIES:
        if value == policy:
            return policy
    raise AssertionError(value)  # checked by the caller


def _routes_file(
    path: object,
    what: str,
    read_file: Callable[[str], bytes] | None,
    source_urls: Mapping[str, str] | None,
) -> tuple[Route, ...]:
    if not isinstance(path, str) or not path:
        raise PolicyError(f"{what} 'routes-file' must be a file name, got {path!r}")
    if read_file is None:
        raise PolicyError(f"{what} 'routes-file' cannot be read here (no file access given)")
    if source_urls is None:
        raise PolicyError(
            f"{what} 'routes-file' cannot be used here: the URLs of the index's sources, which "
            "its repositories name, were not given (source_urls)"
        )
    try:
        data = read_file(path)
    except OSError as exc:
        raise PolicyError(
            f"{what} 'routes-file': cannot read {path!r} ({exc.strerror or exc}); check the path"
        ) from exc
    return routes_from_mapping_file(
        data, source_urls=source_urls, where=f"{what} 'routes-file' {path!r}"
    )


def _with_cooldown(sources: list[SourceSpec], cooldown: object, what: str) -> list[SourceSpec]:
    if not isinstance(cooldown, Mapping):
        raise PolicyError(
            f"{what} 'cooldown' must be a table of days per source, e.g. {{pypi = 7}}"
        )
    names = [s.name for s in sources]
    for name, days in cooldown.items():
        if name not in names:
            raise PolicyError(
                f"{what} 'cooldown': {name!r} is not one of the index's sources ({', '.join(names)})"
            )
        if isinstance(days, bool) or not isinstance(days, int | float):
            raise PolicyError(f"{what} 'cooldown.{name}' must be a number of days, got {days!r}")
    try:
        return [
            msgspec.structs.replace(s, cooldown_days=float(cooldown[s.name]))
            if s.name in cooldown
            else s
            for s in sources
        ]
    except PolicyError as exc:
        raise PolicyError(f"{what} 'cooldown': {exc}") from None


def routes_from_mapping_file(
    data: bytes, *, source_urls: Mapping[str, str], where: str
) -> tuple[Route, ...]:
    """Routes from a PEP 708 "mapping file" (JSON; see the module docstring), in file order.

    ``source_urls`` maps index URLs to source names; URLs compare normalized (trailing slash, case
    of scheme and host).

    Raises:
        PolicyError: the file is not that JSON shape, or a URL names none of the sources; the
            message names ``where``.
    """
    try:
        doc = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec recurses on nesting
        raise PolicyError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise PolicyError(f"{where}: expected a JSON object with 'repositories' and 'mapping'")
    _unknown(doc.keys(), ("repositories", "mapping"), where)
    repositories = doc.get("repositories")
    mapping = doc.get("mapping")
    if not isinstance(repositories, dict) or not isinstance(mapping, list):
        raise PolicyError(
            f"{where}: 'repositories' must be an object of name -> [URL, ...] and 'mapping' a list"
        )
    by_url = {normalize_url(url): name for url, name in source_urls.items()}
    resolved: dict[str, tuple[str, ...]] = {}
    for label, urls in repositories.items():
        found: list[str] = []
        for url in _strings(urls, f"{where}: repository {label!r}"):
            source = by_url.get(normalize_url(url))
            if source is None:
                known = ", ".join(f"{n} = {u}" for u, n in source_urls.items()) or "none"
                raise PolicyError(
                    f"{where}: repository {label!r} URL {url!r} is not the URL of any source of "
                    f"the index (sources with URLs: {known}); add a source for it or fix the URL"
                )
            found.append(source)
        resolved[label] = tuple(dict.fromkeys(found))
    routes: list[Route] = []
    for i, entry in enumerate(mapping):
        what = f"{where}: mapping[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{what} must be an object with 'paths' and 'repositories'")
        _unknown(entry.keys(), ("paths", "repositories", "terminating"), what)
        sources: list[str] = []
        for label in _strings(entry.get("repositories"), f"{what} 'repositories'"):
            if label not in resolved:
                raise PolicyError(f"{what} names repository {label!r}, not in 'repositories'")
            sources.extend(resolved[label])
        terminating = entry.get("terminating", False)
        if not isinstance(terminating, bool):
            raise PolicyError(f"{what}: 'terminating' must be true or false")
        try:
            paths = _strings(entry.get("paths"), f"{what} 'paths'")
            routes.append(Route(paths, tuple(dict.fromkeys(sources)), terminating))
        except PolicyError as exc:
            raise PolicyError(f"{what}: {exc}") from None
    return tuple(routes)
