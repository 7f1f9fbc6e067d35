"""A closure mirror against ``pip download``: 200 requirements, 4 environments, one test upstream.

The world is :func:`headwater.testing.graph.add_wide_graph`: 200 root projects (two releases
each) over 40 shared libraries on the ``core`` -> ``base`` -> ``leaf`` chain, with platform
wheels and a Windows-only dependency. Both sides talk to the same test upstream (a thread of
this process, loopback HTTP, PEP 658 ``.metadata`` offered), in the same run:

* ``pip download`` once per environment (``--only-binary :all: --platform ... --python-version
  ...``), isolated and with ``--no-cache-dir`` (a fresh machine's cache), into a fresh directory;
* ``headwater mirror --dry-run`` for all four environments at once: the closure alone (pages and
  metadata, no file downloaded);
* ``headwater mirror`` into a fresh tree: the closure and every file of it downloaded, verified
  and written with its pages.

Each is run ``--runs`` times; medians are printed. The target (issue 14): the closure takes at
most 1/5 of pip's wall time for the four environments.

    .venv/bin/python bench/bench_closure.py [--runs 3] [--count 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from headwater.sync.environments import Environment, expand_platform
from headwater.testing.corpus import Corpus
from headwater.testing.graph import add_wide_graph
from headwater.testing.upstream import Upstream

ENVIRONMENTS = (
    Environment(python="3.12", platform="manylinux_2_28_x86_64"),
    Environment(python="3.11", platform="manylinux_2_28_aarch64"),
    Environment(python="3.12", platform="macosx_14_0_arm64"),
    Environment(python="3.13", platform="win_amd64"),
)
HEADWATER = str(Path(sys.executable).with_name("headwater"))


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", HOME=str(home))
    return env


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(
            f"{cmd[:4]} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return elapsed, result.stdout


def pip_download(url: str, env: Environment, requirements: Path, work: Path) -> tuple[float, int]:
    dest = work / f"pip-{env.label}"
    shutil.rmtree(dest, ignore_errors=True)
    platforms = [a for p in expand_platform(env.platform) for a in ("--platform", p)]
    cmd = [
        sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir",
        "--index-url", url, "--only-binary", ":all:", *platforms,
        "--python-version", env.python, "--implementation", env.implementation,
        "--dest", str(dest), "-r", str(requirements),
    ]  # fmt: skip
    elapsed, _ = timed(cmd, clean_env(work / "home"), work)
    return elapsed, len(list(dest.iterdir()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    corpus = Corpus()
    roots = add_wide_graph(corpus, args.count)
    with (
        tempfile.TemporaryDirectory(prefix="bench-closure-") as tmp,
        Upstream(corpus).running() as up,
    ):
        work = Path(tmp)
        requirements = work / "requirements.txt"
        requirements.write_text("\n".join(roots) + "\n")
        envs = ",\n".join(
            f'  {{ python = "{e.python}", platform = "{e.platform}" }}' for e in ENVIRONMENTS
        )
        config = work / "headwater.toml"
        config.write_text(
            f'[mirror.bench]\nupstream = "{up.url}/simple/"\ntarget = "tree"\n'
            'allowed_networks = ["127.0.0.0/8"]\n\n'
            f'[mirror.bench.closure]\ninputs = ["requirements.txt"]\nenvironments = [\n{envs}\n]\n'
        )
        url = f"{up.url}/simple/"
        pip_times: dict[str, list[float]] = {e.label: [] for e in ENVIRONMENTS}
        pip_files: dict[str, int] = {}
        closure_times: list[float] = []
        mirror_times: list[float] = []
        summary = ""
        for run in range(args.runs):
            for env in ENVIRONMENTS:
                elapsed, count = pip_download(url, env, requirements, work)
                pip_times[env.label].append(elapsed)
                pip_files[env.label] = count
            hw_env = clean_env(work / "home")
            # From an empty tree each time: the closure reads .metadata the tree already holds.
            shutil.rmtree(work / "tree", ignore_errors=True)
            elapsed, out = timed(
                [HEADWATER, "mirror", "--config", str(config), "--quiet", "--dry-run"], hw_env, work
            )
            closure_times.append(elapsed)
            summary = "\n".join(line for line in out.splitlines() if "closure " in line)
            shutil.rmtree(work / "tree", ignore_errors=True)
            elapsed, _ = timed(
                [HEADWATER, "mirror", "--config", str(config), "--quiet"], hw_env, work
            )
            mirror_times.append(elapsed)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{args.count} requirements, {len(ENVIRONMENTS)} environments, {args.runs} runs "
        f"(medians); load average {load}"
    )
    total_pip = 0.0
    for label, times in pip_times.items():
        median = statistics.median(times)
        total_pip += median
        print(f"  pip download {label:32s} {median:7.2f} s  ({pip_files[label]} files)")
    closure = statistics.median(closure_times)
    mirror = statistics.median(mirror_times)
    print(f"  pip download, all 4 environments   {total_pip:7.2f} s")
    print(
        f"  headwater closure (--dry-run)       {closure:7.2f} s  = 1/{total_pip / closure:.1f} of pip"
    )
    print(
        f"  headwater mirror (closure + files)  {mirror:7.2f} s  = 1/{total_pip / mirror:.1f} of pip"
    )
    slowest_env = max(statistics.median(t) for t in pip_times.values())
    fastest_env = min(statistics.median(t) for t in pip_times.values())
    verdict = "OK" if closure <= total_pip / 5 else "MISSED"
    print(f"  target: closure <= 1/5 of pip for the 4 environments: {verdict}")
    print(
        f"  (against a single environment's pip download, {fastest_env:.2f}-{slowest_env:.2f} s: "
        f"1/{fastest_env / closure:.1f} to 1/{slowest_env / closure:.1f})"
    )
    print(summary)


if __name__ == "__main__":
    main()
