"""Serving benchmark (issue 4): headwater serve against nginx, devpi-server and pypiserver.

``pages`` (the default subcommand) builds one static tree (``headwater mirror`` of a generated
corpus from the test upstream: N projects x 3 releases x a pure wheel and an sdist), loads the
same distribution files into each server, and measures, side by side in one run, on loopback:

``json``   the project pages, requested with pip's Accept header (PEP 691 JSON preferred);
``html``   the same pages with ``Accept: text/html``;
``file``   downloads of the same distribution files (every file of the corpus, in turn).

against

``nginx``       the tree with ``headwater nginx-config``'s config, one worker process per core;
``headwater``   ``headwater serve --tree bench=TREE --workers <cores>``;
``devpi``       devpi-server (its own venv) with the files uploaded by twine to a ``bench/dev``
                index that has no bases (nothing is fetched from PyPI);
``pypiserver``  pypiserver (its own venv, waitress) over a flat directory of the same files.

Before timing, every server's every page is fetched in both formats and must be a 200 that
lists exactly the corpus's files of that project (with the right sha256 where the page gives one),
and every file each server links must download with the right sha256. The URLs wrk requests are
the ones the servers' own pages link to. wrk runs with 64 connections, ``--latency``, a Lua
script cycling through the paths; each (case, server) gets a 2-second warm-up and ``--runs``
measured runs of ``--duration`` seconds, interleaved (run 1 of every server, then run 2, with the
server order rotated) so a burst of load from elsewhere hits all servers alike. Medians are
reported; p99 is wrk's ``--latency`` 99th percentile.

``uploads`` starts ``headwater serve`` on embedded defaults (hosted index ``main``), creates a
token with ``headwater token create --user bench --scope upload``, and runs ``--rounds`` rounds of
``--uploads`` (100) concurrent ``twine upload`` processes, each of one distinct small wheel, to
``/main/legacy/``. It counts successes, checks every file is then listed on
``/main/simple/<project>/`` with the right sha256 and downloads with it, and samples the summed RSS
of the server's processes (granian's main process and its workers) every 100 ms.

    bench/serve-setup.sh                                   # devpi, pypiserver, twine venvs
    .venv/bin/python bench/bench_serve.py [pages] [--projects 50] [--runs 3] [--duration 10]
        [--servers nginx,headwater,devpi,pypiserver] [--workers 2] [--threads 1] [--gzip]
    .venv/bin/python bench/bench_serve.py uploads [--uploads 100] [--rounds 2]

Needs wrk and nginx (``apt-get install -y wrk nginx``). Results are printed as a table and
written to ``bench/results/serve-<time>.json`` / ``serve-uploads-<time>.json``. Exit status 1 if
a target was missed, 2 if a server's answers were wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
HEADWATER = ROOT / ".venv" / "bin" / "headwater"
VENVS = HERE / ".serve-venvs"
DEVPI_BIN = VENVS / "devpi" / "bin"
PYPISERVER = VENVS / "pypiserver" / "bin" / "pypi-server"
TWINE = VENVS / "twine" / "bin" / "twine"
RESULTS = HERE / "results"
PAGE = os.sysconf("SC_PAGE_SIZE")

# pip's Accept header for project pages (pip >= 22.2), and a plain browser-like HTML request.
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
HTML_ACCEPT = "text/html"
CASES = {"json": PIP_ACCEPT, "html": HTML_ACCEPT, "file": "*/*"}
SERVERS = ("nginx", "headwater", "devpi", "pypiserver")
INDEX = "bench"  # headwater's index name for the tree
DEVPI_USER, DEVPI_PASSWORD, DEVPI_INDEX = "bench", "bench-password", "dev"

# Targets from issue 4.
NGINX_SHARE = 0.25
DEVPI_TIMES = 20.0
P99_MS = 20.0


# -- processes and HTTP --------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, accept: str = "*/*", timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One GET (no redirects followed): status, lower-cased headers, body."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path or "/", headers={"Accept": accept})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """Wait until ``url`` answers anything over HTTP; fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode} before serving {url}")
        try:
            get(url, timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Stop a server started in its own session: ``sig``, then SIGKILL to its group after 15 s."""
    if proc.poll() is None:
        proc.send_signal(sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(15)
    # Worker processes left behind by a killed parent share its process group (its own session).
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a set-up command; exit with its output if it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    return children


def _tree(root: int) -> list[int]:
    children, pids, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def tree_cpu(roots: list[int]) -> int:
    """CPU time (user + system, clock ticks) used so far by ``roots`` and their descendants."""
    total = 0
    for root in roots:
        for pid in _tree(root):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # Fields 14 and 15 of proc(5) (utime, stime), counted from the state field (3).
            total += int(fields[11]) + int(fields[12])
    return total


def busy_ticks() -> int:
    """Clock ticks all CPUs spent not idle since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    return sum(values[:8]) - values[3] - values[4]


def tree_rss(root: int) -> int:
    """Summed RSS in bytes of ``root`` and all its descendants, from /proc."""
    children = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


class RssSampler(threading.Thread):
    """Samples :func:`tree_rss` of one process every ``interval`` seconds until stopped."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.monotonic() - self._t0, tree_rss(self.root)))
            self._halt.wait(self.interval)

    def finish(self) -> list[tuple[float, int]]:
        self._halt.set()
        self.join()
        return self.samples


def machine(extra: dict[str, Any]) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "",
    )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1),
        "kernel": platform.release(),
        "python_headwater": platform.python_version(),
        "headwater_commit": commit,
        "loadavg_start": os.getloadavg(),
        **extra,
    }


def venv_version(bin_dir: Path, dist: str) -> str:
    return subprocess.run(
        [str(bin_dir / "python"), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip


@contextmanager
def scratch_dir(path: str | None, prefix: str) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path).resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the corpus ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    project: str  # normalized name
    filename: str
    sha256: str


def build_tree(root: Path, projects: int, seed: int) -> None:
    """Mirror a generated corpus (through the test upstream) into a tree at ``root``."""
    from headwater.repository.http import HttpRepository, RetryPolicy, client_session
    from headwater.storage import FileStorage
    from headwater.sync.engine import Mirror
    from headwater.testing.corpus import Corpus
    from headwater.testing.upstream import Upstream

    corpus = Corpus.generate(projects, releases=3, files=2, seed=seed)

    async def go() -> None:
        async with Upstream(corpus) as up, client_session(connections=8) as session:
            repo = HttpRepository(up.simple_url, session, retry=RetryPolicy(attempts=3))
            summary = await Mirror(repo, FileStorage(root), workers=8).run()
            if not summary.ok:
                raise SystemExit(f"building the tree failed: {summary.failed}")

    async def bounded() -> None:
        try:
            await asyncio.wait_for(go(), timeout=300)
        except TimeoutError:
            raise SystemExit(
                "headwater mirror did not finish the benchmark tree in 300 s; build one with "
                "`headwater mirror` and pass it with --tree"
            ) from None

    asyncio.run(bounded())


def read_tree(root: Path) -> list[Dist]:
    """Every file of a headwater tree, by project, from its JSON project pages."""
    dists: list[Dist] = []
    simple = root / "web" / "simple"
    if not simple.is_dir():
        raise SystemExit(f"{root} is not a headwater tree: {simple} is missing")
    for page in sorted(simple.iterdir()):
        if page.is_dir():
            data = json.loads((page / "index.v1_json").read_bytes())
            for item in data["files"]:
                dists.append(Dist(page.name, item["filename"], item["hashes"]["sha256"]))
    if not dists:
        raise SystemExit(f"{root} holds no files")
    return dists


def flat_copy(tree: Path, dists: list[Dist], target: Path) -> list[Path]:
    """The tree's distribution files in one flat directory (pypiserver's and twine's input)."""
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for dist in dists:
        sha = dist.sha256
        src = tree / "web" / "packages" / sha[:2] / sha[2:4] / sha[4:] / dist.filename
        dst = target / dist.filename
        shutil.copyfile(src, dst)
        out.append(dst)
    return out


# -- the servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    """A running server: its URL, how its project pages are addressed, how to stop it."""

    name: str
    url: str
    page_prefix: str  # project page = url + page_prefix + name + "/"
    procs: list[subprocess.Popen[Any]]
    stop_signal: int = signal.SIGTERM
    version: str = ""
    note: str = ""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def page_url(self, project: str) -> str:
        return f"{self.url}{self.page_prefix}{project}/"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc, self.stop_signal)


