"""PEP 740 on upload: the latency verification adds to one upload (issue 12 target: <= 50 ms median).

Starts a real ``headwater serve`` (SQLite, one worker) on loopback and sends the same real sdist
(tests/data/provenance/pypi_attestations-0.0.19.tar.gz) many times, alternating an upload without
attestations and one with its real GitHub-signed attestation. After the first upload the file is
there, so every later upload takes the same path ("already uploaded", nothing written) except for
the verification of the attestation, which runs on every attested upload (no cache on the upload
path): the difference of the medians is the verification's cost.

    .venv/bin/python bench/bench_provenance.py --rounds 60
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "tests" / "data" / "provenance" / "pypi_attestations-0.0.19.tar.gz"
HEADWATER = str(Path(sys.executable).with_name("headwater"))


def _form(attestation: str | None) -> tuple[bytes, str]:
    content = DIST.read_bytes()
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": "pypi-attestations",
        "version": "0.0.19",
        "filetype": "sdist",
        "pyversion": "source",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
    }
    if attestation is not None:
        fields["attestations"] = "[" + attestation + "]"
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{DIST.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _post(url: str, token: str, body: bytes, ctype: str) -> float:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", ctype)
    import base64

    request.add_header(
        "Authorization", "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as reply:
        reply.read()
        assert reply.status == 200
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    attestation = DIST.with_name(DIST.name + ".publish.attestation").read_text()
    with tempfile.TemporaryDirectory() as work:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        data = Path(work) / "data"
        log = open(Path(work) / "serve.log", "w")  # noqa: SIM115
        server = subprocess.Popen(
            [HEADWATER, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)],
            cwd=work, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not (data / "admin-token").exists() or _down(port):
                if time.monotonic() > deadline:
                    raise SystemExit("headwater serve did not start")
                time.sleep(0.1)
            token = (data / "admin-token").read_text().strip()
            url = f"http://127.0.0.1:{port}/main/legacy/"
            plain, attested = _form(None), _form(attestation)
            _post(url, token, *attested)  # the file is stored; later uploads are no-ops
            for _ in range(5):  # warm up both paths
                _post(url, token, *plain)
                _post(url, token, *attested)
            without: list[float] = []
            with_att: list[float] = []
            for _ in range(args.rounds):
                without.append(_post(url, token, *plain))
                with_att.append(_post(url, token, *attested))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    med_without = statistics.median(without) * 1000
    med_with = statistics.median(with_att) * 1000
    print(
        json.dumps(
            {
                "rounds": args.rounds,
                "median_ms_without": round(med_without, 2),
                "median_ms_with_attestation": round(med_with, 2),
                "added_ms": round(med_with - med_without, 2),
                "p90_ms_with_attestation": round(
                    statistics.quantiles(with_att, n=10)[-1] * 1000, 2
                ),
            },
            indent=2,
        )
    )


def _down(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


if __name__ == "__main__":
    main()
