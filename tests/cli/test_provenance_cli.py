"""``headwater provenance held/accept`` for a caching proxy: where the acceptance is written (the
proxy's storage, as ``headwater serve`` keeps it), and clear refusals of a bad source or version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def headwater(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_accept_writes_into_the_proxy_storage_and_refuses_bad_input(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text(
        '[serve]\ndata_dir = "data"\n\n[proxy.p]\nurl = "https://pypi.org/simple/"\n\n'
        '[proxy.q]\nurl = "https://example.org/simple/"\nstorage = "q-cache"\n'
    )
    empty = headwater("provenance", "held", "p", cwd=tmp_path)
    assert empty.returncode == 0 and "proxy p: nothing is held" in empty.stdout, empty.stderr
    done = headwater("provenance", "accept", "p", "Some_Project", "v2.0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "some-project 2.0 accepted" in done.stdout
    assert (tmp_path / "data/proxy/p/state/publishers/some-project/accepted/2.0").exists()
    done = headwater("provenance", "accept", "q", "x", "1.0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "q-cache/state/publishers/x/accepted/1.0").exists()

    bad = headwater("provenance", "accept", "p", "x", "not a version", cwd=tmp_path)
    assert bad.returncode != 0
    assert "'not a version' is not a version" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = headwater("provenance", "held", "nope", cwd=tmp_path)
    assert unknown.returncode != 0
    assert "no [mirror.nope] or [proxy.nope]" in unknown.stderr and "[proxy.p]" in unknown.stderr
    assert "Traceback" not in unknown.stderr
