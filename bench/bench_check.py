"""``headwater check`` of 500 requirements against 3 indexes on loopback (issue 5: <= 5 s).

Three test upstreams (:class:`headwater.testing.upstream.Upstream`, each in its own thread and
event loop) play "private", "public" and "extra": of the 500 names, the private index serves 200,
the public one 400 (100 of them also private: confusion, half of those with a higher public
version), the extra one 50 (all also public: confusion). The real CLI runs as a subprocess::

    headwater check reqs.txt --index-url PRIVATE --extra-index-url PUBLIC \\
        --extra-index-url EXTRA --public PUBLIC --format json

so every name is fetched from all three indexes (1,500 project pages, plus nothing else: the
public index is in use). One warm-up run (the upstreams render and cache their pages), then RUNS
timed runs; the median wall time is compared with the target. The process environment carries no
pip/uv configuration (PIP_CONFIG_FILE=/dev/null, UV_NO_CONFIG=1), so only the given indexes count.

    .venv/bin/python bench/bench_check.py [--runs 5] [--names 500] [--config]

With ``--config`` the same three upstreams become ``[proxy.NAME]`` sources of one headwater
``[index.main]`` under the ``pep708`` policy (which consults every source for every name) with
``ttl = 0`` (every page revalidated upstream on every run, as the plain check fetches it), and
the check runs in process on that configuration::

    headwater check reqs.txt --config headwater.toml --public PUBLIC --format json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream

TARGET_S = 5.0
SCRIPT = Path(sys.executable).with_name("headwater")


def _corpora(names: int) -> tuple[Corpus, Corpus, Corpus, list[str]]:
    private, public, extra = (Corpus(releases=1, files=2) for _ in range(3))
    wanted = [f"bench-project-{i:04d}" for i in range(names)]
    for i, name in enumerate(wanted):
        share = i / names
        if share < 0.4:  # 40%: private ...
            private.add_release(name, "1.0")
        if 0.2 <= share < 1.0:  # ... 80%: public; 20% on both (confusion)
            public.add_release(name, "2.0" if i % 2 else "0.9")
        if 0.85 <= share < 0.95:  # 10%: extra, all of them also public
            extra.add_release(name, "1.5")
    return private, public, extra, wanted


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", HOME=str(home), NO_COLOR="1")
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--names", type=int, default=500)
    parser.add_argument(
        "--config", action="store_true", help="check a headwater configuration's index instead"
    )
    args = parser.parse_args()
    private, public, extra, wanted = _corpora(args.names)
    with contextlib.ExitStack() as stack:
        up_private = stack.enter_context(Upstream(private).running())
        up_public = stack.enter_context(Upstream(public).running())
        up_extra = stack.enter_context(Upstream(extra).running())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-check-")))
        (work / "reqs.txt").write_text("".join(f"{name}>=0.1\n" for name in wanted))
        command = [
            str(SCRIPT), "check", "reqs.txt",
            "--index-url", up_private.simple_url,
            "--extra-index-url", up_public.simple_url,
            "--extra-index-url", up_extra.simple_url,
            "--public", up_public.simple_url,
            "--format", "json",
        ]  # fmt: skip
        if args.config:
            proxies = (("private", up_private), ("public", up_public), ("extra", up_extra))
            (work / "headwater.toml").write_text(
                f'[serve]\ndata_dir = "{work / "data"}"\n'
                + "".join(
                    f'[proxy.{name}]\nurl = "{up.simple_url}"\nttl = 0\n' for name, up in proxies
                )
                + '[index.main]\nsources = ["private", "public", "extra"]\npolicy = "pep708"\n'
            )
            command = [
                str(SCRIPT), "check", "reqs.txt", "--config", "headwater.toml",
                "--public", up_public.simple_url, "--format", "json",
            ]  # fmt: skip
        times: list[float] = []
        summary: dict[str, object] = {}
        for run in range(args.runs + 1):
            for up in (up_private, up_public, up_extra):
                up.reset_stats()
            start = time.perf_counter()
            result = subprocess.run(
                command, cwd=work, env=_env(work), capture_output=True, text=True, check=False
            )
            elapsed = time.perf_counter() - start
            if result.returncode not in (0, 1):
                print(result.stderr, file=sys.stderr)
                return 2
            try:
                summary = json.loads(result.stdout)["summary"]
            except ValueError:
                print(f"unreadable JSON ({len(result.stdout)} characters):\n{result.stderr}")
                return 2
            requests = sum(sum(up.stats.values()) for up in (up_private, up_public, up_extra))
            label = "warm-up" if run == 0 else f"run {run}"
            print(f"{label}: {elapsed:.2f} s, {requests} page requests, exit {result.returncode}")
            if run:
                times.append(elapsed)
    median = statistics.median(times)
    load = os.getloadavg()[0]
    print(f"findings: {summary}")
    print(
        f"headwater check{' --config' if args.config else ''}, {args.names} requirements x 3 "
        f"{'sources' if args.config else 'indexes'}: median {median:.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs; load average {load:.2f})"
    )
    verdict = "OK" if median <= TARGET_S else "MISSED"
    print(f"{verdict}: target <= {TARGET_S:.0f} s")
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
