"""``headwater mirror`` straight into an S3 bucket (a real SeaweedFS): the bandersnatch layout
with a Content-Type on each object, incremental runs and deletions, ``verify --repair``, and crash
safety without rename: SIGKILL at several points, then every page in the bucket points only at
objects that are there with the promised sha256, and a rerun completes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from posixpath import normpath
from typing import Any

from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.storage.s3 import S3Storage
from headwater.sync.verify import verify_tree
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.seaweed import SeaweedServer, s3_location

HEADWATER = str(Path(sys.executable).with_name("headwater"))


class Bucket:
    """Read a mirror's objects straight from the bucket, as a static website endpoint would."""

    def __init__(self, seaweed: SeaweedServer, bucket: str, prefix: str) -> None:
        self.client = seaweed.client()
        self.bucket = bucket
        self.prefix = prefix

    def listing(self) -> set[str]:
        found: set[str] = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            found.update(o["Key"][len(self.prefix) :] for o in page.get("Contents", []))
        return found

    def read(self, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)[
            "Body"
        ].read()
        return data

    def head(self, key: str) -> dict[str, Any]:
        head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        return head

    def mtime(self, key: str) -> float:
        try:
            return float(self.head(key)["LastModified"].timestamp())
        except self.client.exceptions.ClientError:
            return 0.0


def assert_consistent(bucket: Bucket) -> dict[str, list[str]]:
    """The invariant a reader of the bucket relies on at any instant: every page points only at
    objects present with the promised sha256, and the root lists only pages present."""
    keys = bucket.listing()
    result: dict[str, list[str]] = {}
    for key in sorted(k for k in keys if k.endswith("/index.v1_json") and k.count("/") == 3):
        page = parse_project_page_json(bucket.read(key))
        directory = key.rsplit("/", 1)[0]
        for fmt in ("index.html", "index.v1_html"):
            assert f"{directory}/{fmt}" in keys, f"{directory}: {fmt} missing"
        for file in page.files:
            file_key = normpath(f"{directory}/{file.url}")
            assert file_key in keys, f"{page.name} points at missing {file.filename}"
            assert hashlib.sha256(bucket.read(file_key)).hexdigest() == file.hashes["sha256"]
            if isinstance(file.core_metadata, dict):
                assert file_key + ".metadata" in keys
        result[str(page.name)] = sorted(f.filename for f in page.files)
    if "web/simple/index.v1_json" in keys:
        listing = parse_project_list_json(bucket.read("web/simple/index.v1_json"))
        for entry in listing.projects:
            assert f"web/simple/{entry.normalized}/index.v1_json" in keys, entry.name
    return result


