"""Several real ``headwater serve`` nodes behind a real nginx, on one PostgreSQL and shared storage.

This is the scale-out topology of docs/scale-out.md, on loopback: each node is its own
``headwater serve`` process group with its own port and data directory (as separate machines
would have), all on one PostgreSQL database, all keeping hosted files and proxy caches in one
shared storage, and an nginx ``upstream`` balancing clients over them.

- **Database**: a fresh database (tests/postgres.py) reached through a :class:`TcpGate`, so a
  test can cut the nodes off PostgreSQL (and restore them) without stopping the machine's
  PostgreSQL, which other tests use.
- **Storage** (``storage=``): ``"directory"`` is one directory every node mounts at
  ``<data_dir>/hosted`` and ``<data_dir>/proxy`` (a shared file system, as NFS would give
  separate machines); ``"s3"`` is a SeaweedFS bucket named in the config (``[hosted.*]`` and
  ``[proxy.*]`` ``storage``), reached through a :class:`TcpGate` too. The tests are written
  against :class:`Cluster`'s methods only, so switching is this one parameter.
- **Balancer**: nginx with ``least_conn`` over the nodes; ``proxy_next_upstream error timeout``
  retries a request on the next node when a node refuses the connection or dies before
  answering. nginx never retries a POST by default (it may not be idempotent); uploads to
  headwater are (an identical re-upload is a no-op ``200``), so the upload locations add
  ``non_idempotent`` and nginx buffers the body (``proxy_request_buffering`` on, the default)
  so it can send it again.

Nodes are started together (they race to create the database's first admin, as a real
deployment's machines would). :meth:`Cluster.kill` sends SIGKILL to a node's whole process
group; :meth:`Cluster.start` starts it again on its port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from tests.nginx import Nginx, free_port, start_nginx
from tests.postgres import fresh_database
from tests.server.live import HEADWATER, stop_group, wait_live
from tests.tcp_gate import TcpGate

__all__ = ["Cluster", "Node", "StorageKind", "cluster", "nginx_site"]

StorageKind = Literal["directory", "s3"]
_START_TIMEOUT = 60.0


@dataclass
class Node:
    """One ``headwater serve`` (a process group): its port, data directory and log."""

    number: int
    port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def spool(self) -> Path:
        """Where this node streams upload bodies before accepting them (node-local scratch)."""
        return self.data_dir / "run" / "uploads"


def nginx_site(ports: list[int]) -> str:
    """The nginx ``http``-context config balancing over ``ports`` (``{port}``: nginx's own)."""
    servers = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in ports
    )
    common = (
        "        proxy_pass http://headwater_nodes;\n"
        "        proxy_http_version 1.1;\n"
        '        proxy_set_header Connection "";\n'
        "        proxy_set_header Host $http_host;\n"
        "        proxy_next_upstream_tries 3;\n"
        "        proxy_read_timeout 120s;\n"
    )
    return (
        "upstream headwater_nodes {\n"
        "    least_conn;\n"
        f"{servers}\n"
        "    keepalive 16;\n"
        "}\n"
        "server {\n"
        "    listen 127.0.0.1:{port};\n"
        "    client_max_body_size 0;\n"  # headwater enforces max_upload_size itself
        "    location / {\n"
        f"{common}"
        "        proxy_next_upstream error timeout;\n"
        "    }\n"
        # Uploads are idempotent in headwater: nginx may send one again to the next node.
        "    location ~ ^/([^/]+/)?legacy/?$ {\n"
        f"{common}"
        "        proxy_next_upstream error timeout non_idempotent;\n"
        "    }\n"
        "}\n"
    )


