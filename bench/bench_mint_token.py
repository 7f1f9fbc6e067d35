"""Trusted publishing benchmark (issue 12): ``POST /_/oidc/mint-token`` requests/s on one worker.

Starts an OIDC issuer on loopback (a real RSA key; its discovery document and JWKS), and
``headwater serve --workers 1`` on embedded defaults (SQLite) with a pending trusted publisher for
that issuer in ``[[hosted.main.publishers]]``. It signs ``--tokens`` distinct OIDC tokens (each its
own ``jti``, so no request is a replay) before timing, makes one exchange to warm the JWKS cache,
then has wrk POST the tokens, each once, with ``--connections`` connections for ``--duration``
seconds per run. Every request is a full mint: body parse, signature check with the cached key,
the publisher lookup and claim match, and one write transaction (the ``jti`` insert, the minted
token's row). Non-200 answers are counted and must be 0; the number of minted tokens in the
database is printed beside the 200s wrk saw. The server's CPU time per request (user + system
of its processes, from /proc) is printed too: on a machine shared with other work it says what
one dedicated core would sustain, where requests/s says what this run got.

    .venv/bin/python bench/bench_mint_token.py [--runs 3] [--duration 10] [--connections 16]

Needs wrk (``apt-get install -y wrk``). Target: >= 500 requests/s (median of the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

HEADWATER = str(Path(sys.executable).with_name("headwater"))
AUDIENCE = "bench-audience"
TARGET = 500.0

LUA = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local i = %(start)d
request = function()
  i = i + 1
  local body = '{"token": "' .. tokens[i] .. '"}'
  return wrk.format("POST", "/_/oidc/mint-token", {["Content-Type"] = "application/json"}, body)
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Issuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid="bench", alg="RS256", use="sig")
        issuer = self
        self.jwks = {"keys": [public]}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                else:
                    body = issuer.jwks
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url, "aud": AUDIENCE, "sub": "bench", "jti": uuid.uuid4().hex,
            "iat": now, "nbf": now, "exp": now + 3600,
        }  # fmt: skip
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "bench"})


def _mint_once(url: str, token: str) -> int:
    request = urllib.request.Request(
        url + "/_/oidc/mint-token",
        data=json.dumps({"token": token}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return int(answer.status)


def _wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def latency(pct: str) -> float:
        match = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        if match is None:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rps,
        "requests": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": 1 if errors else 0,
        "p50": latency("50"),
        "p99": latency("99"),
    }


def _group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by every process of process group ``pgid``
    (the server's main process and its worker)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid pgrp ... utime (field 14) stime (15), 1-based overall.
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=0, help="default: 1500 per second of runs")
    args = parser.parse_args()
    count = args.tokens or 1500 * args.duration * args.runs + 100
    issuer = Issuer()
    with tempfile.TemporaryDirectory(prefix="bench-mint-") as tmp:
        work = Path(tmp)
        config = work / "headwater.toml"
        config.write_text(
            f'[serve]\noidc_audience = "{AUDIENCE}"\n\n[hosted.main]\n\n'
            '[[hosted.main.publishers]]\nproject = "bench-project"\n'
            f'oidc = {{ issuer = "{issuer.url}", claims = {{ sub = "bench" }} }}\n'
        )
        print(f"signing {count} OIDC tokens ...", file=sys.stderr)
        tokens = work / "tokens.txt"
        tokens.write_text("\n".join(issuer.token() for _ in range(count)) + "\n")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = (work / "serve.log").open("w")
        server = subprocess.Popen(
            [HEADWATER, "serve", "--config", str(config), "--data-dir", str(work / "data"),
             "--listen", f"127.0.0.1:{port}", "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(url + "/health/ready", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print((work / "serve.log").read_text(), file=sys.stderr)
                    return 2
                time.sleep(0.2)
            # Warm the JWKS cache (and check the exchange works at all).
            assert _mint_once(url, issuer.token()) == 200
            results = []
            used = 0
            for run in range(args.runs):
                script = work / f"run{run}.lua"
                script.write_text(LUA % {"tokens": tokens, "start": used})
                cpu_before = _group_cpu(server.pid)
                result = _wrk(url, script, args.connections, args.duration)
                result["cpu_ms"] = (
                    (_group_cpu(server.pid) - cpu_before) * 1000 / max(result["requests"], 1)
                )
                used += int(result["requests"]) + args.connections
                if used > count:
                    print("not enough tokens: raise --tokens", file=sys.stderr)
                    return 2
                results.append(result)
                print(
                    f"run {run + 1}: {result['rps']:.0f} req/s, p50 {result['p50']:.2f} ms, "
                    f"p99 {result['p99']:.2f} ms, non-200 {result['non2xx']:.0f}, server CPU "
                    f"{result['cpu_ms']:.2f} ms per request",
                    file=sys.stderr,
                )
            minted = _count_minted(work / "data" / "headwater.sqlite3")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    median = statistics.median(r["rps"] for r in results)
    non2xx = sum(r["non2xx"] for r in results)
    load = os.getloadavg()[0]
    cpu_ms = statistics.median(r["cpu_ms"] for r in results)
    each = ", ".join(f"{r['rps']:.0f}" for r in results)
    print(
        f"mint-token, 1 worker, SQLite, {args.connections} connections: median {median:.0f} "
        f"req/s over {args.runs} x {args.duration} s (runs: "
        f"{each}); p99 "
        f"{statistics.median(r['p99'] for r in results):.1f} ms; non-200: {non2xx:.0f}; tokens "
        f"minted: {minted} (200s: {sum(r['requests'] for r in results) - non2xx + 1:.0f}); load "
        f"average {load:.1f}"
    )
    print(
        f"server CPU per mint: {cpu_ms:.2f} ms (user + system, main process and worker): "
        f"{1000 / cpu_ms:.0f} mints/s on one dedicated core"
    )
    ok = median >= TARGET and non2xx == 0
    print(f"{'OK' if ok else 'MISSED'}: target >= {TARGET:.0f} req/s")
    return 0 if ok else 1


def _count_minted(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM minted_tokens").fetchone()[0])


if __name__ == "__main__":
    sys.exit(main())
