"""Benchmark JSON libraries on PyPI-sized Simple API pages, decoding into typed objects.

Two documents, generated deterministically (seeded) in PyPI's JSON shape (PEP 691, API 1.4):

* ``root``: the project list, ``{"meta": {"api-version": "1.4", "_last-serial": N},
  "projects": [{"name": ..., "_last-serial": n}, ...]}`` with 700,000 projects (PyPI's size).
* ``page``: one project page with 10,000 files (hashes, requires-python, yanked, core-metadata,
  size, upload-time, provenance) and its versions.

Contenders, each producing frozen typed objects with every field type-checked (what a parser that
feeds headwater's frozen model must do), then encoding those objects back to the wire shape:

* ``msgspec``: ``msgspec.json.Decoder(Type)`` straight into frozen ``msgspec.Struct`` types;
  ``msgspec.json.Encoder`` back.
* ``orjson``: ``orjson.loads`` into dicts, then frozen slotted dataclasses built and checked by hand;
  dataclasses -> dicts -> ``orjson.dumps``.
* ``json``: the same with the standard library.
* ``orjson-dicts`` / ``json-dicts``: parse/serialize only, no typed objects (a lower bound on what the
  dict-based contenders could reach, shown for reference).

Time: median of 5 runs after one untimed run, in a fresh subprocess per (library, document,
operation). Memory, each in its own fresh subprocess: the peak RSS growth of one decode
(``VmHWM`` after minus before, bytes already in memory), and with ``tracemalloc`` the peak
Python-heap allocation of one operation and, for decode, what the result keeps alive.

Usage (from the repository root)::

    .venv/bin/python bench/bench_json_libs.py all --out bench/results/json.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson

__all__ = ["DOCS", "LIBS", "main"]

LIBS = ("msgspec", "orjson", "json", "orjson-dicts", "json-dicts")
DOCS = {"root": 700_000, "page": 10_000}
RUNS = 5

# ------------------------------------------------------------------------------ the wire, generated


def generate_root(n: int) -> bytes:
    """A PyPI-shaped root project list with ``n`` projects (deterministic)."""
    rng = random.Random(691)
    words = ["py", "django", "flask", "aws", "cdk", "lib", "tools", "client", "sdk", "test", "ml"]
    projects = []
    serial = 0
    for i in range(n):
        serial += rng.randint(1, 40)
        name = "-".join(rng.sample(words, rng.randint(1, 3))) + f"-{i}"
        projects.append({"name": name, "_last-serial": serial})
    doc = {"meta": {"api-version": "1.4", "_last-serial": serial}, "projects": projects}
    return json.dumps(doc, separators=(",", ":")).encode()


def generate_page(n: int) -> bytes:
    """A PyPI-shaped project page with ``n`` files over ``n // 20`` versions (deterministic)."""
    rng = random.Random(700)
    files = []
    versions = [f"{v // 100}.{v // 10 % 10}.{v % 10}" for v in range(max(1, n // 20))]
    start = datetime(2015, 1, 1, tzinfo=UTC)
    for i in range(n):
        version = versions[i % len(versions)]
        tag = rng.choice(
            ["cp311-cp311-manylinux_2_17_x86_64", "cp312-cp312-win_amd64", "py3-none-any"]
        )
        filename = f"example_project-{version}-{tag}-{i}.whl"
        digest = f"{rng.getrandbits(256):064x}"
        meta_digest = f"{rng.getrandbits(256):064x}"
        uploaded = start + timedelta(seconds=rng.randint(0, 300_000_000), microseconds=i)
        yanked: bool | str = False if i % 50 else ("broken build" if i % 100 else True)
        files.append(
            {
                "filename": filename,
                "url": f"https://files.example.org/packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/{filename}",
                "hashes": {"sha256": digest},
                "requires-python": ">=3.8" if i % 3 else None,
                "core-metadata": {"sha256": meta_digest},
                "data-dist-info-metadata": {"sha256": meta_digest},
                "gpg-sig": False,
                "yanked": yanked,
                "size": rng.randint(10_000, 50_000_000),
                "upload-time": uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "provenance": f"https://files.example.org/provenance/{i}" if i % 4 == 0 else None,
            }
        )
    doc = {
        "meta": {"api-version": "1.4", "_last-serial": 123456789},
        "name": "example-project",
        "versions": versions,
        "files": files,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------ msgspec contender


class MMeta(msgspec.Struct, frozen=True, rename="kebab"):
    api_version: str
    last_serial: int | None = msgspec.field(default=None, name="_last-serial")


class MEntry(msgspec.Struct, frozen=True):
    name: str
    last_serial: int | None = msgspec.field(default=None, name="_last-serial")


class MRoot(msgspec.Struct, frozen=True):
    meta: MMeta
    projects: tuple[MEntry, ...]


class MFile(msgspec.Struct, frozen=True, rename="kebab", omit_defaults=False):
    filename: str
    url: str
    hashes: dict[str, str]
    requires_python: str | None = None
    core_metadata: bool | dict[str, str] | None = None
    data_dist_info_metadata: bool | dict[str, str] | None = None
    gpg_sig: bool | None = None
    yanked: bool | str = False
    size: int | None = None
    upload_time: datetime | None = None
    provenance: str | None = None


class MPage(msgspec.Struct, frozen=True):
    meta: MMeta
    name: str
    versions: tuple[str, ...]
    files: tuple[MFile, ...]


# ------------------------------------------------------------------------ dataclass contenders


class BadPage(ValueError):
    """The page does not have the shape the spec requires."""


@dataclass(frozen=True, slots=True)
class DMeta:
    api_version: str
    last_serial: int | None


@dataclass(frozen=True, slots=True)
class DEntry:
    name: str
    last_serial: int | None


@dataclass(frozen=True, slots=True)
class DRoot:
    meta: DMeta
    projects: tuple[DEntry, ...]


@dataclass(frozen=True, slots=True)
class DFile:
    filename: str
    url: str
    hashes: dict[str, str]
    requires_python: str | None
    core_metadata: bool | dict[str, str] | None
    data_dist_info_metadata: bool | dict[str, str] | None
    gpg_sig: bool | None
    yanked: bool | str
    size: int | None
    upload_time: datetime | None
    provenance: str | None


@dataclass(frozen=True, slots=True)
class DPage:
    meta: DMeta
    name: str
    versions: tuple[str, ...]
    files: tuple[DFile, ...]


def _str(value: object, what: str) -> str:
    if type(value) is not str:
        raise BadPage(f"{what} must be a string")
    return value


def _opt_str(value: object, what: str) -> str | None:
    return None if value is None else _str(value, what)


def _opt_int(value: object, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise BadPage(f"{what} must be an integer")
    return value


def _digests(value: object, what: str) -> dict[str, str]:
    if type(value) is not dict or not all(
        type(k) is str and type(v) is str for k, v in value.items()
    ):
        raise BadPage(f"{what} must map strings to strings")
    return value


def _meta(d: Any) -> DMeta:
    if type(d) is not dict:
        raise BadPage("meta must be an object")
    return DMeta(_str(d["api-version"], "api-version"), _opt_int(d.get("_last-serial"), "serial"))


def build_root(d: Any) -> DRoot:
    """Typed, checked root page from parsed JSON (raises BadPage, KeyError)."""
    projects = []
    for p in d["projects"]:
        if type(p) is not dict:
            raise BadPage("project entries must be objects")
        projects.append(DEntry(_str(p["name"], "name"), _opt_int(p.get("_last-serial"), "serial")))
    return DRoot(_meta(d["meta"]), tuple(projects))


def _metadata_field(value: object, what: str) -> bool | dict[str, str] | None:
    if value is None or type(value) is bool:
        return value
    return _digests(value, what)


def build_page(d: Any) -> DPage:
    """Typed, checked project page from parsed JSON (raises BadPage, KeyError, ValueError)."""
    files = []
    for f in d["files"]:
        if type(f) is not dict:
            raise BadPage("files must be objects")
        yanked = f.get("yanked", False)
        if type(yanked) is not bool and type(yanked) is not str:
            raise BadPage("yanked must be a boolean or a string")
        gpg = f.get("gpg-sig")
        if gpg is not None and type(gpg) is not bool:
            raise BadPage("gpg-sig must be a boolean")
        uploaded = f.get("upload-time")
        files.append(
            DFile(
                filename=_str(f["filename"], "filename"),
                url=_str(f["url"], "url"),
                hashes=_digests(f["hashes"], "hashes"),
                requires_python=_opt_str(f.get("requires-python"), "requires-python"),
                core_metadata=_metadata_field(f.get("core-metadata"), "core-metadata"),
                data_dist_info_metadata=_metadata_field(
                    f.get("data-dist-info-metadata"), "data-dist-info-metadata"
                ),
                gpg_sig=gpg,
                yanked=yanked,
                size=_opt_int(f.get("size"), "size"),
                upload_time=None
                if uploaded is None
                else datetime.fromisoformat(_str(uploaded, "upload-time")),
                provenance=_opt_str(f.get("provenance"), "provenance"),
            )
        )
    versions = d["versions"]
    if type(versions) is not list or not all(type(v) is str for v in versions):
        raise BadPage("versions must be a list of strings")
    return DPage(_meta(d["meta"]), _str(d["name"], "name"), tuple(versions), tuple(files))


def _meta_dict(m: DMeta) -> dict[str, Any]:
    return {"api-version": m.api_version, "_last-serial": m.last_serial}


def root_to_dict(r: DRoot) -> dict[str, Any]:
    return {
        "meta": _meta_dict(r.meta),
        "projects": [{"name": p.name, "_last-serial": p.last_serial} for p in r.projects],
    }


def page_to_dict(p: DPage, *, iso_dates: bool) -> dict[str, Any]:
    """Wire-shaped dicts; ``iso_dates`` formats datetimes for serializers that cannot."""
    files = []
    for f in p.files:
        uploaded: Any = f.upload_time
        if iso_dates and uploaded is not None:
            uploaded = uploaded.isoformat().replace("+00:00", "Z")
        files.append(
            {
                "filename": f.filename,
                "url": f.url,
                "hashes": f.hashes,
                "requires-python": f.requires_python,
                "core-metadata": f.core_metadata,
                "data-dist-info-metadata": f.data_dist_info_metadata,
                "gpg-sig": f.gpg_sig,
                "yanked": f.yanked,
                "size": f.size,
                "upload-time": uploaded,
                "provenance": f.provenance,
            }
        )
    return {
        "meta": _meta_dict(p.meta),
        "name": p.name,
        "versions": list(p.versions),
        "files": files,
    }


# ----------------------------------------------------------------------------------- operations


def make_ops(lib: str, doc: str) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    """(decode, encode) for one contender and one document."""
    if lib == "msgspec":
        decoder = msgspec.json.Decoder(MRoot if doc == "root" else MPage)
        encoder = msgspec.json.Encoder()
        return decoder.decode, encoder.encode
    build = build_root if doc == "root" else build_page
    if lib == "orjson":
        if doc == "root":
            return (lambda raw: build(orjson.loads(raw))), (lambda o: orjson.dumps(root_to_dict(o)))
        return (lambda raw: build(orjson.loads(raw))), (
            lambda o: orjson.dumps(page_to_dict(o, iso_dates=False))
        )
    if lib == "json":
        to_dict: Callable[[Any], dict[str, Any]] = (
            root_to_dict if doc == "root" else (lambda o: page_to_dict(o, iso_dates=True))
        )
        return (lambda raw: build(json.loads(raw))), (
            lambda o: json.dumps(to_dict(o), separators=(",", ":")).encode()
        )
    if lib == "orjson-dicts":
        return orjson.loads, orjson.dumps
    if lib == "json-dicts":
        return json.loads, (lambda o: json.dumps(o, separators=(",", ":")).encode())
    raise ValueError(f"unknown library {lib!r}; choose one of {', '.join(LIBS)}")


def fingerprint(obj: Any, doc: str) -> int:
    """A number every contender must agree on (proves they decoded the same thing)."""
    total: int
    if isinstance(obj, dict):
        if doc == "root":
            total = sum(p["_last-serial"] for p in obj["projects"]) + len(obj["projects"])
        else:
            total = sum(f["size"] for f in obj["files"]) + len(obj["files"])
    elif doc == "root":
        total = sum(p.last_serial for p in obj.projects) + len(obj.projects)
    else:
        total = sum(f.size for f in obj.files) + len(obj.files)
    return total


def peak_rss_kib() -> int:
    """This process's RSS high-water mark in KiB (Linux).

    Read from /proc/self/status ``VmHWM``, not ``getrusage``: ``ru_maxrss`` survives ``execve`` and
    starts a child at its parent's RSS at fork time, which hides the child's own peak.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status: this measurement needs Linux")


def run_one(lib: str, doc: str, op: str, mode: str, path: str) -> dict[str, Any]:
    """Run one measurement in this (fresh) process; see the module docstring for the modes."""
    with open(path, "rb") as fh:
        raw = fh.read()
    decode, encode = make_ops(lib, doc)
    out: dict[str, Any] = {"lib": lib, "doc": doc, "op": op, "mode": mode, "bytes": len(raw)}
    gc.collect()
    if mode == "rss":
        before = peak_rss_kib()
        obj = decode(raw) if op == "decode" else None
        out["peak_rss_growth_mib"] = round((peak_rss_kib() - before) / 1024, 1)
        out["fingerprint"] = fingerprint(obj, doc) if obj is not None else None
        return out
    if mode == "heap":
        obj = None if op == "decode" else decode(raw)
        gc.collect()
        tracemalloc.start()
        result = decode(raw) if op == "decode" else encode(obj)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["heap_peak_mib"] = round(peak / 2**20, 1)
        out["heap_retained_mib"] = round(current / 2**20, 1) if op == "decode" else None
        del result
        return out
    # mode == "time"
    obj = decode(raw)
    out["fingerprint"] = fingerprint(obj, doc)
    times = []
    for i in range(RUNS + 1):
        if op == "decode":
            del obj
            gc.collect()
            start = time.perf_counter()
            obj = decode(raw)
        else:
            gc.collect()
            start = time.perf_counter()
            encoded = encode(obj)
        elapsed = time.perf_counter() - start
        if i:  # the first run warms caches and is not counted
            times.append(elapsed)
    if op == "encode":
        out["encoded_bytes"] = len(encoded)
        # The round trip must give the same document back.
        out["roundtrip_ok"] = fingerprint(decode(encoded), doc) == out["fingerprint"]
    out["times_ms"] = [round(t * 1000, 1) for t in times]
    out["median_ms"] = round(statistics.median(times) * 1000, 1)
    # The minimum is the run least disturbed by anything else on the machine.
    out["min_ms"] = round(min(times) * 1000, 1)
    out["loadavg"] = round(os.getloadavg()[0], 2)
    return out


def run_all(args: argparse.Namespace) -> int:
    data = tempfile.mkdtemp(prefix="hw-bench-json-")
    paths = {}
    for doc, n in DOCS.items():
        raw = generate_root(n) if doc == "root" else generate_page(n)
        paths[doc] = os.path.join(data, f"{doc}.json")
        with open(paths[doc], "wb") as fh:
            fh.write(raw)
        print(f"{doc}: {len(raw) / 2**20:.1f} MiB", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for doc in DOCS:
        for op in ("decode", "encode"):
            for lib in args.libs:
                row: dict[str, Any] = {"doc": doc, "op": op, "lib": lib}
                modes = ["time", "heap", "rss"] if op == "decode" else ["time", "heap"]
                for mode in modes:
                    child = subprocess.run(
                        [sys.executable, __file__, "one", lib, doc, op, mode, paths[doc]],
                        capture_output=True,
                        text=True,
                        check=False,
                        timeout=1800,
                    )
                    if child.returncode != 0:
                        raise RuntimeError(f"{lib} {doc} {op} {mode} failed:\n{child.stderr}")
                    row.update({k: v for k, v in json.loads(child.stdout).items() if v is not None})
                print(json.dumps(row), file=sys.stderr)
                rows.append(row)
    shutil.rmtree(data, ignore_errors=True)
    for doc in DOCS:
        prints = {r["fingerprint"] for r in rows if r["doc"] == doc and r["op"] == "decode"}
        if len(prints) != 1:
            raise RuntimeError(f"contenders disagree on what {doc} contains: {prints}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    print(markdown_table(rows))
    return 0


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| document | op | library | median ms (5 runs) | min ms | heap peak MiB | retained MiB "
        "| peak RSS growth MiB | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['doc']} | {r['op']} | {r['lib']} | {r['median_ms']} | {r['min_ms']} "
            f"| {r['heap_peak_mib']} | {r.get('heap_retained_mib', '')} "
            f"| {r.get('peak_rss_growth_mib', '')} | {r['loadavg']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("one", help="one measurement in this process; prints JSON")
    one.add_argument("lib", choices=LIBS)
    one.add_argument("doc", choices=sorted(DOCS))
    one.add_argument("op", choices=["decode", "encode"])
    one.add_argument("mode", choices=["time", "heap", "rss"])
    one.add_argument("path")
    every = sub.add_parser("all", help="generate the documents and run every measurement")
    every.add_argument("--libs", nargs="+", choices=LIBS, default=list(LIBS))
    every.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.cmd == "all":
        return run_all(args)
    print(json.dumps(run_one(args.lib, args.doc, args.op, args.mode, args.path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
