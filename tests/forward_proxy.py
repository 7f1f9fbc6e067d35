"""A real forward proxy for tests: Debian's tinyproxy on a free loopback port, configured in a temp
directory (no system service). scripts/setup-system installs it; where it is missing the tests
skip, except in CI (``CI=true``), where a missing proxy is a failure, never a silent pass.

tinyproxy 1.11 speaks both halves of a forward proxy: absolute-form requests for ``http://``
origins and CONNECT tunnels for ``https://`` ones (every port allowed when no ``ConnectPort`` is
configured), with ``BasicAuth`` for proxy credentials (407 otherwise).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["ForwardProxy", "forward_proxy", "tinyproxy_binary"]


def tinyproxy_binary() -> str:
    """The tinyproxy executable; skips the test where it is absent, fails in CI."""
    found = shutil.which("tinyproxy") or (
        "/usr/bin/tinyproxy" if Path("/usr/bin/tinyproxy").exists() else None
    )
    if found is None:
        message = "tinyproxy is not installed (scripts/setup-system installs it)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message + "; CI must run every test")
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ForwardProxy:
    """A running tinyproxy: its URL (with the credentials, when it requires some)."""

    host: str
    port: int
    log: Path
    user: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """``http://host:port``, without credentials."""
        return f"http://{self.host}:{self.port}"

    @property
    def url_with_credentials(self) -> str:
        """``http://user:password@host:port`` (the plain URL when it needs none)."""
        if self.user is None:
            return self.url
        return f"http://{self.user}:{self.password}@{self.host}:{self.port}"

    def requests_seen(self) -> str:
        """The proxy's log so far (it names every CONNECT and forwarded request)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def forward_proxy(
    directory: Path,
    *,
    user: str | None = None,
    password: str | None = None,
    connect_ports: tuple[int, ...] = (),
) -> Iterator[ForwardProxy]:
    """Run tinyproxy on a free loopback port until the block ends; with ``user`` and
    ``password`` it answers 407 to requests without them; with ``connect_ports`` it refuses
    (403) a CONNECT to any other port, as squid's default ``SSL_ports`` rule does."""
    binary = tinyproxy_binary()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "tinyproxy.log"
    for _ in range(5):  # the free port may be taken between the probe and tinyproxy's bind
        port = _free_port()
        lines = [
            f"Port {port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            "MaxClients 100",
            "LogLevel Info",
            f'LogFile "{log}"',
            f'PidFile "{directory / "tinyproxy.pid"}"',
            "DisableViaHeader Yes",
        ]
        if user is not None:
            lines.append(f"BasicAuth {user} {password}")
        lines.extend(f"ConnectPort {port}" for port in connect_ports)
        config = directory / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        process = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                ready = True
                break
            time.sleep(0.02)
        if ready:
            break
        process.kill()
        _, err = process.communicate(timeout=5)
        last_error = err.decode(errors="replace")
    else:
        pytest.fail(f"tinyproxy did not start: {last_error}")
    try:
        yield ForwardProxy("127.0.0.1", port, log, user, password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
