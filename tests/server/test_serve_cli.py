"""``headwater serve`` refuses bad TLS input before it announces or starts anything, with a message
naming the file and the fix (not a traceback from the server library)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.nginx import free_port
from tests.server.live import HEADWATER
from tests.tls import self_signed


def _serve(tmp_path: Path, cert: Path, key: Path) -> subprocess.CompletedProcess[str]:
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    args = [
        HEADWATER, "serve", "--listen", f"127.0.0.1:{free_port()}", "--tree", f"t={tree}",
        "--data-dir", str(tmp_path / "data"), "--tls-certificate", str(cert), "--tls-key", str(key),
    ]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("case", ["missing-certificate", "missing-key", "key-of-another-cert"])
def test_bad_tls_files_are_refused_clearly(tmp_path: Path, case: str) -> None:
    cert, key = self_signed(tmp_path)
    named = cert
    if case == "missing-certificate":
        cert = named = tmp_path / "no-such-cert.pem"
    elif case == "missing-key":
        key = named = tmp_path / "no-such-key.pem"
    else:
        other = tmp_path / "other"
        other.mkdir()
        _, key = self_signed(other)
    done = _serve(tmp_path, cert, key)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("headwater: error: "), done.stderr
    assert str(named) in done.stderr
    assert "PEM" in done.stderr
    assert "serving" not in done.stderr  # refused before announcing anything
