"""PEP 740 provenance through ``headwater mirror`` and ``headwater verify``: a real
Sigstore-signed provenance document (PyPI's, for a real sdist) served by an https test upstream is
fetched, verified and kept beside its file; one that does not verify fails its project; a copy of
the tree is re-verified offline, and a tampered copy is caught."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from headwater.policy.held import held_reason
from headwater.simple.json import parse_project_page_json
from headwater.storage.layout import provenance_key
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.provenance.assets import GITHUB_SDIST, GITLAB_SDIST, sha256, tampered
from tests.server.live import serve
from tests.tls import self_signed

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def headwater(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def _corpus(directory: Path) -> Corpus:
    directory.mkdir()
    for dist in (GITHUB_SDIST, GITLAB_SDIST):
        shutil.copyfile(dist, directory / dist.name)
    # PyPI's own provenance document for the real sdist.
    shutil.copyfile(
        GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance"),
        directory / (GITHUB_SDIST.name + ".provenance"),
    )
    # A document whose attestation was tampered with (its signature changed).
    bad = {
        "version": 1,
        "attestation_bundles": [
            {
                "publisher": {
                    "kind": "GitLab",
                    "repository": "facutuesca/gitlab-oidc-project",
                    "workflow_filepath": ".gitlab-ci.yml",
                },
                "attestations": [tampered(GITLAB_SDIST, "signature changed")],
            }
        ],
    }
    (directory / (GITLAB_SDIST.name + ".provenance")).write_text(json.dumps(bad))
    return Corpus.from_directory(directory)


@pytest.mark.parametrize("processes", [1, 2], ids=["thread", "pool"])
def test_mirror_keeps_verified_provenance_and_verify_rechecks_it_offline(
    tmp_path: Path, cert: tuple[Path, Path], processes: int
) -> None:
    """Verified in the mirror's thread, and in a pool of processes (provenance/pool.py): either
    way the refused document keeps its file out of the page."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    with Upstream(_corpus(tmp_path / "corpus"), ssl=context).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "tree"\nworkers = 2\n'
            f'retries = 1\nca_bundle = "{cert[0]}"\nverify_processes = {processes}\n'
        )
        done = headwater("mirror", "--quiet", cwd=tmp_path)
    output = done.stdout + done.stderr
    # The project whose provenance does not verify fails (its page is not written) ...
    assert done.returncode == 1, output
    assert "gitlab-oidc-project" in output and "does not verify" in output, output
    tree = tmp_path / "tree"
    assert not (tree / "web/simple/gitlab-oidc-project").exists()
    # ... the other is mirrored with its provenance beside the file, listed on its page.
    key = provenance_key(sha256(GITHUB_SDIST), GITHUB_SDIST.name)
    assert (tree / key).read_bytes() == GITHUB_SDIST.with_name(
        GITHUB_SDIST.name + ".provenance"
    ).read_bytes()
    page = parse_project_page_json(
        (tree / "web/simple/pypi-attestations/index.v1_json").read_bytes()
    )
    assert page.files[0].provenance is not None
    assert page.files[0].provenance.endswith(GITHUB_SDIST.name + ".provenance")

    # An rsync'd copy, verified offline (no upstream running now).
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)
    # (The failed project's file is kept for its next sync; a copy of the tree's web/ alone has
    # no page for it: leave it out of the copy as rsync of the served tree would.)
    assert sha256(GITLAB_SDIST)[:2] != sha256(GITHUB_SDIST)[:2]
    shutil.rmtree(copy / "web" / "packages" / sha256(GITLAB_SDIST)[:2])
    checked = headwater("verify", "--target", str(copy), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # A tampered copy of the provenance is caught, and so is a missing one.
    document = json.loads((copy / key).read_text())
    attestation = document["attestation_bundles"][0]["attestations"][0]
    attestation["envelope"]["signature"] = tampered(GITHUB_SDIST, "signature changed")["envelope"][
        "signature"
    ]
    (copy / key).write_text(json.dumps(document))
    caught = headwater("verify", "--target", str(copy), "--format", "json", cwd=tmp_path)
    assert caught.returncode != 0
    assert "bad-provenance" in caught.stdout, caught.stdout
    (copy / key).unlink()
    missing = headwater("verify", "--target", str(copy), "--format", "json", cwd=tmp_path)
    assert missing.returncode != 0 and '"missing"' in missing.stdout, missing.stdout


def test_publisher_continuity_holds_an_unattested_release_until_accepted(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    # A project whose release was attested by GitHub trailofbits/pypi-attestations; a new release
    # arrives without provenance (a hijacked account uploading from a laptop looks like this):
    # the mirror holds it (left out of the page and the tree) until the operator accepts it.
    directory = tmp_path / "corpus"
    directory.mkdir()
    shutil.copyfile(GITHUB_SDIST, directory / GITHUB_SDIST.name)
    shutil.copyfile(
        GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance"),
        directory / (GITHUB_SDIST.name + ".provenance"),
    )
    corpus = Corpus.from_directory(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    page_path = tmp_path / "tree/web/simple/pypi-attestations/index.v1_json"

    def versions(held: bool = False) -> set[str]:
        # The versions the page serves (held: those it lists as held, yanked with the refusal).
        page = parse_project_page_json(page_path.read_bytes())
        return {
            f.filename.split("-")[1].removesuffix(".tar.gz")
            for f in page.files
            if (held_reason(f) is not None) == held
        }

    with Upstream(corpus, ssl=context).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "tree"\nworkers = 2\n'
            f'retries = 1\nca_bundle = "{cert[0]}"\npublisher_continuity = true\n'
        )
        first = headwater("mirror", "--quiet", cwd=tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        assert versions() == {"0.0.19"}

        corpus.add_release("pypi-attestations", "0.0.20", files=1)
        second = headwater("mirror", "--quiet", cwd=tmp_path)
        output = second.stdout + second.stderr
        assert second.returncode == 0, output
        assert versions() == {"0.0.19"}  # held: not served
        assert versions(held=True) == {"0.0.20"}  # listed as held (tests/cli/test_held_*)
        assert "held: pypi-attestations 0.0.20" in output, output
        assert "GitHub trailofbits/pypi-attestations, workflow release.yml" in output
        assert "headwater provenance accept m pypi-attestations 0.0.20" in output
        assert not list((tmp_path / "tree/web/packages").rglob("*0.0.20*"))
        held = headwater("provenance", "held", "m", cwd=tmp_path)
        assert "pypi-attestations 0.0.20" in held.stdout and "unattested" in held.stdout

        accepted = headwater(
            "provenance", "accept", "m", "pypi-attestations", "0.0.20", cwd=tmp_path
        )
        assert accepted.returncode == 0, accepted.stderr
        third = headwater("mirror", "--quiet", "--project", "pypi-attestations", cwd=tmp_path)
        assert third.returncode == 0, third.stdout + third.stderr
        assert versions() == {"0.0.19", "0.0.20"} and not versions(held=True)
        assert "nothing is held" in headwater("provenance", "held", "m", cwd=tmp_path).stdout


def _call(url: str, method: str = "GET", token: str | None = None) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = (
            "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
        )
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_held_release_is_accepted_through_the_management_api(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    # The same hold as above, accepted over HTTP by an admin token of a running `headwater serve`
    # (the state `headwater provenance` reads), then mirrored by the next sync.
    directory = tmp_path / "corpus"
    directory.mkdir()
    shutil.copyfile(GITHUB_SDIST, directory / GITHUB_SDIST.name)
    shutil.copyfile(
        GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance"),
        directory / (GITHUB_SDIST.name + ".provenance"),
    )
    corpus = Corpus.from_directory(directory)
    corpus.add_release("pypi-attestations", "0.0.20", files=1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    with Upstream(corpus, ssl=context).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[serve]\ndata_dir = "data"\n\n[hosted.h]\n\n'
            f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "tree"\nworkers = 2\n'
            f'retries = 1\nca_bundle = "{cert[0]}"\npublisher_continuity = true\n'
        )
        first = headwater("mirror", "--quiet", cwd=tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "held: pypi-attestations 0.0.20" in first.stdout + first.stderr
        with serve(["--config", str(tmp_path / "headwater.toml")], tmp_path) as live:
            admin = (tmp_path / "data" / "admin-token").read_text().strip()
            status, body = _call(live.url + "/api/m/held", token=admin)
            assert status == 200, body
            assert [(h["project"], h["version"], h["reason"]) for h in body["held"]] == [
                ("pypi-attestations", "0.0.20", "unattested")
            ]
            accept = live.url + "/api/m/projects/pypi-attestations/accepted/0.0.20"
            assert _call(accept, "PUT")[0] == 401  # no token: nothing changes
            reader = headwater(
                "token", "create", "--data-dir", "data", "--user", "admin", "--scope", "read",
                cwd=tmp_path,
            ).stdout.strip()  # fmt: skip
            assert _call(accept, "PUT", reader)[0] == 403
            assert _call(live.url + "/api/m/held", token=admin)[1]["accepted"] == {}
            status, body = _call(accept, "PUT", admin)
            assert status == 200 and body["result"]["version"] == "0.0.20", body
            assert _call(live.url + "/api/nope/held", token=admin)[0] == 404
        third = headwater("mirror", "--quiet", "--project", "pypi-attestations", cwd=tmp_path)
        assert third.returncode == 0, third.stdout + third.stderr
    page = parse_project_page_json(
        (tmp_path / "tree/web/simple/pypi-attestations/index.v1_json").read_bytes()
    )
    assert {
        f.filename.split("-")[1].removesuffix(".tar.gz")
        for f in page.files
        if held_reason(f) is None
    } == {
        "0.0.19",
        "0.0.20",
    }
    assert "nothing is held" in headwater("provenance", "held", "m", cwd=tmp_path).stdout
