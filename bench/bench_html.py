"""Benchmark the HTML codec of headwater.simple against its speed targets.

Targets: render a 700,000-project root list in <= 1.5 s with peak RSS <= 400 MB; parse and render a
10,000-file project page in <= 100 ms each. For comparison, the same 10,000-file page read by an
html.parser-based reader (what pip, mousebender and pypi-simple's fallback do).

Every measurement runs in a fresh subprocess (so peak RSS is that case's, and no warm caches carry
over); each case is run --runs times (default 5) and the median is reported.

    .venv/bin/python bench/bench_html.py            # all cases, 5 runs each
    .venv/bin/python bench/bench_html.py --runs 7 --case render_list_700k
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser

from headwater.simple.html import (
    parse_project_list_html,
    parse_project_page_html,
    render_project_list_html,
    render_project_page_html,
)
from headwater.simple.model import File, ProjectList, ProjectListEntry, ProjectPage
from headwater.simple.names import normalize_name

TARGETS = {  # seconds, peak MB (None: no target)
    "render_list_700k": (1.5, 400.0),
    "parse_list_700k": (None, None),
    "render_page_10k": (0.1, None),
    "parse_page_10k": (0.1, None),
    "parse_page_10k_htmlparser": (None, None),
}

_WORDS = (
    "py", "django", "flask", "zope", "requests", "numpy", "data", "tool", "kit", "azure", "aws",
    "google", "cloud", "sdk", "core", "utils", "client", "server", "api", "http", "json", "yaml",
    "test", "pytest", "plugin", "lib", "async", "io", "odoo", "addon", "sphinx", "theme", "ml",
    "torch", "tensor", "vision", "text", "nlp", "graph", "db", "sql", "orm", "cli", "auth",
    "oauth", "jwt", "log", "config", "parser",
)  # fmt: skip
_SEPS = ("-", "_", ".", "")


def make_names(n: int, seed: int = 1) -> list[str]:
    """``n`` realistic, distinct (by normalized name) mixed-case project names."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(1, 4))]
        style = rng.random()
        if style < 0.15:
            words = [w.capitalize() for w in words]
        elif style < 0.2:
            words = [w.upper() for w in words]
        name = rng.choice(_SEPS).join(words)
        if rng.random() < 0.6:
            name += str(rng.randint(0, 99999))
        key = normalize_name(name)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def make_page(n: int, seed: int = 2) -> ProjectPage:
    """A ``n``-file project page with the attributes PyPI serves today."""
    rng = random.Random(seed)
    files = []
    for i in range(n):
        version = f"{i // 40}.{i % 40}.{rng.randint(0, 9)}"
        filename = f"example_project-{version}-cp312-cp312-manylinux_2_28_x86_64.whl"
        digest = rng.randbytes(32).hex()
        files.append(
            File(
                filename=filename,
                url=f"https://files.example.org/packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/{filename}",
                hashes={"sha256": digest},
                requires_python=">=3.9" if i % 3 else "<4,>=3.8",
                yanked=i % 50 == 0,
                yanked_reason="broken build" if i % 100 == 0 else None,
                core_metadata={"sha256": rng.randbytes(32).hex()},
                provenance=f"https://pypi.example/integrity/example-project/{version}/{filename}/provenance"
                if i % 2
                else None,
            )
        )
    return ProjectPage(name=normalize_name("example-project"), files=tuple(files), last_serial=123)


class _HtmlParserReader(HTMLParser):
    """What an html.parser-based client does: collect each anchor's attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._attrs: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._attrs, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._attrs is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._attrs is not None:
            self.anchors.append((self._attrs, "".join(self._text)))
            self._attrs = None


def _setup(case: str) -> Callable[[], object]:
    if case == "render_list_700k":
        plist = ProjectList(projects=tuple(ProjectListEntry(n) for n in make_names(700_000)))
        return lambda: render_project_list_html(plist)
    if case == "parse_list_700k":
        data = render_project_list_html(
            ProjectList(projects=tuple(ProjectListEntry(n) for n in make_names(700_000)))
        )
        return lambda: parse_project_list_html(data)
    page = make_page(10_000)
    if case == "render_page_10k":
        return lambda: render_project_page_html(page)
    data = render_project_page_html(page)
    if case == "parse_page_10k":
        return lambda: parse_project_page_html(data, name="example-project")
    if case == "parse_page_10k_htmlparser":

        def run() -> object:
            reader = _HtmlParserReader()
            reader.feed(data.decode("utf-8"))
            reader.close()
            return reader.anchors

        return run
    raise SystemExit(f"unknown case {case!r}; choose from {', '.join(TARGETS)}")


def _child(case: str) -> None:
    fn = _setup(case)
    # Linux reports ru_maxrss in KiB. The input alone (700,000 entries in memory) is part of the
    # peak, as it is in a real process; setup_mb shows how much of the peak it is.
    setup_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu = time.process_time()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    assert result is not None
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"seconds": seconds, "cpu": cpu_seconds, "peak_mb": peak_mb, "setup_mb": setup_mb}
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--case", action="append", choices=list(TARGETS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return 0
    failed = False
    # Wall-clock medians mean little on a busy machine: say how busy it was. cpu is the median
    # process CPU time of the measured call, which contention inflates less.
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    for case in args.case or list(TARGETS):
        runs = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, __file__, "--child", case],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs.append(json.loads(out))
        secs = statistics.median(r["seconds"] for r in runs)
        best = min(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        setup = max(r["setup_mb"] for r in runs)
        max_s, max_mb = TARGETS[case]
        ok = (max_s is None or secs <= max_s) and (max_mb is None or peak <= max_mb)
        failed |= not ok
        target = (
            ""
            if max_s is None
            else f"  target <= {max_s} s" + ("" if max_mb is None else f", <= {max_mb:.0f} MB")
        )
        verdict = "" if max_s is None else ("  OK" if ok else "  MISSED")
        print(
            f"{case:26s} median {secs * 1000:7.1f} ms (min {best * 1000:7.1f}, cpu {cpu * 1000:7.1f})"
            f"  peak RSS "
            f"{peak:5.1f} MB (input {setup:5.1f}) ({args.runs} runs){target}{verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
