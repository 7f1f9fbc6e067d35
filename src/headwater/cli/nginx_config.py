"""``headwater nginx-config``: print an nginx config that serves a static tree.

A thin layer over :mod:`headwater.sync.nginx`: read the options, resolve ``--root`` to an absolute
path, print the config on stdout. See docs/nginx.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``nginx-config`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "nginx-config",
        help="print an nginx config that serves a static tree with PEP 691 negotiation",
        description=(
            "Print nginx 'map' blocks and a 'server' block (for the http context, e.g. "
            "/etc/nginx/conf.d/headwater.conf) that serve ROOT/web: JSON or HTML pages chosen "
            "from Accept and ?format=, 301s to normalized names, files with immutable caching."
        ),
    )
    parser.add_argument(
        "--root", required=True, help="the tree root: the directory that holds web/ (required)"
    )
    parser.add_argument(
        "--listen",
        action="append",
        metavar="ADDRESS",
        help="nginx listen address; repeat for several (80, or 443 with TLS)",
    )
    parser.add_argument(
        "--server-name",
        action="append",
        metavar="NAME",
        help="host name to answer for; repeat for several (_: any)",
    )
    parser.add_argument("--prefix", default="/", help="URL path the tree is served under (/)")
    parser.add_argument("--tls-certificate", metavar="PEM", help="certificate chain: serve TLS")
    parser.add_argument("--tls-key", metavar="PEM", help="private key of --tls-certificate")
    parser.add_argument(
        "--no-maps",
        action="store_true",
        help="leave out the negotiation maps (for a second server in one nginx)",
    )
    parser.set_defaults(run=run)


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().absolute())


def run(args: argparse.Namespace) -> int:
    """Print the config; returns the exit status.

    Raises:
        headwater.sync.nginx.InvalidNginxConfig: an option is malformed (the CLI shows the message).
    """
    from headwater.sync.nginx import InvalidNginxConfig, NginxConfig, render_nginx_config

    if "://" in args.root:
        raise InvalidNginxConfig(
            f"--root {args.root!r} is a URL: nginx serves a tree from a local directory; for a "
            "tree in a bucket, serve it with `headwater serve` or the bucket's own web endpoint"
        )
    root = Path(args.root).expanduser().absolute()
    in_the_way = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
    if in_the_way is not None:  # the root, or a folder above it, is a file: it can never be a tree
        raise InvalidNginxConfig(
            f"--root {root}: {in_the_way} is not a directory; give the mirror tree's root"
        )
    config = NginxConfig(
        root=str(root),
        listen=tuple(args.listen or ()),
        server_name=tuple(args.server_name or ("_",)),
        prefix=args.prefix,
        tls_certificate=_absolute(args.tls_certificate),
        tls_key=_absolute(args.tls_key),
        include_maps=not args.no_maps,
    )
    if not (root / "web" / "simple").is_dir():
        # Not an error: the config may well be written before the first sync.
        print(
            f"headwater: warning: {root / 'web' / 'simple'} does not exist yet; nginx will answer "
            "404 until a sync writes the tree",
            file=sys.stderr,
        )
    sys.stdout.write(render_nginx_config(config))
    return 0