@dataclass
class Cluster:
    """N nodes, nginx in front, one database, one storage (see the module docstring)."""

    work: Path
    database: str
    db_gate: TcpGate
    config: Path
    storage: StorageKind
    nodes: list[Node]
    nginx: Nginx
    workers: int = 1
    #: Environment of the nodes and operator commands (the object store's credentials).
    env: dict[str, str] = field(default_factory=dict)
    #: The TCP gate in front of the object store (``storage="s3"``), to cut it.
    store_gate: TcpGate | None = None
    s3: S3Store | None = None
    admin: str = field(default="", init=False)

    @property
    def url(self) -> str:
        """The balancer's URL: what clients use."""
        return self.nginx.url

    def start(self, number: int) -> Node:
        """Start node ``number`` (not waiting for it: see :meth:`wait_ready`)."""
        node = self.nodes[number]
        assert not node.running, f"node {number} is running"
        handle = node.log.open("ab")
        command = [
            HEADWATER, "serve", "--config", str(self.config),
            "--data-dir", str(node.data_dir), "--database", self.database,
            "--listen", f"127.0.0.1:{node.port}", "--workers", str(self.workers),
        ]  # fmt: skip
        node.process = subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.work,
            env={**os.environ, **self.env, "HEADWATER_CONFIG": str(self.config)},
            start_new_session=True,
        )
        handle.close()
        return node

    def wait_ready(self, number: int, *, timeout: float = _START_TIMEOUT) -> None:
        """Wait until node ``number`` answers ``/health/live``; fail with its log if it exits."""
        node = self.nodes[number]
        assert node.process is not None
        wait_live(
            node.url, node.process, node.output, timeout=timeout, interval=0.05,
            name=f"node {number}",
        )  # fmt: skip

    def kill(self, number: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to node ``number``'s whole process group (SIGKILL: it dies at once,
        as a machine that loses power) and wait for it to exit."""
        node = self.nodes[number]
        if node.process is None:
            return
        stop_group(node.process, sig)
        if sig == signal.SIGKILL:
            # The worker processes are in the same group; make sure none survives.
            with_group_gone(node.process.pid)

    def stop_all(self) -> None:
        for node in self.nodes:
            self.kill(node.number, signal.SIGTERM)

    def headwater(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``headwater ARGS`` as an operator would on one of the machines (the cluster's
        config and database)."""
        done = subprocess.run(
            [HEADWATER, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.work,
            env={**os.environ, **self.env, "HEADWATER_CONFIG": str(self.config)},
        )
        if check:
            assert done.returncode == 0, f"headwater {' '.join(args)}\n{done.stdout}\n{done.stderr}"
        return done

    def admin_args(self) -> list[str]:
        """``--config``, ``--data-dir`` and ``--database`` of node 0, for operator commands."""
        return [
            "--config", str(self.config),
            "--data-dir", str(self.nodes[0].data_dir),
            "--database", self.database,
        ]  # fmt: skip

    def shared_root(self) -> Path:
        """The shared directory (``storage="directory"``)."""
        return self.work / "shared"

    def object_keys(self, kind: str, name: str) -> list[str]:
        """Every key stored by source ``name`` (``kind``: ``hosted`` or ``proxy``), in the
        shared storage, whichever it is."""
        if self.s3 is None:
            root = self.shared_root() / kind / name
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        prefix = f"{kind}/{name}/"
        keys: list[str] = []
        pages = self.s3.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.s3.bucket, Prefix=prefix):
            keys += [o["Key"].removeprefix(prefix) for o in page.get("Contents", [])]
        return sorted(keys)

    def object_bytes(self, kind: str, name: str, key: str) -> bytes | None:
        """The stored object ``key`` of source ``name``, or None when there is none."""
        if self.s3 is None:
            path = self.shared_root() / kind / name / key
            return path.read_bytes() if path.is_file() else None
        try:
            answer = self.s3.client.get_object(Bucket=self.s3.bucket, Key=f"{kind}/{name}/{key}")
        except self.s3.client.exceptions.NoSuchKey:
            return None
        return bytes(answer["Body"].read())


def with_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait until no process of group ``pgid`` is left (killing stragglers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _through(url: str, gate: TcpGate) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    auth = netloc[0] + "@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{auth}{gate.address}"))


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _config_text(
    hosted: dict[str, dict[str, object]],
    proxies: dict[str, dict[str, object]],
    storage_of: Callable[[str, str], dict[str, object]],
) -> str:
    """The cluster's config: each hosted index and proxy with its options and its storage
    (``storage_of(kind, name)``: the keys that put it in the shared storage)."""
    lines: list[str] = []
    for kind, tables in (("hosted", hosted), ("proxy", proxies)):
        for name, options in tables.items():
            lines.append(f"[{kind}.{name}]")
            for key, value in {**options, **storage_of(kind, name)}.items():
                if isinstance(value, dict):
                    inner = ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items())
                    lines.append(f"{key} = {{ {inner} }}")
                else:
                    lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
    return "\n".join(lines)


