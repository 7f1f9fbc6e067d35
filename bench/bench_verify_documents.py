"""CPU per provenance document, in process, side by side (issue 12; docs/provenance.md).

Signs ``--documents`` PEP 740 provenance documents with a test Sigstore
(:mod:`headwater.testing.sigstore_root`: one attestation each, a fresh certificate and log entry
per document, like the mirror benchmark's) and verifies all of them, alternating in each round:

``sigstore``  a ``sigstore.verify.Verifier`` over sigstore's own ``TrustedRoot`` (log keyrings
              built for every attestation), through headwater's verification code;
``headwater`` headwater's :class:`~headwater.provenance.TrustRoot` (keyrings built once);
``pool``      (with more than one usable CPU) the mirror's process pool,
              :class:`~headwater.provenance.pool.DocumentVerifier`, wall time for the batch.

CPU is ``time.process_time`` of this process (the load-independent figure); medians of
``--rounds``. Results are printed and written to ``bench/results/verify-documents-<time>.json``.

    .venv/bin/python bench/bench_verify_documents.py [--documents 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from sigstore.models import TrustedRoot
from sigstore.verify import Verifier

from headwater.provenance import TrustRoot, verify_provenance_document
from headwater.provenance.pool import DocumentVerifier, usable_cpus
from headwater.testing.sigstore_root import TestSigstore

RESULTS = Path(__file__).resolve().parent / "results"


class _SigstoreRoot(TrustRoot):
    """headwater's verification code over sigstore's own TrustedRoot (no keyring reuse)."""

    def _load(self) -> Verifier:
        return Verifier(trusted_root=TrustedRoot.from_file(str(self.path)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sigstore = TestSigstore()
    where = Path(tempfile.mkdtemp(prefix="hw-verify-bench-"))
    root = sigstore.write_trusted_root(where / "trusted_root.json")
    documents = []
    for n in range(args.documents):
        filename = f"project{n}-1.0-py3-none-any.whl"
        digest = hashlib.sha256(filename.encode()).hexdigest()
        documents.append((sigstore.provenance(filename, digest), filename, digest))
    roots = {"sigstore": _SigstoreRoot(root), "headwater": TrustRoot(root)}
    for trust in roots.values():
        trust.verifier  # noqa: B018 - loaded before timing
    cpu: dict[str, list[float]] = {name: [] for name in roots}
    pool_wall: list[float] = []
    thread_wall: list[float] = []
    cpus = usable_cpus()
    for index in range(args.rounds):
        order = list(roots) if index % 2 == 0 else list(reversed(roots))
        for name in order:
            started = time.process_time()
            for raw, filename, digest in documents:
                verify_provenance_document(raw, filename, digest, roots[name])
            cpu[name].append((time.process_time() - started) / len(documents) * 1e3)
        for processes, out in ((1, thread_wall), (cpus, pool_wall)):
            if processes == 1 and cpus == 1:
                continue
            verifier = DocumentVerifier(root, processes=processes)
            try:
                asyncio.run(_verify_all(verifier, documents[:1]))  # pool start-up not timed
                started = time.perf_counter()
                asyncio.run(_verify_all(verifier, documents))
                out.append(time.perf_counter() - started)
            finally:
                verifier.close()
    result = {
        "documents": args.documents,
        "rounds": args.rounds,
        "usable_cpus": cpus,
        "loadavg": os.getloadavg(),
        "cpu_ms_per_document": {n: statistics.median(v) for n, v in cpu.items()},
        "cpu_ms_runs": cpu,
        "thread_wall_s": statistics.median(thread_wall) if thread_wall else None,
        "pool_wall_s": statistics.median(pool_wall) if pool_wall else None,
    }
    per = result["cpu_ms_per_document"]
    print(f"CPU per document: sigstore's TrustedRoot {per['sigstore']:.3f} ms, headwater's "
          f"TrustRoot {per['headwater']:.3f} ms ({per['headwater'] / per['sigstore']:.3f}x)")  # fmt: skip
    if pool_wall:
        print(f"{args.documents} documents, wall: one thread {result['thread_wall_s']:.2f}s, "
              f"pool of {cpus} {result['pool_wall_s']:.2f}s "
              f"({result['pool_wall_s'] / result['thread_wall_s']:.2f}x)")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"verify-documents-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


async def _verify_all(verifier: DocumentVerifier, documents: list[tuple[bytes, str, str]]) -> None:
    await asyncio.gather(*(verifier.verify(raw, f, d) for raw, f, d in documents))


if __name__ == "__main__":
    raise SystemExit(main())
