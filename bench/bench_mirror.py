"""Mirror benchmark (issue 3): headwater against bandersnatch 8.2, same upstream, same run.

Cases (``--case``, repeatable; default all):

``full``      N projects x 1 release x 1 small real wheel (+ its ``.metadata``): full sync, fresh
              target per run, headwater and bandersnatch.
``metadata``  20,000 projects, ``--metadata-only`` corpus (placeholder file bodies): full sync.
              Both tools download the placeholder files and their ``.metadata`` (the same work).
``rerun``     on the 20,000-project upstream: re-run with nothing changed, then 1% of projects
              get a new release (control API ``add_release``) and both tools re-run.
``plan``      700,000-project metadata-only upstream, a local state at the listed serials,
              1% mutated: time and peak memory of ``Mirror.plan()`` in a fresh process, and of
              the whole ``headwater mirror --dry-run`` command.

The upstream (``headwater test-upstream``) runs pinned to core 0 and every mirror to core 1
(``taskset``), so the server never competes with the client being measured. Wall time is
measured around the whole command (interpreter start included); memory is the peak of the summed
RSS of the command's process tree, sampled from /proc every 50 ms, beside ``/usr/bin/time``'s
maximum RSS of the largest single process. Each case starts with one discarded warm-up run per
tool (the upstream builds and caches each page and file on first request; without it the first
tool to run pays that), then ``--runs`` measured runs alternating which tool goes first.

    .venv/bin/python bench/bench_mirror.py [--case full] [--runs 3] [--workers 10]
        [--full-projects 2000] [--meta-projects 20000] [--plan-projects 700000]

bandersnatch comes from ``bench/bandersnatch-setup.sh`` (``bench/.bandersnatch-venv``). Results
are printed as a table and written to ``bench/results/mirror-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
HEADWATER = ROOT / ".venv" / "bin" / "headwater"
BANDERSNATCH = HERE / ".bandersnatch-venv" / "bin" / "bandersnatch"
RESULTS = HERE / "results"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
UPSTREAM_CORE = "0"
MIRROR_CORE = "1"
PAGE = os.sysconf("SC_PAGE_SIZE")

# Targets from issue 3.
FULL_RATIO = 1 / 5
NOOP_SECONDS = 1.0
INCREMENTAL_FRACTION = 0.05
PLAN_SECONDS = 3.0
PLAN_MB = 500.0


# -- measuring one command ---------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc (this kernel has no /proc/PID/task/TID/children)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


class _TreeSampler:
    """Peak summed RSS of a process's descendants (not the root: it is /usr/bin/time).

    Reading every /proc/PID/stat costs a few ms, so the process tree is rescanned only every
    ``rescan`` samples; in between only the known PIDs' statm files are read. Memory-hungry
    children of the measured tools live for the whole run, so none is missed.
    """

    def __init__(self, root: int, rescan: int = 5) -> None:
        self.root = root
        self.rescan = rescan
        self.pids: list[int] = []
        self.samples = 0
        self.peak = 0

    def sample(self) -> None:
        if self.samples % self.rescan == 0:
            tree = _children()
            self.pids, todo = [], list(tree.get(self.root, []))
            while todo:
                pid = todo.pop()
                self.pids.append(pid)
                todo.extend(tree.get(pid, []))
        self.samples += 1
        total = 0
        for pid in self.pids:
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            except (OSError, IndexError, ValueError):
                continue
        self.peak = max(self.peak, total)


@dataclass
class Run:
    """One measured command."""

    seconds: float
    tree_peak_mb: float
    maxrss_mb: float
    status: int
    user_s: float = 0.0  # CPU time of the command (user, system), from /usr/bin/time
    sys_s: float = 0.0
    output: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def _child_env() -> dict[str, str]:
    """The environment for measured commands: bytecode caching on.

    With PYTHONDONTWRITEBYTECODE set (as in some CI images) an editable headwater recompiles its
    sources on every start (~0.2 s) while bandersnatch's pip-installed .pyc files are used: not
    the same start-up work. The warm-up run writes the caches for both.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure(cmd: list[str]) -> Run:
    """Run ``cmd`` pinned to the mirror core; wall time, peak tree RSS and max RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as timing:
        full = ["/usr/bin/time", "-f", "%U %S %M", "-o", timing.name,
                "taskset", "-c", MIRROR_CORE, *cmd]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(
            full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_child_env()
        )
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
        reader.start()
        sampler = _TreeSampler(proc.pid)
        while proc.poll() is None:
            sampler.sample()
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        reader.join()
        # The last line is "user sys maxrss" (earlier lines say how a failed command exited).
        fields = (Path(timing.name).read_text().strip().splitlines() or [""])[-1].split()
        user, system, maxrss_kb = (float(f) for f in fields) if len(fields) == 3 else (0, 0, 0)
    return Run(
        seconds=seconds,
        tree_peak_mb=sampler.peak / 2**20,
        maxrss_mb=maxrss_kb / 1024,
        status=proc.returncode,
        user_s=user,
        sys_s=system,
        output="".join(output[-20:]),
    )


def count_tree(target: Path) -> dict[str, int]:
    """Files in a bandersnatch-layout tree: distributions, .metadata, project pages per format."""
    counts = {"files": 0, "metadata": 0, "json_pages": 0, "html_pages": 0}
    for _dirpath, _dirs, names in os.walk(target / "web" / "packages"):
        for name in names:
            counts["metadata" if name.endswith(".metadata") else "files"] += 1
    simple = target / "web" / "simple"
    if simple.is_dir():
        for entry in os.scandir(simple):
            if entry.is_dir():
                counts["json_pages"] += os.path.exists(os.path.join(entry.path, "index.v1_json"))
                counts["html_pages"] += os.path.exists(os.path.join(entry.path, "index.html"))
    return counts


# -- the upstream --------------------------------------------------------------------------------


class Upstream:
    """``headwater test-upstream`` as its own process on the upstream core."""

    def __init__(self, projects: int, *, metadata_only: bool) -> None:
        cmd = ["taskset", "-c", UPSTREAM_CORE, str(PYTHON), "-m", "headwater.cli.main",
               "test-upstream", "--projects", str(projects), "--releases", "1", "--files", "1",
               "--seed", "1"]  # fmt: skip
        if metadata_only:
            cmd.append("--metadata-only")
        self.projects = projects
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise SystemExit("headwater test-upstream did not print its URL")
        netloc = urllib.parse.urlsplit(self.url).netloc
        self._conn = http.client.HTTPConnection(netloc, timeout=120)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One control-API request on a kept-alive connection (7,000 mutations stay cheap)."""
        data = json.dumps(body).encode() if body is not None else None
        self._conn.request(method, f"/_upstream/{path}", body=data)
        response = self._conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise SystemExit(f"control API {method} {path} {body}: {response.status} {raw!r}")
        return json.loads(raw)

    def project_list(self) -> list[tuple[str, int]]:
        """(display name, last serial) of every listed project, via PEP 691 JSON."""
        request = urllib.request.Request(f"{self.url}/simple/", headers={"Accept": JSON_TYPE})
        with urllib.request.urlopen(request, timeout=300) as response:
            listing = json.load(response)
        return [(p["name"], p["_last-serial"]) for p in listing["projects"]]

    def add_releases(self, names: list[str], version: str) -> None:
        for name in names:
            self.control("POST", "mutate", {"op": "add_release", "project": name,
                                            "version": version})  # fmt: skip


