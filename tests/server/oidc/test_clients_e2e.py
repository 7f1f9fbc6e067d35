"""Trusted publishing with the real clients: ``uv publish --trusted-publishing always`` and
twine in an environment that looks like a GitHub Actions job, against a real ``headwater serve``
over TLS on loopback (uv and twine force https for the exchange) and the tests' own OIDC issuer.

uv and twine ask the job's token endpoint (``ACTIONS_ID_TOKEN_REQUEST_URL``, served by the
issuer) for a token with the audience headwater announces, exchange it at
``/_/oidc/mint-token`` and upload with the minted token; headwater fetches the issuer's keys
from its discovery document and JWKS. Nothing is faked on the path between them.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients import clean_env
from tests.oidc_issuer import Issuer
from tests.server.hosting import TWINE, dists
from tests.server.live import HEADWATER, serve
from tests.tls import ca_signed

AUDIENCE = "headwater-e2e"


@dataclass
class Served:
    url: str
    cert: Path
    issuer: Issuer
    work: Path
    log: Path

    def get(self, path: str) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.cert))
        try:
            with urllib.request.urlopen(self.url + path, context=context, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.cert))
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def env(self) -> dict[str, str]:
        """A GitHub Actions job's environment, trusting the server's certificate."""
        env = clean_env(self.work / "home")
        env = {k: v for k, v in env.items() if not k.startswith(("TWINE_", "GITHUB_", "ACTIONS_"))}
        env.update(self.issuer.actions_env())
        env.update(
            SSL_CERT_FILE=str(self.cert),
            REQUESTS_CA_BUNDLE=str(self.cert),
            PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        )
        return env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    ca, cert, key = ca_signed(tmp_path)
    with Issuer() as issuer:
        config = tmp_path / "headwater.toml"
        config.write_text(
            f"""
[serve]
oidc_audience = "{AUDIENCE}"

[hosted.main]

[[hosted.main.publishers]]
project = "acme-tools"
owner = "alice"
github = {{ repository = "acme/tools", workflow = "release.yml", environment = "pypi", repository_id = "1001", issuer = "{issuer.url}" }}
"""
        )
        subprocess.run(
            [
                HEADWATER,
                "user",
                "create",
                "alice",
                "--config",
                str(config),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            check=True,
            capture_output=True,
        )
        context = ssl.create_default_context(cafile=str(ca))
        args = [
            "--config", str(config), "--data-dir", str(tmp_path / "data"),
            "--tls-certificate", str(cert), "--tls-key", str(key),
        ]  # fmt: skip
        with serve(args, tmp_path, context=context) as live:
            yield Served(live.url, ca, issuer, tmp_path, live.log)


def _uv_publish(uv: Path, served: Served, files: list[Path]) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(uv), "publish", "--trusted-publishing", "always",
        "--publish-url", f"{served.url}/main/legacy/", *map(str, files),
    ]  # fmt: skip
    return subprocess.run(
        cmd, env=served.env(), capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_uv_publish_with_trusted_publishing(uv: Path, served: Served, tmp_path: Path) -> None:
    files = dists(tmp_path / "dist", "acme-tools", "1.0")
    result = _uv_publish(uv, served, files)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{served.log.read_text()}"
    status, page = served.get("/main/simple/acme-tools/")
    assert status == 200
    assert b"acme_tools-1.0-py3-none-any.whl" in page and b"acme_tools-1.0.tar.gz" in page
    # uv asked the job's endpoint for a token with our audience; headwater fetched the keys.
    asked = served.issuer.requests
    assert any(f"audience={AUDIENCE}" in path for path in asked), asked
    assert "/.well-known/openid-configuration" in asked and "/.well-known/jwks" in asked


@pytest.mark.slow
def test_uv_publish_from_the_wrong_environment_is_refused_readably(
    uv: Path, served: Served, tmp_path: Path
) -> None:
    served.issuer.job["environment"] = "staging"
    result = _uv_publish(uv, served, dists(tmp_path / "dist", "acme-tools", "1.0"))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid-publisher" in output, output
    assert "environment=staging" in output, output
    assert served.get("/main/simple/acme-tools/")[0] == 404


@pytest.mark.slow
def test_uv_publish_from_a_resurrected_repository_is_refused(
    uv: Path, served: Served, tmp_path: Path
) -> None:
    # Same name, another repository (the numeric id differs): the publisher names id 1001.
    served.issuer.job["repository_id"] = "666"
    result = _uv_publish(uv, served, dists(tmp_path / "dist", "acme-tools", "1.0"))
    assert result.returncode != 0
    assert "invalid-publisher" in result.stdout + result.stderr


# twine 7 runs the exchange itself only for PyPI and TestPyPI (twine/auth.py: is_pypi()); for
# any other index it asks for a password. So twine uploads with a token minted by the job
# (docs/trusted-publishing.md shows the two curl calls), which is what this test does.


@pytest.mark.slow
def test_twine_uploads_with_a_minted_token(served: Served, tmp_path: Path) -> None:
    jwt = served.issuer.github_token(AUDIENCE)
    status, body = served.post("/main/_/oidc/mint-token", json.dumps({"token": jwt}).encode())
    assert status == 200, body
    token = json.loads(body)["token"]
    files = dists(tmp_path / "dist", "acme-tools", "3.0")
    cmd = [
        TWINE, "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", f"{served.url}/main/legacy/", "-u", "__token__", "-p", token,
        *map(str, files),
    ]  # fmt: skip
    env = {k: v for k, v in served.env().items() if k not in ("GITHUB_ACTIONS",)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    # The minted token is scoped to acme-tools: another project is refused.
    other = dists(tmp_path / "other", "other-thing", "1.0")
    cmd[-2:] = map(str, other)
    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode != 0
    assert "403" in refused.stdout + refused.stderr
