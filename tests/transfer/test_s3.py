"""Moves and backups to and from a real S3-compatible server (SeaweedFS) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from tests.seaweed import SeaweedServer
from tests.server.hosting import api
from tests.server.live import serve
from tests.transfer.conftest import Installation, fingerprints, headwater, pip_download


def _scaled_config(path: Path, seaweed: SeaweedServer, bucket: str) -> Path:
    """The installation's indexes, their files in ``bucket``; credentials from the environment."""
    s3 = (
        f'endpoint = "{seaweed.endpoint}"\nregion = "{seaweed.region}"\naddressing_style = "path"\n'
    )
    path.write_text(
        f'[hosted.main]\nstorage = "s3://{bucket}/main"\n[hosted.main.s3]\n{s3}\n'
        f'[hosted.secret]\nread = "token"\nstorage = "s3://{bucket}/secret"\n'
        f"[hosted.secret.s3]\n{s3}\n"
        '[index.all]\nsources = ["main", "secret"]\n'
    )
    return path


def test_move_into_postgresql_and_a_bucket_and_back(
    installation: Installation, seaweed: SeaweedServer, s3_bucket: str, pg_url: str, tmp_path: Path
) -> None:
    scaled = _scaled_config(tmp_path / "scaled.toml", seaweed, s3_bucket)
    env = seaweed.env()
    moved = headwater(
        "move", "--config", str(installation.config), "--data-dir", str(installation.data_dir),
        "--to-config", str(scaled), "--to-data-dir", str(tmp_path / "node"),
        "--to-database", pg_url, env=env,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "hosted/main: " in moved.stdout and "the copy is whole" in moved.stdout
    assert fingerprints(pg_url) == fingerprints(installation.database)
    assert seaweed.secret_key not in moved.stdout + moved.stderr
    listed = seaweed.client().list_objects_v2(Bucket=s3_bucket, Prefix="main/")
    assert {item["Key"].rsplit("/", 1)[-1] for item in listed.get("Contents", [])} >= {
        name for name in installation.files if name.startswith("acme_tools")
    }

    # A node on PostgreSQL + the bucket serves what the single machine served.
    node = ["--config", str(scaled), "--data-dir", str(tmp_path / "node"), "--database", pg_url]
    with serve(node, tmp_path, env=env) as live:
        got = pip_download(live.url + "/main/simple/", "acme-tools==1.1", tmp_path / "pip")
        assert len(got) == 1 and got[0] in installation.files
        assert (
            api(live.url + "/secret/simple/inner-secret/", "GET", installation.token).status == 200
        )

    # A damaged object in the bucket is found by the check.
    client = seaweed.client()
    key = next(
        item["Key"]
        for item in client.list_objects_v2(Bucket=s3_bucket, Prefix="main/")["Contents"]
        if item["Key"].endswith(".whl")
    )
    client.put_object(Bucket=s3_bucket, Key=key, Body=b"not the wheel")
    checked = headwater(
        "move", "--config", str(installation.config), "--data-dir", str(installation.data_dir),
        "--to-config", str(scaled), "--to-data-dir", str(tmp_path / "node"),
        "--to-database", pg_url, "--check", env=env,
    )  # fmt: skip
    assert checked.returncode == 1
    assert "DIFFERS" in checked.stdout and key.removeprefix("main/") in checked.stdout

    # A full backup of the scaled installation restores onto one machine again.
    backup = tmp_path / "scaled.tar"
    client.put_object(
        Bucket=s3_bucket,
        Key=key,
        Body=(installation.data_dir / "hosted" / "main" / key.removeprefix("main/")).read_bytes(),
    )
    made = headwater(
        "backup", "create", "--config", str(scaled), "--data-dir", str(tmp_path / "node"),
        "--database", pg_url, "--objects", str(backup), env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    small = tmp_path / "small"
    restored = headwater(
        "restore", "--config", str(installation.config), "--data-dir", str(small), str(backup)
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert fingerprints(f"sqlite:///{small / 'headwater.sqlite3'}") == fingerprints(pg_url)
    lean = tmp_path / "lean.tar"
    made = headwater(
        "backup", "create", "--config", str(scaled), "--data-dir", str(tmp_path / "node"),
        "--database", pg_url, str(lean), env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    verified = headwater(
        "backup", "verify", "--config", str(scaled), "--data-dir", str(tmp_path / "node"),
        "--database", pg_url, str(lean), env=env,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    client.delete_object(Bucket=s3_bucket, Key=key)
    verified = headwater(
        "backup", "verify", "--config", str(scaled), "--data-dir", str(tmp_path / "node"),
        "--database", pg_url, str(lean), env=env,
    )  # fmt: skip
    assert verified.returncode == 1 and key.removeprefix("main/") in verified.stdout
