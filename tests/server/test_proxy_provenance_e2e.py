"""A caching proxy's provenance and publisher guard through the real ``headwater serve``, real pip
and real uv: an attested project installs and its provenance is served at the integrity route; a
release whose publisher changed (it arrives unattested after attested ones) is held (not
installed), shown by ``headwater provenance held`` and the management API, accepted with
``headwater provenance accept``, and then installs."""

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

from headwater.provenance import TrustRoot, provenance_for_upload
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.clients import clean_env, installed_version, make_venv
from tests.provenance.assets import GITLAB_SDIST, attestation, sha256
from tests.server.live import serve
from tests.tls import self_signed

HEADWATER = str(Path(sys.executable).with_name("headwater"))
PUBLIC = "https://pkgs.example"
PROJECT = "gitlab-oidc-project"


def headwater(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def with_flit(path: Path) -> Path:
    """A venv with flit_core (installed from the machine's own index configuration: a build tool
    here, not the index under test), so the real sdist builds without build isolation (its
    backend pin is older than any flit_core the index under test could offer)."""
    python = make_venv(path)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "flit_core"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"could not install flit_core with pip: {done.stderr[-2000:]}")
    return python


def pip(python: Path, index: str, requirement: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "install", "--isolated", "--no-cache-dir",
         "--no-build-isolation", "--index-url", index, requirement],
        env=clean_env(home), capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def uv_pip(
    uv: Path, python: Path, index: str, requirement: str, home: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(uv), "pip", "install", "--no-config", "--no-cache", "--no-build-isolation",
         "--index-url", index, "--python", str(python), requirement],
        env=clean_env(home), capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def call(
    url: str, token: str | None = None, accept: str = "application/json", method: str = "GET"
) -> tuple[int, Any]:
    headers = {"Accept": accept}
    if token is not None:
        basic = base64.b64encode(f"__token__:{token}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    try:
        request = urllib.request.Request(url, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_proxy_serves_provenance_and_holds_a_changed_publisher_for_pip_and_uv(
    tmp_path: Path, uv: Path
) -> None:
    cert, key = self_signed(tmp_path)
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    shutil.copyfile(GITLAB_SDIST, corpus_dir / GITLAB_SDIST.name)
    field = json.dumps([attestation(GITLAB_SDIST)])
    document = provenance_for_upload(
        field, GITLAB_SDIST.name, sha256(GITLAB_SDIST), TrustRoot()
    ).document
    (corpus_dir / (GITLAB_SDIST.name + ".provenance")).write_bytes(document)
    corpus = Corpus.from_directory(corpus_dir)
    # The next release arrives without provenance: as from a laptop with a stolen account.
    corpus.add_release(PROJECT, "0.0.4", files=1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    python_pip = with_flit(tmp_path / "pip-venv")
    python_uv = with_flit(tmp_path / "uv-venv")
    with Upstream(corpus, ssl=context).running() as up:
        config = tmp_path / "headwater.toml"
        config.write_text(
            f'[serve]\ndata_dir = "data"\nbase_url = "{PUBLIC}"\n\n[hosted.h]\n\n'
            f'[proxy.p]\nurl = "{up.simple_url}"\nttl = 0\nca_bundle = "{cert}"\n'
            "publisher_continuity = true\n"
        )
        with serve(["--config", str(config)], tmp_path) as live:
            index = f"{live.url}/p/simple/"
            status, body = call(f"{index}{PROJECT}/", accept="application/vnd.pypi.simple.v1+json")
            assert status == 200, body
            # 0.0.4 is held: not offered for download (left off the page, or listed yanked at a
            # URL that refuses).
            files = [
                f
                for f in json.loads(body)["files"]
                if f["url"].startswith("../../packages/") and not f.get("yanked")
            ]
            assert [f["filename"] for f in files] == [GITLAB_SDIST.name]
            integrity = f"/p/integrity/{PROJECT}/0.0.3/{GITLAB_SDIST.name}/provenance"
            assert files[0]["provenance"] == PUBLIC + integrity
            status, body = call(
                live.url + integrity, accept="application/vnd.pypi.integrity.v1+json"
            )
            assert status == 200 and body == document
            held_wheel = f"/p/integrity/{PROJECT}/0.0.4/gitlab_oidc_project-0.0.4-py3-none-any.whl/provenance"
            assert call(live.url + held_wheel)[0] == 404

            # The attested release installs, with pip and with uv.
            done = pip(python_pip, index, PROJECT, tmp_path / "home-pip")
            assert done.returncode == 0, done.stdout + done.stderr
            assert "gitlab-oidc-project-0.0.3" in done.stdout, done.stdout
            done = uv_pip(uv, python_uv, index, f"{PROJECT}==0.0.3", tmp_path / "home-uv")
            assert done.returncode == 0, done.stdout + done.stderr
            # The held one does not, and both installers show the refusal with its fix (the held
            # entry's URL answers 409 and carries them: policy/held.py, as for a mirror).
            fix = f"headwater+provenance+accept+p+{PROJECT}+0.0.4"
            refused = pip(python_pip, index, f"{PROJECT}==0.0.4", tmp_path / "home-pip")
            assert refused.returncode != 0, refused.stdout
            assert fix in refused.stdout + refused.stderr, refused.stdout + refused.stderr
            refused = uv_pip(uv, python_uv, index, f"{PROJECT}==0.0.4", tmp_path / "home-uv")
            assert refused.returncode != 0, refused.stdout
            assert fix in refused.stdout + refused.stderr, refused.stdout + refused.stderr

            held = headwater("provenance", "held", "p", cwd=tmp_path)
            assert held.returncode == 0, held.stderr
            assert (
                f"{PROJECT} 0.0.4 gitlab_oidc_project-0.0.4-py3-none-any.whl: unattested"
                in held.stdout
            )
            assert "GitLab facutuesca/gitlab-oidc-project, workflow .gitlab-ci.yml" in held.stdout
            assert f"headwater provenance accept p {PROJECT} 0.0.4" in held.stdout
            admin = (tmp_path / "data" / "admin-token").read_text().strip()
            status, body = call(f"{live.url}/api/p/held", token=admin)
            assert status == 200, body
            assert [(h["project"], h["version"]) for h in json.loads(body)["held"]] == [
                (PROJECT, "0.0.4")
            ]

            accept_url = f"{live.url}/api/p/projects/{PROJECT}/accepted/0.0.4"
            assert call(accept_url, method="PUT")[0] == 401  # no token: nothing changes
            accepted = headwater("provenance", "accept", "p", PROJECT, "0.0.4", cwd=tmp_path)
            assert accepted.returncode == 0, accepted.stderr
            status, body = call(f"{live.url}/api/p/held", token=admin)
            assert json.loads(body)["accepted"] == {PROJECT: ["0.0.4"]}, body
            status, body = call(accept_url, token=admin, method="PUT")  # the same, over HTTP
            assert status == 200 and json.loads(body)["result"]["version"] == "0.0.4", body
            done = pip(python_pip, index, f"{PROJECT}==0.0.4", tmp_path / "home-pip")
            assert done.returncode == 0, done.stdout + done.stderr
            done = uv_pip(uv, python_uv, index, f"{PROJECT}==0.0.4", tmp_path / "home-uv")
            assert done.returncode == 0, done.stdout + done.stderr
            for python in (python_pip, python_uv):
                assert installed_version(python, "gitlab_oidc_project") == "0.0.4"
            assert "nothing is held" in headwater("provenance", "held", "p", cwd=tmp_path).stdout
