"""Running the real ``headwater serve`` (granian, worker processes) on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.nginx import free_port

HEADWATER = str(Path(sys.executable).with_name("headwater"))


@dataclass
class Live:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(
    args: list[str], work: Path, *, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[Live]:
    """``headwater serve ARGS --listen 127.0.0.1:<port>`` (a free port unless given); waits until
    it answers."""
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
    live = Live(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"headwater serve exited {process.returncode}:\n{live.output()}"
                )
            try:
                with urllib.request.urlopen(live.url + "/health/live", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"headwater serve did not start:\n{live.output()}")
            time.sleep(0.1)
        yield live
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        handle.close()