def _mirror(up: Upstream, url: str, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [HEADWATER, "mirror", "--upstream", up.simple_url, "--target", url, "--quiet", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _env(seaweed: SeaweedServer, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        **seaweed.env(),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }


def test_mirror_into_a_bucket_incremental_deletions_and_content_types(
    seaweed: SeaweedServer, s3_bucket: str, tmp_path: Path
) -> None:
    corpus = Corpus.generate(8, releases=2, files=1, seed=5)
    url = f"s3://{s3_bucket}/pypi?endpoint={seaweed.endpoint}&addressing_style=path"
    bucket = Bucket(seaweed, s3_bucket, "pypi/")
    env = _env(seaweed, tmp_path)
    with Upstream(corpus).running() as up:
        status, err = _finish(_mirror(up, url, env))
        assert status == 0, err
        tree = assert_consistent(bucket)
        assert len(tree) == 8
        types = {
            "web/simple/index.v1_json": "application/vnd.pypi.simple.v1+json",
            "web/simple/index.html": "text/html; charset=utf-8",
            "web/simple/index.v1_html": "application/vnd.pypi.simple.v1+html",
        }
        for key, expected in types.items():
            assert bucket.head(key)["ContentType"] == expected
        wheel = next(k for k in bucket.listing() if k.endswith(".whl"))
        assert bucket.head(wheel)["ContentType"] == "application/octet-stream"
        assert bucket.head(wheel + ".metadata")["ContentType"].startswith("text/plain")
        assert "state/.lock" not in bucket.listing()  # the lease is released

        names = [e.normalized for e in corpus.project_list().projects]
        corpus.delete_project(names[0])
        corpus.add_release(names[1], "9.0")
        status, err = _finish(_mirror(up, url, env))
        assert status == 0, err
        tree = assert_consistent(bucket)
        assert names[0] not in tree and any("9.0" in f for f in tree[names[1]])
        assert not [k for k in bucket.listing() if k.startswith(f"web/simple/{names[0]}/")]

        # verify --repair on a bucket: a corrupted file is found, deleted and fetched again.
        victim = next(k for k in bucket.listing() if k.endswith(".whl"))
        bucket.client.put_object(Bucket=s3_bucket, Key="pypi/" + victim, Body=b"rotten")
        done = subprocess.run(
            [HEADWATER, "verify", "--target", url, "--upstream", up.simple_url],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 1 and "corrupt" in done.stdout, done.stdout + done.stderr
        done = subprocess.run(
            [HEADWATER, "verify", "--target", url, "--upstream", up.simple_url, "--repair"],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert assert_consistent(bucket) == tree
        assert seaweed.secret_key not in done.stdout + done.stderr


def test_a_second_mirror_of_the_same_prefix_is_refused(
    seaweed: SeaweedServer, s3_bucket: str
) -> None:
    storage = S3Storage(s3_location(seaweed, s3_bucket, "p/"))

    async def go() -> str:
        try:
            async with storage.exclusive():
                other = S3Storage(s3_location(seaweed, s3_bucket, "p/"))
                try:
                    async with other.exclusive(name="state/.lock"):
                        raise AssertionError("two holders")
                except Exception as exc:  # the message is the point
                    return str(exc)
                finally:
                    await other.aclose()
        finally:
            await storage.aclose()

    message = asyncio.run(go())
    # Same host and a live pid: refused, naming the holder.
    assert f"pid {os.getpid()}" in message and "wait for it to finish" in message


def test_sigkill_at_several_points_never_breaks_the_bucket(
    seaweed: SeaweedServer, s3_bucket: str, tmp_path: Path
) -> None:
    rng = random.Random(20261202)
    corpus = Corpus.generate(60, releases=2, files=1, seed=9)
    url = f"s3://{s3_bucket}/tree?endpoint={seaweed.endpoint}&addressing_style=path"
    bucket = Bucket(seaweed, s3_bucket, "tree/")
    env = _env(seaweed, tmp_path)
    kills = 0
    with Upstream(corpus).running() as up:
        # Every download slow enough that a run outlives the kill's random delay below: the
        # mirror's own requests are fast (obstore, pages written together), so the upstream sets
        # the pace, as PyPI does. Killed runs still land in downloads, page writes and journal
        # flushes (the committer publishes while other projects download).
        up.add_fault("delay", "/packages/*", delay=0.6, rate=1.0, seed=1)
        up.add_fault("delay", "/simple/*/", delay=0.03, rate=0.5, seed=2)
        names = [e.normalized for e in corpus.project_list().projects]
        for round_ in range(6):
            if round_:  # the upstream changes between runs: every run has work, deletions too
                victim = rng.choice(names)
                if corpus.get(victim) is not None:
                    corpus.delete_project(victim)
                for name in rng.sample(names, 12):
                    if corpus.get(name) is not None:
                        corpus.add_release(name, f"50.{round_}")
            started = time.time() - 1  # S3 mtimes have whole seconds
            proc = _mirror(up, url, env, "--workers", "4")
            if round_ % 3 == 2:
                time.sleep(rng.uniform(0.5, 2.0))  # early: while it plans or takes the lease
            else:
                deadline = time.time() + 60
                while proc.poll() is None and time.time() < deadline:
                    if bucket.mtime("state/in-progress") >= started:
                        break
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 1.5))  # in downloads, pages, root or deletions
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            _finish(proc, 30)
            assert_consistent(bucket)
        assert kills >= 4, f"only {kills} of 6 runs were killed: the kills tested too little"
        status, err = _finish(_mirror(up, url, env), 600)
        assert status == 0, err
    tree = assert_consistent(bucket)
    expected = {
        e.normalized: sorted(f.filename for f in corpus.get(e.normalized).files())  # type: ignore[union-attr]
        for e in corpus.project_list().projects
    }
    assert tree == expected
    storage = S3Storage(s3_location(seaweed, s3_bucket, "tree/"))

    async def check() -> Any:
        try:
            return await verify_tree(storage)
        finally:
            await storage.aclose()

    report = asyncio.run(check())
    assert not [p for p in report.problems if p.kind in ("missing", "corrupt")], report
