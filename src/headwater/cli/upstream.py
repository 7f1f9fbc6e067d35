"""``headwater test-upstream``: serve a generated PyPI-like corpus on loopback.

A thin layer over :mod:`headwater.testing`: build the corpus, start
:class:`~headwater.testing.upstream.Upstream`, print its URL (one line, flushed, so a parent
process can read it), serve until interrupted. See docs/test-upstream.md.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

from headwater.cli.arguments import bounded_int
from headwater.errors import HeadwaterError, printable

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``test-upstream`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "test-upstream",
        help="serve a generated PyPI-like index for tests and benchmarks",
        description=(
            "Serve a deterministic PyPI-like index on loopback: /simple/ (JSON and HTML), the "
            "/pypi/<project>/json API, files and .metadata, and a control API under /_upstream/."
        ),
    )
    count = bounded_int(0, 10_000_000)
    parser.add_argument("--projects", type=count, default=100, help="synthetic projects (100)")
    parser.add_argument("--releases", type=count, default=3, help="releases per project (3)")
    parser.add_argument("--files", type=count, default=2, help="files per release (2)")
    parser.add_argument(
        "--seed", type=bounded_int(0, 2**63 - 1), default=0, help="seed: same seed, same bytes (0)"
    )
    parser.add_argument(
        "--metadata-only",
        action="store_true",
        help="small placeholder file bodies instead of real wheels (for 700,000 projects)",
    )
    parser.add_argument(
        "--from-dir", metavar="DIR", help="serve the wheels/sdists in DIR instead of generating"
    )
    parser.add_argument(
        "--graph",
        action="store_true",
        help="also serve small installable projects with dependencies, extras and platform "
        "markers (app, web, core, ...: the closure mirror's world, docs/airgap.md)",
    )
    parser.add_argument(
        "--provenance",
        metavar="DIR",
        help="sign every generated file with the test Sigstore whose keys are in DIR (made by "
        "headwater.testing.sigstore_root.TestSigstore.save; DIR/trusted_root.json verifies "
        "them) and serve its PEP 740 provenance; provenance URLs are listed only over https",
    )
    parser.add_argument(
        "--file-sizes",
        metavar="JSON",
        help="pad each generated file to a size drawn from this samples file "
        '({"projects": {name: [sizes]}}, e.g. bench/pypi_file_sizes.json: real PyPI files)',
    )
    parser.add_argument(
        "--max-gb",
        type=float,
        default=3.0,
        help="with --file-sizes: scale the sizes so the corpus is expected to stay under this (3)",
    )
    parser.add_argument(
        "--bandwidth",
        type=float,
        default=0.0,
        metavar="MBIT",
        help="send every reply through one shared link of this many Mbit/s (0: loopback speed)",
    )
    parser.add_argument(
        "--tls-certificate", metavar="PEM", help="serve https with this certificate (chain)"
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-certificate")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=bounded_int(0, 65_535), default=0, help="port (0: pick a free one)"
    )
    parser.add_argument("--no-serials", action="store_true", help="serve no PyPI serials")
    parser.add_argument("--html-only", action="store_true", help="serve no JSON (text/html only)")
    parser.add_argument("--no-metadata", action="store_true", help="serve no PEP 658 .metadata")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the corpus and serve it until SIGINT/SIGTERM; returns the exit status."""
    from headwater.testing.corpus import Corpus
    from headwater.testing.upstream import Upstream, new_event_loop

    started = time.perf_counter()
    if (args.tls_certificate is None) != (args.tls_key is None):
        print(
            "headwater test-upstream: --tls-certificate and --tls-key go together; give both",
            file=sys.stderr,
        )
        return 2
    context = None
    if args.tls_certificate:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.tls_certificate, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            print(
                f"headwater test-upstream: cannot load {args.tls_certificate} / {args.tls_key} "
                f"({exc}); give a PEM certificate and its private key",
                file=sys.stderr,
            )
            return 2
    if args.bandwidth < 0 or args.max_gb <= 0:
        print(
            "headwater test-upstream: --bandwidth must be 0 (loopback) or more Mbit/s and "
            "--max-gb more than 0",
            file=sys.stderr,
        )
        return 2
    sizes = None
    if args.file_sizes:
        from headwater.testing.sizes import size_sampler

        try:
            sizes, scale, expected = size_sampler(
                Path(args.file_sizes),
                args.projects * args.releases * args.files,
                args.max_gb * 1e9,
            )
        except ValueError as exc:
            print(f"headwater test-upstream: {exc}; give a samples file", file=sys.stderr)
            return 2
        print(
            f"file sizes from {args.file_sizes}: {expected / 1e9:.2f} GB expected unscaled, "
            f"scaled by {scale:.3f}",
            file=sys.stderr,
        )
    if args.from_dir:
        corpus = Corpus.from_directory(args.from_dir, seed=args.seed)
    else:
        corpus = Corpus.generate(
            args.projects,
            args.releases,
            args.files,
            seed=args.seed,
            metadata_only=args.metadata_only,
            sizes=sizes,
        )
    if args.provenance:
        from headwater.testing.sigstore_root import TestSigstore

        try:
            corpus.attest = TestSigstore.load(args.provenance).provenance
        except (OSError, ValueError) as exc:
            print(
                f"headwater test-upstream: cannot load the test Sigstore keys from "
                f"{args.provenance!r} ({exc}); make them with TestSigstore().save(DIR)",
                file=sys.stderr,
            )
            return 2
    if args.graph:
        from headwater.testing.graph import add_graph

        add_graph(corpus)
    upstream = Upstream(
        corpus,
        host=args.host,
        port=args.port,
        serials=not args.no_serials,
        json=not args.html_only,
        metadata=not args.no_metadata,
        ssl=context,
        bandwidth=args.bandwidth * 1e6 / 8 if args.bandwidth else None,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await upstream.start()
        except (OSError, UnicodeError) as exc:  # UnicodeError: a host name IDNA cannot encode
            raise HeadwaterError(
                f"cannot listen on --host {printable(args.host, 100)!r} --port {args.port}: "
                f"{exc}; give an address of this machine and a free port (0 picks one)"
            ) from exc
        print(upstream.url, flush=True)
        print(
            f"serving {upstream.simple_url} (serial {corpus.serial}, ready in "
            f"{time.perf_counter() - started:.2f}s); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        await upstream.serve_forever(stop)

    loop = new_event_loop()
    try:
        loop.run_until_complete(serve())
    finally:
        loop.close()
    return 0
