"""``headwater serve``: run the index server.

With no configuration file it runs on embedded defaults: a data directory ``./headwater-data``
with a SQLite database and one hosted index, ``main``, also served as the default index at
``/simple/``. Flags override the ``[serve]`` table of the config file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from headwater.config import Config, ConfigError, find_config, load_config
from headwater.server.settings import HostedSettings, ServePlan

__all__ = ["build_plan", "plan_from_config", "register"]

DEFAULT_HOSTED = "main"


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve mirrored trees and hosted indexes over HTTP",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", help="configuration file (default: $HEADWATER_CONFIG, ./headwater.toml)"
    )
    parser.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:8080)")
    parser.add_argument(
        "--workers", type=int, help="server processes (default 1; one per core is usual)"
    )
    parser.add_argument("--data-dir", help="where hosted files and the SQLite database live")
    parser.add_argument("--database", help="database URL (sqlite:///PATH or postgresql://...)")
    parser.add_argument("--base-url", help="canonical public URL (legacy hosts redirect to it)")
    parser.add_argument("--tls-certificate", help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key for --tls-certificate")
    parser.add_argument("--default-index", help="the index also served at /simple/")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also serve the static tree at PATH (a headwater or bandersnatch mirror) as index NAME",
    )
    parser.set_defaults(run=run)


def build_plan(args: argparse.Namespace) -> ServePlan:
    """The serve plan from the config file (if any) and the flags.

    Raises:
        ConfigError: the file, a flag, or their combination is invalid.
    """
    path = find_config(args.config)
    config = load_config(path) if path is not None else Config()
    overrides = {
        key: value
        for key, value in {
            "listen": args.listen,
            "workers": args.workers,
            "data_dir": str(Path(args.data_dir).resolve()) if args.data_dir else None,
            "database": args.database,
            "base_url": args.base_url,
            "tls_certificate": args.tls_certificate,
            "tls_key": args.tls_key,
            "default_index": args.default_index,
        }.items()
        if value is not None
    }
    try:
        settings = msgspec.structs.replace(config.serve, **overrides)
        settings.__post_init__()  # replace() does not re-validate
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"serve options: {exc}") from exc
    if not Path(settings.data_dir).is_absolute():
        settings = msgspec.structs.replace(
            settings, data_dir=str(Path(settings.data_dir).resolve())
        )
    mirrors = {name: mirror.target for name, mirror in config.mirror.items()}
    for spec in args.tree:
        name, sep, tree = spec.partition("=")
        if not sep or not name or not tree:
            raise ConfigError(f"--tree wants NAME=PATH, got {spec!r}")
        mirrors[name] = str(Path(tree).resolve())
    hosted = dict(config.hosted)
    if not hosted and not mirrors and not config.proxy and not config.directory:
        hosted[DEFAULT_HOSTED] = HostedSettings()
    default = settings.default_index
    if default is None:
        names = [*hosted, *mirrors, *config.proxy, *config.directory]
        if len(config.index) == 1:
            default = next(iter(config.index))  # the composed index is what clients should use
        elif not config.index:
            default = (
                DEFAULT_HOSTED
                if DEFAULT_HOSTED in hosted
                else names[0]
                if len(names) == 1
                else None
            )
    try:
        plan = ServePlan(
            settings=settings,
            mirrors=mirrors,
            hosted=hosted,
            proxies=dict(config.proxy),
            directories={name: d.path for name, d in config.directory.items()},
            indexes=dict(config.index),
            default=default,
        )
    except ValueError as exc:
        raise ConfigError(f"serve: {exc}") from exc
    if plan.indexes:
        # Imported here: the server is heavy, and building the parser must stay light.
        from headwater.server.factory import index_rules

        for name in plan.indexes:
            index_rules(plan, name)  # a bad policy table fails here, before any worker starts
    return plan


def plan_from_config(config: str, *, data_dir: str | None = None) -> ServePlan:
    """What ``headwater serve --config CONFIG [--data-dir DATA_DIR]`` would serve.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    if not Path(config).is_file():
        raise ConfigError(f"configuration file {config} does not exist")
    flags = argparse.Namespace(
        config=config,
        listen=None,
        workers=None,
        data_dir=data_dir,
        database=None,
        base_url=None,
        tls_certificate=None,
        tls_key=None,
        default_index=None,
        tree=[],
    )
    return build_plan(flags)


