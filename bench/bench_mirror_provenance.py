"""A mirror whose files all carry PEP 740 provenance vs the same mirror without (issue 12 target:
<= 1.3x the wall time).

Two https test upstreams serve the same corpus (``headwater test-upstream --projects N
--releases 1 --files 1 --seed 1``: same names, same bytes); on one, every file also has a
provenance document with one attestation signed by a test Sigstore made for the run
(``--provenance DIR``, :mod:`headwater.testing.sigstore_root`: its own CA, transparency log and
CT log, every attestation a fresh certificate and log entry). The mirror of the signed upstream
is configured with that root's ``trusted_root.json`` and verifies every document with the
production code (signature, certificate chain, SCT, inclusion proof, checkpoint, signed entry
timestamp, subject, publisher); the plain mirror fetches no provenance. Everything else is the
same: https, the CA bundle, the workers, the tree layout.

Cases (``--case``, repeatable; default both):

``full``    full syncs into a fresh target per run. One discarded warm-up run per variant (the
            upstreams build, sign and cache each page and file on first request), then ``--runs``
            measured runs alternating which variant goes first; medians compared.
``rerun``   on the trees the last full runs left: a no-op re-run, then ``--change-fraction`` of
            the projects get a new (signed, on the signed upstream) release and both re-run.

The upstreams run pinned to core 0, the mirror to core 1 (``taskset``), as in bench_mirror.py,
whose measurement (wall time around the command, peak tree RSS, CPU from /usr/bin/time) this
reuses. ``--no-pin`` lets the mirror run on every CPU this process may use (the upstreams stay on
core 0): with one core the signed mirror verifies in a thread, with more it verifies in a process
pool (provenance/pool.py), so pinned says what one core costs and unpinned is the wall time a
mirror on this machine sees. The verification floor is always measured on one core.

    .venv/bin/python bench/bench_mirror_provenance.py [--projects 2000] [--runs 5] [--workers 10]
        [--pin | --no-pin]

Results are printed and written to ``bench/results/mirror-provenance-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_mirror as bm  # noqa: E402 - the shared measurement of bench_mirror.py
from tests.tls import self_signed  # noqa: E402 - the tests' throwaway TLS certificate

#: Issue 12: the mirror with provenance takes at most this many times the plain mirror's time.
TARGET_RATIO = 1.3
VARIANTS = ("plain", "signed")


class SignedUpstream(bm.Upstream):
    """``headwater test-upstream`` over https, optionally signing every file (own process, core
    0); stopped as bench_mirror's."""

    def __init__(self, projects: int, cert: Path, key: Path, keys: Path | None) -> None:
        cmd = ["taskset", "-c", bm.UPSTREAM_CORE, str(bm.PYTHON), "-m", "headwater.cli.main",
               "test-upstream", "--projects", str(projects), "--releases", "1", "--files", "1",
               "--seed", "1", "--tls-certificate", str(cert), "--tls-key", str(key)]  # fmt: skip
        if keys is not None:
            cmd += ["--provenance", str(keys)]
        cmd += UPSTREAM_OPTIONS
        self.projects = projects
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("https://"):
            self.stop()
            raise SystemExit("headwater test-upstream did not print its https URL")


#: ``--sizes pypi``/``--bandwidth``: passed to both upstreams (file sizes, the shared link).
UPSTREAM_OPTIONS: list[str] = []

#: ``--verify-processes``: written into the signed mirror's configuration (None: left out).
VERIFY_PROCESSES: int | None = None


def _config(where: Path, variant: str, url: str, cert: Path, trusted_root: Path) -> Path:
    """A configuration with one mirror; the signed one names the test root."""
    config = where / f"{variant}.toml"
    text = (
        f'[mirror.{variant}]\nupstream = "{url}/simple/"\n'
        f'target = "{where / variant}"\nca_bundle = "{cert}"\n'
    )
    if variant == "signed":
        text += f'trusted_root = "{trusted_root}"\n'
        if VERIFY_PROCESSES is not None:
            text += f"verify_processes = {VERIFY_PROCESSES}\n"
    config.write_text(text)
    return config


def _count(target: Path) -> dict[str, int]:
    counts = bm.count_tree(target)
    provenance = sum(1 for _ in (target / "web" / "packages").rglob("*.provenance"))
    counts["files"] -= provenance  # count_tree counts every non-.metadata file
    counts["provenance"] = provenance
    return counts


