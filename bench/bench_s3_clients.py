"""S3 client benchmark: aiobotocore, obstore and botocore-in-a-thread against a real SeaweedFS.

What headwater's S3 storage needs from its client, measured on this machine:

``import``    seconds to import the client (median of 5 fresh interpreters): a CLI run pays it.
``small``     1 KiB PUT then GET, one at a time (median latency), and 2,000 PUT+GET pairs with
              32 in flight (operations per second, CPU seconds per 1,000 operations).
``get``       one 256 MiB object read as a stream (MB/s), chunks of 1 MiB.
``put``       a 1 GiB object written as a stream of 1 MiB chunks through a multipart upload
              (8 MiB parts, headwater's default): wall time and the growth of the process's peak RSS.

Each client runs each case in its own fresh process, so memory and warm-up do not leak between
them; the cases run interleaved (client order rotated per round) and medians over ``--rounds``
are reported. SeaweedFS is started by ``tests/seaweed.py`` (loopback, temp dir).

    (obstore is a dependency of the `s3` extra and of the test extra: no extra install)
    .venv/bin/python bench/bench_s3_clients.py [--rounds 3] [--cases import,small,get,put]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIENTS = ["aiobotocore", "obstore", "botocore-thread"]
IMPORTS = {
    "aiobotocore": "import aiobotocore.session",
    "obstore": "import obstore, obstore.store",
    "botocore-thread": "import botocore.session",
}
SMALL = b"x" * 1024
CHUNK = 1 << 20
PART = 8 << 20


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class _RssSampler:
    """The largest RSS of this process seen every 20 ms (a thread: it samples while the event
    loop or a worker thread allocates)."""

    def __init__(self) -> None:
        import threading

        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _rss())


# --- one client, one case, in this process -------------------------------------------------------


def _aiobotocore(env: dict[str, str]) -> Any:
    from headwater.storage.location import S3Location, S3Options
    from headwater.storage.s3 import S3Storage

    return S3Storage(
        S3Location(
            bucket=env["bucket"],
            options=S3Options(
                endpoint=env["endpoint"],
                addressing_style="path",
                access_key_id=env["key"],
                secret_access_key=env["secret"],
                allow_plaintext_secrets=True,
                part_size=PART,
            ),
        )
    )


def _obstore(env: dict[str, str]) -> Any:
    from obstore.store import S3Store

    return S3Store(
        env["bucket"],
        endpoint=env["endpoint"],
        access_key_id=env["key"],
        secret_access_key=env["secret"],
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True, "pool_max_idle_per_host": "64"},
    )


def _botocore(env: dict[str, str]) -> Any:
    import botocore.config
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=env["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=env["key"],
        aws_secret_access_key=env["secret"],
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            max_pool_connections=64,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class Ops:
    """put/get/stream/put_stream for one client, all async."""

    def __init__(self, client: str, env: dict[str, str]) -> None:
        self.kind = client
        self.env = env
        if client == "aiobotocore":
            self.s = _aiobotocore(env)
        elif client == "obstore":
            self.s = _obstore(env)
        else:
            self.s = _botocore(env)

    async def put(self, key: str, data: bytes) -> None:
        if self.kind == "aiobotocore":
            await self.s.write_bytes(key, data)
        elif self.kind == "obstore":
            import obstore

            await obstore.put_async(self.s, key, data)
        else:
            await asyncio.to_thread(
                self.s.put_object, Bucket=self.env["bucket"], Key=key, Body=data
            )

    async def get(self, key: str) -> bytes:
        if self.kind == "aiobotocore":
            return bytes(await self.s.read_bytes(key))
        if self.kind == "obstore":
            import obstore

            got = await obstore.get_async(self.s, key)
            return bytes(await got.bytes_async())

        def read() -> bytes:
            return bytes(self.s.get_object(Bucket=self.env["bucket"], Key=key)["Body"].read())

        return await asyncio.to_thread(read)

    async def stream(self, key: str) -> int:
        total = 0
        if self.kind == "aiobotocore":
            async for chunk in self.s.open_read(key, chunk_size=CHUNK):
                total += len(chunk)
        elif self.kind == "obstore":
            import obstore

            got = await obstore.get_async(self.s, key)
            async for chunk in got.stream(min_chunk_size=CHUNK):
                total += len(chunk)
        else:
            body = await asyncio.to_thread(
                lambda: self.s.get_object(Bucket=self.env["bucket"], Key=key)["Body"]
            )
            while chunk := await asyncio.to_thread(body.read, CHUNK):
                total += len(chunk)
        return total

    async def put_stream(self, key: str, size: int) -> None:
        block = os.urandom(CHUNK)
        if self.kind == "aiobotocore":
            async with self.s.writer(key) as w:
                for _ in range(size // CHUNK):
                    await w.write(block)
        elif self.kind == "obstore":
            import obstore

            async def chunks() -> Any:
                for _ in range(size // CHUNK):
                    yield block

            await obstore.put_async(
                self.s, key, chunks(), use_multipart=True, chunk_size=PART, max_concurrency=2
            )
        else:
            bucket = self.env["bucket"]

            def upload() -> None:
                started = self.s.create_multipart_upload(Bucket=bucket, Key=key)
                parts, buf = [], bytearray()
                for _ in range(size // CHUNK):
                    buf += block
                    if len(buf) >= PART:
                        n = len(parts) + 1
                        done = self.s.upload_part(
                            Bucket=bucket, Key=key, UploadId=started["UploadId"], PartNumber=n,
                            Body=bytes(buf),
                        )  # fmt: skip
                        parts.append({"ETag": done["ETag"], "PartNumber": n})
                        buf = bytearray()
                self.s.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=started["UploadId"],
                    MultipartUpload={"Parts": parts},
                )  # fmt: skip

            await asyncio.to_thread(upload)

    async def close(self) -> None:
        if self.kind == "aiobotocore":
            await self.s.aclose()


async def _case(client: str, case: str, env: dict[str, str]) -> dict[str, float]:
    ops = Ops(client, env)
    try:
        if case == "small":
            await ops.put("warm", SMALL)
            lat = []
            for i in range(200):
                t = time.perf_counter()
                await ops.put(f"s/{client}/{i}", SMALL)
                assert await ops.get(f"s/{client}/{i}") == SMALL
                lat.append(time.perf_counter() - t)
            sem = asyncio.Semaphore(32)

            async def pair(i: int) -> None:
                async with sem:
                    await ops.put(f"c/{client}/{i}", SMALL)
                    await ops.get(f"c/{client}/{i}")

            cpu, t = time.process_time(), time.perf_counter()
            await asyncio.gather(*(pair(i) for i in range(2000)))
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            return {
                "pair_latency_ms": statistics.median(lat) * 1000,
                "ops_per_s": 4000 / wall,
                "cpu_s_per_1000_ops": cpu / 4,
            }
        if case == "get":
            t = time.perf_counter()
            total = await ops.stream("big-256")
            return {"stream_get_MBps": total / (time.perf_counter() - t) / 1e6}
        if case == "put":
            await ops.put("warm", SMALL)  # the client's connections and lazy imports are set up
            before = _rss()
            sampler = _RssSampler()
            t = time.perf_counter()
            await ops.put_stream(f"gig-{client}", 1 << 30)
            wall = time.perf_counter() - t
            return {
                "put_1GiB_s": wall,
                "put_1GiB_rss_growth_MiB": (sampler.stop() - before) / (1 << 20),
            }
        raise ValueError(case)
    finally:
        await ops.close()


def _child() -> None:
    client, case, env = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    if client == "aiobotocore" or client == "botocore-thread":
        pass
    print(json.dumps(asyncio.run(_case(client, case, env))))


def _import_time(client: str) -> float:
    runs = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c",
             f"import time; t=time.perf_counter(); {IMPORTS[client]}; print(time.perf_counter()-t)"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        runs.append(float(out.stdout))
    return statistics.median(runs)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child()
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="import,small,get,put")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    cases = args.cases.split(",")
    from tests.seaweed import start_seaweed

    server = start_seaweed()
    try:
        client = server.client()
        client.create_bucket(Bucket="bench")
        if "get" in cases:
            client.put_object(Bucket="bench", Key="big-256", Body=os.urandom(256 << 20))
        env = {
            "endpoint": server.endpoint,
            "key": server.access_key,
            "secret": server.secret_key,
            "bucket": "bench",
        }
        results: dict[str, dict[str, list[float]]] = {c: {} for c in CLIENTS}
        for round_ in range(args.rounds):
            chosen = args.clients.split(",")
            order = chosen[round_ % len(chosen) :] + chosen[: round_ % len(chosen)]
            for case in cases:
                for name in order:
                    if case == "import":
                        got = {"import_s": _import_time(name)}
                    else:
                        out = subprocess.run(
                            [sys.executable, __file__, "--child", name, case, json.dumps(env)],
                            capture_output=True, text=True, check=False, cwd=ROOT,
                        )  # fmt: skip
                        if out.returncode != 0:
                            print(f"{name} {case} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                            continue
                        got = json.loads(out.stdout.strip().splitlines()[-1])
                    for key, value in got.items():
                        results[name].setdefault(key, []).append(value)
                    print(f"round {round_ + 1} {name:16} {case:7} {got}", flush=True)
        print()
        metrics = sorted({m for r in results.values() for m in r})
        print(f"{'metric':28}" + "".join(f"{c:>18}" for c in CLIENTS))
        for metric in metrics:
            row = [
                statistics.median(results[c][metric]) if results[c].get(metric) else float("nan")
                for c in CLIENTS
            ]
            print(f"{metric:28}" + "".join(f"{v:18.3f}" for v in row))
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(exist_ok=True)
        (out_dir / f"s3-clients-{int(time.time())}.json").write_text(json.dumps(results, indent=1))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
