"""Benchmark headwater.simple.json on PyPI-sized inputs.

Targets: parse a 700,000-project root list in <= 1.5 s with peak RSS <= 400 MB; render it back;
parse and render a 10,000-file project page in <= 100 ms each.

Every measurement runs in a fresh Python subprocess, so the peak RSS a run reports is that run's
own (interpreter + imports + input bytes + the operation), never inflated by an earlier run. The
inputs are generated once, deterministically, into a temporary directory and read as bytes by each
run. Prints the median wall time of the runs and the highest peak RSS.

    .venv/bin/python bench/bench_json.py [--runs 5] [--projects 700000] [--files 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_WORDS = [
    "py",
    "django",
    "flask",
    "data",
    "sci",
    "kit",
    "torch",
    "tensor",
    "net",
    "http",
    "json",
    "yaml",
    "async",
    "aio",
    "test",
    "lint",
    "type",
    "core",
    "utils",
    "tools",
    "cli",
    "api",
    "client",
    "server",
    "sdk",
    "auth",
    "cloud",
    "aws",
    "azure",
    "gcp",
    "db",
    "sql",
    "redis",
    "mongo",
    "kafka",
    "queue",
    "task",
    "job",
    "web",
    "view",
    "form",
    "admin",
    "rest",
    "graph",
    "ml",
    "ai",
    "nlp",
    "vision",
    "image",
    "audio",
    "video",
    "stream",
    "log",
    "trace",
    "metric",
    "monitor",
    "config",
    "env",
    "secret",
    "cache",
    "pool",
    "retry",
    "proto",
    "grpc",
    "zope",
    "plone",
    "odoo",
    "sphinx",
    "ext",
    "plugin",
    "hook",
    "oslo",
    "openstack",
    "jupyter",
    "lab",
    "notebook",
    "widget",
    "plot",
    "chart",
    "geo",
    "map",
    "time",
    "date",
    "math",
    "num",
]


def _name(rng: random.Random) -> str:
    parts = [rng.choice(_WORDS) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))]
    if rng.random() < 0.3:
        parts.append(str(rng.randint(0, 999)))
    style = rng.random()
    if style < 0.55:
        return "-".join(parts)  # already normalized, the common case on PyPI
    if style < 0.70:
        return "-".join(p.capitalize() for p in parts)  # Django-Extensions
    if style < 0.82:
        return "_".join(parts)  # typing_extensions
    if style < 0.92:
        return ".".join(parts)  # zope.interface
    return "".join(p.capitalize() for p in parts)  # PyYAML-ish


def make_project_list(count: int) -> bytes:
    rng = random.Random(691)
    seen: set[str] = set()
    projects = []
    while len(projects) < count:
        name = _name(rng)
        key = name.lower().replace("_", "-").replace(".", "-")
        if key in seen:
            name = f"{name}-{len(projects)}"
            key = f"{key}-{len(projects)}"
        seen.add(key)
        projects.append({"name": name, "_last-serial": rng.randint(1, 30_000_000)})
    doc = {"meta": {"api-version": "1.4", "_last-serial": 30_000_001}, "projects": projects}
    return json.dumps(doc, separators=(",", ":")).encode()


def make_project_page(files: int) -> bytes:
    rng = random.Random(700)
    tags = [
        f"cp3{m}-cp3{m}-{plat}"
        for m in range(8, 14)
        for plat in (
            "manylinux_2_17_x86_64.manylinux2014_x86_64",
            "manylinux_2_17_aarch64.manylinux2014_aarch64",
            "musllinux_1_1_x86_64",
            "macosx_10_9_x86_64",
            "macosx_11_0_arm64",
            "win_amd64",
            "win32",
        )
    ]
    entries = []
    versions = []
    major = 0
    while len(entries) < files:
        major += 1
        version = f"{major // 20}.{major % 20}.{rng.randint(0, 9)}"
        versions.append(version)
        names = [f"bignum-{version}.tar.gz"] + [f"bignum-{version}-{t}.whl" for t in tags]
        for filename in names[: files - len(entries)]:
            digest = rng.randbytes(32).hex()
            meta = {"sha256": rng.randbytes(32).hex()}
            entry = {
                "core-metadata": meta,
                "data-dist-info-metadata": meta,
                "filename": filename,
                "hashes": {"sha256": digest},
                "provenance": None,
                "requires-python": ">=3.8",
                "size": rng.randint(10_000, 30_000_000),
                "upload-time": f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T12:34:56.{rng.randint(0, 999999):06d}Z",
                "url": f"https://files.pythonhosted.org/packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/{filename}",
                "yanked": "Backward compatibility bug" if major % 17 == 0 else False,
            }
            entries.append(entry)
    doc = {
        "meta": {"api-version": "1.4", "_last-serial": 42_069_282},
        "name": "bignum",
        "versions": versions,
        "files": entries,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------
# One measurement, in a fresh process.


def _one(case: str, path: str) -> None:
    from headwater.simple import json as hj

    data = Path(path).read_bytes()
    if case in ("parse_list", "parse_list_hostile"):
        start, cpu = time.perf_counter(), time.process_time()
        result = hj.parse_project_list_json(data)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        extra = f"projects={len(result.projects)} rejected={len(result.rejected)}"
    elif case == "render_list":
        parsed = hj.parse_project_list_json(data)
        del data
        start, cpu = time.perf_counter(), time.process_time()
        out = hj.render_project_list_json(parsed)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        extra = f"bytes={len(out)}"
    elif case == "parse_page":
        start, cpu = time.perf_counter(), time.process_time()
        page = hj.parse_project_page_json(data)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        extra = f"files={len(page.files)}"
    elif case in ("render_page", "render_page_derive_versions"):
        import msgspec

        page = hj.parse_project_page_json(data)
        if case == "render_page_derive_versions":
            page = msgspec.structs.replace(page, versions=None)
        start, cpu = time.perf_counter(), time.process_time()
        out = hj.render_project_page_json(page)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        extra = f"bytes={len(out)}"
    else:
        raise SystemExit(f"unknown case {case!r}")
    print(json.dumps({"seconds": elapsed, "cpu": cpu, "peak_mb": _peak_rss_mb(), "extra": extra}))


def _peak_rss_mb() -> float:
    """This process image's peak RSS.

    VmHWM (Linux) belongs to the process image; ru_maxrss is carried across exec from the parent,
    which would charge the parent's memory to the child.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--projects", type=int, default=700_000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--one", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=1, metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(*args.one)
        return
    if args.make:
        root = make_project_list(args.projects)
        (Path(args.make[0]) / "root.json").write_bytes(root)
        # The same list with one invalid name and one duplicate: the entry-by-entry path.
        hostile = root.replace(
            b'"projects":[', b'"projects":[{"name":"bad name"},{"name":"Py-Core"},', 1
        )
        (Path(args.make[0]) / "root-hostile.json").write_bytes(hostile)
        (Path(args.make[0]) / "page.json").write_bytes(make_project_page(args.files))
        return

    targets = {
        "parse_list": 1.5,
        "parse_list_hostile": 1.5,
        "render_list": None,
        "parse_page": 0.1,
        "render_page": 0.1,
        "render_page_derive_versions": 0.1,
    }
    with tempfile.TemporaryDirectory() as tmp:
        list_path = Path(tmp) / "root.json"
        page_path = Path(tmp) / "page.json"
        # Generated in a subprocess too, so this parent stays small while it spawns the runs.
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--make",
                tmp,
                "--projects",
                str(args.projects),
                "--files",
                str(args.files),
            ],
            check=True,
        )
        print(
            f"inputs: root list {args.projects} projects ({list_path.stat().st_size / 1e6:.1f} MB), "
            f"project page {args.files} files ({page_path.stat().st_size / 1e6:.1f} MB); "
            f"{args.runs} fresh subprocesses per case; python {sys.version.split()[0]}"
        )
        for case, target in targets.items():
            path = page_path
            if "list" in case:
                path = list_path.with_name("root-hostile.json") if "hostile" in case else list_path
            runs = []
            for _ in range(args.runs):
                proc = subprocess.run(
                    [sys.executable, __file__, "--one", case, str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(proc.stdout))
            median = statistics.median(r["seconds"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            peak = max(r["peak_mb"] for r in runs)
            verdict = "" if target is None else ("  OK" if median <= target else "  OVER TARGET")
            limit = "" if target is None else f" (target <= {target * 1000:.0f} ms)"
            print(
                f"{case:28s} median {median * 1000:7.1f} ms (cpu {cpu * 1000:7.1f} ms){limit}  "
                f"peak RSS {peak:6.1f} MB  "
                f"[{runs[0]['extra']}]{verdict}"
            )


if __name__ == "__main__":
    main()