def popen(cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[Any]:
    """Start a server in its own session (so its workers can be stopped as a group)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, **kwargs,
        )  # fmt: skip


def start_nginx(tree: Path, scratch: Path, workers: int) -> Server:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        raise SystemExit("nginx is not installed (apt-get install -y nginx)")
    port = free_port()
    directory = scratch / "nginx"
    directory.mkdir(parents=True, exist_ok=True)
    site = run(
        [str(HEADWATER), "nginx-config", "--root", str(tree), "--listen", f"127.0.0.1:{port}"]
    ).stdout
    (directory / "site.conf").write_text(site)
    temp = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root the workers would run as "nobody", who cannot read a 0700 temporary directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    # Access logging off: headwater serve does not log each request either (granian log_access
    # off), and nginx writing a log line per request is work the other side does not do.
    (directory / "nginx.conf").write_text(
        f"daemon off;\nmaster_process on;\nworker_processes {workers};\n{user}"
        f"pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n    access_log off;\n{temp}    include {directory / 'site.conf'};\n}}\n"
    )
    base = [nginx, "-p", str(directory), "-e", str(directory / "error.log"),
            "-c", str(directory / "nginx.conf")]  # fmt: skip
    run([*base, "-t", "-q"])
    proc = popen(base, directory / "stdout.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/simple/", proc)
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False).stderr
    return Server("nginx", url, "/simple/", [proc], signal.SIGQUIT, version.strip().split("/")[-1],
                  f"{workers} worker processes, access log off")  # fmt: skip


def start_headwater(tree: Path, scratch: Path, workers: int) -> Server:
    port = free_port()
    data = scratch / "headwater-data"
    cmd = [str(HEADWATER), "serve", "--tree", f"{INDEX}={tree}", "--listen",
           f"127.0.0.1:{port}", "--workers", str(workers), "--data-dir", str(data)]  # fmt: skip
    # cwd: no headwater.toml of the caller's is picked up.
    proc = popen(cmd, scratch / "headwater.log", cwd=scratch, env=_clean_env())
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/{INDEX}/simple/", proc)
    version = venv_version(PYTHON.parent, "headwater")
    return Server("headwater", url, f"/{INDEX}/simple/", [proc], signal.SIGINT, version,
                  f"{workers} workers (granian)")  # fmt: skip


def _clean_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "PIP_", "TWINE_"))
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def start_devpi(files: list[Path], scratch: Path) -> Server:
    server_dir, client_dir = scratch / "devpi-server", scratch / "devpi-client"
    for stale in (server_dir, client_dir):  # a reused --scratch: start from an empty devpi
        shutil.rmtree(stale, ignore_errors=True)
    env = _clean_env()
    run([str(DEVPI_BIN / "devpi-init"), "--serverdir", str(server_dir), "--no-root-pypi"], env=env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # --offline-mode: never reach out to any remote index (there is none configured anyway).
    proc = popen([str(DEVPI_BIN / "devpi-server"), "--serverdir", str(server_dir), "--host",
                  "127.0.0.1", "--port", str(port), "--offline-mode"],
                 scratch / "devpi.log", env=env)  # fmt: skip
    wait_http(f"{url}/+api", proc, timeout=120)
    client = [str(DEVPI_BIN / "devpi"), "--clientdir", str(client_dir)]
    run([*client, "use", url], env=env)
    run([*client, "user", "-c", DEVPI_USER, f"password={DEVPI_PASSWORD}"], env=env)
    run([*client, "login", DEVPI_USER, "--password", DEVPI_PASSWORD], env=env)
    # bases= : a private index that inherits nothing (no root/pypi exists).
    run([*client, "index", "-c", DEVPI_INDEX, "bases="], env=env)
    index_url = f"{url}/{DEVPI_USER}/{DEVPI_INDEX}/"
    upload(index_url, DEVPI_USER, DEVPI_PASSWORD, files)
    return Server("devpi", url, f"/{DEVPI_USER}/{DEVPI_INDEX}/+simple/", [proc], signal.SIGTERM,
                  venv_version(DEVPI_BIN, "devpi-server"),
                  "one process (its architecture), waitress threads default")  # fmt: skip


def upload(repository_url: str, user: str, password: str, files: list[Path]) -> None:
    """Upload ``files`` with twine in batches (one twine process per batch)."""
    for start in range(0, len(files), 100):
        batch = [str(f) for f in files[start : start + 100]]
        run([str(TWINE), "upload", "--non-interactive", "--disable-progress-bar",
             "--config-file", "/dev/null", "--repository-url", repository_url,
             "-u", user, "-p", password, *batch], env=_clean_env())  # fmt: skip


def start_pypiserver(flat: Path, scratch: Path) -> Server:
    port = free_port()
    cmd = [str(PYPISERVER), "run", "--interface", "127.0.0.1", "--port", str(port),
           "--server", "auto", "--backend", "cached-dir", "--authenticate", ".", "--passwords", ".",
           "--hash-algo", "sha256", "--disable-fallback", str(flat)]  # fmt: skip
    proc = popen(cmd, scratch / "pypiserver.log", env=_clean_env())
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/simple/", proc)
    return Server("pypiserver", url, "/simple/", [proc], signal.SIGTERM,
                  venv_version(PYPISERVER.parent, "pypiserver"),
                  "one process: waitress via --server auto, cached-dir backend")  # fmt: skip


# -- checking answers ----------------------------------------------------------------------------

_HREF = re.compile(r"""<a\s[^>]*href=["']([^"']+)["']""", re.IGNORECASE)


def page_files(
    url: str, status: int, headers: dict[str, str], body: bytes
) -> dict[str, tuple[str, str | None]]:
    """filename -> (absolute file URL, sha256 or None) from a project page in JSON or HTML."""
    import html

    if status != 200:
        raise ValueError(f"status {status}")
    ctype = headers.get("content-type", "")
    found: dict[str, tuple[str, str | None]] = {}
    if "json" in ctype:
        for item in json.loads(body)["files"]:
            found[item["filename"]] = (
                urllib.parse.urljoin(url, item["url"]),
                item.get("hashes", {}).get("sha256"),
            )
        return found
    for href in _HREF.findall(body.decode()):
        absolute = urllib.parse.urljoin(url, html.unescape(href))
        path, _, fragment = absolute.partition("#")
        filename = urllib.parse.unquote(path.rsplit("/", 1)[-1])
        sha = fragment[len("sha256=") :] if fragment.startswith("sha256=") else None
        found[filename] = (path, sha)
    return found


def check_server(server: Server, dists: list[Dist]) -> dict[str, Any]:
    """Every page in both formats and every linked file; returns wrk's paths and content types.

    Raises SystemExit with every problem found if any answer is wrong.
    """
    by_project: dict[str, dict[str, str]] = {}
    for dist in dists:
        by_project.setdefault(dist.project, {})[dist.filename] = dist.sha256
    problems: list[str] = []
    types: dict[str, set[str]] = {"json": set(), "html": set(), "file": set()}
    file_urls: dict[str, str] = {}
    for project, expected in by_project.items():
        url = server.page_url(project)
        for case in ("json", "html"):
            status, headers, body = get(url, CASES[case])
            try:
                listed = page_files(url, status, headers, body)
            except (ValueError, KeyError) as exc:
                problems.append(f"{case} {url}: {exc}")
                continue
            types[case].add(headers.get("content-type", "?"))
            if set(listed) != set(expected):
                problems.append(
                    f"{case} {url}: lists {sorted(listed)}, expected {sorted(expected)}"
                )
                continue
            for filename, (file_url, sha) in listed.items():
                if sha is not None and sha != expected[filename]:
                    problems.append(
                        f"{case} {url}: {filename} sha256 {sha}, expected {expected[filename]}"
                    )
                file_urls.setdefault(filename, file_url)
    for dist in dists:
        file_url = file_urls.get(dist.filename)
        if file_url is None:
            continue
        status, headers, body = get(file_url)
        types["file"].add(headers.get("content-type", "?"))
        if status != 200 or hashlib.sha256(body).hexdigest() != dist.sha256:
            problems.append(
                f"file {file_url}: status {status}, sha256 {hashlib.sha256(body).hexdigest()}"
            )
    if problems:
        shown = "\n  ".join(problems[:20])
        raise SystemExit(f"{server.name} answered wrongly ({len(problems)} problems):\n  {shown}")
    origin = len(server.url)
    return {
        "paths": {
            "json": [server.page_url(p)[origin:] for p in by_project],
            "html": [server.page_url(p)[origin:] for p in by_project],
            "file": [file_urls[d.filename][origin:] for d in dists],
        },
        "content_types": {case: sorted(t) for case, t in types.items()},
    }


# -- wrk -----------------------------------------------------------------------------------------

LUA = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
local headers = {["Accept"] = "%(accept)s"%(extra)s}
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], headers)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class Measure:
    rps: float
    p99_ms: float
    bad_status: int
    socket_errors: int
    server_cores: float = 0.0  # CPU the server's processes used, in cores
    wrk_cores: float = 0.0
    other_cores: float = 0.0  # everything else on the machine: the noise from other users


def wrk(url: str, script: Path, duration: int, threads: int, server_pids: list[int]) -> Measure:
    """One wrk run; also how many cores the server, wrk and everything else kept busy."""
    ticks = os.sysconf("SC_CLK_TCK")
    busy0, server0 = busy_ticks(), tree_cpu(server_pids)
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(
        ["wrk", f"-t{threads}", "-c64", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    seconds = time.monotonic() - started
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = (busy_ticks() - busy0) / ticks / seconds
    server = (tree_cpu(server_pids) - server0) / ticks / seconds
    client = (usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime) / seconds
    result = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    if result is None or p99 is None:
        raise SystemExit(f"could not read wrk output:\n{out}")
    requests, micros, status, errors = (int(g) for g in result.groups())
    return Measure(
        rps=requests / (micros / 1e6),
        p99_ms=float(p99.group(1)) * _UNITS[p99.group(2)],
        bad_status=status,
        socket_errors=errors,
        server_cores=server,
        wrk_cores=client,
        other_cores=max(0.0, busy - server - client),
    )


@dataclass
class Row:
    case: str
    server: str
    runs: list[Measure] = field(default_factory=list)
    attempts: list[Measure] = field(default_factory=list)  # every wrk run, noisy ones too
    content_type: str = ""

    @property
    def rps(self) -> float:
        return statistics.median(m.rps for m in self.runs)

    @property
    def p99(self) -> float:
        return statistics.median(m.p99_ms for m in self.runs)

    @property
    def errors(self) -> int:
        return sum(m.bad_status + m.socket_errors for m in self.runs)


def verdicts(rows: dict[tuple[str, str], Row], case: str) -> dict[str, Any]:
    """headwater against the issue's targets for one case (None where a server is missing)."""
    hw = rows.get((case, "headwater"))
    nginx, devpi = rows.get((case, "nginx")), rows.get((case, "devpi"))
    out: dict[str, Any] = {}
    if hw is None:
        return out
    if nginx is not None:
        out["hw_nginx"] = hw.rps / nginx.rps
        out["nginx_ok"] = out["hw_nginx"] >= NGINX_SHARE
    if devpi is not None:
        out["hw_devpi"] = hw.rps / devpi.rps
        out["devpi_ok"] = out["hw_devpi"] >= DEVPI_TIMES
    out["p99_ok"] = hw.p99 <= P99_MS and hw.errors == 0
    return out


def print_table(rows: dict[tuple[str, str], Row], cases: list[str], servers: list[str]) -> None:
    header = (
        f"{'case':<5} {'server':<11} {'req/s':>9} {'runs req/s':>22} {'p99 ms':>8} {'errors':>6} "
        f"{'srv':>5} {'wrk':>5} {'other':>5}  content type"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        for server in servers:
            row = rows.get((case, server))
            if row is None:
                continue
            runs = ",".join(f"{m.rps:.0f}" for m in row.runs)
            cores = [statistics.median(getattr(m, f"{k}_cores") for m in row.runs)
                     for k in ("server", "wrk", "other")]  # fmt: skip
            print(f"{case:<5} {server:<11} {row.rps:>9,.0f} {runs:>22} {row.p99:>8.2f} "
                  f"{row.errors:>6} {cores[0]:>5.2f} {cores[1]:>5.2f} {cores[2]:>5.2f}  "
                  f"{row.content_type}")  # fmt: skip
    print("srv, wrk, other: CPU cores kept busy during the runs (medians) by the server's")
    print("processes, by wrk, and by everything else on the machine (other users' noise).")
    print()
    print(f"targets: headwater >= {NGINX_SHARE:.0%} of nginx's req/s, >= {DEVPI_TIMES:g}x devpi's, "
          f"p99 <= {P99_MS:g} ms")  # fmt: skip
    for case in cases:
        v = verdicts(rows, case)
        if not v:
            continue
        parts = []
        if "hw_nginx" in v:
            parts.append(f"hw/nginx {v['hw_nginx']:.2f} {'PASS' if v['nginx_ok'] else 'MISS'}")
        if "hw_devpi" in v:
            parts.append(f"hw/devpi {v['hw_devpi']:.1f}x {'PASS' if v['devpi_ok'] else 'MISS'}")
        hw = rows[(case, "headwater")]
        parts.append(f"p99 {hw.p99:.2f} ms {'PASS' if v['p99_ok'] else 'MISS'}")
        print(f"  {case:<5} " + "   ".join(parts))


def pages_main(args: argparse.Namespace) -> int:
    servers = [s for s in args.servers.split(",") if s]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        raise SystemExit(f"unknown server(s) {sorted(unknown)}; choose from {SERVERS}")
    cases = [c for c in args.cases.split(",") if c]
    if set(cases) - set(CASES):
        raise SystemExit(f"unknown case(s); choose from {sorted(CASES)}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    needs = {"devpi": DEVPI_BIN / "devpi-server", "pypiserver": PYPISERVER}
    if "devpi" in servers:
        needs["twine"] = TWINE
    for name, path in needs.items():
        if (name in servers or name == "twine") and not path.exists():
            raise SystemExit(f"{path} is missing: run bench/serve-setup.sh first")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    running: list[Server] = []
    rows: dict[tuple[str, str], Row] = {}
    checks: dict[str, Any] = {}
    info = machine({"wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True,
                                          check=False).stdout.splitlines()[0:1]})  # fmt: skip
    with scratch_dir(args.scratch, "headwater-bench-serve-") as scratch:
        try:
            started = time.perf_counter()
            if args.tree:
                tree = Path(args.tree).resolve()
            else:
                tree = scratch / "tree"
                if tree.exists():
                    shutil.rmtree(tree)
                build_tree(tree, args.projects, args.seed)
            dists = read_tree(tree)
            flat = scratch / "flat"
            if flat.exists():
                shutil.rmtree(flat)
            files = flat_copy(tree, dists, flat)
            projects = len({d.project for d in dists})
            print(f"tree: {projects} projects, {len(dists)} files "
                  f"({sum(f.stat().st_size for f in files) / len(files):.0f} bytes on average), "
                  f"{time.perf_counter() - started:.1f}s", flush=True)  # fmt: skip
            for name in servers:
                t0 = time.perf_counter()
                if name == "nginx":
                    server = start_nginx(tree, scratch, args.workers)
                elif name == "headwater":
                    server = start_headwater(tree, scratch, args.workers)
                elif name == "devpi":
                    server = start_devpi(files, scratch)
                else:
                    server = start_pypiserver(flat, scratch)
                running.append(server)
                checks[name] = check_server(server, dists)
                print(f"{name} {server.version}: {server.url}, every page and file checked, "
                      f"{time.perf_counter() - t0:.1f}s; content types "
                      f"{checks[name]['content_types']}", flush=True)  # fmt: skip
            info["versions"] = {s.name: s.version for s in running}
            info["notes"] = {s.name: s.note for s in running}
            info["loadavg_before_timing"] = os.getloadavg()
            print(f"load average before timing: {_load()}", flush=True)
            extra = ', ["Accept-Encoding"] = "gzip, deflate"' if args.gzip else ""
            scripts: dict[tuple[str, str], Path] = {}
            for server in running:
                for case in cases:
                    paths = scratch / f"paths-{server.name}-{case}.txt"
                    paths.write_text("\n".join(checks[server.name]["paths"][case]) + "\n")
                    script = scratch / f"{server.name}-{case}.lua"
                    script.write_text(LUA % {"paths": paths, "accept": CASES[case], "extra": extra})
                    scripts[(server.name, case)] = script
                    rows[(case, server.name)] = Row(
                        case, server.name,
                        content_type=",".join(checks[server.name]["content_types"][case]),
                    )  # fmt: skip
                    wrk(server.url, script, 2, args.threads, server.pids)  # warm-up, discarded
            for index in range(args.runs):
                for case in cases:
                    shift = index % len(running)
                    for server in running[shift:] + running[:shift]:
                        script = scripts[(server.name, case)]
                        row = rows[(case, server.name)]
                        # A shared machine: a run during which other processes kept more than
                        # --max-other cores busy is repeated (up to --retries times); the
                        # quietest attempt counts, every attempt is kept in the JSON.
                        for attempt in range(args.retries + 1):
                            m = wrk(server.url, script, args.duration, args.threads, server.pids)
                            row.attempts.append(m)
                            print(f"  run {index + 1} {case:<4} {server.name:<10} {m.rps:>9,.0f} "
                                  f"req/s p99 {m.p99_ms:7.2f} ms  errors "
                                  f"{m.bad_status + m.socket_errors}  cores: server "
                                  f"{m.server_cores:.2f} wrk {m.wrk_cores:.2f} other "
                                  f"{m.other_cores:.2f}"
                                  + ("  (noisy: again)" if m.other_cores > args.max_other
                                     and attempt < args.retries else ""),
                                  flush=True)  # fmt: skip
                            if m.other_cores <= args.max_other:
                                break
                        row.runs.append(min(row.attempts[-(attempt + 1) :],
                                            key=lambda a: a.other_cores))  # fmt: skip
        finally:
            for server in running:
                server.stop()
    info["loadavg_end"] = os.getloadavg()
    print()
    print_table(rows, cases, servers)
    print(f"\nload average: before timing {_fmt_load(info['loadavg_before_timing'])}, "
          f"after {_fmt_load(info['loadavg_end'])} (1, 5, 15 min; {os.cpu_count()} cores)")  # fmt: skip
    for server in running:
        print(f"  {server.name} {server.version}: {server.note}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"serve-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "machine": info,
        "args": vars(args),
        "corpus": {"projects": len({d.project for d in dists}), "files": len(dists)}
        if running
        else {},
        "rows": [
            {
                "case": r.case,
                "server": r.server,
                "rps_median": round(r.rps),
                "p99_ms_median": round(r.p99, 3),
                "errors": r.errors,
                "content_type": r.content_type,
                "runs": [vars(m) for m in r.runs],
                "attempts": [vars(m) for m in r.attempts],
            }
            for r in rows.values()
            if r.runs
        ],
        "verdicts": {case: verdicts(rows, case) for case in cases},
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    missed = any(
        v is False for case in cases for k, v in verdicts(rows, case).items() if k.endswith("_ok")
    )
    return 1 if missed else 0


def _load() -> str:
    return _fmt_load(os.getloadavg())


def _fmt_load(load: tuple[float, float, float] | list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


# -- uploads -------------------------------------------------------------------------------------


def make_upload_files(
    target: Path, count: int, projects: int, round_: int
) -> list[tuple[Dist, Path]]:
    """``count`` distinct small wheels spread over ``projects`` projects (one version each)."""
    from headwater.simple.names import normalize_name
    from headwater.testing import wheels

    target.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        display = f"bench-upload-{i % projects:02d}"
        name = normalize_name(display)
        version = f"{round_ + 1}.{i}.0"
        body = wheels.build_wheel(name, display, version,
                                  metadata=wheels.core_metadata(display, version))  # fmt: skip
        filename = wheels.wheel_filename(name, version)
        (target / filename).write_bytes(body)
        out.append((Dist(name, filename, hashlib.sha256(body).hexdigest()), target / filename))
    return out


def create_token(scratch: Path, data: Path) -> str:
    """``headwater token create --user bench --scope upload`` against the server's data dir."""
    base = [str(HEADWATER), "token", "create", "--user", "bench", "--scope", "upload"]
    env = _clean_env()
    # The embedded default data directory is ./headwater-data: with cwd=scratch it is ``data``
    # even if the command takes no --data-dir flag.
    done = subprocess.run([*base, "--data-dir", str(data)], capture_output=True, text=True,
                          check=False, cwd=scratch, env=env)  # fmt: skip
    if done.returncode == 2 and "unrecognized arguments" in done.stderr:
        done = subprocess.run(
            base, capture_output=True, text=True, check=False, cwd=scratch, env=env
        )
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"headwater token create failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return lines[-1]


@contextmanager
def upload_server(
    scratch: Path, data: Path, workers: int
) -> Iterator[tuple[str, subprocess.Popen[Any], str, RssSampler]]:
    """``headwater serve`` on embedded defaults in ``data``, warmed up (every worker answered a
    few reads), an upload token, and an RSS sampler already running; (url, process, token,
    sampler). On exit the sampler stops (its ``samples`` stay) and the server is stopped."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = popen([str(HEADWATER), "serve", "--data-dir", str(data), "--listen",
                  f"127.0.0.1:{port}", "--workers", str(workers)],
                 scratch / "headwater.log", cwd=scratch, env=_clean_env())  # fmt: skip
    sampler = RssSampler(proc.pid)
    try:
        wait_http(f"{url}/main/simple/", proc)
        token = create_token(scratch, data)
        for _ in range(20):  # so the baseline is a warmed-up server
            get(f"{url}/main/simple/")
        sampler.start()
        time.sleep(1.0)
        yield url, proc, token, sampler
    finally:
        try:
            if sampler.is_alive():
                sampler.finish()
        finally:
            stop(proc, signal.SIGINT)  # never leave the server running


def uploads_main(args: argparse.Namespace) -> int:
    if not TWINE.exists():
        raise SystemExit(f"{TWINE} is missing: run bench/serve-setup.sh first")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine({"twine": venv_version(TWINE.parent, "twine")})
    print(f"load average at start: {_load()}", flush=True)
    rounds: list[dict[str, Any]] = []
    with scratch_dir(args.scratch, "headwater-bench-uploads-") as scratch:
        data = scratch / "headwater-data"
        if data.exists():
            shutil.rmtree(data)
        with upload_server(scratch, data, args.workers) as (url, proc, token, sampler):
            baseline = tree_rss(proc.pid)
            for round_ in range(args.rounds):
                dists = make_upload_files(scratch / f"round-{round_}", args.uploads,
                                          args.upload_projects, round_)  # fmt: skip
                rounds.append(upload_round(url, token, dists, proc.pid, sampler, round_))
                time.sleep(1.0)  # let freed memory settle before the "after" sample
                rounds[-1]["rss_after_mb"] = tree_rss(proc.pid) / 2**20
        samples = sampler.samples
    info["loadavg_end"] = os.getloadavg()
    base_mb = baseline / 2**20
    peak_mb = max((s for _, s in samples), default=0) / 2**20
    print()
    print(f"{'round':>5} {'uploads':>7} {'ok':>4} {'listed':>6} {'sha ok':>6} {'seconds':>8} "
          f"{'RSS before':>10} {'peak':>7} {'after':>7}")  # fmt: skip
    for r in rounds:
        print(f"{r['round']:>5} {r['uploads']:>7} {r['succeeded']:>4} {r['listed']:>6} "
              f"{r['sha_ok']:>6} {r['seconds']:>8.1f} {r['rss_before_mb']:>8.0f}MB "
              f"{r['rss_peak_mb']:>5.0f}MB {r['rss_after_mb']:>5.0f}MB")  # fmt: skip
    all_ok = all(r["succeeded"] == r["uploads"] == r["listed"] == r["sha_ok"] for r in rounds)
    growth = rounds[-1]["rss_after_mb"] - rounds[0]["rss_after_mb"] if rounds else 0.0
    flat = growth <= max(0.1 * rounds[0]["rss_after_mb"], 20.0) if rounds else False
    print(f"\nserver RSS (all processes): idle {base_mb:.0f} MB, peak {peak_mb:.0f} MB; after the "
          f"last round {growth:+.0f} MB against after the first")  # fmt: skip
    print(
        f"all uploads succeeded, listed and hash-correct: {'PASS' if all_ok else 'MISS'}; "
        f"memory flat (<= max(10%, 20 MB) growth across rounds): {'PASS' if flat else 'MISS'}"
    )
    print(
        f"load average: start {_fmt_load(info['loadavg_start'])}, end {_fmt_load(info['loadavg_end'])}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"serve-uploads-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "machine": info, "args": vars(args), "rounds": rounds,
        "rss_idle_mb": base_mb, "rss_peak_mb": peak_mb,
        "rss_samples": [(round(t, 2), round(s / 2**20, 1)) for t, s in samples],
        "all_ok": all_ok, "memory_flat": flat,
    }  # fmt: skip
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0 if all_ok and flat else 1


def upload_round(
    url: str,
    token: str,
    files: list[tuple[Dist, Path]],
    pid: int,
    sampler: RssSampler,
    round_: int,
) -> dict[str, Any]:
    """All of ``files`` uploaded at once, one twine process each; then every one checked."""
    dists = [dist for dist, _ in files]
    mark = len(sampler.samples)
    before = tree_rss(pid)
    started = time.perf_counter()
    procs = []
    for _dist, path in files:
        procs.append(subprocess.Popen(
            [str(TWINE), "upload", "--non-interactive", "--disable-progress-bar",
             "--config-file", "/dev/null", "--repository-url", f"{url}/main/legacy/",
             "-u", "__token__", "-p", token, str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_clean_env(),
        ))  # fmt: skip
    outputs = [p.communicate()[0] for p in procs]
    seconds = time.perf_counter() - started
    failures = [(d.filename, out[-400:]) for d, p, out in zip(dists, procs, outputs, strict=True)
                if p.returncode != 0]  # fmt: skip
    peak = max((s for _, s in sampler.samples[mark:]), default=before)
    listed = sha_ok = 0
    problems: list[str] = []
    pages: dict[str, dict[str, tuple[str, str | None]]] = {}
    for dist in dists:
        if dist.project not in pages:
            page_url = f"{url}/main/simple/{dist.project}/"
            status, headers, body = get(page_url, PIP_ACCEPT)
            try:
                pages[dist.project] = page_files(page_url, status, headers, body)
            except (ValueError, KeyError) as exc:
                problems.append(f"{page_url}: {exc}")
                pages[dist.project] = {}
        entry = pages[dist.project].get(dist.filename)
        if entry is None:
            problems.append(f"{dist.filename} not listed on /main/simple/{dist.project}/")
            continue
        listed += 1
        status, _, body = get(entry[0])
        if (
            entry[1] == dist.sha256
            and status == 200
            and hashlib.sha256(body).hexdigest() == dist.sha256
        ):
            sha_ok += 1
        else:
            problems.append(f"{dist.filename}: page sha256 {entry[1]}, download status {status}")
    result = {
        "round": round_ + 1,
        "uploads": len(dists),
        "succeeded": len(dists) - len(failures),
        "listed": listed,
        "sha_ok": sha_ok,
        "seconds": seconds,
        "rss_before_mb": before / 2**20,
        "rss_peak_mb": peak / 2**20,
        "failures": failures[:10],
        "problems": problems[:20],
    }
    print(f"round {round_ + 1}: {result['succeeded']}/{len(dists)} twine uploads succeeded in "
          f"{seconds:.1f}s, {listed} listed, {sha_ok} with the right sha256", flush=True)  # fmt: skip
    for filename, output in failures[:5]:
        print(f"  ! {filename}: {output.strip()}", file=sys.stderr)
    for problem in problems[:5]:
        print(f"  ! {problem}", file=sys.stderr)
    return result


# -- one big upload ------------------------------------------------------------------------------


def write_big_wheel(target: Path, size: int) -> tuple[Dist, Path]:
    """A valid wheel of about ``size`` bytes (a stored, incompressible data file), written to
    disk in 1 MiB blocks so the benchmark itself never holds it."""
    import base64
    import zipfile

    from headwater.testing import wheels

    display, version = "bench-big", "1.0.0"
    module = "bench_big"
    dist_info = f"{module}-{version}.dist-info"
    filename = f"{module}-{version}-py3-none-any.whl"
    path = target / filename
    metadata = wheels.core_metadata(display, version)
    wheel_file = b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record: list[str] = []
    block = 1 << 20
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        digest = hashlib.sha256()
        with archive.open(f"{module}/data.bin", "w", force_zip64=True) as member:
            left = size
            while left > 0:
                chunk = os.urandom(min(block, left))
                member.write(chunk)
                digest.update(chunk)
                left -= len(chunk)
        encoded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
        record.append(f"{module}/data.bin,sha256={encoded},{size}")
        for name, data in (
            (f"{module}/__init__.py", b""),
            (f"{dist_info}/METADATA", metadata),
            (f"{dist_info}/WHEEL", wheel_file),
        ):
            archive.writestr(name, data)
            encoded = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
            record.append(f"{name},sha256={encoded.rstrip('=')},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    whole = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            whole.update(chunk)
    return Dist("bench-big", filename, whole.hexdigest()), path


def big_upload_main(args: argparse.Namespace) -> int:
    """One ``twine upload`` of a ``--size-mb`` wheel to ``headwater serve`` (one worker): the
    server's RSS must not grow with the file (issue 4: a 1 GB file must not need 1 GB)."""
    twine = TWINE if TWINE.exists() else ROOT / ".venv" / "bin" / "twine"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"load average at start: {_load()}", flush=True)
    with scratch_dir(args.scratch, "headwater-bench-big-") as scratch:
        data = scratch / "headwater-data"
        started = time.perf_counter()
        dist, path = write_big_wheel(scratch, args.size_mb * 10**6)
        print(f"built {path.name}: {path.stat().st_size / 1e6:,.0f} MB in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        with upload_server(scratch, data, 1) as (url, proc, token, sampler):
            idle = tree_rss(proc.pid)
            started = time.perf_counter()
            done = subprocess.run(
                [str(twine), "upload", "--non-interactive", "--disable-progress-bar",
                 "--config-file", "/dev/null", "--repository-url", f"{url}/main/legacy/",
                 "-u", "__token__", "-p", token, str(path)],
                capture_output=True, text=True, check=False, env=_clean_env(),
            )  # fmt: skip
            seconds = time.perf_counter() - started
            page_url = f"{url}/main/simple/{dist.project}/"
            status, headers, body = get(page_url, PIP_ACCEPT)
            listed = page_files(page_url, status, headers, body).get(dist.filename)
            download = hashlib.sha256()
            if listed is not None:
                with urllib.request.urlopen(listed[0], timeout=300) as answer:
                    for chunk in iter(lambda: answer.read(1 << 20), b""):
                        download.update(chunk)
        samples = sampler.samples
    peak = max((rss for _, rss in samples), default=idle)
    ok = (
        done.returncode == 0
        and listed is not None
        and listed[1] == dist.sha256
        and download.hexdigest() == dist.sha256
    )
    growth = (peak - idle) / 2**20
    flat = growth <= 100
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    print(f"twine upload of {args.size_mb:,} MB: exit {done.returncode}, {seconds:.1f} s "
          f"({args.size_mb / seconds:,.0f} MB/s); listed with its sha256 and downloaded intact: "
          f"{'yes' if ok else 'NO'}")  # fmt: skip
    print(f"server RSS (all processes): idle {idle / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB "
          f"(+{growth:.0f} MB; target: independent of the file size, <= +100 MB) "
          f"{'PASS' if flat else 'MISS'}")  # fmt: skip
    print(f"load average at end: {_load()}")
    return 0 if ok and flat else 1


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    pages = sub.add_parser("pages", help="pages and file downloads, four servers (default)")
    uploads = sub.add_parser("uploads", help="concurrent twine uploads to headwater serve")
    big = sub.add_parser("big-upload", help="one large twine upload; server memory must stay flat")
    big.add_argument("--size-mb", type=int, default=1000, help="size of the wheel (1000 MB)")
    big.add_argument("--scratch", help="working directory (default: a temporary directory)")
    for p in (parser, pages):
        p.add_argument("--projects", type=int, default=50, help="projects in the corpus (50)")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--tree", help="serve this existing headwater tree instead of building one")
        p.add_argument("--runs", type=int, default=3, help="measured runs per case and server (3)")
        p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
        p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
        p.add_argument(
            "--max-other",
            type=float,
            default=0.25,
            help="repeat a run when other processes kept more cores busy (0.25)",
        )
        p.add_argument("--retries", type=int, default=2, help="repeats of a noisy run (2)")
        p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
        p.add_argument("--cases", default=",".join(CASES), help="comma-separated: json,html,file")
        p.add_argument(
            "--gzip", action="store_true", help="send Accept-Encoding: gzip, deflate as pip does"
        )
        p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="headwater workers and nginx worker processes (one per core)")  # fmt: skip
        p.add_argument("--scratch", help="working directory (default: a temporary directory)")
    uploads.add_argument("--uploads", type=int, default=100, help="concurrent uploads per round")
    uploads.add_argument(
        "--upload-projects", type=int, default=10, help="projects they spread over"
    )
    uploads.add_argument("--rounds", type=int, default=2, help="rounds (memory across rounds)")
    uploads.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    uploads.add_argument("--scratch", help="working directory (default: a temporary directory)")
    args = parser.parse_args()
    if args.command == "uploads":
        return uploads_main(args)
    if args.command == "big-upload":
        return big_upload_main(args)
    return pages_main(args)


if __name__ == "__main__":
    sys.exit(main())
