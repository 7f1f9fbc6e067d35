"""A mirror of a generated upstream whose every file carries provenance signed by the test Sigstore
(``headwater test-upstream --provenance DIR`` over https): verified with that root's
trusted_root.json by the production code, refused by the shipped public root."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.testing.sigstore_root import TestSigstore
from tests.tls import self_signed

HEADWATER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "headwater"


def headwater(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def signed_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(simple URL, CA bundle, trusted_root.json) of a running signed https test upstream."""
    where = tmp_path_factory.mktemp("signed")
    trusted_root = TestSigstore().save(where / "keys")
    cert, key = self_signed(where)
    log = (where / "upstream.log").open("w")
    proc = subprocess.Popen(
        [HEADWATER, "test-upstream", "--projects", "12", "--releases", "2", "--files", "2",
         "--provenance", str(where / "keys"), "--tls-certificate", str(cert), "--tls-key",
         str(key)],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        assert url.startswith("https://"), (where / "upstream.log").read_text()
        yield f"{url}/simple/", cert, trusted_root
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        proc.stdout.close()
        log.close()


def _config(tmp: Path, url: str, cert: Path, trusted_root: Path | None, processes: int = 1) -> None:
    text = (
        f'[mirror.m]\nupstream = "{url}"\ntarget = "tree"\nworkers = 4\nretries = 1\n'
        f'ca_bundle = "{cert}"\nverify_processes = {processes}\n'
    )
    if trusted_root is not None:
        text += f'trusted_root = "{trusted_root}"\n'
    (tmp / "headwater.toml").write_text(text)


@pytest.mark.parametrize("processes", [1, 2], ids=["thread", "pool"])
def test_every_file_of_a_signed_upstream_is_verified_and_reverified_offline(
    tmp_path: Path, signed_upstream: tuple[str, Path, Path], processes: int
) -> None:
    url, cert, trusted_root = signed_upstream
    _config(tmp_path, url, cert, trusted_root, processes)
    done = headwater("mirror", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    tree = tmp_path / "tree"
    sidecars = sorted(tree.glob("web/packages/**/*.provenance"))
    files = [p for p in tree.glob("web/packages/**/*") if p.suffix in (".whl", ".gz")]
    assert len(files) == 12 * 2 * 2 and len(sidecars) == len(files)
    # Each page lists its files' provenance under the mirror's own URLs.
    pages = list(tree.glob("web/simple/*/index.v1_json"))
    assert len(pages) == 12
    for page in pages:
        listed = json.loads(page.read_bytes())["files"]
        assert listed and all(f.get("provenance") for f in listed)
    checked = headwater("verify", "--target", str(tree), "--trusted-root", str(trusted_root),
                        cwd=tmp_path)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The same tree against Sigstore's public root: every sidecar is bad provenance.
    public = headwater("verify", "--target", str(tree), "--format", "json", cwd=tmp_path)
    assert public.returncode != 0
    assert public.stdout.count("bad-provenance") == len(sidecars), public.stdout


@pytest.mark.parametrize("processes", [1, 2], ids=["thread", "pool"])
def test_the_shipped_public_root_refuses_the_signed_upstream(
    tmp_path: Path, signed_upstream: tuple[str, Path, Path], processes: int
) -> None:
    url, cert, _ = signed_upstream
    _config(tmp_path, url, cert, None, processes)
    done = headwater("mirror", "--quiet", cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "does not verify" in output, output
    assert not list((tmp_path / "tree").glob("web/simple/*/index.v1_json"))
    assert not list((tmp_path / "tree").glob("web/packages/**/*.provenance"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tls-certificate", "cert.pem"], "--tls-certificate and --tls-key go together"),
        (["--tls-certificate", "nope.pem", "--tls-key", "nope.pem"], "cannot load nope.pem"),
        (["--provenance", "no-such-dir"], "cannot load the test Sigstore keys"),
    ],
)
def test_test_upstream_refuses_bad_tls_and_provenance_options(
    tmp_path: Path, args: list[str], says: str
) -> None:
    done = headwater("test-upstream", "--projects", "1", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr, done.stderr