def spread(names: list[str], count: int, offset: int) -> list[str]:
    """``count`` names evenly spread over the list (``offset`` picks a different set)."""
    step = max(1, len(names) // count)
    return [names[(offset + i * step) % len(names)] for i in range(count)]


# -- the tools -----------------------------------------------------------------------------------


def headwater_cmd(upstream: Upstream, target: Path, workers: int) -> list[str]:
    return [str(HEADWATER), "mirror", "--upstream", f"{upstream.url}/simple/",
            "--target", str(target), "--quiet", "--workers", str(workers)]  # fmt: skip


def bandersnatch_cmd(upstream: Upstream, target: Path, workers: int) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    conf = target.with_suffix(".conf")
    # Same output as headwater: simple pages in HTML, v1 HTML and v1 JSON; the files; their PEP 658
    # .metadata. No legacy /pypi JSON files (headwater writes none), no hashed simple index.
    conf.write_text(
        "[mirror]\n"
        f"directory = {target}\n"
        f"master = {upstream.url}\n"
        "allow-non-https = true\n"
        f"workers = {workers}\n"
        "json = false\n"
        "release-files = true\n"
        "core-metadata = true\n"
        "simple-format = ALL\n"
        "hash-index = false\n"
        "stop-on-error = false\n"
        "storage-backend = filesystem\n"
        "timeout = 60\n"
        "global-timeout = 18000\n"
    )
    return [str(BANDERSNATCH), "-c", str(conf), "mirror"]


#: ``--baseline-src``: the ``src/`` directory of another headwater checkout (e.g. ``git archive
#: main src | tar -x -C /tmp/main``), run as the tool ``baseline`` with the same interpreter and
#: dependencies, so a change is measured against the code it changes in the same run.
BASELINE_SRC: list[str] = []


def baseline_cmd(upstream: Upstream, target: Path, workers: int) -> list[str]:
    # PYTHONPATH comes before the editable install's path entry: the baseline's package wins.
    return ["env", f"PYTHONPATH={BASELINE_SRC[0]}", *headwater_cmd(upstream, target, workers)]


TOOLS = {"headwater": headwater_cmd, "bandersnatch": bandersnatch_cmd, "baseline": baseline_cmd}


def run_tool(tool: str, upstream: Upstream, target: Path, workers: int) -> Run:
    # Write back everything dirty first (untimed): headwater's syncfs flushes the whole filesystem,
    # so it would otherwise pay for the tree bandersnatch just wrote without syncing, and for the
    # previous run's tree the script just deleted.
    os.sync()
    run = measure(TOOLS[tool](upstream, target, workers))
    run.counts = count_tree(target)
    if run.status != 0:
        print(f"  ! {tool} exited {run.status}:\n{run.output}", file=sys.stderr)
    return run


def fresh(scratch: Path, name: str) -> Path:
    """An empty target: a tree already at ``scratch/name`` is moved aside, not deleted.

    Deleting it here would tax the next measured run: this file system (ext4 without a journal)
    skips inodes freed in the last 60 s (360 s while their inode table block is dirty) when it
    allocates new ones, checking each skipped one in the buffer cache, so every file created in
    the next minute scans past the tens of thousands just freed (``recently_deleted()`` in
    ``fs/ext4/ialloc.c``; a perf profile put 12 s of system time there in a 2,000-project run).
    No mirror run meets that in practice, so the trees are moved to ``.trash/`` and deleted
    after the last measured run (see :func:`scratch_dir`).
    """
    target = scratch / name
    if target.exists():
        trash = scratch / ".trash"
        trash.mkdir(exist_ok=True)
        target.rename(trash / f"{name}-{time.monotonic_ns()}")
    conf = target.with_suffix(".conf")
    conf.unlink(missing_ok=True)
    return target


# -- results -------------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    tool: str
    runs: list[Run]
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def peak_mb(self) -> float:
        return statistics.median(r.tree_peak_mb for r in self.runs)

    @property
    def maxrss_mb(self) -> float:
        return statistics.median(r.maxrss_mb for r in self.runs)


def comparison(case: str, rows: dict[str, Row], ratio: float | None, note: str = "") -> list[Row]:
    """Mark the headwater row against ``ratio`` x bandersnatch (time) and no more memory."""
    hw, bs = rows.get("headwater"), rows.get("bandersnatch")
    if hw is not None and bs is not None and ratio is not None:
        hw.target = f"<= {ratio:.2g} x bandersnatch time, <= its memory"
        hw.passed = hw.seconds <= ratio * bs.seconds and hw.peak_mb <= bs.peak_mb
    base = rows.get("baseline")
    if hw is not None and base is not None and hw.runs and base.runs:
        note = (
            f"{note}; headwater/baseline median time {hw.seconds / base.seconds:.3f}, "
            f"memory {hw.peak_mb / base.peak_mb:.3f}"
        ).lstrip("; ")
    for row in rows.values():
        row.note = row.note or note
    return list(rows.values())


def print_table(rows: list[Row]) -> None:
    by_case: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_case.setdefault(row.case, {})[row.tool] = row
    header = (
        f"{'case':<24} {'tool':<13} {'median s':>9} {'runs s':>24} {'tree MB':>8} {'maxrss':>7} "
        f"{'hw/bs t':>7} {'hw/bs m':>7}  files/meta/pages  target"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        other = by_case[row.case].get("bandersnatch")
        ratio_t = ratio_m = ""
        if row.tool == "headwater" and other is not None:
            ratio_t = f"{row.seconds / other.seconds:.2f}"
            ratio_m = f"{row.peak_mb / other.peak_mb:.2f}"
        runs = ",".join(f"{r.seconds:.2f}" for r in row.runs)
        counts = row.runs[-1].counts
        if "sync" in counts:
            shown = f"sync {counts['sync']}"
        elif counts:
            shown = f"{counts['files']}/{counts['metadata']}/{counts['json_pages']}"
        else:
            shown = ""
        verdict = "" if row.passed is None else ("PASS " if row.passed else "MISS ")
        print(
            f"{row.case:<24} {row.tool:<13} {row.seconds:>9.2f} {runs:>24} {row.peak_mb:>8.0f} "
            f"{row.maxrss_mb:>7.0f} {ratio_t:>7} {ratio_m:>7}  {shown:<16}  {verdict}{row.target}"
        )


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    bs_version = (
        subprocess.run(
            [str(BANDERSNATCH.parent / "python"), "-c",
             "import importlib.metadata as m; print(m.version('bandersnatch'))"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()
        if BANDERSNATCH.exists()
        else "not installed"
    )  # fmt: skip
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1),
        "kernel": platform.release(),
        "python_headwater": platform.python_version(),
        "bandersnatch": bs_version,
        "headwater_commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "loadavg_start": os.getloadavg(),
    }


# -- cases ---------------------------------------------------------------------------------------


def full_sync_case(
    case: str, upstream: Upstream, scratch: Path, args: argparse.Namespace
) -> tuple[list[Row], dict[str, Path]]:
    """Fresh-target full syncs of both tools; returns the rows and the last run's targets."""
    expected = upstream.projects
    rows = {tool: Row(case, tool, []) for tool in args.tools}
    targets: dict[str, Path] = {}
    for index in range(-args.warmup, args.runs):
        order = args.tools if index % 2 == 0 else list(reversed(args.tools))
        for tool in order:
            target = fresh(scratch, f"{case}-{tool}")
            run = run_tool(tool, upstream, target, args.workers)
            label = "warm-up" if index < 0 else f"run {index + 1}"
            print(f"  {case} {tool} {label}: {run.seconds:.2f}s (cpu {run.user_s:.2f} user "
                  f"{run.sys_s:.2f} sys), {run.tree_peak_mb:.0f} MB, {run.counts}, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
            if run.counts["json_pages"] != expected or run.counts["files"] != expected:
                rows[
                    tool
                ].note = f"INCOMPLETE: expected {expected} pages and files, got {run.counts}"
            if index >= 0:
                rows[tool].runs.append(run)
            targets[tool] = target
    note = f"{expected} projects x 1 file, workers {args.workers}"
    return comparison(case, rows, FULL_RATIO, note), targets


def rerun_case(
    upstream: Upstream,
    scratch: Path,
    args: argparse.Namespace,
    targets: dict[str, Path],
    full_rows: list[Row],
) -> list[Row]:
    """No-op re-run, then 1% of projects changed and re-run, on existing trees."""
    full_seconds = {r.tool: r.seconds for r in full_rows}
    for tool in args.tools:
        if tool not in targets:  # rerun case alone: build the trees first (one timed full sync)
            target = fresh(scratch, f"metadata-{tool}")
            run = run_tool(tool, upstream, target, args.workers)
            targets[tool], full_seconds[tool] = target, run.seconds
            print(f"  initial full sync {tool}: {run.seconds:.2f}s", flush=True)
    names = [name for name, _ in upstream.project_list()]
    changed = max(1, round(len(names) * args.change_fraction))
    noop = {tool: Row("rerun: nothing changed", tool, []) for tool in args.tools}
    incremental = {tool: Row(f"rerun: {changed} changed", tool, []) for tool in args.tools}
    for index in range(args.runs):
        order = args.tools if index % 2 == 0 else list(reversed(args.tools))
        for tool in order:
            run = run_tool(tool, upstream, targets[tool], args.workers)
            noop[tool].runs.append(run)
            print(f"  no-op {tool} run {index + 1}: {run.seconds:.2f}s", flush=True)
        upstream.add_releases(spread(names, changed, offset=index), f"99.{index}.0")
        for tool in order:
            before = count_tree(targets[tool])["files"]
            run = run_tool(tool, upstream, targets[tool], args.workers)
            got = run.counts["files"] - before
            if got != changed:
                incremental[tool].note = f"INCOMPLETE: {got} new files, expected {changed}"
            incremental[tool].runs.append(run)
            print(f"  {changed} changed {tool} run {index + 1}: {run.seconds:.2f}s, "
                  f"{got} new files", flush=True)  # fmt: skip
    rows: list[Row] = []
    if "headwater" in noop:
        hw = noop["headwater"]
        hw.target, hw.passed = f"<= {NOOP_SECONDS:g} s", hw.seconds <= NOOP_SECONDS
        inc = incremental["headwater"]
        limit = INCREMENTAL_FRACTION * full_seconds["headwater"]
        inc.target = f"<= 5% of full sync = {limit:.2f} s"
        inc.passed = inc.seconds <= limit
    for tool in args.tools:
        if tool in full_seconds:
            share = incremental[tool].seconds / full_seconds[tool]
            incremental[tool].note = incremental[tool].note or f"{share:.1%} of its full sync"
    rows.extend(noop.values())
    rows.extend(incremental.values())
    return rows


def plan_case(scratch: Path, args: argparse.Namespace) -> list[Row]:
    """700k-project plan: local state at the listed serials, 1% mutated, Mirror.plan() timed."""
    started = time.perf_counter()
    upstream = Upstream(args.plan_projects, metadata_only=True)
    try:
        listing = upstream.project_list()  # also builds the upstream's root list (about 2 s)
        target = fresh(scratch, "plan-state")
        _write_state(target, f"{upstream.url}/simple/", listing)
        changed = max(1, round(len(listing) * args.change_fraction))
        upstream.add_releases(spread([n for n, _ in listing], changed, offset=0), "99.0.0")
        upstream.project_list()  # rebuild the mutated root list before timing, as PyPI serves it
        print(f"  plan setup: {len(listing)} projects, {changed} mutated, "
              f"{time.perf_counter() - started:.1f}s", flush=True)  # fmt: skip
        driver = Row(f"plan {len(listing)}: plan()", "headwater", [])
        dry = Row(f"plan {len(listing)}: --dry-run", "headwater", [])
        for index in range(-args.warmup, args.runs):
            run = measure([str(PYTHON), str(Path(__file__).resolve()), "--plan-driver",
                           f"{upstream.url}/simple/", str(target)])  # fmt: skip
            report = json.loads(run.output.strip().splitlines()[-1])
            # The driver times plan() itself: interpreter start and imports are not planning.
            run.seconds = report["seconds"]
            run.counts = {"sync": report["sync"], "unchanged": report["unchanged"]}
            if report["sync"] != changed:
                driver.note = f"WRONG PLAN: {report['sync']} to sync, expected {changed}"
            os.sync()
            whole = measure([*headwater_cmd(upstream, target, args.workers), "--dry-run"])
            print(f"  plan {'warm-up' if index < 0 else f'run {index + 1}'}: plan() {run.seconds:.2f}s {run.tree_peak_mb:.0f} MB; "
                  f"--dry-run {whole.seconds:.2f}s {whole.tree_peak_mb:.0f} MB", flush=True)  # fmt: skip
            if index >= 0:
                driver.runs.append(run)
                dry.runs.append(whole)
        for row in (driver, dry):
            row.target = f"<= {PLAN_SECONDS:g} s and <= {PLAN_MB:g} MB"
            row.passed = row.seconds <= PLAN_SECONDS and row.peak_mb <= PLAN_MB
        driver.note = driver.note or (
            f"{len(listing)} projects, {changed} changed; seconds = plan() only, MB = whole process"
        )
        dry.note = "whole command: interpreter start, plan, printing the plan"
        return [driver, dry]
    finally:
        upstream.stop()


def _write_state(target: Path, upstream_url: str, listing: list[tuple[str, int]]) -> None:
    """A local state as if every listed project had been synced at its listed serial."""
    from headwater.simple.names import normalize_name
    from headwater.storage.filesystem import FileStorage
    from headwater.sync.state import MirrorState

    async def write() -> None:
        state = MirrorState(FileStorage(target), upstream_url)
        await state.load()
        state.serials = {normalize_name(name): serial for name, serial in listing}
        await state.commit(max(serial for _, serial in listing))

    asyncio.run(write())


def plan_driver(upstream_url: str, target: str) -> int:
    """In a fresh process: time Mirror.plan() against an existing state; print one JSON line."""
    from headwater.repository.http import HttpRepository, client_session
    from headwater.storage.filesystem import FileStorage
    from headwater.sync.engine import Mirror

    async def go() -> dict[str, Any]:
        async with client_session(connections=4) as session:
            mirror = Mirror(HttpRepository(upstream_url, session), FileStorage(target))
            started = time.perf_counter()
            plan, _ = await mirror.plan()
            seconds = time.perf_counter() - started
        return {"seconds": seconds, "sync": len(plan.sync), "unchanged": plan.unchanged,
                "delete": len(plan.delete)}  # fmt: skip

    print(json.dumps(asyncio.run(go())))
    return 0


# -- main ----------------------------------------------------------------------------------------


def mark_topdir(scratch: Path) -> bool:
    """Ask ext4 to place each directory made in ``scratch`` (each tool's target) in a block
    group of its own choosing, as for a directory at the root of the file system (``chattr
    +T``, the Orlov allocator's "top directory" hint), rather than next to ``scratch`` itself.

    Without it every tree lands next to the temp directory, where other processes on this
    shared machine create and delete test trees all the time, and every inode either tool
    creates scans past the ones they freed in the last minute (see :func:`fresh`): a perf
    profile of one headwater run in a fresh directory under /tmp had 38% of its samples in
    ext4's ``recently_deleted()``. A mirror's own disk or directory has no such neighbours.
    Returns whether the hint was set (not on other file systems; the run goes on without).
    """
    done = subprocess.run(["chattr", "+T", str(scratch)], capture_output=True, check=False)
    return done.returncode == 0


@contextmanager
def scratch_dir(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            yield Path(path)
        finally:
            shutil.rmtree(Path(path) / ".trash", ignore_errors=True)  # see fresh()
        return
    tmp = Path(tempfile.mkdtemp(prefix="headwater-bench-mirror-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", action="append", choices=["full", "metadata", "rerun", "plan"])
    parser.add_argument("--runs", type=int, default=3, help="measured runs per tool and case (3)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded runs per tool first (1)")
    parser.add_argument(
        "--workers", type=int, default=10, help="both tools; bandersnatch caps at 10"
    )
    parser.add_argument("--full-projects", type=int, default=2_000)
    parser.add_argument("--meta-projects", type=int, default=20_000)
    parser.add_argument("--plan-projects", type=int, default=700_000)
    parser.add_argument("--change-fraction", type=float, default=0.01)
    parser.add_argument("--tools", default="headwater,bandersnatch", help="comma-separated")
    parser.add_argument("--scratch", help="directory for the trees (default: a temp dir)")
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="src/ of another headwater checkout, measured as the tool 'baseline' "
        "(e.g. --tools headwater,baseline)",
    )
    parser.add_argument("--plan-driver", nargs=2, metavar=("URL", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plan_driver:
        return plan_driver(*args.plan_driver)
    # SIGTERM unwinds like Ctrl-C, so the upstream processes are stopped by their finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The driver (and its /proc sampling) shares the upstream's core, never the measured one.
    os.sched_setaffinity(0, {int(UPSTREAM_CORE)})
    args.tools = [t for t in args.tools.split(",") if t]
    unknown = set(args.tools) - set(TOOLS)
    if unknown:
        raise SystemExit(f"unknown tool(s) {sorted(unknown)}; choose from {sorted(TOOLS)}")
    if "baseline" in args.tools:
        if not args.baseline_src or not (Path(args.baseline_src) / "headwater").is_dir():
            raise SystemExit("the baseline tool needs --baseline-src DIR holding headwater/")
        BASELINE_SRC.append(str(Path(args.baseline_src).resolve()))
    if "bandersnatch" in args.tools and not BANDERSNATCH.exists():
        raise SystemExit(f"{BANDERSNATCH} is missing: run bench/bandersnatch-setup.sh first")
    for tool in ("taskset", "/usr/bin/time"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install -y util-linux time)")
    cases = args.case or ["full", "metadata", "rerun", "plan"]
    info = machine()
    rows: list[Row] = []
    with scratch_dir(args.scratch) as scratch:
        info["scratch"] = str(scratch)
        info["scratch_topdir_hint"] = mark_topdir(scratch)
        if not info["scratch_topdir_hint"]:
            print(f"  note: could not set chattr +T on {scratch} (see mark_topdir)", flush=True)
        if "full" in cases:
            print(f"full: {args.full_projects} projects x 1 wheel", flush=True)
            upstream = Upstream(args.full_projects, metadata_only=False)
            try:
                found, _ = full_sync_case(f"full {args.full_projects}", upstream, scratch, args)
                rows += found
            finally:
                upstream.stop()
        if "metadata" in cases or "rerun" in cases:
            print(f"metadata-only: {args.meta_projects} projects", flush=True)
            upstream = Upstream(args.meta_projects, metadata_only=True)
            try:
                targets: dict[str, Path] = {}
                full_rows: list[Row] = []
                if "metadata" in cases:
                    full_rows, targets = full_sync_case(
                        f"metadata {args.meta_projects}", upstream, scratch, args
                    )
                    rows += full_rows
                if "rerun" in cases:
                    rows += rerun_case(upstream, scratch, args, targets, full_rows)
            finally:
                upstream.stop()
        if "plan" in cases:
            print(f"plan: {args.plan_projects} projects", flush=True)
            rows += plan_case(scratch, args)
    print()
    print_table(rows)
    for row in rows:
        if row.note:
            print(f"  {row.case} / {row.tool}: {row.note}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"mirror-{time.strftime('%Y%m%d-%H%M%S')}.json"
    info["loadavg_end"] = os.getloadavg()
    document = {
        "machine": info,
        "args": {k: v for k, v in vars(args).items() if k != "plan_driver"},
        "rows": [
            {
                **asdict(row),
                "median_seconds": row.seconds,
                "median_tree_peak_mb": row.peak_mb,
                "median_maxrss_mb": row.maxrss_mb,
            }
            for row in rows
        ],
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
