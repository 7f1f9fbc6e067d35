"""Running the real ``headwater serve`` (granian, worker processes) on a loopback port."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.nginx import free_port

HEADWATER = str(Path(sys.executable).with_name("headwater"))


@dataclass
class Live:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_live(
    url: str,
    process: subprocess.Popen[Any],
    output: Callable[[], str],
    *,
    timeout: float = 30,
    interval: float = 0.1,
    context: ssl.SSLContext | None = None,
    name: str = "headwater serve",
) -> None:
    """Wait until ``url + "/health/live"`` answers 200; fail with ``output()`` (the server's log)
    if ``process`` exits first or nothing answers within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited {process.returncode}:\n{output()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/health/live", timeout=1, context=context) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not start:\n{output()[-4000:]}")
        time.sleep(interval)


def stop_group(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to ``process``'s whole process group (granian's workers with it) and wait for
    it; SIGKILL the group if it has not exited after 15 seconds."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def serve(
    args: list[str],
    work: Path,
    *,
    env: dict[str, str] | None = None,
    port: int | None = None,
    context: ssl.SSLContext | None = None,
) -> Iterator[Live]:
    """``headwater serve ARGS --listen 127.0.0.1:<port>`` (a free port unless given); waits until
    it answers. With ``context`` (TLS: ``args`` name the certificate and key) the URL is https and
    the readiness probe trusts that context."""
    port = port if port is not None else free_port()
    log = work / f"serve-{port}.log"
    handle = log.open("w")
    process = subprocess.Popen(
        [HEADWATER, "serve", "--listen", f"127.0.0.1:{port}", *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=work,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    scheme = "https" if context is not None else "http"
    live = Live(f"{scheme}://127.0.0.1:{port}", process, log)
    try:
        wait_live(live.url, process, live.output, context=context)
        yield live
    finally:
        stop_group(process)
        handle.close()
