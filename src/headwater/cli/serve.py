"""``headwater serve``: run the index server.

With no configuration file it runs on embedded defaults: a data directory ``./headwater-data``
with a SQLite database and one hosted index, ``main``, also served as the default index at
``/simple/``. Flags override the ``[serve]`` table of the config file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from headwater.config import ConfigError
from headwater.config.settings import ServePlan
from headwater.storage.location import is_s3_url, parse_s3_url

__all__ = ["build_plan", "register"]


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve mirrored trees and hosted indexes over HTTP",
        description=(
            "Run the index server. With no configuration file it runs on embedded defaults: a "
            "data directory ./headwater-data with a SQLite database and one hosted index, main, "
            "also served as the default index at /simple/. Flags override the [serve] table of "
            "the configuration file (docs/serve.md)."
        ),
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
    """The serve plan from the config file (if any) and the flags of ``args``.

    Raises:
        ConfigError: the file, a flag, or their combination is invalid.
    """
    # Imported here: building the parser of every command must stay light.
    from headwater.assembly.plan import OVERRIDABLE, plan_from_flags

    return plan_from_flags(
        getattr(args, "config", None),
        overrides={key: getattr(args, key, None) for key in OVERRIDABLE},
        trees=getattr(args, "tree", None) or [],
    )


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


def _base(plan: ServePlan) -> str:
    settings = plan.settings
    scheme = "https" if settings.tls_certificate else "http"
    return (settings.base_url or f"{scheme}://{settings.listen}").rstrip("/")


def _in_bucket(storage: str | None) -> str:
    """``   files in s3://bucket/prefix`` for a source kept in a bucket (the URL without its
    query: endpoints and options are configuration, never a secret, but the line stays short)."""
    if storage is None or not is_s3_url(storage):
        return ""
    return f"   files in {parse_s3_url(storage).url()}"


def _announce(plan: ServePlan) -> None:
    settings = plan.settings
    base = _base(plan)
    lines = [
        f"headwater: serving {base}/ with {settings.workers} worker(s); data in {settings.data_dir}"
    ]
    for name, target in plan.mirrors.items():
        lines.append(f"  mirror  {name:<12} {base}/{name}/simple/" + _in_bucket(target))
    for name, hosted in plan.hosted.items():
        lines.append(
            f"  hosted  {name:<12} {base}/{name}/simple/   upload: {base}/{name}/legacy/"
            + _in_bucket(hosted.storage)
        )
    for name, proxy in plan.proxies.items():
        lines.append(
            f"  proxy   {name:<12} {base}/{name}/simple/   of {proxy.url}"
            + _in_bucket(proxy.storage)
        )
    for name in plan.directories:
        lines.append(f"  folder  {name:<12} {base}/{name}/simple/")
    for name, index in plan.indexes.items():
        line = f"  index   {name:<12} {base}/{name}/simple/   from {', '.join(index.sources)}"
        if index.upload is not None:
            line += f"   upload: {base}/{name}/legacy/ (into {index.upload})"
        lines.append(line)
    if plan.default:
        lines.append(f"  pip install --index-url {base}/simple/ PROJECT")
        lines.append(f"  uv pip install --index-url {base}/simple/ PROJECT")
    url = upload_url(plan, base)
    if url is not None:
        lines.append(f"  twine upload --repository-url {url} dist/*")
    print("\n".join(lines), file=sys.stderr, flush=True)


def upload_url(plan: ServePlan, base: str) -> str | None:
    """A URL that takes uploads: ``/legacy/`` when the default index accepts them (a hosted
    index, or a composed one with ``upload``), else the first hosted index's; None when no
    index does."""
    if plan.upload_target(None) is not None:
        return f"{base}/legacy/"
    for name in plan.hosted:
        return f"{base}/{name}/legacy/"
    return None


def run(args: argparse.Namespace) -> int:
    """Entry point of ``headwater serve``."""
    from headwater.assembly.plan import prepare_database
    from headwater.server.run import run_server

    plan = build_plan(args)
    _check_tls(plan.settings.tls_certificate, plan.settings.tls_key)
    token_file = prepare_database(plan) if plan.hosted else None
    _announce(plan)
    from headwater.cli.storage_probe import warn_about_buckets

    warn_about_buckets(plan)
    url = upload_url(plan, _base(plan))
    if token_file and url is not None:
        print(
            f"  first start: user 'admin' created; its token is in {token_file}\n"
            f"  twine upload --repository-url {url} -u __token__ "
            f'-p "$(cat {token_file})" dist/*',
            file=sys.stderr,
            flush=True,
        )
    run_server(plan)
    return 0
