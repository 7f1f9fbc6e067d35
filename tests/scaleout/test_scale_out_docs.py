"""docs/scale-out.md cannot drift: its configuration is accepted by the real config loader, its
nginx configuration by a real ``nginx -t``, its topology image exists and is well-formed SVG, and
the tests it names exist."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from headwater.config import parse_config
from tests.nginx import start_nginx

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "scale-out.md").read_text()


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC, flags=re.DOTALL)


def test_the_configuration_example_is_accepted() -> None:
    (example,) = _blocks("toml")
    config = parse_config(example, source="scale-out.md")
    assert config.hosted["main"].storage == "s3://packages/hosted/main"
    assert config.proxy["pypi"].storage == "s3://packages/proxy/pypi"


def test_the_nginx_example_is_accepted_by_nginx(tmp_path: Path) -> None:
    (site,) = _blocks("nginx")
    # On loopback and a free port; everything else as the page has it.
    site = site.replace("listen 8080;", "listen 127.0.0.1:{port};")
    server = start_nginx(tmp_path, site)  # runs `nginx -t` first; a warning fails too
    server.stop()


def test_the_topology_image_is_there_and_well_formed() -> None:
    (image,) = re.findall(r"!\[[^\]]+\]\(([^)]+\.svg)\)", DOC)
    root = ET.parse(ROOT / "docs" / image).getroot()
    assert root.tag.endswith("svg")
    assert root.find("{http://www.w3.org/2000/svg}title") is not None  # an accessible name


def test_the_tests_it_names_exist() -> None:
    for path in set(re.findall(r"`(tests/[\w/]+\.py)`", DOC)):
        assert (ROOT / path).is_file(), path


def test_the_bucket_creation_step_runs_with_what_the_page_installs() -> None:
    """The page's step 2 creates the bucket with headwater's own Python (botocore comes with the
    s3 extra): run as written against the test SeaweedFS. (It used boto3, which nothing in the
    example installs.)"""
    import os
    import subprocess
    import sys

    from tests.seaweed import empty_bucket, seaweed_server

    (snippet,) = re.findall(r"/opt/headwater/bin/python - <<'EOF'\n(.*?)\nEOF", DOC, re.DOTALL)
    server = seaweed_server()
    bucket = f"docs-{os.getpid()}"
    code = snippet.replace("http://127.0.0.1:8333", server.endpoint).replace(
        '"packages"', repr(bucket)
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **server.env()},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    client = server.client()
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    empty_bucket(server, bucket)
    client.delete_bucket(Bucket=bucket)