@contextmanager
def cluster(
    work: Path,
    *,
    nodes: int = 2,
    storage: StorageKind = "directory",
    workers: int = 1,
    hosted: dict[str, dict[str, object]] | None = None,
    proxies: dict[str, dict[str, object]] | None = None,
    s3_options: dict[str, object] | None = None,
) -> Iterator[Cluster]:
    """Start a cluster of ``nodes`` nodes (see the module docstring); stop everything after.

    ``hosted`` and ``proxies``: the ``[hosted.NAME]`` and ``[proxy.NAME]`` tables (options
    without storage: the harness adds the shared storage); default one hosted index ``main``.
    """
    hosted = {"main": {}} if hosted is None else hosted
    proxies = proxies or {}
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database())
        parts = urlsplit(url)
        gate = TcpGate((parts.hostname or "127.0.0.1", parts.port or 5432))
        stack.callback(gate.close)
        shared = work / "shared"
        env: dict[str, str] = {}
        store_gate: TcpGate | None = None
        s3: S3Store | None = None
        if storage == "s3":
            s3 = stack.enter_context(_s3_store())
            store_gate = TcpGate(s3.address)
            stack.callback(store_gate.close)
            env = s3.env
            gate_address = store_gate.address

            def storage_of(kind: str, name: str) -> dict[str, object]:
                return {
                    "storage": f"s3://{s3.bucket}/{kind}/{name}",  # type: ignore[union-attr]
                    "s3": {
                        "endpoint": f"http://{gate_address}",
                        "addressing_style": "path",
                        "region": s3.region,  # type: ignore[union-attr]
                        "read_timeout": 10,
                        "max_attempts": 2,
                        **(s3_options or {}),
                    },
                }

        else:

            def storage_of(kind: str, name: str) -> dict[str, object]:
                return {}  # <data_dir>/hosted and <data_dir>/proxy are the shared directory

        config = work / "headwater.toml"
        config.write_text(_config_text(hosted, proxies, storage_of), encoding="utf-8")
        members: list[Node] = []
        for number in range(nodes):
            data = work / f"node{number}"
            data.mkdir(parents=True)
            data.chmod(0o700)
            if storage == "directory":
                for kind in ("hosted", "proxy"):
                    (shared / kind).mkdir(parents=True, exist_ok=True)
                    (data / kind).symlink_to(shared / kind)
            members.append(Node(number, free_port(), data, work / f"node{number}.log"))
        site = nginx_site([m.port for m in members])
        # nginx needs the node ports only; it starts before the nodes (502 until they are up).
        balancer = start_nginx(work / "nginx", site)
        stack.callback(balancer.stop)
        group = Cluster(
            work=work,
            database=_through(url, gate),
            db_gate=gate,
            config=config,
            storage=storage,
            nodes=members,
            nginx=balancer,
            workers=workers,
            env=env,
            store_gate=store_gate,
            s3=s3,
        )
        stack.callback(group.stop_all)
        for member in members:
            group.start(member.number)
        for member in members:
            group.wait_ready(member.number)
        tokens = [
            m.data_dir / "admin-token" for m in members if (m.data_dir / "admin-token").exists()
        ]
        assert len(tokens) == 1, f"the first admin token was made {len(tokens)} times: {tokens}"
        group.admin = tokens[0].read_text().strip()
        yield group


@dataclass
class S3Store:
    """The bucket of an ``s3`` cluster on the test SeaweedFS, and how to reach it."""

    address: tuple[str, int]
    bucket: str
    region: str
    env: dict[str, str]
    client: Any


@contextmanager
def _s3_store() -> Iterator[S3Store]:
    from tests.seaweed import fresh_bucket, seaweed_server  # with the s3 storage (issue 11 §1)

    server = seaweed_server()
    endpoint = urlsplit(server.endpoint)
    with fresh_bucket(server) as bucket:
        yield S3Store(
            address=(endpoint.hostname or "127.0.0.1", endpoint.port or 80),
            bucket=bucket,
            region=server.region,
            env=server.env(),
            client=server.client(),
        )
