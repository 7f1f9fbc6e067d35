"""PEP 740 on a hosted index, end to end: real twine and uv upload real Sigstore-signed
attestations to a real ``headwater serve``; the file's provenance is verified, stored, listed on
its pages and served by PyPI's integrity route; tampered or foreign attestations are refused
with PyPI's text and nothing is stored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from headwater.provenance import TrustRoot, verify_provenance_document
from headwater.simple.json import parse_project_page_json
from tests.provenance.assets import GITHUB_SDIST, GITLAB_SDIST, attestation, sha256, tampered
from tests.server.hosting import Reply, post_upload, request, twine
from tests.server.live import Live, serve

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
BASE = "https://index.example.test"
GITHUB = "github:trailofbits/pypi-attestations:release.yml"


@dataclass
class Server:
    live: Live
    data: Path
    admin: str

    @property
    def upload_url(self) -> str:
        return self.live.url + "/main/legacy/"

    def page(self, project: str, accept: dict[str, str] = JSON) -> Reply:
        return request(f"{self.live.url}/main/simple/{project}/", headers=accept)

    def stored(self) -> list[str]:
        return sorted(p.name for p in (self.data / "hosted").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("attested")
    data = work / "headwater-data"
    (work / "headwater.toml").write_text(
        f'[serve]\nbase_url = "{BASE}"\n\n'
        "[hosted.main]\n"
        f'trusted_publishers = {{ "pypi-attestations" = ["{GITHUB}"], '
        '"gitlab-oidc-project" = ["github:someone/else"] }\n'
        'require_provenance = ["must-attest"]\n'
    )
    with serve(["--data-dir", str(data)], work) as live:
        yield Server(live, data, (data / "admin-token").read_text().strip())


def _copy(dist: Path, directory: Path, att: dict[str, object] | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / dist.name
    shutil.copyfile(dist, target)
    sidecar = directory / (dist.name + ".publish.attestation")
    sidecar.write_text(json.dumps(att if att is not None else attestation(dist)))
    return [target, sidecar]


def test_twine_attestations_are_verified_stored_listed_and_served(
    server: Server, tmp_path: Path
) -> None:
    files = _copy(GITHUB_SDIST, tmp_path / "dist")
    done = twine(server.upload_url, server.admin, files, "--attestations")
    assert done.returncode == 0, done.stdout + done.stderr
    page = parse_project_page_json(server.page("pypi-attestations").body)
    (file,) = page.files
    url = f"{BASE}/main/integrity/pypi-attestations/0.0.19/{GITHUB_SDIST.name}/provenance"
    assert file.provenance == url
    html = server.page("pypi-attestations", {"Accept": "text/html"}).body.decode()
    assert f'data-provenance="{url}"' in html
    # PyPI's integrity route, on the index and on the default index's alias.
    for path in (url.removeprefix(BASE), url.removeprefix(BASE + "/main")):
        reply = request(server.live.url + path)
        assert reply.status == 200, (path, reply.body)
        assert reply.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
        verified = verify_provenance_document(
            reply.body, GITHUB_SDIST.name, sha256(GITHUB_SDIST), TrustRoot()
        )
        assert [p.spec() for p in verified.publishers] == [GITHUB]
    asked = request(
        server.live.url + url.removeprefix(BASE), headers={"Accept": "application/json"}
    )
    assert asked.headers["content-type"] == "application/json"
    refused = request(server.live.url + url.removeprefix(BASE), headers={"Accept": "text/html"})
    assert refused.status == 406
    # The management API shows who published it.
    # Wrong version, wrong project, a file without provenance: 404.
    for wrong in (
        "/main/integrity/pypi-attestations/0.0.20/" + GITHUB_SDIST.name + "/provenance",
        "/main/integrity/other/0.0.19/" + GITHUB_SDIST.name + "/provenance",
        "/main/integrity/pypi-attestations/0.0.19/nope-0.0.19.tar.gz/provenance",
    ):
        assert request(server.live.url + wrong).status == 404, wrong


def _refused(reply: Reply) -> str:
    assert reply.status == 400, reply.body
    text = reply.body.decode()
    assert text.startswith("Invalid attestations supplied during upload: "), text
    return text


@pytest.mark.parametrize(
    "how",
    [
        "statement digest changed",
        "signature changed",
        "inclusion proof truncated",
        "log entry body truncated",
        "log time outside the certificate's validity",
    ],
)
def test_tampered_attestations_are_refused_and_nothing_is_stored(server: Server, how: str) -> None:
    before = server.stored()
    att = tampered(GITHUB_SDIST, how)
    reply = post_upload(
        server.upload_url, server.admin, GITHUB_SDIST, attestations=json.dumps([att]),
        name="pypi-attestations", version="0.0.19",
    )  # fmt: skip
    _refused(reply)
    assert server.stored() == before


def test_an_attestation_by_another_identity_is_refused_naming_both(server: Server) -> None:
    reply = post_upload(
        server.upload_url, server.admin, GITLAB_SDIST,
        attestations=json.dumps([attestation(GITLAB_SDIST)]),
        name="gitlab-oidc-project", version="0.0.3",
    )  # fmt: skip
    text = _refused(reply)
    assert "GitLab facutuesca/gitlab-oidc-project" in text and "GitHub someone/else" in text
    assert server.page("gitlab-oidc-project").status == 404


def test_another_files_attestation_is_refused(server: Server, tmp_path: Path) -> None:
    reply = post_upload(
        server.upload_url, server.admin, GITLAB_SDIST,
        attestations=json.dumps([attestation(GITHUB_SDIST)]),
        name="gitlab-oidc-project", version="0.0.3",
    )  # fmt: skip
    assert "subject name mismatch" in _refused(reply)


def test_twine_shows_the_refusal(server: Server, tmp_path: Path) -> None:
    files = _copy(GITHUB_SDIST, tmp_path / "t", tampered(GITHUB_SDIST, "signature changed"))
    done = twine(server.upload_url, server.admin, files, "--attestations")
    assert done.returncode != 0
    said = " ".join((done.stdout + done.stderr).split())  # wrapped to the terminal's width
    assert "Invalid attestations supplied during upload" in said


def test_uv_publish_sends_the_attestation_beside_the_file(
    server: Server, tmp_path: Path, uv: Path
) -> None:
    # uv publish (0.9.11+) groups the <file>.publish.attestation among the paths it is given
    # (`uv publish dist/*`) with its dist and sends it as the attestations field, as twine
    # --attestations does; a tampered one is refused, which shows uv did send it.
    files = _copy(GITHUB_SDIST, tmp_path / "u", tampered(GITHUB_SDIST, "signature changed"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env.update(UV_NO_CONFIG="1", HOME=str(tmp_path))
    done = subprocess.run(
        [str(uv), "publish", "--publish-url", server.upload_url, "--token", server.admin,
         *map(str, files)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    # uv wraps the server's message to the terminal's width: compare with the lines joined.
    assert "Invalid attestations supplied during upload" in " ".join(output.split()), output


def test_a_project_that_requires_provenance_refuses_an_unattested_upload(
    server: Server, tmp_path: Path
) -> None:
    from tests.server.hosting import dists

    wheel, _ = dists(tmp_path / "d", "must_attest", "1.0")
    text = _refused(post_upload(server.upload_url, server.admin, wheel))
    assert "requires PEP 740 attestations" in text


def test_the_projects_trusted_publishers_are_the_expected_signers(server: Server) -> None:
    # The trusted-publisher model (headwater.db.publishers): a publisher added for the project
    # is one the attestation may be signed by, besides the index's trusted_publishers setting
    # (which here names only github:someone/else, so the GitLab attestation was refused above).
    from headwater.db import Database
    from headwater.db.identities import GitLabIdentity

    db = Database.connect(f"sqlite:///{server.data / 'headwater.sqlite3'}")
    try:
        db.add_publisher(
            "main",
            "gitlab-oidc-project",
            GitLabIdentity(
                project_path="facutuesca/gitlab-oidc-project", workflow=".gitlab-ci.yml"
            ),
            pending=True,
        )
    finally:
        db.close()
    reply = post_upload(
        server.upload_url, server.admin, GITLAB_SDIST,
        attestations=json.dumps([attestation(GITLAB_SDIST)]),
        name="gitlab-oidc-project", version="0.0.3",
    )  # fmt: skip
    assert reply.status == 200, reply.body
    page = parse_project_page_json(server.page("gitlab-oidc-project").body)
    assert page.files[0].provenance is not None
