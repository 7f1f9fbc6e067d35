"""PEP 740 in a caching proxy: what fetching and verifying a page's provenance adds to the page.

A proxy fetches a file's provenance document when it first fetches the page that lists it (and
verifies it offline); the result is kept in the proxy's storage, so a later page build (another
server on the same storage, or the page revalidated) reads the record instead. Measured in
process against the test upstream over https (in a thread of this process), with the real
PyPI-signed sdist ``pypi_attestations-0.0.19.tar.gz`` (tests/data/provenance), the publisher guard
on (continuity), interleaved rounds:

``cold``   an empty cache fetches the page: with the document listed (one document fetched and
           verified) vs the same page without it;
``shared`` a second proxy on the filled cache builds the page: with the record vs without a
           document at all.

Prints the medians in milliseconds and the difference (no issue target for proxies; the upload
target is 50 ms per attestation, bench_provenance.py).

    .venv/bin/python bench/bench_proxy_provenance.py --rounds 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from headwater.repository._egress import build_egress
from headwater.repository.http import RetryPolicy
from headwater.repository.proxy import ProxySource
from headwater.repository.publishers import rules_for
from headwater.simple.names import NormalizedName
from headwater.storage import FileStorage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "tests" / "data" / "provenance" / "pypi_attestations-0.0.19.tar.gz"
NAME = NormalizedName("pypi-attestations")


def _cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _corpus(directory: Path, provenance: bool) -> Corpus:
    directory.mkdir()
    shutil.copyfile(DIST, directory / DIST.name)
    if provenance:
        shutil.copyfile(
            DIST.with_name(DIST.name + ".provenance"), directory / (DIST.name + ".provenance")
        )
    return Corpus.from_directory(directory)


async def _page_ms(url: str, cache: Path, cert: Path) -> float:
    egress = build_egress(url, where="[proxy.b]", ca_bundle=str(cert), environ={})
    proxy = ProxySource(
        "b", url, FileStorage(cache), egress=egress, timeout=10.0,
        retry=RetryPolicy(attempts=1), public_url="https://pkgs.example/b",
        publisher_rules=rules_for(True, [], {}),
    )  # fmt: skip
    try:
        start = time.perf_counter()
        page = await proxy.page(NAME, "json")
        took = (time.perf_counter() - start) * 1000
        assert page is not None and DIST.name.encode() in page.body
        return took
    finally:
        await proxy.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-proxy-prov-"))
    cert, key = _cert(work)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    times: dict[str, list[float]] = {k: [] for k in ("cold+", "cold-", "shared+", "shared-")}
    with (
        Upstream(_corpus(work / "with", True), ssl=context).running() as up_with,
        Upstream(_corpus(work / "without", False), ssl=context).running() as up_without,
    ):
        for n in range(args.rounds + 1):
            order = [("+", up_with), ("-", up_without)]
            if n % 2:
                order.reverse()
            for sign, up in order:
                cache = work / f"cache{sign}{n}"
                cold = asyncio.run(_page_ms(up.simple_url, cache, cert))
                shared = asyncio.run(_page_ms(up.simple_url, cache, cert))
                if n:  # the first round warms imports and the trust root's first load
                    times[f"cold{sign}"].append(cold)
                    times[f"shared{sign}"].append(shared)
    shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds, medians in ms")
    print(f"cold page:   {med['cold+']:.1f} with provenance, {med['cold-']:.1f} without, "
          f"+{med['cold+'] - med['cold-']:.1f} ms")  # fmt: skip
    print(f"shared page: {med['shared+']:.1f} with the record, {med['shared-']:.1f} without, "
          f"+{med['shared+'] - med['shared-']:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