#: Where the mirror runs: bench_mirror's core, or every usable CPU (``--no-pin``).
MIRROR_CORES = bm.MIRROR_CORE


def _run(config: Path, target: Path, workers: int) -> bm.Run:
    os.sync()  # write back the previous run's tree first (untimed; see bench_mirror.run_tool)
    bm.MIRROR_CORE = MIRROR_CORES  # measure() pins to it; floor() keeps FLOOR_CORE
    run = bm.measure([str(bm.HEADWATER), "mirror", "--config", str(config), "--quiet",
                      "--workers", str(workers)])  # fmt: skip
    run.counts = _count(target)
    if run.status != 0:
        print(f"  ! exited {run.status}:\n{run.output}", file=sys.stderr)
    return run


def _line(label: str, run: bm.Run) -> str:
    return (
        f"  {label}: {run.seconds:.2f}s (cpu {run.user_s:.2f} user {run.sys_s:.2f} sys), "
        f"{run.tree_peak_mb:.0f} MB, {run.counts}, load {os.getloadavg()[0]:.1f}"
    )


def _ratio_row(case: str, runs: dict[str, list[bm.Run]]) -> dict[str, Any]:
    plain = statistics.median(r.seconds for r in runs["plain"])
    signed = statistics.median(r.seconds for r in runs["signed"])
    # Interleaved pairs: the ratio of each pair too (the machine's load drifts between pairs).
    pairs = [s.seconds / p.seconds for p, s in zip(runs["plain"], runs["signed"], strict=False)]
    return {
        "case": case,
        "plain_median_s": plain,
        "signed_median_s": signed,
        "ratio_of_medians": signed / plain,
        "pair_ratios": pairs,
        "median_pair_ratio": statistics.median(pairs) if pairs else None,
        "plain_cpu_median_s": statistics.median(r.user_s + r.sys_s for r in runs["plain"]),
        "signed_cpu_median_s": statistics.median(r.user_s + r.sys_s for r in runs["signed"]),
        "plain_runs": [r.seconds for r in runs["plain"]],
        "signed_runs": [r.seconds for r in runs["signed"]],
        "counts": {v: runs[v][-1].counts for v in VARIANTS if runs[v]},
    }


