"""The serve plan: what ``headwater serve`` (and the admin commands, and ``check --config``) read
from the configuration file and the command line, checked before any worker starts; and the
database's first start (migrations, the first admin token).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from headwater.assembly.sources import database_url, index_rules
from headwater.config import Config, ConfigError, find_config, load_config
from headwater.config.settings import HostedSettings, ServePlan, check_data_dir
from headwater.db import Database
from headwater.storage.filesystem import private_directory

__all__ = [
    "DEFAULT_HOSTED",
    "OVERRIDABLE",
    "ensure_admin_token",
    "plan_from_config",
    "plan_from_flags",
    "prepare_data_dir",
    "prepare_database",
]

log = logging.getLogger("headwater.serve")

DEFAULT_HOSTED = "main"
#: The ``[serve]`` options that command-line flags may override.
OVERRIDABLE = (
    "listen",
    "workers",
    "data_dir",
    "database",
    "base_url",
    "tls_certificate",
    "tls_key",
    "default_index",
)


def plan_from_flags(
    config_file: str | None, *, overrides: Mapping[str, Any], trees: Sequence[str] = ()
) -> ServePlan:
    """The serve plan from the config file (if any) and the command line: ``overrides`` are
    ``[serve]`` options (None: not given), ``trees`` are ``NAME=PATH`` extra mirror trees.

    Raises:
        ConfigError: the file, a flag, or their combination is invalid.
    """
    path = find_config(config_file)
    config = load_config(path) if path is not None else Config()
    given = {key: value for key, value in overrides.items() if value is not None}
    unknown = set(given) - set(OVERRIDABLE)
    if unknown:
        raise ValueError(f"not [serve] options that flags may override: {sorted(unknown)}")
    if "database" in given and not given["database"].strip():
        raise ConfigError(
            "--database is empty: give a URL (sqlite:///PATH or postgresql://...), or leave it "
            "out for SQLite in the data directory"
        )
    if "data_dir" in given:
        try:
            check_data_dir(given["data_dir"])  # before resolving makes "s3://b" "./s3:/b"
        except ValueError as exc:
            raise ConfigError(f"--data-dir: {exc}") from exc
        given["data_dir"] = str(Path(given["data_dir"]).resolve())
    try:
        settings = msgspec.structs.replace(config.serve, **given)
        settings.__post_init__()  # replace() does not re-validate
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"serve options: {exc}") from exc
    if not Path(settings.data_dir).is_absolute():
        settings = msgspec.structs.replace(
            settings, data_dir=str(Path(settings.data_dir).resolve())
        )
    mirrors = {name: mirror.target for name, mirror in config.mirror.items()}
    for spec in trees:
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
            mirror_s3={n: m.s3 for n, m in config.mirror.items() if m.s3 is not None},
            hosted=hosted,
            proxies=dict(config.proxy),
            directories={name: d.path for name, d in config.directory.items()},
            indexes=dict(config.index),
            default=default,
            status=config.status,
        )
    except ValueError as exc:
        raise ConfigError(f"serve: {exc}") from exc
    if plan.indexes:
        for name in plan.indexes:
            index_rules(plan, name)  # a bad policy table fails here, before any worker starts
    for name, proxy in plan.proxies.items():
        # An unset variable or an unreadable certificate fails here, before any worker starts
        # (each worker reads the secrets again itself: the plan carries only their names).
        try:
            proxy.egress(proxy.url, where=f"[proxy.{name}]")
        except ValueError as exc:  # InvalidEgress: the message names the option, never a secret
            raise ConfigError(str(exc)) from exc
    return plan


def plan_from_config(config: str, *, data_dir: str | None = None) -> ServePlan:
    """What ``headwater serve --config CONFIG [--data-dir DATA_DIR]`` would serve.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    if not Path(config).is_file():
        raise ConfigError(f"configuration file {config} does not exist")
    return plan_from_flags(config, overrides={"data_dir": data_dir})


def ensure_admin_token(db: Database) -> str | None:
    """On a fresh database (no users yet), create the user ``admin`` with an admin token and
    return the token (to be shown once); None when users exist already. Servers starting
    together on one new database (several machines) race here: exactly one makes the admin."""
    return db.create_first_admin("admin", description="created by the first `headwater serve`")


def prepare_data_dir(data_dir: Path) -> None:
    """Make the data directory private to the server's user (0700): it holds the database,
    private uploads, proxy caches and the admin token. One that others could enter (an older
    headwater made it 0755) is tightened, and the log says so.

    Raises:
        ConfigError: it cannot be made or changed (the message names it and the fix).
    """
    try:
        was = private_directory(data_dir)
    except OSError as exc:
        raise ConfigError(
            f"cannot make the data directory {data_dir} private to this user "
            f"({exc.strerror or exc}): create it, owned by the user running headwater, or give "
            "another --data-dir"
        ) from exc
    if was is not None:
        log.warning(
            "data directory %s was mode %s: changed to 0700 (its files are private to the "
            "user running headwater)",
            data_dir,
            oct(was)[2:].zfill(4),
        )


def prepare_database(plan: ServePlan) -> str | None:
    """Before any worker starts: create or migrate the database (one process does it, so
    workers never race), and on a fresh database create the ``admin`` user with a token, kept
    in ``<data_dir>/admin-token`` (mode 0600). Returns the token's file when one was made."""
    data_dir = Path(plan.settings.data_dir)
    prepare_data_dir(data_dir)
    db = Database.connect(database_url(plan))
    try:
        db.upgrade()
        token = ensure_admin_token(db)
    finally:
        db.close()
    if token is None:
        return None
    path = data_dir / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return str(path)