def _check_tls(certificate: str | None, key: str | None) -> None:
    """Load the certificate and key as the server will, so that a missing file or a key of
    another certificate is refused before anything starts.

    Raises:
        ConfigError: naming the file and what is wrong with it.
    """
    if certificate is None or key is None:
        return
    import ssl

    for what, path, kind in (
        ("tls_certificate", certificate, "certificate chain"),
        ("tls_key", key, "private key"),
    ):
        if not Path(path).is_file():
            raise ConfigError(
                f"{what} {path!r} is not a file: give the PEM {kind} file (e.g. Let's Encrypt's "
                "fullchain.pem and privkey.pem)"
            )
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certificate, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"tls_certificate {certificate!r} and tls_key {key!r} cannot be used together "
            f"({exc}): give a PEM certificate chain and the PEM private key it was made for"
        ) from exc


def _announce(plan: ServePlan) -> None:
    settings = plan.settings
    scheme = "https" if settings.tls_certificate else "http"
    base = (settings.base_url or f"{scheme}://{settings.listen}").rstrip("/")
    lines = [
        f"headwater: serving {base}/ with {settings.workers} worker(s); data in {settings.data_dir}"
    ]
    for name in plan.mirrors:
        lines.append(f"  mirror  {name:<12} {base}/{name}/simple/")
    for name in plan.hosted:
        lines.append(f"  hosted  {name:<12} {base}/{name}/simple/   upload: {base}/{name}/legacy/")
    for name, proxy in plan.proxies.items():
        lines.append(f"  proxy   {name:<12} {base}/{name}/simple/   of {proxy.url}")
    for name in plan.directories:
        lines.append(f"  folder  {name:<12} {base}/{name}/simple/")
    for name, index in plan.indexes.items():
        lines.append(
            f"  index   {name:<12} {base}/{name}/simple/   from {', '.join(index.sources)}"
        )
    if plan.default:
        lines.append(f"  pip install --index-url {base}/simple/ PROJECT")
        lines.append(f"  uv pip install --index-url {base}/simple/ PROJECT")
    print("\n".join(lines), file=sys.stderr, flush=True)


def prepare_database(plan: ServePlan) -> str | None:
    """Before any worker starts: create or migrate the database (one process does it, so
    workers never race), and on a fresh database create the ``admin`` user with a token, kept
    in ``<data_dir>/admin-token`` (mode 0600). Returns the token's file when one was made."""
    from headwater.cli.admin import ensure_admin_token
    from headwater.db import Database
    from headwater.server.factory import database_url

    data_dir = Path(plan.settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.connect(database_url(plan))
    try:
        db.upgrade()
        token = ensure_admin_token(db, plan)
    finally:
        db.close()
    if token is None:
        return None
    path = data_dir / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return str(path)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``headwater serve``."""
    from headwater.server.run import run_server

    plan = build_plan(args)
    _check_tls(plan.settings.tls_certificate, plan.settings.tls_key)
    token_file = prepare_database(plan) if plan.hosted else None
    _announce(plan)
    if token_file:
        base = (plan.settings.base_url or f"http://{plan.settings.listen}").rstrip("/")
        print(
            f"  first start: user 'admin' created; its token is in {token_file}\n"
            f"  twine upload --repository-url {base}/legacy/ -u __token__ "
            f'-p "$(cat {token_file})" dist/*',
            file=sys.stderr,
            flush=True,
        )
    run_server(plan)
    return 0
