"""A real nginx on a loopback port, for end-to-end tests.

:func:`start_nginx` writes a private ``nginx.conf`` (pid, logs and temp paths in its own directory)
around the ``http``-context text a test gives it (e.g. ``headwater nginx-config`` output), checks it
with ``nginx -t`` (warnings fail too), starts nginx in the foreground on a free port and waits until
it accepts connections. :class:`Nginx` stops it. The access log records what clients asked for::

    <method> <uri> <status> "<content type>" "<accept>" "<user agent>"

If nginx is not installed, :func:`require_nginx` FAILS the test (never skips): the suite needs it,
and ``scripts/setup-system`` installs it. ``nginx_factory`` is a pytest fixture that starts any
number of servers and stops them after the test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "ACCESS_LOG_FORMAT",
    "Nginx",
    "NginxStartError",
    "free_port",
    "nginx_factory",
    "require_nginx",
    "start_nginx",
]

#: The access log line: what was asked, what was answered, by whom.
ACCESS_LOG_FORMAT = '$request_method $request_uri $status "$sent_http_content_type" "$http_accept" "$http_user_agent"'
PORT_PLACEHOLDER = "{port}"
_START_TIMEOUT = 10.0


class NginxStartError(RuntimeError):
    """nginx refused the config or did not start; the message carries its error log."""


def require_nginx() -> str:
    """The nginx executable; fails the calling test (never skips) when nginx is not installed."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            "nginx is not installed, and the end-to-end tests need a real nginx: run "
            "scripts/setup-system (as root, or with sudo) and run the tests again",
            pytrace=False,
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Nginx:
    """A running nginx: where it listens, where its logs are, how to stop it."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    def access_lines(self) -> list[str]:
        """The access log so far (nginx writes each line when the request ends)."""
        if not self.access_log.exists():
            return []
        return self.access_log.read_text(encoding="utf-8", errors="replace").splitlines()

    def stop(self) -> None:
        """Stop nginx gracefully (SIGQUIT), or kill it after 10 s; idempotent."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _main_config(directory: Path) -> str:
    # Started as root, the workers would drop to "nobody" and could not read pytest's 0700
    # temporary directories; run them as the current user instead.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {directory / ('tmp_' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "daemon off;\n"
        "master_process on;\n"
        "worker_processes 1;\n"
        f"{user}"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    log_format headwater_test '{ACCESS_LOG_FORMAT}';\n"
        f"    access_log {directory / 'access.log'} headwater_test;\n"
        f"{temp}\n"
        f"    include {directory / 'site.conf'};\n"
        "}\n"
    )


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            if process.poll() is not None:
                return False
            time.sleep(0.02)
    return False


def start_nginx(directory: Path, http_text: Callable[[int], str] | str) -> Nginx:
    """Start nginx with ``http_text`` in its ``http`` context; return once it accepts connections.

    ``http_text`` is the site config, either a function of the port or a string in which
    ``{port}`` stands for it; it must listen on ``127.0.0.1:<port>``. Everything nginx writes goes
    to ``directory``. A port taken between choosing and binding is retried with another.

    Raises:
        NginxStartError: ``nginx -t`` refused the config (or warned), or nginx did not start.
    """
    nginx = require_nginx()
    directory.mkdir(parents=True, exist_ok=True)
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / f"tmp_{kind}").mkdir(exist_ok=True)
    conf = directory / "nginx.conf"
    last_log = ""
    for _attempt in range(3):
        port = free_port()
        site = (
            http_text(port)
            if callable(http_text)
            else http_text.replace(PORT_PLACEHOLDER, str(port))
        )
        (directory / "site.conf").write_text(site, encoding="utf-8")
        conf.write_text(_main_config(directory), encoding="utf-8")
        base = [nginx, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
        check = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True, check=False)
        if check.returncode != 0 or "[warn]" in check.stderr or "[emerg]" in check.stderr:
            raise NginxStartError(
                f"nginx -t refused the config:\n{check.stderr}\n--- config:\n{site}"
            )
        process = subprocess.Popen([*base], stdin=subprocess.DEVNULL)
        if _wait_ready(process, port):
            return Nginx(process=process, port=port, directory=directory)
        if process.poll() is None:
            process.kill()
        process.wait(10)
        log = directory / "error.log"
        last_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        if "Address already in use" not in last_log:
            break
    raise NginxStartError(f"nginx did not start; its error log ends with:\n{last_log}")


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator[Callable[[Callable[[int], str] | str], Nginx]]:
    """Start nginx servers with a given site config (see :func:`start_nginx`); stop them after."""
    started: list[Nginx] = []

    def start(http_text: Callable[[int], str] | str) -> Nginx:
        server = start_nginx(tmp_path / f"nginx-{len(started)}", http_text)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
