"""Mirror into a bucket: ``headwater mirror`` vs bandersnatch 8.2 with its S3 storage backend,
both writing into the same SeaweedFS, same upstream, same run.

N one-file projects (``headwater test-upstream --projects N --releases 1 --files 1``), a full
sync into a fresh prefix per run. Both tools write the same objects: simple pages in HTML,
v1 HTML and v1 JSON, the files and their PEP 658 ``.metadata``. The upstream and SeaweedFS run
pinned to core 0, the mirror being measured to core 1 (``taskset``), as in bench_mirror.py.
One discarded warm-up run per tool, then ``--runs`` measured runs alternating which tool goes
first; the medians are compared (target: headwater <= 1/5 of bandersnatch's wall time).

    bench/bandersnatch-setup.sh && \\
        bench/.bandersnatch-venv/bin/python -m pip install --isolated 'bandersnatch[s3]==8.2.*'
    .venv/bin/python bench/bench_mirror_s3.py [--projects 2000] [--runs 3] [--workers 10]
        [--warmups 1] [--warmup-tools headwater] [--tools headwater,bandersnatch] [--profile DIR]

``--warmup-tools headwater`` warms the upstream's caches with a headwater run alone (a
bandersnatch warm-up of 2,000 projects costs half an hour here); ``--tools headwater`` measures
one tool alone while optimising; ``--profile DIR`` records each headwater run with py-spy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_mirror as bm  # noqa: E402 - the shared upstream and measurement of bench_mirror.py


def _count(server: Any, bucket: str, prefix: str) -> dict[str, int]:
    counts = {"files": 0, "metadata": 0, "json_pages": 0}
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"][len(prefix) :]
            if key.startswith("web/packages/"):
                counts["metadata" if key.endswith(".metadata") else "files"] += 1
            elif key.startswith("web/simple/") and key.endswith("/index.v1_json"):
                counts["json_pages"] += key.count("/") == 3
    return counts


def headwater_cmd(
    up: bm.Upstream, server: Any, bucket: str, prefix: str, workers: int
) -> list[str]:
    url = f"s3://{bucket}/{prefix}?endpoint={server.endpoint}&addressing_style=path"
    return [str(bm.HEADWATER), "mirror", "--upstream", f"{up.url}/simple/", "--target", url,
            "--quiet", "--workers", str(workers)]  # fmt: skip


def bandersnatch_cmd(
    up: bm.Upstream, server: Any, bucket: str, prefix: str, workers: int, work: Path
) -> list[str]:
    conf = work / f"{prefix}.conf"
    conf.write_text(
        "[mirror]\n"
        f"directory = /{bucket}/{prefix}\n"
        f"master = {up.url}\n"
        "allow-non-https = true\n"
        f"workers = {workers}\n"
        "json = false\n"
        "release-files = true\n"
        "core-metadata = true\n"
        "simple-format = ALL\n"
        "hash-index = false\n"
        "stop-on-error = false\n"
        "storage-backend = s3\n"
        "timeout = 60\n"
        "global-timeout = 18000\n"
        "\n[s3]\n"
        "region_name = us-east-1\n"
        f"endpoint_url = {server.endpoint}\n"
        f"aws_access_key_id = {server.access_key}\n"
        f"aws_secret_access_key = {server.secret_key}\n"
        "signature_version = s3v4\n"
    )
    return [str(bm.BANDERSNATCH), "-c", str(conf), "mirror"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--warmups", type=int, default=1, help="discarded warm-up rounds")
    parser.add_argument(
        "--tools",
        default="headwater,bandersnatch",
        help="comma-separated: headwater, bandersnatch (one alone to iterate)",
    )
    parser.add_argument(
        "--warmup-tools",
        default=None,
        help="the tools of the warm-up rounds (default: --tools); one tool's "
        "warm-up fills the upstream's page and file caches for both",
    )
    parser.add_argument(
        "--base-src",
        metavar="DIR",
        help="also measure tool 'headwater-base': headwater run from the sources "
        "in DIR (e.g. `git archive main src | tar -x -C DIR`, then DIR/src)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record each headwater run with py-spy (speedscope JSON in DIR)",
    )
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    warmup_tools = [t for t in (args.warmup_tools or args.tools).split(",") if t]
    if args.base_src:
        tools.append("headwater-base")
    from tests.seaweed import start_seaweed

    server = start_seaweed()
    assert server.process is not None
    subprocess.run(["taskset", "-a", "-p", "-c", bm.UPSTREAM_CORE, str(server.process.pid)],
                   check=True, capture_output=True)  # fmt: skip
    os.environ.update(server.env())  # headwater's credentials: the standard AWS variables
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-mirror-s3-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    bucket = "bench-mirror"
    server.client().create_bucket(Bucket=bucket)
    up = bm.Upstream(args.projects, metadata_only=False)
    results: dict[str, list[bm.Run]] = {"headwater": [], "headwater-base": [], "bandersnatch": []}
    try:
        for round_ in range(args.runs + args.warmups):  # the first --warmups are discarded
            order = ["headwater", "headwater-base", "bandersnatch"]
            if not round_ % 2:
                order.reverse()
            measured = round_ >= args.warmups
            for tool in (t for t in order if t in (tools if measured else warmup_tools)):
                prefix = f"{tool}-{round_}"
                if tool == "headwater-base":
                    cmd = ["env", f"PYTHONPATH={args.base_src}",
                           *headwater_cmd(up, server, bucket, prefix, args.workers)]  # fmt: skip
                elif tool == "headwater":
                    cmd = headwater_cmd(up, server, bucket, prefix, args.workers)
                    if args.profile:
                        Path(args.profile).mkdir(parents=True, exist_ok=True)
                        out = Path(args.profile) / f"{prefix}.speedscope.json"
                        cmd = [str(HERE.parent / ".venv/bin/py-spy"), "record", "-f",
                               "speedscope", "-r", "50", "-o", str(out), "--", *cmd]  # fmt: skip
                else:
                    cmd = bandersnatch_cmd(up, server, bucket, prefix, args.workers, work)
                run = bm.measure(cmd)
                run.counts = _count(server, bucket, prefix + "/")
                label = f"run {round_ - args.warmups + 1}" if measured else "warm-up"
                print(f"{label:8} {tool:13} {run.seconds:8.2f} s  status {run.status}  "
                      f"cpu {run.user_s + run.sys_s:.1f} s  "
                      f"maxrss {run.maxrss_mb:.0f} MB  {run.counts}", flush=True)  # fmt: skip
                if run.status != 0:
                    print(run.output, file=sys.stderr)
                if measured:
                    results[tool].append(run)
    finally:
        up.stop()
        server.stop()
    bm.RESULTS.mkdir(exist_ok=True)
    out = bm.RESULTS / f"mirror-s3-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({k: [vars(r) for r in v] for k, v in results.items()}, indent=1))
    print(f"written {out}")
    medians = {t: statistics.median(r.seconds for r in rs) for t, rs in results.items() if rs}
    for tool, seconds in medians.items():
        print(f"median wall time {tool}: {seconds:.2f} s")
    if "headwater-base" in medians and "headwater" in medians:
        print(f"headwater / headwater-base: {medians['headwater'] / medians['headwater-base']:.3f}")
    if "bandersnatch" not in medians or "headwater" not in medians:
        return
    hw, bs = medians["headwater"], medians["bandersnatch"]
    print(f"\nmedian wall time: headwater {hw:.2f} s, bandersnatch {bs:.2f} s, ratio {hw / bs:.3f} "
          f"(target <= 0.2: {'PASS' if hw <= 0.2 * bs else 'MISS'})")  # fmt: skip


if __name__ == "__main__":
    main()