def floor_driver(tree: str) -> int:
    """In a fresh process on the mirror's core: the verification alone of every provenance
    document in ``tree`` (what the signed mirror cannot avoid), and the elliptic-curve signature
    checks alone inside it (2 P-384: the leaf and intermediate certificates; 4 P-256: SCT,
    checkpoint, signed entry timestamp, DSSE envelope). Prints one JSON line."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from headwater.provenance import TrustRoot, verify_provenance_document

    documents = []
    for path in sorted(Path(tree, "web", "packages").rglob("*.provenance")):
        rel = path.relative_to(Path(tree, "web", "packages")).parts
        documents.append((path.read_bytes(), path.name.removesuffix(".provenance"),
                          "".join(rel[:3])))  # fmt: skip
    trust = TrustRoot(_config_root(tree))
    trust.verifier  # noqa: B018 - load the root before timing
    started = time.process_time()
    for raw, filename, sha256 in documents:
        verify_provenance_document(raw, filename, sha256, trust)
    verify_s = time.process_time() - started
    checks = []
    for curve, digest in ((ec.SECP384R1(), hashes.SHA256()), (ec.SECP256R1(), hashes.SHA256())):
        key = ec.generate_private_key(curve)
        checks.append((key.public_key(), key.sign(b"m" * 300, ec.ECDSA(digest)), digest))
    started = time.process_time()
    for _ in documents:
        for public, signature, digest in (checks[0], checks[0], *[checks[1]] * 4):
            public.verify(signature, b"m" * 300, ec.ECDSA(digest))
    ec_s = time.process_time() - started
    print(json.dumps({"documents": len(documents), "verify_cpu_s": verify_s, "ec_cpu_s": ec_s}))
    return 0


#: The single core the verification floor is measured on.
FLOOR_CORE = bm.MIRROR_CORE


def _config_root(tree: str) -> str:
    return str(Path(tree).parent / "sigstore" / "trusted_root.json")


def floor(scratch: Path) -> dict[str, Any]:
    """:func:`floor_driver` over the signed tree, pinned to the mirror's core."""
    done = subprocess.run(
        ["taskset", "-c", FLOOR_CORE, str(bm.PYTHON), str(Path(__file__).resolve()),
         "--floor-driver", str(scratch / "signed")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", action="append", choices=["full", "rerun"])
    parser.add_argument("--projects", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5, help="measured runs per variant (5)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded runs per variant (1)")
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--change-fraction", type=float, default=0.01)
    parser.add_argument("--scratch", help="directory for the trees (default: a temp dir)")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin the mirror to one core (default); --no-pin: every usable CPU",
    )
    parser.add_argument(
        "--verify-processes",
        type=int,
        help="the signed mirror's verify_processes (default: left to the mirror)",
    )
    parser.add_argument(
        "--sizes",
        choices=("tiny", "pypi"),
        default="tiny",
        help="file sizes: tiny (~1 KB wheels, the default, the worst case for the ratio) or "
        "pypi (drawn from real PyPI files, bench/pypi_file_sizes.json, scaled to --max-gb)",
    )
    parser.add_argument("--max-gb", type=float, default=2.0, help="with --sizes pypi (2)")
    parser.add_argument(
        "--bandwidth",
        type=float,
        default=0.0,
        help="each upstream's link in Mbit/s (0: loopback, the default)",
    )
    parser.add_argument("--floor-driver", metavar="TREE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_driver:
        return floor_driver(args.floor_driver)
    cases = args.case or ["full", "rerun"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    global MIRROR_CORES, VERIFY_PROCESSES
    VERIFY_PROCESSES = args.verify_processes
    if args.sizes == "pypi":
        UPSTREAM_OPTIONS.extend(
            ["--file-sizes", str(HERE / "pypi_file_sizes.json"), "--max-gb", str(args.max_gb)]
        )
    if args.bandwidth:
        UPSTREAM_OPTIONS.extend(["--bandwidth", str(args.bandwidth)])
    if not args.pin:
        MIRROR_CORES = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    os.sched_setaffinity(0, {int(bm.UPSTREAM_CORE)})
    for tool in ("taskset", "/usr/bin/time", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install -y util-linux time openssl)")
    from headwater.testing.sigstore_root import TestSigstore

    info = bm.machine()
    info["sizes"], info["bandwidth_mbit"] = args.sizes, args.bandwidth
    info["max_gb"] = args.max_gb if args.sizes == "pypi" else None
    rows: list[dict[str, Any]] = []
    with bm.scratch_dir(args.scratch) as scratch:
        info["scratch_topdir_hint"] = bm.mark_topdir(scratch)
        trusted_root = TestSigstore().save(scratch / "sigstore")
        cert, key = self_signed(scratch)
        upstreams = {
            "plain": SignedUpstream(args.projects, cert, key, None),
            "signed": SignedUpstream(args.projects, cert, key, scratch / "sigstore"),
        }
        try:
            configs = {
                v: _config(scratch, v, upstreams[v].url, cert, trusted_root) for v in VARIANTS
            }
            full: dict[str, list[bm.Run]] = {v: [] for v in VARIANTS}
            if "full" in cases or "rerun" in cases:
                print(f"full: {args.projects} projects x 1 wheel, workers {args.workers}, "
                      f"mirror on CPU(s) {MIRROR_CORES}, verify_processes "
                      f"{VERIFY_PROCESSES or 'auto'}")  # fmt: skip
                runs = args.runs if "full" in cases else 0
                for index in range(-args.warmup, max(runs, 1 if "rerun" in cases else 0)):
                    order = VARIANTS if index % 2 == 0 else tuple(reversed(VARIANTS))
                    for variant in order:
                        target = bm.fresh(scratch, variant)
                        run = _run(configs[variant], target, args.workers)
                        label = "warm-up" if index < 0 else f"run {index + 1}"
                        print(_line(f"full {variant} {label}", run), flush=True)
                        expect = args.projects
                        if run.counts["files"] != expect or (
                            variant == "signed" and run.counts["provenance"] != expect
                        ):
                            raise SystemExit(f"{variant}: expected {expect} files (and as many "
                                             f"provenance documents), got {run.counts}")  # fmt: skip
                        if index >= 0:
                            full[variant].append(run)
                if "full" in cases:
                    row = _ratio_row(f"full {args.projects}", full)
                    row["floor"] = floor(scratch)
                    rows.append(row)
            if "rerun" in cases:
                rows += _rerun(args, scratch, upstreams, configs)
        finally:
            for upstream in upstreams.values():
                upstream.stop()
        # Before the scratch directory is deleted (slow for 100,000 files on a loaded machine).
        return report(rows, info, args)


def report(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace) -> int:
    """Print the table and write the JSON results; 0 when the full case met the target."""
    print()
    passed = True
    for row in rows:
        verdict = ""
        if row["case"].startswith("full"):
            ok = row["ratio_of_medians"] <= TARGET_RATIO
            passed = passed and ok
            verdict = f"  {'OK' if ok else 'MISSED'} (target <= {TARGET_RATIO}x)"
        print(
            f"{row['case']:<28} plain {row['plain_median_s']:7.2f}s  signed "
            f"{row['signed_median_s']:7.2f}s  ratio {row['ratio_of_medians']:.3f} (pairs "
            + ", ".join(f"{r:.2f}" for r in row["pair_ratios"])
            + f"; cpu {row['plain_cpu_median_s']:.2f} vs {row['signed_cpu_median_s']:.2f}s)"
            + verdict
        )
        if "floor" in row:
            f = row["floor"]
            plain = row["plain_median_s"]
            print(
                f"  verification alone of the {f['documents']} documents on the mirror's core: "
                f"{f['verify_cpu_s']:.2f}s CPU ({f['verify_cpu_s'] / f['documents'] * 1e3:.2f} ms "
                f"each), of which the EC signature checks {f['ec_cpu_s']:.2f}s; plain mirror + "
                f"verification alone = {(plain + f['verify_cpu_s']) / plain:.2f}x, + EC checks "
                f"alone = {(plain + f['ec_cpu_s']) / plain:.2f}x the plain mirror"
            )
    bm.RESULTS.mkdir(exist_ok=True)
    out = bm.RESULTS / f"mirror-provenance-{time.strftime('%Y%m%d-%H%M%S')}.json"
    info["loadavg_end"] = os.getloadavg()
    out.write_text(json.dumps({"machine": info, "args": vars(args), "rows": rows}, indent=2))
    print(f"\nwrote {out.relative_to(bm.ROOT)}")
    return 0 if passed else 1


def _rerun(
    args: argparse.Namespace,
    scratch: Path,
    upstreams: dict[str, SignedUpstream],
    configs: dict[str, Path],
) -> list[dict[str, Any]]:
    """No-op re-runs, then a fraction of projects changed, on the trees the full runs left."""
    import urllib.request

    names = sorted(
        p["name"]
        for p in json.loads(
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{upstreams['plain'].url}/simple/", headers={"Accept": bm.JSON_TYPE}
                ),
                context=_client_context(scratch / "cert.pem"),
                timeout=120,
            ).read()
        )["projects"]
    )
    changed = max(1, round(len(names) * args.change_fraction))
    noop: dict[str, list[bm.Run]] = {v: [] for v in VARIANTS}
    incremental: dict[str, list[bm.Run]] = {v: [] for v in VARIANTS}
    for index in range(args.runs):
        order = VARIANTS if index % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            run = _run(configs[variant], scratch / variant, args.workers)
            print(_line(f"no-op {variant} run {index + 1}", run), flush=True)
            noop[variant].append(run)
        picked = bm.spread(names, changed, offset=index)
        for variant in VARIANTS:
            for name in picked:
                _control(upstreams[variant].url, scratch / "cert.pem", name, f"99.{index}.0")
        for variant in order:
            run = _run(configs[variant], scratch / variant, args.workers)
            print(_line(f"{changed} changed {variant} run {index + 1}", run), flush=True)
            incremental[variant].append(run)
    return [
        _ratio_row("rerun: nothing changed", noop),
        _ratio_row(f"rerun: {changed} changed", incremental),
    ]


def _client_context(cert: Path) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(cert))


def _control(url: str, cert: Path, project: str, version: str) -> None:
    import urllib.request

    body = json.dumps({"op": "add_release", "project": project, "version": version}).encode()
    request = urllib.request.Request(f"{url}/_upstream/mutate", data=body, method="POST")
    with urllib.request.urlopen(request, context=_client_context(cert), timeout=60) as response:
        if response.status != 200:
            raise SystemExit(f"control API: {response.status} {response.read()!r}")


if __name__ == "__main__":
    sys.exit(main())
