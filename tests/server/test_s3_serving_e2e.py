"""Hosted indexes on S3 end to end: the real ``headwater serve`` with its files in a real
SeaweedFS bucket, real twine uploading, real pip and uv installing, in each way of serving files:
streamed through headwater (with Range), redirected to a presigned URL, redirected to a public
base URL. Credentials reach the server through the standard AWS environment variables and never
show in its output, its errors or /metrics."""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from headwater.simple.json import parse_project_page_json
from tests.clients import installed_version, pip_install, uv_install
from tests.seaweed import SeaweedServer, fresh_bucket, public_bucket
from tests.server.hosting import cli, dists, request, twine
from tests.server.live import Live, serve

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
MODES = ["stream", "redirect-presigned", "files-base-url"]


@dataclass
class S3Hosted:
    live: Live
    data: Path
    admin: str
    mode: str
    seaweed: SeaweedServer
    bucket: str

    def page_files(self, index: str, project: str, token: str | None = None) -> dict[str, str]:
        """filename -> absolute URL of the file, from the JSON page."""
        url = f"{self.live.url}/{index}/simple/{project}/"
        headers = dict(JSON)
        if token:
            headers["Authorization"] = _basic(token)
        page = parse_project_page_json(request(url, headers=headers).body)
        return {f.filename: urljoin(url, f.url) for f in page.files}


def _basic(token: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


def _raw_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One GET, redirects not followed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(
            "GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {}
        )
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


@pytest.fixture(scope="module", params=MODES)
def s3_hosted(
    request: pytest.FixtureRequest, seaweed: SeaweedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Hosted]:
    mode = request.param
    work = tmp_path_factory.mktemp(f"s3-{mode}")
    data = work / "headwater-data"
    with fresh_bucket(seaweed) as bucket:
        query = f"endpoint={seaweed.endpoint}&addressing_style=path"
        if mode == "files-base-url":
            # The public bucket stands for the CDN: files_base_url serves the storage's prefix.
            main_url = f"s3://{public_bucket(seaweed)}/{bucket}/main?{query}"
            files = f'files_base_url = "{seaweed.endpoint}/{public_bucket(seaweed)}/{bucket}/main"'
            private_files = 'files = "redirect-presigned"'
        else:
            main_url = f"s3://{bucket}/main?{query}"
            files = f'files = "{mode}"'
            private_files = files
        (work / "headwater.toml").write_text(
            f"""
[hosted.main]
storage = "{main_url}"
s3 = {{ {files} }}

[hosted.private]
read = "token"
storage = "s3://{bucket}/private?{query}"
s3 = {{ {private_files}, presign_expires = 120 }}
"""
        )
        env = {
            **seaweed.env(),
            "AWS_CONFIG_FILE": str(work / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-aws-credentials"),
        }
        with serve(["--workers", "2", "--data-dir", str(data)], work, env=env) as live:
            admin = (data / "admin-token").read_text().strip()
            yield S3Hosted(live, data, admin, mode, seaweed, bucket)
            output = live.output()
        assert seaweed.secret_key not in output


@pytest.mark.slow
def test_upload_and_install_with_pip_and_uv(s3_hosted: S3Hosted, tmp_path: Path, uv: Path) -> None:
    hosted = s3_hosted
    files = dists(tmp_path / "dist", "Cloud_Pkg", "1.0")
    done = twine(hosted.live.url + "/main/legacy/", hosted.admin, files)
    assert done.returncode == 0, done.stdout + done.stderr
    # Nothing in the data directory: the files are in the bucket, each under the storage's prefix.
    assert not (hosted.data / "hosted").exists() or not any(
        p.is_file() for p in (hosted.data / "hosted").rglob("*")
    )
    listed = hosted.seaweed.client().list_objects_v2(
        Bucket=public_bucket(hosted.seaweed) if hosted.mode == "files-base-url" else hosted.bucket
    )
    names = [o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", [])]
    for path in files:
        assert path.name in names

    urls = hosted.page_files("main", "cloud-pkg")
    for path in files:
        url = urls[path.name]
        status, headers, body = _raw_get(url)
        whole = path.read_bytes()
        if hosted.mode == "stream":
            assert status == 200 and body == whole
            status, headers, body = _raw_get(url, {"Range": "bytes=10-19"})
            assert status == 206 and body == whole[10:20]
            assert headers["content-range"] == f"bytes 10-19/{len(whole)}"
            status, headers, _ = _raw_get(url, {"Range": f"bytes={len(whole)}-"})
            assert status == 416 and headers["content-range"] == f"bytes */{len(whole)}"
            continue
        assert status == 307, (status, body[:200])
        location = headers["location"]
        if hosted.mode == "redirect-presigned":
            assert "X-Amz-Signature=" in location and location.startswith(hosted.seaweed.endpoint)
            assert headers["cache-control"] == "no-store, private"
        else:
            assert location.startswith(
                f"{hosted.seaweed.endpoint}/{public_bucket(hosted.seaweed)}/"
            )
            assert "X-Amz" not in location
        assert hosted.seaweed.secret_key not in location
        status, _, body = _raw_get(location)  # no credentials: the URL alone must do
        assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(whole).digest()

    python = pip_install(hosted.live.url + "/main/simple/", "cloud-pkg", tmp_path / "pip")
    assert installed_version(python, "cloud_pkg") == "1.0"
    python = uv_install(uv, hosted.live.url + "/main/simple/", "cloud-pkg", tmp_path / "uv")
    assert installed_version(python, "cloud_pkg") == "1.0"


@pytest.mark.slow
def test_private_index_hands_out_a_file_only_after_authorization(
    s3_hosted: S3Hosted, tmp_path: Path
) -> None:
    hosted = s3_hosted
    files = dists(tmp_path / "dist", "Secret_Pkg", "2.0")
    done = twine(hosted.live.url + "/private/legacy/", hosted.admin, files)
    assert done.returncode == 0, done.stdout + done.stderr
    reader = cli(
        "token", "create", "--data-dir", str(hosted.data), "--user", "admin", "--scope", "read"
    ).stdout.strip()
    urls = hosted.page_files("private", "secret-pkg", token=reader)
    wheel = next(u for name, u in urls.items() if name.endswith(".whl"))
    # Without a token: refused, and no redirect (a presigned URL is a capability).
    status, headers, _ = _raw_get(wheel)
    assert status in (401, 403) and "location" not in headers
    status, headers, _ = _raw_get(wheel, {"Authorization": _basic("not-a-token")})
    assert status in (401, 403) and "location" not in headers
    status, headers, body = _raw_get(wheel, {"Authorization": _basic(reader)})
    if hosted.mode == "stream":
        assert status == 200
        return
    assert status == 307 and "X-Amz-Expires=120" in headers["location"]
    status, _, body = _raw_get(headers["location"])
    assert status == 200 and body == next(p for p in files if p.suffix == ".whl").read_bytes()
    # The bucket itself is not readable without the signature.
    bare = headers["location"].split("?", 1)[0]
    assert _raw_get(bare)[0] == 403


def test_metrics_and_health_never_show_the_secret(s3_hosted: S3Hosted) -> None:
    for path in ("/metrics", "/health/ready", "/health/live"):
        reply = request(
            s3_hosted.live.url + path, headers={"Authorization": _basic(s3_hosted.admin)}
        )
        assert s3_hosted.seaweed.secret_key.encode() not in reply.body
        assert s3_hosted.seaweed.access_key.encode() not in reply.body
